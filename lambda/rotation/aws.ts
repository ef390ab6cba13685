/**
 * The rotation function's only door to AWS: Secrets Manager and Amazon MQ calls, each through `withRetry` with
 * the context its errors need. Every secret string read is registered as sensitive before it goes anywhere.
 * Tests replace the SDK clients underneath (aws-sdk-client-mock).
 */
import { DescribeBrokerCommand, DescribeUserCommand, RebootBrokerCommand, UpdateUserCommand } from '@aws-sdk/client-mq';
import {
  DescribeSecretCommand,
  GetSecretValueCommand,
  PutSecretValueCommand,
  UpdateSecretVersionStageCommand,
} from '@aws-sdk/client-secrets-manager';
import { registerSensitive } from '../shared/log';
import { CallError, Deadline, isNotFound, withRetry } from '../shared/retry';
import { checkBrokerId } from '../shared/properties';
import { sdk } from '../shared/sdk';
import { describeStackResource, type ResourceNow } from '../shared/proof';
import { listStackResources, type StackResource } from '../shared/stack';

/** What DescribeSecret says about a secret: never its value. */
export interface SecretDescription {
  readonly arn: string;
  readonly rotationEnabled: boolean;
  readonly tags: ReadonlyMap<string, string>;
  /** Version ID to its staging labels (only versions that carry a label: the others are deprecated). */
  readonly versions: Map<string, Set<string>>;
  /** When Secrets Manager last completed a rotation (ms since the epoch); `undefined` if never. */
  readonly lastRotatedAt?: number;
}

/** A user as DescribeUser shows it: the pending values first, else the applied ones. */
export interface RotatedUserState {
  /** `CREATE`, `UPDATE` or `DELETE` while a change waits for the broker's next reboot or maintenance window. */
  readonly pendingChange?: string;
  readonly consoleAccess: boolean;
  readonly groups: string[];
  /** `Pending` carries no replication flag: this is always the top-level one (false when Amazon MQ omits it). */
  readonly replicationUser: boolean;
}

export function errorNamed(error: unknown, name: string): boolean {
  return error instanceof CallError && error.errorName === name;
}

export class RotationAws {
  constructor(readonly deadline: Deadline) {}

  /** The stack's resources as CloudFormation holds them now. */
  stackResources(stackId: string): Promise<StackResource[]> {
    return listStackResources(this.deadline, stackId);
  }

  /** One resource of the stack, its `Metadata` included (DescribeStackResource). */
  stackResource(stackId: string, logicalId: string): Promise<ResourceNow> {
    return describeStackResource(this.deadline, stackId, logicalId);
  }

  async describeSecret(secretId: string): Promise<SecretDescription> {
    const out = await withRetry({ operation: 'DescribeSecret', secretArn: secretId }, this.deadline, (abortSignal) =>
      sdk().secrets.send(new DescribeSecretCommand({ SecretId: secretId }), { abortSignal }),
    );
    const tags = new Map<string, string>();
    for (const tag of out.Tags ?? []) if (tag.Key !== undefined) tags.set(tag.Key, tag.Value ?? '');
    const versions = new Map<string, Set<string>>();
    for (const [id, stages] of Object.entries(out.VersionIdsToStages ?? {})) versions.set(id, new Set(stages));
    return {
      arn: out.ARN ?? secretId,
      rotationEnabled: out.RotationEnabled === true,
      tags,
      versions,
      lastRotatedAt: out.LastRotatedDate?.getTime(),
    };
  }

  /**
   * The secret string of a version (by ID and/or staging label), or `undefined` when Secrets Manager has no value
   * for it (ResourceNotFoundException: the version has no value yet, or does not carry that label).
   */
  async secretString(arn: string, version: { versionId?: string; versionStage?: string }): Promise<string | undefined> {
    try {
      const out = await withRetry({ operation: 'GetSecretValue', secretArn: arn }, this.deadline, (abortSignal) =>
        sdk().secrets.send(
          new GetSecretValueCommand({
            SecretId: arn,
            VersionId: version.versionId,
            VersionStage: version.versionStage,
          }),
          { abortSignal },
        ),
      );
      if (out.SecretString === undefined) {
        const which = version.versionId ?? version.versionStage;
        throw new Error(`version ${which} of secret ${arn} holds no SecretString: binary secrets cannot be rotated`);
      }
      registerSensitive(out.SecretString);
      return out.SecretString;
    } catch (error) {
      if (errorNamed(error, 'ResourceNotFoundException')) return undefined;
      throw error;
    }
  }

  /** PutSecretValue; the labels in `stages` move to this version. The service's text is withheld from errors. */
  async putSecretValue(arn: string, versionId: string, secretString: string, stages: string[]): Promise<void> {
    registerSensitive(secretString);
    await withRetry(
      { operation: 'PutSecretValue', secretArn: arn, carriesPassword: true },
      this.deadline,
      (abortSignal) =>
        sdk().secrets.send(
          new PutSecretValueCommand({
            SecretId: arn,
            ClientRequestToken: versionId,
            SecretString: secretString,
            VersionStages: stages,
          }),
          { abortSignal },
        ),
    );
  }

  /** UpdateSecretVersionStage: attaches `stage` to `moveTo` and/or removes it from `removeFrom`. */
  async updateVersionStage(
    arn: string,
    stage: string,
    versions: { moveTo?: string; removeFrom?: string },
  ): Promise<void> {
    await withRetry({ operation: `UpdateSecretVersionStage ${stage}`, secretArn: arn }, this.deadline, (abortSignal) =>
      sdk().secrets.send(
        new UpdateSecretVersionStageCommand({
          SecretId: arn,
          VersionStage: stage,
          MoveToVersionId: versions.moveTo,
          RemoveFromVersionId: versions.removeFrom,
        }),
        { abortSignal },
      ),
    );
  }

  async brokerState(brokerId: string): Promise<string> {
    const out = await withRetry({ operation: 'DescribeBroker', brokerId }, this.deadline, (abortSignal) =>
      sdk().mq.send(new DescribeBrokerCommand({ BrokerId: checkBrokerId(brokerId) }), { abortSignal }),
    );
    return out.BrokerState ?? 'UNKNOWN';
  }

  /** Every wire endpoint of every instance of the broker (`BrokerInstances[].Endpoints`), for `verifySignIn`. */
  async brokerEndpoints(brokerId: string): Promise<string[]> {
    const out = await withRetry({ operation: 'DescribeBroker', brokerId }, this.deadline, (abortSignal) =>
      sdk().mq.send(new DescribeBrokerCommand({ BrokerId: brokerId }), { abortSignal }),
    );
    return (out.BrokerInstances ?? []).flatMap((instance) => instance.Endpoints ?? []);
  }

  /** The user's state, or `undefined` when Amazon MQ answers 404 (the user, or its broker, is gone). */
  async describeUser(brokerId: string, username: string): Promise<RotatedUserState | undefined> {
    try {
      const out = await withRetry({ operation: 'DescribeUser', brokerId, username }, this.deadline, (abortSignal) =>
        sdk().mq.send(new DescribeUserCommand({ BrokerId: checkBrokerId(brokerId), Username: username }), {
          abortSignal,
        }),
      );
      const pending = out.Pending;
      return {
        pendingChange: pending?.PendingChange,
        consoleAccess: (pending ? pending.ConsoleAccess : out.ConsoleAccess) ?? false,
        groups: (pending ? pending.Groups : out.Groups) ?? [],
        replicationUser: out.ReplicationUser ?? false,
      };
    } catch (error) {
      if (isNotFound(error)) return undefined;
      throw error;
    }
  }

  /** UpdateUser with the whole state and a password: the service's text never reaches an error. */
  async updateUser(
    brokerId: string,
    username: string,
    state: RotatedUserState & { readonly password: string },
  ): Promise<void> {
    registerSensitive(state.password);
    await withRetry(
      { operation: 'UpdateUser', brokerId, username, carriesPassword: true },
      this.deadline,
      (abortSignal) =>
        sdk().mq.send(
          new UpdateUserCommand({
            BrokerId: checkBrokerId(brokerId),
            Username: username,
            ConsoleAccess: state.consoleAccess,
            Groups: state.groups,
            ReplicationUser: state.replicationUser,
            Password: state.password,
          }),
          { abortSignal },
        ),
    );
  }

  async rebootBroker(brokerId: string): Promise<void> {
    await withRetry({ operation: 'RebootBroker', brokerId }, this.deadline, (abortSignal) =>
      sdk().mq.send(new RebootBrokerCommand({ BrokerId: checkBrokerId(brokerId) }), { abortSignal }),
    );
  }
}
