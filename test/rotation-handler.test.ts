/**
 * The rotation function against an in-memory Secrets Manager secret (versions, staging labels, AWSPREVIOUS) and
 * an in-memory Amazon MQ broker (applied and pending users, reboots, maintenance windows) behind the SDK mocks,
 * so that assertions are about the resulting stages and the broker's applied passwords, not only about calls.
 */
import {
  BadRequestException,
  DescribeBrokerCommand,
  DescribeUserCommand,
  MqClient,
  NotFoundException,
  RebootBrokerCommand,
  UpdateUserCommand,
} from '@aws-sdk/client-mq';
import {
  DescribeSecretCommand,
  GetSecretValueCommand,
  InvalidParameterException,
  InvalidRequestException,
  PutSecretValueCommand,
  ResourceExistsException,
  ResourceNotFoundException,
  SecretsManagerClient,
  UpdateSecretVersionStageCommand,
} from '@aws-sdk/client-secrets-manager';
import {
  CloudFormationClient,
  DescribeStackResourceCommand,
  ListStackResourcesCommand,
} from '@aws-sdk/client-cloudformation';
import { mockClient } from 'aws-sdk-client-mock';
import 'aws-sdk-client-mock-jest';
import { retryTiming } from '../lambda/shared/retry';
import {
  LABELS,
  ROTATION_TAGS,
  handler,
  rotationTiming,
  signInOptions,
  stagedVersionId,
} from '../lambda/rotation/index';
import { ROTATION_BINDING_KEY } from '../lib/private/rules';
import { resourceDetail, validationError } from './fixtures/proof';
import { ActiveMq, startActiveMq } from './support/activemq';
import {
  BROKER_ID,
  OTHER_BROKER_ID,
  OTHER_STACK_ID,
  PASSWORD,
  SECRET_ARN,
  STACK_ID,
  lambdaContext,
} from './fixtures/events';

const secrets = mockClient(SecretsManagerClient);
const mq = mockClient(MqClient);
const cloudFormation = mockClient(CloudFormationClient);

const PRIMARY = 'orders-service';
const ALTERNATE = 'orders-service_clone';
const STEPS = ['createSecret', 'setSecret', 'testSecret', 'finishSecret'] as const;
type Step = (typeof STEPS)[number];
type Mode = 'MAINTENANCE_WINDOW' | 'REBOOT';

interface Version {
  value?: string;
  stages: Set<string>;
}

interface UserValues {
  password: string;
  groups: string[];
  consoleAccess: boolean;
  replicationUser: boolean;
}

interface User {
  applied?: UserValues;
  pending?: UserValues & { change: 'CREATE' | 'UPDATE' | 'DELETE' };
}

class Crash extends Error {
  constructor() {
    super('the Lambda runtime died');
    this.name = 'LambdaCrash';
  }
}

/** The secret and the broker, as the services would hold them. */
class World {
  readonly versions = new Map<string, Version>();
  readonly tags: Record<string, string> = {
    [ROTATION_TAGS.brokerId]: BROKER_ID,
    [ROTATION_TAGS.mode]: 'MAINTENANCE_WINDOW',
    [ROTATION_TAGS.stackId]: STACK_ID,
  };
  rotationEnabled = true;
  /** DescribeSecret's LastRotatedDate: never rotated by default. */
  lastRotated?: Date;
  /** What ListStackResources shows of the function's stack: the secret and both users, by default. */
  stackResources: Array<{ LogicalResourceId: string; ResourceType: string; PhysicalResourceId: string }> = [
    { LogicalResourceId: 'Secret', ResourceType: 'AWS::SecretsManager::Secret', PhysicalResourceId: SECRET_ARN },
    {
      LogicalResourceId: 'User',
      ResourceType: 'Custom::MqUser',
      PhysicalResourceId: `${BROKER_ID}/${PRIMARY}?owner=created`,
    },
    {
      LogicalResourceId: 'Alternate',
      ResourceType: 'Custom::MqUser',
      PhysicalResourceId: `${BROKER_ID}/${ALTERNATE}?owner=created`,
    },
  ];
  /** The secret resource's metadata under ROTATION_BINDING_KEY, as `addRotation` declares it. */
  binding: Record<string, unknown> = {
    User: 'User',
    Alternate: 'Alternate',
    ApplyBy: 'MAINTENANCE_WINDOW',
    IntervalSeconds: 30 * 86_400,
  };
  brokerState = 'RUNNING';
  /** DescribeBroker answers REBOOT_IN_PROGRESS this many more times, then the broker is RUNNING with all applied. */
  rebootPolls = 0;
  /** RebootBroker calls that Amazon MQ accepted. */
  reboots = 0;
  /** When set, RebootBroker answers 400 and the broker starts someone else's reboot. */
  concurrentReboot = false;
  /**
   * RebootBroker is asynchronous: after an accepted one the broker keeps saying RUNNING, its changes pending, for
   * this many more DescribeBroker answers, then REBOOT_IN_PROGRESS (0: at once, the convenient answer).
   */
  rebootStartsAfterPolls = 0;
  rebootStartsIn?: number;
  /**
   * Amazon MQ refuses user calls with 400 while the broker is not RUNNING ("expect user calls to fail with 400
   * outside RUNNING", unverified): DescribeUser too (UpdateUser always does here).
   */
  refuseUserCallsWhileRebooting = false;
  /** The broker's wire endpoints (DescribeBroker's `BrokerInstances[].Endpoints`). */
  endpoints: string[] = ['ssl://localhost:61617', 'stomp+ssl://localhost:61614'];
  readonly users = new Map<string, User>();
  /** Every password the world has seen: none may appear in a log line or an error. */
  readonly secretsSeen = new Set<string>([PASSWORD]);
  /** AWS calls so far, by operation. */
  readonly calls: string[] = [];
  /** The call (1-based, counted from `armCrash`) after whose effect the invocation dies. */
  private crashAt?: number;
  private counted = 0;

  constructor() {
    this.versions.set('v0', { value: secretString(PRIMARY, PASSWORD), stages: new Set(['AWSCURRENT']) });
    for (const username of [PRIMARY, ALTERNATE]) {
      this.users.set(username, {
        applied: { password: PASSWORD, groups: ['orders-consumers'], consoleAccess: false, replicationUser: false },
      });
    }
  }

  armCrash(afterCall: number | undefined): void {
    this.crashAt = afterCall;
    this.counted = 0;
  }

  /** Runs one call's effect; then dies if the crash is armed for this call. */
  async call<T>(operation: string, effect: () => T): Promise<T> {
    this.calls.push(operation);
    this.counted++;
    const crash = this.crashAt !== undefined && this.counted === this.crashAt;
    let result: T;
    try {
      result = effect();
    } catch (error) {
      if (crash) throw new Crash();
      throw error;
    }
    if (crash) throw new Crash();
    return result;
  }

  holder(label: string): string | undefined {
    for (const [id, version] of this.versions) if (version.stages.has(label)) return id;
    return undefined;
  }

  valueOf(label: string): { username: string; password: string; stagedFor?: string } | undefined {
    const id = this.holder(label);
    return id === undefined ? undefined : JSON.parse(this.versions.get(id)!.value!);
  }

  labelsOf(versionId: string): string[] {
    return [...(this.versions.get(versionId)?.stages ?? [])].sort();
  }

  moveLabel(label: string, to: string): void {
    const from = this.holder(label);
    if (from !== undefined) this.versions.get(from)!.stages.delete(label);
    this.versions.get(to)!.stages.add(label);
    if (label === 'AWSCURRENT' && from !== undefined && from !== to) this.moveLabel('AWSPREVIOUS', from);
  }

  /** What a client holding these credentials gets from the broker now. */
  authenticates(credentials: { username: string; password: string }): boolean {
    return this.users.get(credentials.username)?.applied?.password === credentials.password;
  }

  /** A maintenance window (or a reboot) applies every pending change. */
  applyPending(): void {
    for (const user of this.users.values()) {
      if (user.pending) {
        const { change, ...values } = user.pending;
        user.applied = change === 'DELETE' ? undefined : values;
        user.pending = undefined;
      }
    }
  }
}

function secretString(username: string, password: string): string {
  return JSON.stringify({ username, password });
}

let world: World;
let output: string[];

const notFound = (message: string) =>
  new ResourceNotFoundException({ message, $metadata: { httpStatusCode: 400 } as never });
const invalidParameter = (message: string) =>
  new InvalidParameterException({ message, $metadata: { httpStatusCode: 400 } as never });

function installMocks(): void {
  cloudFormation.on(ListStackResourcesCommand).callsFake(async () => ({
    StackResourceSummaries: world.stackResources.map((r) => ({
      ...r,
      ResourceStatus: 'UPDATE_COMPLETE',
      LastUpdatedTimestamp: new Date(),
    })),
  }));
  cloudFormation
    .on(DescribeStackResourceCommand)
    .callsFake(async (input: { StackName?: string; LogicalResourceId?: string }) => {
      const r = world.stackResources.find((candidate) => candidate.LogicalResourceId === input.LogicalResourceId);
      if (!r || input.StackName !== STACK_ID) {
        throw validationError(`Resource ${input.LogicalResourceId} does not exist for stack ${input.StackName}`);
      }
      const metadata =
        r.ResourceType === 'AWS::SecretsManager::Secret' ? { [ROTATION_BINDING_KEY]: world.binding } : undefined;
      return resourceDetail(r.LogicalResourceId, r.ResourceType, 'UPDATE_COMPLETE', r.PhysicalResourceId, metadata);
    });
  secrets.on(DescribeSecretCommand).callsFake(async () =>
    world.call('DescribeSecret', () => ({
      ARN: SECRET_ARN,
      RotationEnabled: world.rotationEnabled,
      Tags: Object.entries(world.tags).map(([Key, Value]) => ({ Key, Value })),
      LastRotatedDate: world.lastRotated,
      VersionIdsToStages: Object.fromEntries(
        [...world.versions].filter(([, v]) => v.stages.size > 0).map(([id, v]) => [id, [...v.stages]]),
      ),
    })),
  );
  secrets
    .on(GetSecretValueCommand)
    .callsFake(async (input: { SecretId: string; VersionId?: string; VersionStage?: string }) =>
      world.call('GetSecretValue', () => {
        const id = input.VersionId ?? world.holder(input.VersionStage ?? 'AWSCURRENT');
        const version = id === undefined ? undefined : world.versions.get(id);
        if (!version || version.value === undefined)
          throw notFound("Secrets Manager can't find the specified secret value");
        if (input.VersionStage && !version.stages.has(input.VersionStage)) {
          throw notFound("Secrets Manager can't find the specified secret value for staging label");
        }
        return { ARN: SECRET_ARN, VersionId: id, SecretString: version.value, VersionStages: [...version.stages] };
      }),
    );
  secrets
    .on(PutSecretValueCommand)
    .callsFake(async (input: { ClientRequestToken: string; SecretString: string; VersionStages?: string[] }) =>
      world.call('PutSecretValue', () => {
        const existing = world.versions.get(input.ClientRequestToken);
        if (existing?.value !== undefined) {
          if (existing.value === input.SecretString) return { ARN: SECRET_ARN, VersionId: input.ClientRequestToken };
          throw new ResourceExistsException({
            message: 'You cannot modify an existing version',
            $metadata: { httpStatusCode: 400 } as never,
          });
        }
        const parsed = JSON.parse(input.SecretString) as { password: string };
        world.secretsSeen.add(parsed.password);
        world.versions.set(input.ClientRequestToken, {
          value: input.SecretString,
          stages: existing?.stages ?? new Set(),
        });
        for (const label of input.VersionStages ?? ['AWSCURRENT']) world.moveLabel(label, input.ClientRequestToken);
        return { ARN: SECRET_ARN, VersionId: input.ClientRequestToken };
      }),
    );
  secrets
    .on(UpdateSecretVersionStageCommand)
    .callsFake(async (input: { VersionStage: string; MoveToVersionId?: string; RemoveFromVersionId?: string }) =>
      world.call(`UpdateSecretVersionStage ${input.VersionStage}`, () => {
        const holder = world.holder(input.VersionStage);
        if (input.RemoveFromVersionId !== undefined && holder !== input.RemoveFromVersionId) {
          throw invalidParameter('The staging label is not attached to RemoveFromVersionId');
        }
        if (input.MoveToVersionId !== undefined) {
          if (!world.versions.has(input.MoveToVersionId)) throw notFound('no such version');
          if (holder !== undefined && holder !== input.MoveToVersionId && input.RemoveFromVersionId === undefined) {
            throw invalidParameter('The staging label is attached to another version: give RemoveFromVersionId');
          }
          world.moveLabel(input.VersionStage, input.MoveToVersionId);
        } else if (input.RemoveFromVersionId !== undefined) {
          if (input.VersionStage === 'AWSCURRENT') {
            throw new InvalidRequestException({
              message: 'You cannot remove AWSCURRENT',
              $metadata: { httpStatusCode: 400 } as never,
            });
          }
          world.versions.get(input.RemoveFromVersionId)!.stages.delete(input.VersionStage);
        }
        return { ARN: SECRET_ARN };
      }),
    );

  mq.on(DescribeBrokerCommand).callsFake(async () =>
    world.call('DescribeBroker', () => {
      if (world.brokerState === 'REBOOT_IN_PROGRESS' && world.rebootPolls-- <= 0) {
        world.applyPending();
        world.brokerState = 'RUNNING';
      }
      const answer = {
        BrokerId: BROKER_ID,
        BrokerState: world.brokerState as never,
        EngineType: 'ACTIVEMQ' as never,
        BrokerInstances: [{ Endpoints: world.endpoints }],
      };
      if (world.rebootStartsIn !== undefined && --world.rebootStartsIn <= 0) {
        world.rebootStartsIn = undefined;
        world.brokerState = 'REBOOT_IN_PROGRESS'; // right after this answer said RUNNING
      }
      return answer;
    }),
  );
  mq.on(DescribeUserCommand).callsFake(async (input: { Username: string }) =>
    world.call('DescribeUser', () => {
      if (world.refuseUserCallsWhileRebooting && world.brokerState !== 'RUNNING') {
        throw new BadRequestException({ message: 'broker not running', $metadata: { httpStatusCode: 400 } as never });
      }
      const user = world.users.get(input.Username);
      if (!user) {
        throw new NotFoundException({
          message: 'not found',
          ErrorAttribute: 'username',
          $metadata: { httpStatusCode: 404 } as never,
        });
      }
      return {
        BrokerId: BROKER_ID,
        Username: input.Username,
        ConsoleAccess: user.applied?.consoleAccess,
        Groups: user.applied?.groups,
        ReplicationUser: user.applied?.replicationUser,
        Pending: user.pending
          ? {
              PendingChange: user.pending.change,
              ConsoleAccess: user.pending.consoleAccess,
              Groups: user.pending.groups,
            }
          : undefined,
      };
    }),
  );
  mq.on(UpdateUserCommand).callsFake(
    async (input: {
      Username: string;
      Password?: string;
      Groups?: string[];
      ConsoleAccess?: boolean;
      ReplicationUser?: boolean;
    }) =>
      world.call('UpdateUser', () => {
        if (input.Password) world.secretsSeen.add(input.Password);
        if (world.brokerState !== 'RUNNING') {
          throw new BadRequestException({ message: 'broker not running', $metadata: { httpStatusCode: 400 } as never });
        }
        const user = world.users.get(input.Username);
        if (!user) throw new NotFoundException({ message: 'not found', $metadata: { httpStatusCode: 404 } as never });
        const base = user.pending ?? user.applied!;
        user.pending = {
          change: user.pending?.change ?? 'UPDATE',
          password: input.Password ?? base.password,
          groups: input.Groups ?? base.groups,
          consoleAccess: input.ConsoleAccess ?? base.consoleAccess,
          replicationUser: input.ReplicationUser ?? base.replicationUser,
        };
        return {};
      }),
  );
  mq.on(RebootBrokerCommand).callsFake(async () =>
    world.call('RebootBroker', () => {
      if (world.brokerState !== 'RUNNING' || world.concurrentReboot) {
        if (world.concurrentReboot) world.brokerState = 'REBOOT_IN_PROGRESS';
        throw new BadRequestException({
          message: 'Broker must be in RUNNING state to reboot',
          $metadata: { httpStatusCode: 400 } as never,
        });
      }
      world.reboots++;
      if (world.rebootStartsAfterPolls > 0) world.rebootStartsIn = world.rebootStartsAfterPolls;
      else world.brokerState = 'REBOOT_IN_PROGRESS';
      return {};
    }),
  );
}

/** One invocation of the rotation function, as Secrets Manager makes it. */
async function invoke(step: Step, token: string, context = lambdaContext()): Promise<void> {
  try {
    await handler({ SecretId: SECRET_ARN, ClientRequestToken: token, Step: step }, context);
  } catch (error) {
    output.push((error as Error).message);
    throw error;
  }
}

let tokens = 0;
const newToken = () => `00000000-0000-4000-8000-${String(++tokens).padStart(12, '0')}`;

/** RotateSecret: the service puts AWSPENDING on an empty version T before it invokes createSecret. */
function startRotation(token: string): void {
  if (!world.versions.has(token)) world.versions.set(token, { stages: new Set() });
  world.moveLabel('AWSPENDING', token);
}

/** A whole rotation (or its retry with the same token), checking guarantee 1 after every step. */
async function rotate(token = newToken(), afterStep: (step: Step) => void = () => undefined): Promise<string> {
  startRotation(token);
  for (const step of STEPS) {
    await invoke(step, token);
    expectClientsServed();
    afterStep(step);
  }
  return token;
}

/** Guarantee 1: the credentials labelled AWSCURRENT authenticate against the broker's applied state. */
function expectClientsServed(): void {
  expect(world.authenticates(world.valueOf('AWSCURRENT')!)).toBe(true);
}

function expectNoSecretInOutput(): void {
  const printed = [
    ...output,
    ...[console.log, console.warn, console.error].flatMap((spy) =>
      (spy as jest.Mock).mock.calls.map((args: unknown[]) => args.map(String).join(' ')),
    ),
  ].join('\n');
  expect(printed.length).toBeGreaterThan(0);
  for (const secret of world.secretsSeen) expect(printed).not.toContain(secret);
}

beforeEach(() => {
  secrets.reset();
  mq.reset();
  cloudFormation.reset();
  world = new World();
  output = [];
  installMocks();
  process.env.CDK_MQ_USER_STACK_ID = STACK_ID;
  Object.assign(retryTiming, {
    baseDelayMs: 1,
    maxDelayMs: 5,
    throttleBaseDelayMs: 1,
    throttleMaxDelayMs: 5,
    attemptTimeoutMs: 300,
    accessDeniedWindowMs: 50,
  });
  Object.assign(rotationTiming, { pollMs: 2, settleMs: 40 });
  jest.spyOn(console, 'log').mockImplementation(() => undefined);
  jest.spyOn(console, 'warn').mockImplementation(() => undefined);
  jest.spyOn(console, 'error').mockImplementation(() => undefined);
});

afterEach(() => {
  expectNoSecretInOutput();
  jest.restoreAllMocks();
  delete process.env.CDK_MQ_USER_STACK_ID;
});

describe('MAINTENANCE_WINDOW', () => {
  test('createSecret stages a new password for the other user and holds AWSCURRENT on the pending version', async () => {
    const token = newToken();
    startRotation(token);
    await invoke('createSecret', token);

    const stagedId = stagedVersionId(token);
    expect(world.labelsOf(stagedId)).toEqual([LABELS.staged]);
    const staged = JSON.parse(world.versions.get(stagedId)!.value!);
    expect(staged).toEqual({
      username: ALTERNATE,
      password: expect.stringMatching(/^[A-Za-z0-9]{32}$/),
      stagedFor: BROKER_ID,
    });
    expect(world.labelsOf(token)).toEqual(['AWSPENDING']);
    expect(world.versions.get(token)!.value).toBe(world.versions.get('v0')!.value);
    expect(mq).not.toHaveReceivedCommand(UpdateUserCommand);
  });

  test('setSecret sends the staged password to the other user with its whole state and marks it sent', async () => {
    world.users.get(ALTERNATE)!.pending = {
      change: 'UPDATE',
      password: PASSWORD,
      groups: ['orders-consumers', 'audit'],
      consoleAccess: true,
      replicationUser: false,
    };
    world.users.get(ALTERNATE)!.applied!.replicationUser = true;
    const token = newToken();
    startRotation(token);
    await invoke('createSecret', token);
    await invoke('setSecret', token);

    const stagedId = stagedVersionId(token);
    const staged = JSON.parse(world.versions.get(stagedId)!.value!);
    expect(mq).toHaveReceivedCommandTimes(UpdateUserCommand, 1);
    // Pending values first; Pending has no replication flag, so the top-level one.
    expect(mq).toHaveReceivedCommandWith(UpdateUserCommand, {
      BrokerId: BROKER_ID,
      Username: ALTERNATE,
      ConsoleAccess: true,
      Groups: ['orders-consumers', 'audit'],
      ReplicationUser: true,
      Password: staged.password,
    });
    expect(world.labelsOf(stagedId)).toEqual([LABELS.sent, LABELS.staged]);
    expect(world.users.get(PRIMARY)!.pending).toBeUndefined();
  });

  test('setSecret does not send the staged password again once it is marked sent', async () => {
    const token = newToken();
    startRotation(token);
    await invoke('createSecret', token);
    await invoke('setSecret', token);
    await invoke('setSecret', token);
    expect(mq).toHaveReceivedCommandTimes(UpdateUserCommand, 1);
  });

  test('testSecret passes a hold without asking the broker, and finishSecret moves AWSCURRENT and AWSPREVIOUS', async () => {
    const token = newToken();
    startRotation(token);
    await invoke('createSecret', token);
    await invoke('setSecret', token);
    mq.resetHistory();
    await invoke('testSecret', token);
    expect(mq).not.toHaveReceivedAnyCommand();

    await invoke('finishSecret', token);
    expect(world.labelsOf(token)).toEqual(['AWSCURRENT', 'AWSPENDING']);
    expect(world.labelsOf('v0')).toEqual(['AWSPREVIOUS']);
    expect(world.valueOf('AWSCURRENT')).toEqual({ username: PRIMARY, password: PASSWORD });
    // The staged version stays staged (and sent) for the next rotation.
    expect(world.labelsOf(stagedVersionId(token))).toEqual([LABELS.sent, LABELS.staged]);
  });

  test('stages, promotes after a window, and stages again across three rotations; clients always served, no reboot', async () => {
    // Rotation 1 stages the alternate's password and holds.
    let before = world.valueOf('AWSCURRENT')!;
    const first = await rotate(newToken(), () => expect(world.authenticates(before)).toBe(true));
    expect(world.valueOf('AWSCURRENT')).toEqual({ username: PRIMARY, password: PASSWORD });
    const stagedPassword = world.valueOf(LABELS.staged)!.password;
    expect(world.users.get(ALTERNATE)!.pending?.password).toBe(stagedPassword);

    world.applyPending(); // the maintenance window

    // Rotation 2 promotes the applied password; the previous credentials keep working.
    before = world.valueOf('AWSCURRENT')!;
    const second = await rotate(newToken(), () => expect(world.authenticates(before)).toBe(true));
    expect(world.valueOf('AWSCURRENT')).toEqual({ username: ALTERNATE, password: stagedPassword });
    expect(world.holder(LABELS.staged)).toBeUndefined();
    expect(world.holder(LABELS.sent)).toBeUndefined();
    expect(world.labelsOf(second)).toEqual(['AWSCURRENT', 'AWSPENDING']);
    expect(world.labelsOf(first)).toEqual(['AWSPREVIOUS']);

    // Rotation 3 stages a password for the primary (the user clients no longer use) and holds.
    before = world.valueOf('AWSCURRENT')!;
    await rotate(newToken(), () => expect(world.authenticates(before)).toBe(true));
    expect(world.valueOf('AWSCURRENT')).toEqual({ username: ALTERNATE, password: stagedPassword });
    const restaged = world.valueOf(LABELS.staged)!;
    expect(restaged).toEqual({ username: PRIMARY, password: expect.any(String), stagedFor: BROKER_ID });
    expect(world.users.get(PRIMARY)!.pending?.password).toBe(restaged.password);
    expect(world.users.get(ALTERNATE)!.pending).toBeUndefined();
    expect(mq).not.toHaveReceivedCommand(RebootBrokerCommand);
  });

  test('holds again without resending when no window has applied the staged password (a late window)', async () => {
    await rotate();
    const staged = world.valueOf(LABELS.staged)!;
    await rotate();
    await rotate();
    expect(world.valueOf('AWSCURRENT')).toEqual({ username: PRIMARY, password: PASSWORD });
    expect(world.valueOf(LABELS.staged)).toEqual(staged);
    expect(mq).toHaveReceivedCommandTimes(UpdateUserCommand, 1);
    world.applyPending();
    await rotate();
    expect(world.valueOf('AWSCURRENT')).toEqual({ username: ALTERNATE, password: staged.password });
  });

  test('does not promote a staged password that was never sent: holds and sends it', async () => {
    const token = newToken();
    startRotation(token);
    await invoke('createSecret', token); // staged, then the rotation stopped before setSecret
    world.applyPending();
    await rotate(); // a new rotation
    expect(world.valueOf('AWSCURRENT')).toEqual({ username: PRIMARY, password: PASSWORD });
    expect(world.labelsOf(stagedVersionId(token))).toEqual([LABELS.sent, LABELS.staged]);
  });

  test('refuses to promote a password staged for another broker: drops it and stages anew', async () => {
    world.versions.set('old-staged', {
      value: JSON.stringify({ username: ALTERNATE, password: 'StagedForAnotherBroker1', stagedFor: OTHER_BROKER_ID }),
      stages: new Set([LABELS.staged, LABELS.sent]),
    });
    world.secretsSeen.add('StagedForAnotherBroker1');
    const token = await rotate();
    expect(world.valueOf('AWSCURRENT')).toEqual({ username: PRIMARY, password: PASSWORD });
    expect(world.labelsOf('old-staged')).toEqual([]);
    expect(world.labelsOf(stagedVersionId(token))).toEqual([LABELS.sent, LABELS.staged]);
    expect(world.valueOf(LABELS.staged)!.stagedFor).toBe(BROKER_ID);
  });

  test('drops a staged version for the user in AWSCURRENT (a promotion whose finishSecret never tidied up)', async () => {
    world.versions.set('old-staged', {
      value: JSON.stringify({ username: PRIMARY, password: PASSWORD, stagedFor: BROKER_ID }),
      stages: new Set([LABELS.staged, LABELS.sent]),
    });
    const token = await rotate();
    expect(world.labelsOf('old-staged')).toEqual([]);
    expect(world.valueOf(LABELS.staged)!.username).toBe(ALTERNATE);
    expect(world.holder(LABELS.staged)).toBe(stagedVersionId(token));
  });

  test('fails testSecret of a promotion when the other user has a pending change again', async () => {
    await rotate();
    world.applyPending();
    const token = newToken();
    startRotation(token);
    await invoke('createSecret', token);
    await invoke('setSecret', token);
    world.users.get(ALTERNATE)!.pending = { ...world.users.get(ALTERNATE)!.applied!, change: 'UPDATE' };
    await expect(invoke('testSecret', token)).rejects.toThrow(
      `user "${ALTERNATE}" on broker ${BROKER_ID} still has a pending UPDATE`,
    );
    expect(world.valueOf('AWSCURRENT')!.username).toBe(PRIMARY);
  });

  test('fails setSecret, naming the user, when the other user does not exist on the broker', async () => {
    world.users.delete(ALTERNATE);
    const token = newToken();
    startRotation(token);
    await invoke('createSecret', token);
    await expect(invoke('setSecret', token)).rejects.toThrow(
      `user "${ALTERNATE}" does not exist on broker ${BROKER_ID}`,
    );
  });
});

describe('REBOOT', () => {
  beforeEach(() => {
    world.binding.ApplyBy = 'REBOOT';
    world.rebootPolls = 2;
  });

  describe('finding 6: RotateSecret is no reboot button', () => {
    const DAY = 86_400_000;

    test.each([
      ['an hour', 3_600_000],
      ['28 days (two days early)', 28 * DAY],
    ])(
      'refuses a rotation started %s after the last one (interval 30 days): no version, no reboot',
      async (_case, ago) => {
        world.lastRotated = new Date(Date.now() - ago);
        const token = newToken();
        startRotation(token);
        await expect(invoke('createSecret', token)).rejects.toThrow(
          new RegExp(
            `^refused to start a REBOOT rotation of secret ${SECRET_ARN}: it was last rotated at .*, and a rotation ` +
              `that reboots broker ${BROKER_ID} may start again from .* \\(its interval is 720 hours\\)$`,
          ),
        );
        expect(secrets).not.toHaveReceivedCommand(PutSecretValueCommand);
        expect(mq).not.toHaveReceivedAnyCommand();
        expect(world.reboots).toBe(0);
      },
    );

    test.each([
      ['never rotated', undefined],
      ['rotated 29 days and one hour ago (within the early day of the window)', 29 * DAY + 3_600_000],
      ['rotated 31 days ago', 31 * DAY],
    ])('starts a rotation of a secret %s', async (_case, ago) => {
      world.lastRotated = ago === undefined ? undefined : new Date(Date.now() - ago);
      await rotate();
      expect(world.reboots).toBe(1);
    });

    test('resumes a rotation already started, however recent the last one', async () => {
      const token = newToken();
      startRotation(token);
      await invoke('createSecret', token);
      world.lastRotated = new Date();
      await invoke('createSecret', token);
      for (const step of ['setSecret', 'testSecret', 'finishSecret'] as const) await invoke(step, token);
      expect(world.reboots).toBe(1);
    });

    test('a MAINTENANCE_WINDOW rotation is not bound by the interval (it reboots nothing)', async () => {
      world.binding.ApplyBy = 'MAINTENANCE_WINDOW';
      world.lastRotated = new Date(Date.now() - 3_600_000);
      await rotate();
      expect(world.holder(LABELS.staged)).toBeDefined();
    });
  });

  test('createSecret puts a new password for the other user on the pending version, once', async () => {
    const token = newToken();
    startRotation(token);
    await invoke('createSecret', token);
    const pending = world.valueOf('AWSPENDING')!;
    expect(pending).toEqual({ username: ALTERNATE, password: expect.stringMatching(/^[A-Za-z0-9]{32}$/) });
    expect(world.holder('AWSPENDING')).toBe(token);
    await invoke('createSecret', token);
    expect(world.valueOf('AWSPENDING')).toEqual(pending);
    expect(secrets).toHaveReceivedCommandTimes(PutSecretValueCommand, 1);
  });

  test('setSecret sends the pending password to the other user once and marks the version sent', async () => {
    const token = newToken();
    startRotation(token);
    await invoke('createSecret', token);
    await invoke('setSecret', token);
    await invoke('setSecret', token);
    expect(mq).toHaveReceivedCommandTimes(UpdateUserCommand, 1);
    expect(mq).toHaveReceivedCommandWith(UpdateUserCommand, {
      Username: ALTERNATE,
      Password: world.valueOf('AWSPENDING')!.password,
      Groups: ['orders-consumers'],
      ConsoleAccess: false,
      ReplicationUser: false,
    });
    expect(world.labelsOf(token)).toEqual(['AWSPENDING', LABELS.sent]);
  });

  test('rotates in one rotation with one reboot, AWSCURRENT moving only once the broker applied the password', async () => {
    const token = newToken();
    await rotate(token, (step) => {
      if (step === 'testSecret') expect(world.labelsOf(token)).toContain(LABELS.rebooted);
    });
    expect(world.reboots).toBe(1);
    const current = world.valueOf('AWSCURRENT')!;
    expect(current.username).toBe(ALTERNATE);
    expect(world.authenticates(current)).toBe(true);
    expect(world.labelsOf(token)).toEqual(['AWSCURRENT', 'AWSPENDING']);
    expect(world.labelsOf('v0')).toEqual(['AWSPREVIOUS']);

    await rotate();
    expect(world.reboots).toBe(2);
    expect(world.valueOf('AWSCURRENT')!.username).toBe(PRIMARY);
  });

  test('testSecret does not reboot when the password is applied already', async () => {
    const token = newToken();
    startRotation(token);
    await invoke('createSecret', token);
    await invoke('setSecret', token);
    world.applyPending();
    await invoke('testSecret', token);
    expect(mq).not.toHaveReceivedCommand(RebootBrokerCommand);
  });

  test('fails testSecret while a slow broker reboots; the retried rotation waits for it without rebooting again', async () => {
    world.rebootPolls = Number.POSITIVE_INFINITY;
    const token = newToken();
    startRotation(token);
    await invoke('createSecret', token);
    await invoke('setSecret', token);
    await expect(invoke('testSecret', token, lambdaContext(5_500))).rejects.toThrow(
      `broker ${BROKER_ID} is still rebooting (REBOOT_IN_PROGRESS)`,
    );
    expect(world.valueOf('AWSCURRENT')!.username).toBe(PRIMARY);
    expect(world.labelsOf(token)).toEqual(['AWSPENDING', LABELS.rebooted, LABELS.rebootRequested, LABELS.sent]);

    world.rebootPolls = 3;
    await rotate(token); // Secrets Manager retries the whole rotation with the same token
    expect(world.reboots).toBe(1);
    expect(world.valueOf('AWSCURRENT')!.username).toBe(ALTERNATE);
    expect(world.authenticates(world.valueOf('AWSCURRENT')!)).toBe(true);
  });

  test('counts a concurrent reboot (RebootBroker 400 while the broker left RUNNING) as its own', async () => {
    world.concurrentReboot = true;
    const token = await rotate();
    expect(world.reboots).toBe(0);
    expect(mq).toHaveReceivedCommandTimes(RebootBrokerCommand, 1);
    expect(world.valueOf('AWSCURRENT')!.username).toBe(ALTERNATE);
    expect(world.labelsOf(token)).toEqual(['AWSCURRENT', 'AWSPENDING']);
  });

  test('waits for a reboot already in progress and reboots only if it did not apply the password', async () => {
    const token = newToken();
    startRotation(token);
    await invoke('createSecret', token);
    await invoke('setSecret', token);
    world.brokerState = 'REBOOT_IN_PROGRESS'; // someone else's reboot; it applies what is pending
    await invoke('testSecret', token);
    expect(world.reboots).toBe(0);
  });

  test('fails testSecret when RebootBroker is refused while the broker is still RUNNING', async () => {
    mq.on(RebootBrokerCommand).rejects(
      new BadRequestException({ message: 'refused', $metadata: { httpStatusCode: 400 } as never }),
    );
    const token = newToken();
    startRotation(token);
    await invoke('createSecret', token);
    await invoke('setSecret', token);
    await expect(invoke('testSecret', token)).rejects.toThrow(/RebootBroker on broker .* failed/);
    expect(world.labelsOf(token)).not.toContain(LABELS.rebooted);
  });

  test('fails testSecret, never rebooting twice, when the user is still pending after the reboot settled', async () => {
    world.rebootPolls = 0;
    mq.on(RebootBrokerCommand).callsFake(async () => world.call('RebootBroker', () => ({}))); // accepted, applies nothing
    const token = newToken();
    startRotation(token);
    await invoke('createSecret', token);
    await invoke('setSecret', token);
    await expect(invoke('testSecret', token)).rejects.toThrow('not rebooting it again');
    await expect(rotate(token)).rejects.toThrow('not rebooting it again');
    expect(mq).toHaveReceivedCommandTimes(RebootBrokerCommand, 1);
    expect(world.valueOf('AWSCURRENT')!.username).toBe(PRIMARY);
  });

  test('fails testSecret when the broker is in a state it cannot be rebooted from', async () => {
    const token = newToken();
    startRotation(token);
    await invoke('createSecret', token);
    await invoke('setSecret', token);
    world.brokerState = 'CRITICAL_ACTION_REQUIRED';
    await expect(invoke('testSecret', token)).rejects.toThrow(`broker ${BROKER_ID} is CRITICAL_ACTION_REQUIRED`);
    expect(mq).not.toHaveReceivedCommand(RebootBrokerCommand);
  });
});

/**
 * A crash after each call of each step, then Secrets Manager's retry of the rotation with the same token (or the
 * crashed step run again): the result is the one of an uninterrupted rotation, and clients are served throughout.
 */
describe('crash safety', () => {
  type Scenario = { mode: Mode; name: string; prepare: () => Promise<void>; expectDone: (token: string) => void };
  const scenarios: Scenario[] = [
    {
      mode: 'MAINTENANCE_WINDOW',
      name: 'a staging rotation',
      prepare: async () => undefined,
      expectDone: (token) => {
        expect(world.valueOf('AWSCURRENT')).toEqual({ username: PRIMARY, password: PASSWORD });
        expect(world.holder(LABELS.staged)).toBe(stagedVersionId(token));
        expect(world.holder(LABELS.sent)).toBe(stagedVersionId(token));
        expect(world.users.get(ALTERNATE)!.pending?.password).toBe(world.valueOf(LABELS.staged)!.password);
        expect(world.users.get(PRIMARY)!.pending).toBeUndefined();
      },
    },
    {
      mode: 'MAINTENANCE_WINDOW',
      name: 'a promoting rotation',
      prepare: async () => {
        await rotate();
        world.applyPending();
      },
      expectDone: () => {
        const current = world.valueOf('AWSCURRENT')!;
        expect(current.username).toBe(ALTERNATE);
        expect(world.authenticates(current)).toBe(true);
        expect(world.holder(LABELS.staged)).toBeUndefined();
        expect(world.holder(LABELS.sent)).toBeUndefined();
      },
    },
    {
      mode: 'REBOOT',
      name: 'a rebooting rotation',
      prepare: async () => undefined,
      expectDone: (token) => {
        const current = world.valueOf('AWSCURRENT')!;
        expect(current.username).toBe(ALTERNATE);
        expect(world.authenticates(current)).toBe(true);
        expect(world.labelsOf(token)).toEqual(['AWSCURRENT', 'AWSPENDING']);
        expect(world.reboots).toBe(1);
      },
    },
  ];

  for (const scenario of scenarios) {
    for (const [stepIndex, step] of STEPS.entries()) {
      for (const retry of ['the whole rotation', 'the crashed step onward'] as const) {
        test(`${scenario.mode}: ${step} of ${scenario.name} resumes after a crash after any of its calls (retrying ${retry})`, async () => {
          let crashes = 0;
          for (let afterCall = 1; ; afterCall++) {
            world = new World();
            world.binding.ApplyBy = scenario.mode;
            world.rebootPolls = 2;
            await scenario.prepare();
            const token = newToken();
            startRotation(token);
            for (const earlier of STEPS.slice(0, stepIndex)) await invoke(earlier, token);
            world.armCrash(afterCall);
            const crashed = await invoke(step, token).then(
              () => false,
              (error: Error) => {
                expect(error.message).toContain('LambdaCrash');
                return true;
              },
            );
            world.armCrash(undefined);
            expectClientsServed();
            if (!crashed) break;
            crashes++;
            if (retry === 'the whole rotation') {
              await rotate(token);
            } else {
              for (const later of STEPS.slice(stepIndex)) {
                await invoke(later, token);
                expectClientsServed();
              }
            }
            scenario.expectDone(token);
          }
          expect(crashes).toBeGreaterThan(0);
        });
      }
    }
  }
});

describe('issue 15: a rebooting broker, and one reboot per rotation', () => {
  test('MAINTENANCE_WINDOW: a rotation during a window reboot (user calls refused) holds and succeeds, without DescribeBroker (finding 5b)', async () => {
    world.refuseUserCallsWhileRebooting = true;
    world.brokerState = 'REBOOT_IN_PROGRESS';
    world.rebootPolls = Number.POSITIVE_INFINITY; // the window's reboot outlasts the rotation
    const first = await rotate(); // stages; setSecret cannot send: nothing is labelled sent
    expect(world.valueOf('AWSCURRENT')).toEqual({ username: PRIMARY, password: PASSWORD });
    const stagedId = stagedVersionId(first);
    expect(world.labelsOf(stagedId)).toEqual([LABELS.staged]);
    expect(world.calls).not.toContain('DescribeBroker'); // the MAINTENANCE_WINDOW role has no mq:DescribeBroker
    world.brokerState = 'RUNNING';
    world.applyPending();
    await rotate(); // holds, and sends the staged password now
    expect(world.labelsOf(stagedId)).toEqual([LABELS.sent, LABELS.staged]);
    // The next window reboots while the third rotation runs: it cannot tell whether anything is applied: holds.
    world.brokerState = 'REBOOT_IN_PROGRESS';
    await rotate();
    expect(world.valueOf('AWSCURRENT')!.username).toBe(PRIMARY);
    world.brokerState = 'RUNNING';
    world.applyPending();
    await rotate(); // promotes what the alternate holds
    expect(world.valueOf('AWSCURRENT')!.username).toBe(ALTERNATE);
    expect(world.calls).not.toContain('DescribeBroker');
    expect(world.calls).not.toContain('RebootBroker');
  });

  test('MAINTENANCE_WINDOW: fails loudly on a 400 that names a field of the request (a bad request never passes)', async () => {
    mq.on(UpdateUserCommand).rejects(
      new BadRequestException({
        message: 'invalid groups',
        ErrorAttribute: 'groups',
        $metadata: { httpStatusCode: 400 } as never,
      }),
    );
    const token = newToken();
    startRotation(token);
    await invoke('createSecret', token);
    await expect(invoke('setSecret', token)).rejects.toThrow(/UpdateUser .* failed/);
    expect(world.labelsOf(stagedVersionId(token))).toEqual([LABELS.staged]);
  });

  test('REBOOT: DescribeUser refused because the broker left RUNNING right after saying RUNNING: testSecret waits, one reboot (finding 5a)', async () => {
    world.binding.ApplyBy = 'REBOOT'; // the mode is bound in the secret's metadata (the tag decides nothing)
    world.refuseUserCallsWhileRebooting = true;
    world.rebootStartsAfterPolls = 1; // RebootBroker accepted; the next DescribeBroker still says RUNNING
    world.rebootPolls = 2;
    const token = await rotate();
    expect(world.reboots).toBe(1);
    expect(world.valueOf('AWSCURRENT')!.username).toBe(ALTERNATE);
    expect(world.labelsOf(token)).toEqual(['AWSCURRENT', 'AWSPENDING']);
  });

  test('REBOOT: a crash after any call of testSecret, the reboot asynchronous: never a second reboot (finding 6)', async () => {
    // The premise of the settle period: an accepted reboot leaves RUNNING within it (three polls here, on a busy
    // machine far longer than 3 × 2 ms).
    rotationTiming.settleMs = 1_000;
    let crashes = 0;
    for (let afterCall = 1; ; afterCall++) {
      world = new World();
      world.binding.ApplyBy = 'REBOOT'; // the mode is bound in the secret's metadata (the tag decides nothing)
      world.rebootStartsAfterPolls = 3; // the broker says RUNNING for three more answers after RebootBroker
      world.rebootPolls = 2;
      const token = newToken();
      startRotation(token);
      await invoke('createSecret', token);
      await invoke('setSecret', token);
      world.armCrash(afterCall);
      const crashed = await invoke('testSecret', token).then(
        () => false,
        (error: Error) => error.message.includes('LambdaCrash'),
      );
      world.armCrash(undefined);
      expectClientsServed();
      if (!crashed) break;
      crashes++;
      await rotate(token); // Secrets Manager retries the whole rotation at once, the broker still RUNNING
      expect({ afterCall, reboots: world.reboots }).toEqual({ afterCall, reboots: 1 });
      expect(world.valueOf('AWSCURRENT')!.username).toBe(ALTERNATE);
    }
    expect(crashes).toBeGreaterThan(3);
  });

  test('REBOOT: a crash between recording the reboot and asking for it: the retry reboots once, after a settle period (finding 6)', async () => {
    world.binding.ApplyBy = 'REBOOT'; // the mode is bound in the secret's metadata (the tag decides nothing)
    world.rebootPolls = 2;
    const token = newToken();
    startRotation(token);
    await invoke('createSecret', token);
    await invoke('setSecret', token);
    mq.on(RebootBrokerCommand).callsFakeOnce(async () => {
      throw new Crash(); // the runtime dies before the request leaves
    });
    await expect(invoke('testSecret', token)).rejects.toThrow('LambdaCrash');
    expect(world.labelsOf(token)).toContain(LABELS.rebootRequested);
    expect(world.reboots).toBe(0);
    installMocks(); // the next invocation's RebootBroker reaches Amazon MQ
    await rotate(token);
    expect(world.reboots).toBe(1);
    expect(world.valueOf('AWSCURRENT')!.username).toBe(ALTERNATE);
  });
});

describe('issue 15: verifySignIn against a real ActiveMQ broker (STOMP over TLS)', () => {
  // The passwords the real broker holds: the primary's, and the alternate's (as a rotation set and a reboot applied).
  const HELD = 'He1d7by8the9brokr0for1alternat3x';
  const WRONG = 'Wr0ng7pw8the9brokr0never1get2it3';
  let broker: ActiveMq;

  beforeAll(async () => {
    broker = await startActiveMq({
      users: [
        { username: PRIMARY, password: PASSWORD, groups: ['orders-consumers'] },
        { username: ALTERNATE, password: HELD, groups: ['orders-consumers'] },
      ],
    });
  }, 90_000);

  afterAll(async () => {
    await broker?.stop();
    signInOptions.ca = undefined;
  });

  beforeEach(() => {
    signInOptions.ca = broker.ca;
    signInOptions.timeoutMs = 5_000;
    world.binding.VerifySignIn = true;
    world.endpoints = [`ssl://localhost:${broker.stompPort}`, `stomp+ssl://localhost:${broker.stompSslPort}`];
    world.secretsSeen.add(HELD);
    world.secretsSeen.add(WRONG);
  });

  /** The state after setSecret and the reboot of a REBOOT rotation: T holds `password` for the alternate. */
  function rebootedWith(password: string): string {
    world.binding.ApplyBy = 'REBOOT'; // the mode is bound in the secret's metadata (the tag decides nothing)
    const token = newToken();
    world.versions.set(token, { value: secretString(ALTERNATE, password), stages: new Set() });
    world.moveLabel('AWSPENDING', token);
    world.moveLabel(LABELS.sent, token);
    // The user handler's view: no pending change (DescribeUser cannot show which password).
    world.users.get(ALTERNATE)!.applied!.password = password;
    return token;
  }

  test('REBOOT: the right password is accepted and promoted', async () => {
    const token = rebootedWith(HELD);
    await invoke('testSecret', token);
    await invoke('finishSecret', token);
    expect(world.valueOf('AWSCURRENT')).toEqual({ username: ALTERNATE, password: HELD });
    expect(world.calls).toContain('DescribeBroker');
  });

  test('REBOOT: a password the broker refuses is never promoted, and never printed', async () => {
    // A state-tracking mistake: every label and DescribeUser say "applied", the broker holds another password.
    const token = rebootedWith(WRONG);
    const error = (await invoke('testSecret', token).catch((e: Error) => e)) as Error;
    expect(error.message).toMatch(
      /verifySignIn: the broker refused the new credentials of user "orders-service_clone" .*: not promoting them; AWSCURRENT is unchanged/,
    );
    expect(error.message).toMatch(/\(User name \[orders-service_clone\] or password is invalid\.\)/); // ActiveMQ's ERROR
    expect(error.message).not.toContain(WRONG);
    expect(world.valueOf('AWSCURRENT')).toEqual({ username: PRIMARY, password: PASSWORD });
  });

  test('REBOOT: an unreachable broker leaves AWSCURRENT alone', async () => {
    const token = rebootedWith(HELD);
    await broker.stop(); // nothing listens on the endpoint any more
    const error = (await invoke('testSecret', token).catch((e: Error) => e)) as Error;
    expect(error.message).toMatch(/could not be reached with the new credentials .*could not reach localhost:\d+/);
    expect(world.valueOf('AWSCURRENT')).toEqual({ username: PRIMARY, password: PASSWORD });
    broker = await startActiveMq({
      users: [
        { username: PRIMARY, password: PASSWORD, groups: ['orders-consumers'] },
        { username: ALTERNATE, password: HELD, groups: ['orders-consumers'] },
      ],
    });
  }, 90_000);

  /** A MAINTENANCE_WINDOW secret whose alternate was staged and sent `password`, and is applied (per DescribeUser). */
  function stagedAndSent(password: string): string {
    const stagedId = 'staged-version';
    world.versions.set(stagedId, {
      value: JSON.stringify({ username: ALTERNATE, password, stagedFor: BROKER_ID }),
      stages: new Set([LABELS.staged, LABELS.sent]),
    });
    world.users.get(ALTERNATE)!.applied!.password = password;
    return stagedId;
  }

  test('MAINTENANCE_WINDOW: the right staged password is signed in with and promoted', async () => {
    stagedAndSent(HELD);
    await rotate();
    expect(world.valueOf('AWSCURRENT')).toEqual({ username: ALTERNATE, password: HELD });
  });

  test('MAINTENANCE_WINDOW: a staged password the broker refuses is replaced by a new one, never promoted', async () => {
    const stale = stagedAndSent(WRONG);
    world.users.get(ALTERNATE)!.applied!.password = HELD; // what the broker really holds
    const token = await rotate();
    expect(world.valueOf('AWSCURRENT')).toEqual({ username: PRIMARY, password: PASSWORD });
    expect(world.labelsOf(stale)).toEqual([]);
    const restaged = stagedVersionId(token);
    expect(world.labelsOf(restaged)).toEqual([LABELS.sent, LABELS.staged]);
    expect(JSON.parse(world.versions.get(restaged)!.value!).password).not.toBe(WRONG);
  });

  test('MAINTENANCE_WINDOW: an unreachable broker makes the rotation hold', async () => {
    const stagedId = stagedAndSent(HELD);
    world.endpoints = ['stomp+ssl://localhost:1']; // nothing listens there
    await rotate();
    expect(world.valueOf('AWSCURRENT')).toEqual({ username: PRIMARY, password: PASSWORD });
    expect(world.labelsOf(stagedId)).toEqual([LABELS.sent, LABELS.staged]); // kept for the next rotation
  });

  test('without verifySignIn, no sign-in and no DescribeBroker in MAINTENANCE_WINDOW', async () => {
    delete world.binding.VerifySignIn;
    stagedAndSent(HELD);
    await rotate();
    expect(world.valueOf('AWSCURRENT')).toEqual({ username: ALTERNATE, password: HELD });
    expect(world.calls).not.toContain('DescribeBroker');
  });
});

describe('validation', () => {
  test('does nothing in createSecret, setSecret and testSecret when the version is AWSCURRENT already', async () => {
    const token = await rotate();
    mq.resetHistory();
    secrets.resetHistory();
    for (const step of ['createSecret', 'setSecret', 'testSecret'] as const) await invoke(step, token);
    expect(secrets).toHaveReceivedCommandTimes(DescribeSecretCommand, 3);
    expect(secrets).not.toHaveReceivedCommand(PutSecretValueCommand);
    expect(secrets).not.toHaveReceivedCommand(UpdateSecretVersionStageCommand);
    expect(mq).not.toHaveReceivedAnyCommand();
  });

  test('finishSecret of a version that is AWSCURRENT already changes no stage', async () => {
    const token = await rotate();
    secrets.resetHistory();
    await invoke('finishSecret', token);
    expect(secrets).not.toHaveReceivedCommand(UpdateSecretVersionStageCommand);
    expect(world.labelsOf(token)).toEqual(['AWSCURRENT', 'AWSPENDING']);
  });

  test('fails for a token that is not a version of the secret', async () => {
    await expect(invoke('createSecret', 'no-such-version')).rejects.toThrow(
      `version no-such-version has no stage for rotation of secret ${SECRET_ARN}`,
    );
  });

  test('fails for a version that is not AWSPENDING', async () => {
    world.versions.set('stray', { value: secretString(PRIMARY, PASSWORD), stages: new Set(['SOMETHING']) });
    await expect(invoke('setSecret', 'stray')).rejects.toThrow('version stray is not set as AWSPENDING');
  });

  test('fails when the secret is not enabled for rotation', async () => {
    world.rotationEnabled = false;
    const token = newToken();
    startRotation(token);
    await expect(invoke('createSecret', token)).rejects.toThrow(`secret ${SECRET_ARN} is not enabled for rotation`);
  });

  test('fails for an unknown step', async () => {
    await expect(invoke('deleteSecret' as Step, newToken())).rejects.toThrow('unknown rotation Step "deleteSecret"');
  });

  test('fails for a secret of another stack, touching nothing', async () => {
    world.tags[ROTATION_TAGS.stackId] = OTHER_STACK_ID;
    const token = newToken();
    startRotation(token);
    await expect(invoke('createSecret', token)).rejects.toThrow(
      `refused to rotate secret ${SECRET_ARN}: its tag ${ROTATION_TAGS.stackId} is "${OTHER_STACK_ID}"; ` +
        `this function serves only stack ${STACK_ID}`,
    );
    expect(secrets).toHaveReceivedCommandTimes(DescribeSecretCommand, 1);
    expect(secrets).not.toHaveReceivedCommand(GetSecretValueCommand);
    expect(mq).not.toHaveReceivedAnyCommand();
  });

  test("fails for a secret someone tagged as this stack's but the stack does not hold, touching no user", async () => {
    // Tags are no proof: whoever may tag a secret can forge them. The secret must be one of the stack's.
    world.stackResources = world.stackResources.filter((r) => r.ResourceType !== 'AWS::SecretsManager::Secret');
    const token = newToken();
    startRotation(token);
    await expect(invoke('createSecret', token)).rejects.toThrow(
      `refused to rotate secret ${SECRET_ARN}: it is not a secret of stack ${STACK_ID}`,
    );
    expect(mq).not.toHaveReceivedAnyCommand();
    expect(secrets).not.toHaveReceivedCommand(PutSecretValueCommand);
  });

  const plainUsers = (...names: string[]) =>
    names.map((name) => ({
      LogicalResourceId: name.replace(/[^A-Za-z0-9]/g, ''),
      ResourceType: 'Custom::MqUser',
      PhysicalResourceId: `${BROKER_ID}/${name}?owner=created`,
    }));

  test.each([
    ['names a logical ID the stack does not hold', { User: 'User', Alternate: 'Missing' }],
    ['names two users that are not a user and its alternate', { User: 'Alternate', Alternate: 'User' }],
    ['names a resource that is no user (the secret itself)', { User: 'User', Alternate: 'Secret' }],
  ])('fails for a secret whose binding %s, touching no user', async (_case, pair) => {
    Object.assign(world.binding, pair);
    const token = newToken();
    startRotation(token);
    await expect(invoke('createSecret', token)).rejects.toThrow(
      `refused to rotate secret ${SECRET_ARN}: its declared users ${pair.User} and ${pair.Alternate} are not a user ` +
        `and its alternate (<username>_clone) on one broker in stack ${STACK_ID}`,
    );
    expect(mq).not.toHaveReceivedAnyCommand();
    expect(secrets).not.toHaveReceivedCommand(PutSecretValueCommand);
  });

  test('fails for a pair whose users live on two brokers', async () => {
    world.stackResources[2].PhysicalResourceId = `${OTHER_BROKER_ID}/${ALTERNATE}?owner=created`;
    const token = newToken();
    startRotation(token);
    await expect(invoke('createSecret', token)).rejects.toThrow(/are not a user and its alternate .* on one broker/);
    expect(mq).not.toHaveReceivedAnyCommand();
  });

  test('finding 4: a plain user\'s secret re-tagged for rotation is refused, and its "_clone" neighbour untouched', async () => {
    // The stack holds two plain users, `app` and `app_clone`, and `app`'s generated secret, which someone allowed to
    // tag it tagged for rotation (broker, mode and stack tags): its resource declares no rotation.
    world.stackResources = [world.stackResources[0], ...plainUsers('app', 'app_clone')];
    world.versions.get('v0')!.value = secretString('app', PASSWORD);
    delete world.binding.User;
    const token = newToken();
    startRotation(token);
    await expect(invoke('createSecret', token)).rejects.toThrow(
      `refused to rotate secret ${SECRET_ARN}: its resource Secret in stack ${STACK_ID} declares no rotation`,
    );
    expect(mq).not.toHaveReceivedAnyCommand();
    expect(secrets).not.toHaveReceivedCommand(PutSecretValueCommand);
  });

  test("finding 4: a rotated secret's value rewritten to name another rotated user of the stack is refused", async () => {
    world.stackResources.push(...plainUsers('billing', 'billing_clone'));
    world.versions.get('v0')!.value = secretString('billing', PASSWORD);
    const token = newToken();
    startRotation(token);
    await expect(invoke('createSecret', token)).rejects.toThrow(
      `refused to rotate secret ${SECRET_ARN}: its current credentials name user "billing", which is neither ` +
        `${PRIMARY} nor ${ALTERNATE}, the pair declared with it`,
    );
    expect(mq).not.toHaveReceivedAnyCommand();
    expect(secrets).not.toHaveReceivedCommand(PutSecretValueCommand);
  });

  test('finding 4: the mode and broker tags decide nothing: a rotation declared MAINTENANCE_WINDOW never reboots', async () => {
    world.tags[ROTATION_TAGS.mode] = 'REBOOT';
    world.tags[ROTATION_TAGS.brokerId] = OTHER_BROKER_ID;
    await rotate();
    expect(world.reboots).toBe(0);
    expect(mq).not.toHaveReceivedCommand(RebootBrokerCommand);
    for (const call of mq.calls()) expect(call.args[0].input).toMatchObject({ BrokerId: BROKER_ID });
    expect(world.holder(LABELS.staged)).toBeDefined();
  });

  test('finding 5: refuses every secret when the function has no stack ID (fail closed), touching nothing', async () => {
    delete process.env.CDK_MQ_USER_STACK_ID;
    const token = newToken();
    startRotation(token);
    await expect(invoke('createSecret', token)).rejects.toThrow(
      `refused to rotate secret ${SECRET_ARN}: this function has no CDK_MQ_USER_STACK_ID in its environment`,
    );
    expect(mq).not.toHaveReceivedAnyCommand();
    expect(secrets).not.toHaveReceivedCommand(GetSecretValueCommand);
    expect(cloudFormation).not.toHaveReceivedAnyCommand();
  });

  test('fails for a binding with an unknown mode or no interval, as for no binding', async () => {
    const token = newToken();
    startRotation(token);
    world.binding.ApplyBy = 'SOMETIMES';
    await expect(invoke('createSecret', token)).rejects.toThrow('declares no rotation');
    world.binding.ApplyBy = 'REBOOT';
    delete world.binding.IntervalSeconds;
    await expect(invoke('createSecret', token)).rejects.toThrow('declares no rotation');
    expect(mq).not.toHaveReceivedAnyCommand();
  });

  test('fails for a secret without the stack tag when the function serves a stack', async () => {
    delete world.tags[ROTATION_TAGS.stackId];
    const token = newToken();
    startRotation(token);
    await expect(invoke('createSecret', token)).rejects.toThrow(`its tag ${ROTATION_TAGS.stackId} is missing`);
  });

  test('fails for a secret that is not JSON, naming the secret and never quoting it', async () => {
    world.versions.get('v0')!.value = `not json ${PASSWORD}`;
    const token = newToken();
    startRotation(token);
    const error = await invoke('createSecret', token).catch((e: Error) => e);
    expect((error as Error).message).toBe(
      `version v0 of secret ${SECRET_ARN} is not JSON: a rotated secret is {"username": ..., "password": ...}`,
    );
  });

  test('fails for a secret without a username, naming the key', async () => {
    world.versions.get('v0')!.value = JSON.stringify({ password: PASSWORD });
    const token = newToken();
    startRotation(token);
    await expect(invoke('createSecret', token)).rejects.toThrow(
      `version v0 of secret ${SECRET_ARN} has no string key "username"`,
    );
  });

  test('fails when the pending version would change the password of the user in AWSCURRENT', async () => {
    world.binding.ApplyBy = 'REBOOT';
    const token = newToken();
    startRotation(token);
    world.versions.get(token)!.value = secretString(PRIMARY, 'AnotherPassw0rdForPrimary');
    world.secretsSeen.add('AnotherPassw0rdForPrimary');
    await expect(invoke('setSecret', token)).rejects.toThrow(
      `changes the password of "${PRIMARY}", the user in AWSCURRENT: refused`,
    );
    expect(mq).not.toHaveReceivedCommand(UpdateUserCommand);
  });
});

describe('secrets', () => {
  test('fails UpdateUser without the service text, which may echo the password', async () => {
    mq.on(UpdateUserCommand).callsFake(async (input: { Password: string }) => {
      world.secretsSeen.add(input.Password);
      throw new BadRequestException({
        message: `password ${input.Password.toLowerCase()} is weak`,
        ErrorAttribute: 'password',
        $metadata: { httpStatusCode: 400 } as never,
      });
    });
    const token = newToken();
    startRotation(token);
    await invoke('createSecret', token);
    const error = (await invoke('setSecret', token).catch((e: Error) => e)) as Error;
    expect(error.message).toContain("the service's message is withheld");
    expect(error.message).toContain('BadRequestException, HTTP 400, errorAttribute "password"');
    for (const secret of world.secretsSeen) expect(error.message.toLowerCase()).not.toContain(secret.toLowerCase());
  });

  test('never logs or throws a password through whole rotations of both modes', async () => {
    await rotate();
    world.applyPending();
    await rotate();
    world.binding.ApplyBy = 'REBOOT';
    world.rebootPolls = 1;
    await rotate();
    world.users.delete(ALTERNATE); // the other user now: setSecret fails
    await expect(rotate()).rejects.toThrow('does not exist');
    expect(world.secretsSeen.size).toBeGreaterThanOrEqual(3);
    // afterEach checks every console line and error message against every password the world has seen.
  });

  test('generates distinct 32-character passwords of letters and digits', async () => {
    world.binding.ApplyBy = 'REBOOT';
    world.rebootPolls = 0;
    const passwords = new Set<string>();
    for (let i = 0; i < 5; i++) {
      await rotate();
      passwords.add(world.valueOf('AWSCURRENT')!.password);
    }
    expect(passwords.size).toBe(5);
    for (const password of passwords) expect(password).toMatch(/^[A-Za-z0-9]{32}$/);
  });
});
