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
import { CloudFormationClient, ListStackResourcesCommand } from '@aws-sdk/client-cloudformation';
import { mockClient } from 'aws-sdk-client-mock';
import 'aws-sdk-client-mock-jest';
import { retryTiming } from '../lambda/shared/retry';
import { LABELS, ROTATION_TAGS, handler, rotationTiming, stagedVersionId } from '../lambda/rotation/index';
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
  /** What ListStackResources shows of the function's stack: the secret and both users, by default. */
  stackResources: Array<{ ResourceType: string; PhysicalResourceId: string }> = [
    { ResourceType: 'AWS::SecretsManager::Secret', PhysicalResourceId: SECRET_ARN },
    { ResourceType: 'Custom::MqUser', PhysicalResourceId: `${BROKER_ID}/${PRIMARY}?owner=created` },
    { ResourceType: 'Custom::MqUser', PhysicalResourceId: `${BROKER_ID}/${ALTERNATE}?owner=created` },
  ];
  brokerState = 'RUNNING';
  /** DescribeBroker answers REBOOT_IN_PROGRESS this many more times, then the broker is RUNNING with all applied. */
  rebootPolls = 0;
  /** RebootBroker calls that Amazon MQ accepted. */
  reboots = 0;
  /** When set, RebootBroker answers 400 and the broker starts someone else's reboot. */
  concurrentReboot = false;
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
    StackResourceSummaries: world.stackResources.map((r, i) => ({
      ...r,
      LogicalResourceId: `Resource${i}`,
      ResourceStatus: 'UPDATE_COMPLETE',
      LastUpdatedTimestamp: new Date(),
    })),
  }));
  secrets.on(DescribeSecretCommand).callsFake(async () =>
    world.call('DescribeSecret', () => ({
      ARN: SECRET_ARN,
      RotationEnabled: world.rotationEnabled,
      Tags: Object.entries(world.tags).map(([Key, Value]) => ({ Key, Value })),
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
      return { BrokerId: BROKER_ID, BrokerState: world.brokerState as never, EngineType: 'ACTIVEMQ' as never };
    }),
  );
  mq.on(DescribeUserCommand).callsFake(async (input: { Username: string }) =>
    world.call('DescribeUser', () => {
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
      world.brokerState = 'REBOOT_IN_PROGRESS';
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
    world.tags[ROTATION_TAGS.mode] = 'REBOOT';
    world.rebootPolls = 2;
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
    expect(world.labelsOf(token)).toEqual(['AWSPENDING', LABELS.rebooted, LABELS.sent]);

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
            world.tags[ROTATION_TAGS.mode] = scenario.mode;
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

  test.each([
    ['whose alternate the stack does not declare (a user without rotation)', [PRIMARY]],
    ['that the stack does not declare at all (a forged pair, e.g. a console admin)', []],
  ])('fails for a secret whose users are a pair %s, touching no user', async (_case, declared) => {
    world.stackResources = [
      { ResourceType: 'AWS::SecretsManager::Secret', PhysicalResourceId: SECRET_ARN },
      ...declared.map((name) => ({
        ResourceType: 'Custom::MqUser',
        PhysicalResourceId: `${BROKER_ID}/${name}?owner=created`,
      })),
    ];
    const token = newToken();
    startRotation(token);
    await expect(invoke('createSecret', token)).rejects.toThrow(
      `refused to rotate secret ${SECRET_ARN}: its users are not a rotated MqUser of stack ${STACK_ID} on broker ${BROKER_ID}`,
    );
    expect(mq).not.toHaveReceivedAnyCommand();
    expect(secrets).not.toHaveReceivedCommand(PutSecretValueCommand);
  });

  test('fails when the declared users live on another broker than the tag says', async () => {
    world.tags[ROTATION_TAGS.brokerId] = OTHER_BROKER_ID;
    const token = newToken();
    startRotation(token);
    await expect(invoke('createSecret', token)).rejects.toThrow(/its users are not a rotated MqUser/);
    expect(mq).not.toHaveReceivedAnyCommand();
  });

  test('fails for a secret without the stack tag when the function serves a stack', async () => {
    delete world.tags[ROTATION_TAGS.stackId];
    const token = newToken();
    startRotation(token);
    await expect(invoke('createSecret', token)).rejects.toThrow(`its tag ${ROTATION_TAGS.stackId} is missing`);
  });

  test('accepts any secret when the function was deployed without a stack ID', async () => {
    delete process.env.CDK_MQ_USER_STACK_ID;
    world.tags[ROTATION_TAGS.stackId] = OTHER_STACK_ID;
    await rotate();
    expect(world.holder(LABELS.staged)).toBeDefined();
  });

  test('fails without a broker tag, and with an unknown rotation mode', async () => {
    const token = newToken();
    startRotation(token);
    world.tags[ROTATION_TAGS.mode] = 'SOMETIMES';
    await expect(invoke('createSecret', token)).rejects.toThrow(
      `tag ${ROTATION_TAGS.mode} must be one of MAINTENANCE_WINDOW, REBOOT, got "SOMETIMES"`,
    );
    delete world.tags[ROTATION_TAGS.brokerId];
    await expect(invoke('createSecret', token)).rejects.toThrow(`has no tag ${ROTATION_TAGS.brokerId}`);
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
    world.tags[ROTATION_TAGS.mode] = 'REBOOT';
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
    world.tags[ROTATION_TAGS.mode] = 'REBOOT';
    world.rebootPolls = 1;
    await rotate();
    world.users.delete(ALTERNATE); // the other user now: setSecret fails
    await expect(rotate()).rejects.toThrow('does not exist');
    expect(world.secretsSeen.size).toBeGreaterThanOrEqual(3);
    // afterEach checks every console line and error message against every password the world has seen.
  });

  test('generates distinct 32-character passwords of letters and digits', async () => {
    world.tags[ROTATION_TAGS.mode] = 'REBOOT';
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
