/**
 * The handler's only door to AWS: every call goes through `withRetry` with the context its errors need.
 * Tests replace the SDK clients underneath (aws-sdk-client-mock) or point them at a local endpoint.
 */
import { DescribeStacksCommand } from '@aws-sdk/client-cloudformation';
import {
  CreateUserCommand,
  DeleteUserCommand,
  DescribeBrokerCommand,
  DescribeUserCommand,
  ListUsersCommand,
  RebootBrokerCommand,
  UpdateUserCommand,
} from '@aws-sdk/client-mq';
import { GetSecretValueCommand } from '@aws-sdk/client-secrets-manager';
import { log, warn } from './log';
import { CallError, Deadline, backoffMs, isNotFound, sleep, withRetry } from './retry';
import { sdk } from './sdk';
import { listStackResources, stackHistory, type StackResource } from './stack';
import { proveEvent, type ProvableEvent, type ResourceNow } from './proof';
import { checkBrokerId, type UserIdentity } from './properties';

export interface BrokerInfo {
  readonly engineType: string;
  readonly authenticationStrategy: string;
  readonly state: string;
  /** The configuration revision the broker runs, and the one waiting for its next reboot (ActiveMQ). */
  readonly configurations?: {
    readonly current?: { readonly id: string; readonly revision: number };
    readonly pending?: { readonly id: string; readonly revision: number };
  };
}

function configurationRevision(value: { Id?: string; Revision?: number } | undefined) {
  return value?.Id !== undefined && value.Revision !== undefined
    ? { id: value.Id, revision: value.Revision }
    : undefined;
}

/**
 * A user as DescribeUser shows it, the pending values first (they are what the broker will hold after its next
 * reboot), else the applied ones. A field Amazon MQ did not return is `undefined`: unknown, so it is written.
 */
export interface UserState {
  /** `CREATE`, `UPDATE` or `DELETE` while a change waits for the broker's next reboot. */
  readonly pendingChange?: string;
  readonly consoleAccess?: boolean;
  readonly groups?: string[];
  readonly replicationUser?: boolean;
}

/** The whole desired state: sent in full on every write, because what an omitted field does is undocumented. */
export interface DesiredUser {
  readonly consoleAccess: boolean;
  readonly groups: string[];
  readonly replicationUser: boolean;
  /** Omitted only when an update leaves the password as it is. */
  readonly password?: string;
}

/** Asked at most once per invocation, whichever `Aws` view asks. */
interface StackCache {
  status?: Promise<{ status: string; rootId?: string }>;
  rollingBack?: Promise<boolean | undefined>;
  /** `completedInCurrentOperation`, by logical and physical ID. */
  readonly proofs: Map<string, Promise<boolean>>;
}

export class Aws {
  /**
   * @param stackId the stack of the event being handled: its status bounds the waits of user calls, and every
   *   CloudFormation read is of this stack
   */
  constructor(
    private readonly deadline: Deadline,
    private readonly stackId: string,
    private readonly cache: StackCache = { proofs: new Map() },
  ) {}

  /**
   * The same door with a deadline `ms` earlier (at most a quarter of the time left): leaves time to undo work
   * after a loop gives up.
   */
  narrowed(ms: number): Aws {
    return new Aws(this.deadline.earlier(Math.min(ms, this.deadline.remainingMs() / 4)), this.stackId, this.cache);
  }

  remainingMs(): number {
    return this.deadline.remainingMs();
  }

  /** CloudFormation's confirmation that it is working on the event's resource now, or a throw (./proof). */
  prove(event: ProvableEvent, expectedType: string): Promise<ResourceNow> {
    return proveEvent(this.deadline, event, expectedType);
  }

  /** The stack's name, as its ID holds it (`arn:…:stack/<name>/<uuid>`). */
  stackName(): string {
    return this.stackId.split('/')[1] ?? this.stackId;
  }

  async describeBroker(brokerId: string): Promise<BrokerInfo> {
    checkBrokerId(brokerId);
    const out = await withRetry({ operation: 'DescribeBroker', brokerId }, this.deadline, (abortSignal) =>
      sdk().mq.send(new DescribeBrokerCommand({ BrokerId: brokerId }), { abortSignal }),
    );
    return {
      engineType: out.EngineType ?? '',
      // Amazon MQ omits the strategy on brokers that never set it: those use simple authentication.
      authenticationStrategy: out.AuthenticationStrategy ?? 'SIMPLE',
      state: out.BrokerState ?? 'UNKNOWN',
      configurations: {
        current: configurationRevision(out.Configurations?.Current),
        pending: configurationRevision(out.Configurations?.Pending),
      },
    };
  }

  /** The user's state, or `undefined` when Amazon MQ answers 404 (the user, or its broker, is gone). */
  async describeUser(user: UserIdentity): Promise<UserState | undefined> {
    try {
      const out = await this.userCall('DescribeUser', user, {}, (input, abortSignal) =>
        sdk().mq.send(new DescribeUserCommand(input), { abortSignal }),
      );
      const pending = out.Pending;
      return {
        pendingChange: pending?.PendingChange,
        consoleAccess: pending ? pending.ConsoleAccess : out.ConsoleAccess,
        groups: pending ? pending.Groups : out.Groups,
        // `Pending` carries no replication flag: while a change waits, the top-level one may be the old value.
        replicationUser: pending ? undefined : out.ReplicationUser,
      };
    } catch (error) {
      if (isNotFound(error)) return undefined;
      throw error;
    }
  }

  /** CreateUser; a 409 is not retried here: the caller looks at the user to tell what it means. */
  async createUser(user: UserIdentity, desired: DesiredUser & { readonly password: string }): Promise<void> {
    await this.userCall(
      'CreateUser',
      user,
      { ...fields(desired), Password: desired.password },
      (input, abortSignal) => sdk().mq.send(new CreateUserCommand(input), { abortSignal }),
      { retryConflict: false, carriesPassword: true },
    );
  }

  /** UpdateUser; `retryConflict: false` where a 409 is an answer rather than a passing conflict. */
  async updateUser(user: UserIdentity, desired: DesiredUser, options: { retryConflict?: boolean } = {}): Promise<void> {
    await this.userCall(
      'UpdateUser',
      user,
      fields(desired),
      (input, abortSignal) => sdk().mq.send(new UpdateUserCommand(input), { abortSignal }),
      { ...options, carriesPassword: desired.password !== undefined },
    );
  }

  /**
   * Deletes the user; `false` when it (or its broker) was already gone. DeleteUser on a user already pending DELETE
   * is undocumented: a 200 and a 409 both mean the deletion is under way (a DescribeUser tells a 409 of that kind
   * from a passing conflict, which is tried again).
   */
  async deleteUser(user: UserIdentity): Promise<boolean> {
    for (let round = 1; ; round++) {
      try {
        await this.userCall(
          'DeleteUser',
          user,
          {},
          (input, abortSignal) => sdk().mq.send(new DeleteUserCommand(input), { abortSignal }),
          { retryConflict: false },
        );
        return true;
      } catch (error) {
        if (isNotFound(error)) return false;
        if (!(error instanceof CallError && error.httpStatus === 409)) throw error;
        const now = await this.describeUser(user);
        if (now === undefined) return false;
        if (now.pendingChange === 'DELETE') {
          log('DeleteUser: the user is already pending deletion', { ...user });
          return true;
        }
        const delay = backoffMs(round);
        if (delay >= this.deadline.remainingMs()) throw error;
        await sleep(delay);
      }
    }
  }

  /**
   * One call on a user, retried as `withRetry` does. Amazon MQ may refuse user calls (400) while the broker
   * reboots: that is a `BrokerBusyError` at once, never a wait inside this invocation (a reboot takes minutes, a
   * maintenance window up to two hours): the handler hands the event to the Provider framework's isComplete
   * waiter, which tries again once the broker is RUNNING. "An earlier attempt may have succeeded" is kept.
   */
  private async userCall<I extends object, T>(
    operation: string,
    user: UserIdentity,
    input: I,
    send: (input: I & { BrokerId: string; Username: string }, abortSignal: AbortSignal) => Promise<T>,
    options: { retryConflict?: boolean; carriesPassword?: boolean } = {},
  ): Promise<T> {
    const request = { ...input, BrokerId: checkBrokerId(user.brokerId), Username: user.username };
    const context = { operation, ...user, carriesPassword: options.carriesPassword };
    try {
      return await withRetry(context, this.deadline, (abortSignal) => send(request, abortSignal), options);
    } catch (error) {
      if (!(error instanceof CallError)) throw error;
      if (!(await this.refusedWhileRebooting(error, user.brokerId).catch(() => false))) throw error;
      log('the broker is rebooting and refuses user calls: handing the event to the waiter', { ...user, operation });
      throw new BrokerBusyError(error, error.earlierAttemptMayHaveSucceeded, user.brokerId);
    }
  }

  /**
   * Whether `error` is Amazon MQ refusing a call (400) because the broker is rebooting: it refuses user calls,
   * ListUsers and RebootBroker alike then, and only DescribeBroker tells that apart from a bad request.
   */
  async refusedWhileRebooting(error: unknown, brokerId: string): Promise<boolean> {
    if (!(error instanceof CallError && error.httpStatus === 400)) return false;
    return (await this.describeBroker(brokerId)).state === 'REBOOT_IN_PROGRESS';
  }

  /** The pending change of every user of the broker that has one, by username (ListUsers, all pages). */
  async pendingChanges(brokerId: string): Promise<Map<string, string>> {
    checkBrokerId(brokerId);
    const pending = new Map<string, string>();
    let nextToken: string | undefined;
    do {
      const token = nextToken;
      const out = await withRetry({ operation: 'ListUsers', brokerId }, this.deadline, (abortSignal) =>
        sdk().mq.send(new ListUsersCommand({ BrokerId: brokerId, MaxResults: 100, NextToken: token }), { abortSignal }),
      );
      for (const user of out.Users ?? []) {
        if (user.Username && user.PendingChange) pending.set(user.Username, user.PendingChange);
      }
      nextToken = out.NextToken;
    } while (nextToken);
    return pending;
  }

  async rebootBroker(brokerId: string): Promise<void> {
    checkBrokerId(brokerId);
    await withRetry({ operation: 'RebootBroker', brokerId }, this.deadline, (abortSignal) =>
      sdk().mq.send(new RebootBrokerCommand({ BrokerId: brokerId }), { abortSignal }),
    );
  }

  async secretString(secretArn: string, user: UserIdentity, versionStage?: string): Promise<string> {
    const out = await withRetry({ operation: 'GetSecretValue', ...user, secretArn }, this.deadline, (abortSignal) =>
      sdk().secrets.send(new GetSecretValueCommand({ SecretId: secretArn, VersionStage: versionStage }), {
        abortSignal,
      }),
    );
    if (out.SecretString === undefined) {
      throw new Error(`secret ${secretArn} holds no SecretString: binary secrets cannot hold an Amazon MQ password`);
    }
    return out.SecretString;
  }

  /** The secret string of the version carrying `versionStage`, or `undefined` when no version carries it. */
  async secretStringAt(secretArn: string, user: UserIdentity, versionStage: string): Promise<string | undefined> {
    try {
      return await this.secretString(secretArn, user, versionStage);
    } catch (error) {
      if (error instanceof CallError && error.errorName === 'ResourceNotFoundException') return undefined;
      throw error;
    }
  }

  /**
   * Whether the stack being deployed is rolling back (`UPDATE_ROLLBACK_IN_PROGRESS`, `ROLLBACK_IN_PROGRESS`,
   * `UPDATE_ROLLBACK_COMPLETE_CLEANUP_IN_PROGRESS`), asked once per invocation; `undefined` when its status
   * cannot be read: each caller picks its own safe side. A nested stack that is being deleted while its root
   * rolls back (the rollback of the nested stack's creation) counts as rolling back.
   */
  isRollingBack(): Promise<boolean | undefined> {
    this.cache.rollingBack ??= this.ownStatus()
      .then(async ({ status, rootId }) => {
        if (ROLLING_BACK.test(status)) return true;
        if (status !== 'DELETE_IN_PROGRESS' || !rootId || rootId === this.stackId) return false;
        return ROLLING_BACK.test((await this.stackStatus(rootId)).status);
      })
      .catch((error: Error) => {
        warn('could not read the stack status', { reason: error.message });
        return undefined;
      });
    return this.cache.rollingBack;
  }

  /** Whether the stack itself is being deleted (`DELETE_IN_PROGRESS`); `undefined` when its status is unknown. */
  isBeingDeleted(): Promise<boolean | undefined> {
    return this.ownStatus().then(
      ({ status }) => status === 'DELETE_IN_PROGRESS',
      () => undefined,
    );
  }

  /**
   * Whether CloudFormation is in a cleanup phase (`UPDATE_COMPLETE_CLEANUP_IN_PROGRESS` or
   * `UPDATE_ROLLBACK_COMPLETE_CLEANUP_IN_PROGRESS`), where a failed Delete is reported and never retried;
   * `undefined` when the status cannot be read.
   */
  isCleaningUp(): Promise<boolean | undefined> {
    return this.ownStatus().then(
      ({ status }) => status.endsWith('_CLEANUP_IN_PROGRESS'),
      () => undefined,
    );
  }

  /** The stack's own status, asked once per invocation. */
  private ownStatus(): Promise<{ status: string; rootId?: string }> {
    this.cache.status ??= this.stackStatus(this.stackId);
    return this.cache.status;
  }

  private async stackStatus(stackId: string): Promise<{ status: string; rootId?: string }> {
    const out = await withRetry({ operation: 'DescribeStacks' }, this.deadline, (abortSignal) =>
      sdk().cloudFormation.send(new DescribeStacksCommand({ StackName: stackId }), { abortSignal }),
    );
    const stack = out.Stacks?.[0];
    return { status: stack?.StackStatus ?? '', rootId: stack?.RootId };
  }

  /**
   * Whether the stack's own history shows `logicalId` completing with `physicalId` within the stack's current
   * operation: DescribeStackEvents, newest first, down to the operation's start (the stack's own
   * `UPDATE_IN_PROGRESS`). `false` when the history says otherwise or is too long to read.
   */
  completedInCurrentOperation(logicalId: string, physicalId: string): Promise<boolean> {
    // Asked by a rename's rollback, and again if that rollback fails: read the history once.
    const key = `${logicalId} ${physicalId}`;
    let proof = this.cache.proofs.get(key);
    if (!proof) {
      proof = this.readHistory(logicalId, physicalId);
      this.cache.proofs.set(key, proof);
    }
    return proof;
  }

  private async readHistory(logicalId: string, physicalId: string): Promise<boolean> {
    for await (const event of stackHistory(this.deadline, this.stackId, MAX_EVENT_PAGES)) {
      const status = event.status ?? '';
      if (
        event.logicalId === logicalId &&
        event.physicalId === physicalId &&
        (status === 'CREATE_COMPLETE' || status === 'UPDATE_COMPLETE')
      ) {
        return true;
      }
      if (
        event.type === 'AWS::CloudFormation::Stack' &&
        event.physicalId === this.stackId &&
        (status === 'UPDATE_IN_PROGRESS' || status === 'CREATE_IN_PROGRESS')
      ) {
        return false;
      }
    }
    return false;
  }

  /** The stack's resources as CloudFormation holds them now. */
  stackResources(): Promise<StackResource[]> {
    return listStackResources(this.deadline, this.stackId);
  }
}

const ROLLING_BACK = /ROLLBACK.*IN_PROGRESS$/;
// An operation of a stack with 500 resources logs a few thousand events; beyond that, no proof.
const MAX_EVENT_PAGES = 50;

/** The broker kept refusing user calls while it rebooted, until the handler had to stop waiting. */
export class BrokerBusyError extends Error {
  constructor(
    readonly refusal: CallError,
    /** An attempt before the refusal got no answer or a 5xx: it may have done what it asked. */
    readonly earlierAttemptMayHaveSucceeded: boolean,
    /** The broker that refused. */
    readonly brokerId: string,
  ) {
    super(`${refusal.message}; the broker is still REBOOT_IN_PROGRESS: retry once it is RUNNING`);
    this.name = 'BrokerBusyError';
  }
}

/** Whether a failed call may still have done what it asked (an attempt got no answer, or a 5xx). */
export function mayHaveSucceeded(error: unknown): boolean {
  return (error instanceof CallError || error instanceof BrokerBusyError) && error.earlierAttemptMayHaveSucceeded;
}

function fields(desired: DesiredUser) {
  return {
    ConsoleAccess: desired.consoleAccess,
    Groups: desired.groups,
    ReplicationUser: desired.replicationUser,
    ...(desired.password !== undefined ? { Password: desired.password } : {}),
  };
}
