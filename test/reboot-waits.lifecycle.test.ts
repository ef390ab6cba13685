/**
 * Issue 14, finding by finding: events that meet a broker rebooting for longer than one Lambda invocation (in each
 * phase: forward, rollback, cleanup, with both answers Amazon MQ may give to user calls meanwhile), cleanup Deletes
 * that CloudFormation never retries, events delivered twice, and DeleteUser on a user already pending DELETE. Each
 * scenario drives the bundled handlers through the CloudFormation emulator and the simulated Amazon MQ, and asserts
 * what the broker ends up holding.
 */
import * as path from 'node:path';
import { App, CfnResource, Stack, aws_secretsmanager as secretsmanager } from 'aws-cdk-lib';
import { Template } from 'aws-cdk-lib/assertions';
import { Construct } from 'constructs';
import { MqBroker, MqBrokerReboot, MqUser, MqUserProps } from '../lib';
import { UNFINISHED_WORK_MARKER } from '../lib/private/handler-props';
import { CloudFormation, DeployOptions, Invocation } from './support/cloudformation';
import { FakeMq } from './support/mq-endpoint';
import { startDoubles, synthApp } from './support/lifecycle';

process.env.CDK_VALIDATION = 'false';
jest.setTimeout(60_000);

const OUT = path.join(__dirname, '..', '.test-out');
const BROKER = 'b-5a4b3c2d-1e0f-4a1b-9c8d-7e6f5a4b3c2d';
const PASSWORD = 'Orders-Passw0rd-2026';
/** A broker no MqBrokerReboot covers, for a resource that fails. */
const OTHER = 'b-0a1b2c3d-4e5f-4a6b-8c7d-9e0f1a2b3c4d';
const BYSTANDER = { consoleAccess: true, groups: ['admins'], password: 'Bystander-Passw0rd-1' };
/**
 * Every function runs with a 2.5-second timeout here (the handler's deadline is then its floor of 1 second: it keeps
 * 5 seconds to answer, but never works for less than 1), and a reboot lasts 3 seconds: longer than one invocation,
 * as a real reboot (minutes) or maintenance window (up to two hours) is longer than Lambda's 15 minutes. (Both were 6
 * seconds until the test time was measured: the reboots were most of this file's 96 s, docs/RELIABILITY.md.)
 */
const HANDLER_TIMEOUT_MS = 2_500;
const REBOOT_MS = 3_000;
const TIMINGS = {
  retryTiming: {
    baseDelayMs: 20,
    maxDelayMs: 200,
    throttleBaseDelayMs: 20,
    throttleMaxDelayMs: 200,
    attemptTimeoutMs: 1_000,
    brokerWaitMs: 30_000,
  },
  rebootTiming: { settleMs: 500 },
};
const SHORT: DeployOptions = { handlerTimeoutMs: HANDLER_TIMEOUT_MS, timings: TIMINGS };

let mq: FakeMq;
let cfn: CloudFormation;
const secrets = new Set<string>([BYSTANDER.password, PASSWORD]);
const figures = { usersChangedUnexpectedly: 0 };

startDoubles({
  out: OUT,
  emulator: { queryIntervalMs: 50, timings: TIMINGS },
  started: (doubles) => ({ mq, cfn } = doubles),
  eachScenario: {
    brokers: [
      { brokerId: BROKER, brokerName: 'shared', engineType: 'ACTIVEMQ' },
      { brokerId: OTHER, brokerName: 'other', engineType: 'ACTIVEMQ' },
    ],
    bystander: { brokerId: BROKER, seeded: BYSTANDER },
    passwordsOn: [BROKER],
    secrets,
    figures,
  },
});

// ---- apps ----

const synth = (build: (stack: Stack) => void, stackName?: string) => synthApp(OUT, build, stackName);

function user(scope: Construct, id: string, username: string, props: Partial<MqUserProps> = {}): MqUser {
  const arn = `arn:aws:secretsmanager:us-east-1:123456789012:secret:${id.toLowerCase()}-AbCdEf`;
  if (mq.secretValue(arn) === undefined) mq.putSecret(arn, JSON.stringify({ password: PASSWORD }));
  return new MqUser(scope, id, {
    broker: MqBroker.fromBrokerArn(scope, `Broker-${id}`, mq.brokerArn(BROKER)),
    username,
    passwordSecret: secretsmanager.Secret.fromSecretCompleteArn(scope, `Secret-${id}`, arn),
    ...props,
  });
}

/** An MqBrokerReboot that gives up after one second: the deploy fails while the broker still reboots. */
function impatientReboot(scope: Construct): void {
  const reboot = new MqBrokerReboot(scope, 'ApplyUsers', {
    broker: MqBroker.fromBrokerArn(scope, 'RebootBroker', mq.brokerArn(BROKER)),
  });
  (reboot.node.findChild('Resource').node.defaultChild as CfnResource).addPropertyOverride('TimeoutSeconds', 1);
}

/** The user as the broker will hold it once its pending change is applied; `undefined` when it is on its way out. */
function eventually(username: string) {
  const state = mq.user(BROKER, username);
  if (!state || state.pending?.change === 'DELETE') return undefined;
  return state.pending ?? state.applied;
}

function since(from: number): Invocation[] {
  return cfn.invocations.slice(from);
}

/** Starts a reboot by someone else (another stack, a rotation, the maintenance window) that lasts `REBOOT_MS`. */
function rebootElsewhere(): void {
  mq.setBrokerState(BROKER, 'REBOOT_IN_PROGRESS');
  setTimeout(() => mq.finishReboot(BROKER), REBOOT_MS).unref();
}

async function waitForRunning(): Promise<void> {
  while (mq.brokerState(BROKER) !== 'RUNNING') await new Promise((resolve) => setTimeout(resolve, 100));
}

/**
 * Deploys the user `Renamed` as `old-name` (with `first`), then renames it to `new-name` with `options`: what each
 * deploy answered, and the invocations of the rename (its cleanup Delete of `old-name` among them).
 */
async function rename(options: DeployOptions, first: DeployOptions = SHORT) {
  const stack = cfn.stack('Orders');
  const created = await stack.deploy(
    synth((s) => user(s, 'Renamed', 'old-name')),
    first,
  );
  mq.applyPendingChanges(BROKER);
  const from = cfn.invocations.length;
  const result = await stack.deploy(
    synth((s) => user(s, 'Renamed', 'new-name')),
    options,
  );
  return { created, result, invocations: since(from) };
}

/** Deletes `username` as an operator would by hand (or as another tool would), with one attempt. */
async function deleteUserByHand(username: string): Promise<void> {
  const { DeleteUserCommand, MqClient } = await import('@aws-sdk/client-mq');
  await new MqClient({ ...mq.clientConfig(), maxAttempts: 1 }).send(
    new DeleteUserCommand({ BrokerId: BROKER, Username: username }),
  );
}

const BOTH_ANSWERS = ['reject', 'accept'] as const;

describe.each(BOTH_ANSWERS)('user calls during a reboot: %s', (answer) => {
  beforeEach(() => {
    mq.callsOutsideRunning = answer;
  });

  test('finding 1: a rollback that meets a reboot longer than an invocation deletes the user its deploy created', async () => {
    const stack = cfn.stack('Orders');
    expect(
      await stack.deploy(
        synth((s) => user(s, 'Kept', 'kept-user')),
        SHORT,
      ),
    ).toEqual({
      status: 'CREATE_COMPLETE',
    });
    mq.applyPendingChanges(BROKER);
    mq.rebootDelayMs = REBOOT_MS;
    const from = cfn.invocations.length;
    const result = await stack.deploy(
      synth((s) => {
        user(s, 'Kept', 'kept-user');
        user(s, 'Added', 'added-user');
        impatientReboot(s);
      }),
      SHORT,
    );
    expect(result.status).toBe('UPDATE_ROLLBACK_COMPLETE');
    await waitForRunning();
    mq.applyPendingChanges(BROKER);
    expect(eventually('added-user')).toBeUndefined();
    expect(eventually('kept-user')).toBeDefined();
    const rollbackDelete = since(from).find((i) => i.logicalId.startsWith('Added') && i.requestType === 'Delete');
    expect(rollbackDelete?.outcome).toBe('SUCCESS');
    // The same deploy, tried again, succeeds: no user was left behind to say "already exists".
    mq.rebootDelayMs = 50;
    expect(
      await stack.deploy(
        synth((s) => {
          user(s, 'Kept', 'kept-user');
          user(s, 'Added', 'added-user');
        }),
        SHORT,
      ),
    ).toEqual({ status: 'UPDATE_COMPLETE' });
  });

  test('finding 2: a rollback that meets a reboot longer than an invocation restores console access', async () => {
    const stack = cfn.stack('Orders');
    const app = (consoleAccess: boolean, reboot: boolean) =>
      synth((s) => {
        user(s, 'Console', 'console-user', { consoleAccess, groups: ['activemq-webconsole'] });
        if (reboot) impatientReboot(s);
      });
    expect(await stack.deploy(app(false, false), SHORT)).toEqual({ status: 'CREATE_COMPLETE' });
    mq.applyPendingChanges(BROKER);
    mq.rebootDelayMs = REBOOT_MS;
    expect((await stack.deploy(app(true, true), SHORT)).status).toBe('UPDATE_ROLLBACK_COMPLETE');
    await waitForRunning();
    mq.applyPendingChanges(BROKER);
    expect(eventually('console-user')).toMatchObject({ consoleAccess: false });
  });

  test('finding 3: a cleanup Delete that meets a reboot longer than an invocation deletes the old user', async () => {
    const { created, result, invocations } = await rename({
      ...SHORT,
      // The reboot starts as CloudFormation sends the cleanup Delete.
      redeliver: (event) => {
        if (event.RequestType === 'Delete') rebootElsewhere();
        return false;
      },
    });
    expect(created).toEqual({ status: 'CREATE_COMPLETE' });
    expect(result).toEqual({ status: 'UPDATE_COMPLETE' });
    expect(invocations.find((i) => i.requestType === 'Delete')?.outcome).toBe('SUCCESS');
    await waitForRunning();
    mq.applyPendingChanges(BROKER);
    expect(eventually('old-name')).toBeUndefined();
    expect(eventually('new-name')).toBeDefined();
  });

  test('a forward Create that meets a reboot longer than an invocation creates the user once the broker is RUNNING', async () => {
    rebootElsewhere();
    const from = cfn.invocations.length;
    expect(
      await cfn.stack('Orders').deploy(
        synth((s) => user(s, 'Late', 'late-user')),
        SHORT,
      ),
    ).toEqual({
      status: 'CREATE_COMPLETE',
    });
    expect(eventually('late-user')).toMatchObject({ password: PASSWORD });
    expect(since(from).map((i) => i.outcome)).toEqual(['SUCCESS']);
  });
});

test('finding 3: a cleanup Delete that cannot read the stack for a while reads it again, then deletes the old user', async () => {
  const { result, invocations } = await rename({
    ...SHORT,
    redeliver: (event) => {
      if (event.RequestType === 'Delete') {
        cfn.inject({ operation: 'ListStackResources', fault: 'accessDenied', times: Infinity });
        setTimeout(() => cfn.clearInjections(), 3_000).unref();
      }
      return false;
    },
  });
  expect(result).toEqual({ status: 'UPDATE_COMPLETE' });
  expect(invocations.find((i) => i.requestType === 'Delete')?.outcome).toBe('SUCCESS');
  mq.applyPendingChanges(BROKER);
  expect(eventually('old-name')).toBeUndefined();
});

test('finding 3: a cleanup Delete that never can read the stack says the user stays and what to do, never "retry"', async () => {
  // The cleanup Delete runs the functions of the first deploy (its assembly), with that deploy's timings: both
  // deploys wait 3 s for the broker, or the cleanup would wait the 30 s of SHORT.
  const WAIT_3S: DeployOptions = {
    ...SHORT,
    timings: { ...TIMINGS, retryTiming: { ...TIMINGS.retryTiming, brokerWaitMs: 3_000 } },
  };
  const { result, invocations } = await rename(
    {
      ...WAIT_3S,
      redeliver: (event) => {
        if (event.RequestType === 'Delete')
          cfn.inject({ operation: 'ListStackResources', fault: 'accessDenied', times: Infinity });
        return false;
      },
    },
    WAIT_3S,
  );
  // CloudFormation reports a failed cleanup Delete and completes the stack anyway.
  expect(result).toEqual({ status: 'UPDATE_COMPLETE' });
  const cleanup = invocations.find((i) => i.requestType === 'Delete');
  expect(cleanup?.outcome).toBe('FAILED');
  expect(cleanup?.reason).toMatch(/CloudFormation does not retry a Delete of its cleanup phase, so the user stays/);
  expect(cleanup?.reason).toContain('old-name');
  expect(cleanup?.reason).not.toMatch(/retry the deletion/);
  // The stack says UPDATE_COMPLETE: the alarm's log line is what tells.
  expect(cfn.transcript.join('\n')).toMatch(new RegExp(`cleanup: the user was not deleted.*${UNFINISHED_WORK_MARKER}`));
  expect(eventually('old-name')).toBeDefined();
});

describe.each(['accept', 'conflict'] as const)('DeleteUser on a user already pending DELETE: %s', (answer) => {
  test('the Delete completes, and the user stays pending DELETE', async () => {
    mq.deleteOnPendingDelete = answer;
    const stack = cfn.stack('Orders');
    await stack.deploy(
      synth((s) => user(s, 'Gone', 'gone-user')),
      SHORT,
    );
    mq.applyPendingChanges(BROKER);
    await deleteUserByHand('gone-user');
    expect(await stack.destroy(SHORT)).toMatchObject({ status: 'DELETE_COMPLETE' });
    expect(mq.user(BROKER, 'gone-user')?.pending).toEqual({ change: 'DELETE' });
  });
});

test('the common path: a RUNNING broker costs one isComplete call per event and no Amazon MQ call more', async () => {
  const stack = cfn.stack('Orders');
  const calls = cfn.isCompleteCalls;
  const from = mq.calls.length;
  expect(
    await stack.deploy(
      synth((s) => user(s, 'Plain', 'plain-user')),
      SHORT,
    ),
  ).toEqual({
    status: 'CREATE_COMPLETE',
  });
  expect(cfn.isCompleteCalls - calls).toBe(1);
  expect(mq.mqCalls(from).map((c) => c.operation)).toEqual(['DescribeBroker', 'DescribeUser', 'CreateUser']);
});

test('finding 5: the waiters log to groups named after the stack ID, so a destroyed stack deploys again', () => {
  const app = new App();
  const stack = new Stack(app, 'Orders');
  user(stack, 'Plain', 'plain-user');
  new MqBrokerReboot(stack, 'ApplyUsers', {
    broker: MqBroker.fromBrokerArn(stack, 'RebootBroker', mq.brokerArn(BROKER)),
  });
  const groups = Object.values(Template.fromStack(stack).findResources('AWS::Logs::LogGroup'))
    .map((r) => r.Properties?.LogGroupName)
    .filter((name) => name !== undefined);
  expect(groups).toHaveLength(2);
  for (const name of groups) {
    // Fn::Join of the prefix and the unique part of AWS::StackId: never a fixed string.
    expect(typeof name).not.toBe('string');
    expect(JSON.stringify(name)).toMatch(/\/aws\/vendedlogs\/states\/cdk-mq-user-(reboot|waiter)-/);
    expect(JSON.stringify(name)).toContain('"AWS::StackId"');
  }
});

describe('finding 4: the same event twice gets the same answer', () => {
  test('a Create whose answer was lost: the second delivery answers SUCCESS with the same physical ID', async () => {
    const from = cfn.invocations.length;
    const calls = mq.calls.length;
    const stack = cfn.stack('Orders');
    const result = await stack.deploy(
      synth((s) => user(s, 'Twice', 'twice-user')),
      {
        ...SHORT,
        redeliver: (event) => (event.RequestType === 'Create' ? 'answerLost' : false),
      },
    );
    expect(result).toEqual({ status: 'CREATE_COMPLETE' });
    expect(cfn.lostDeliveries).toBeGreaterThan(0);
    expect(since(from).map((i) => i.outcome)).toEqual(['SUCCESS']);
    expect(since(from)[0].returnedPhysicalId).toMatch(/twice-user\?owner=created$/);
    expect(mq.mqCalls(calls, 'CreateUser')).toHaveLength(1);
    expect(eventually('twice-user')).toMatchObject({ password: PASSWORD });
    // It is this resource's: the stack's destroy deletes it.
    expect(await stack.destroy(SHORT)).toMatchObject({ status: 'DELETE_COMPLETE' });
    expect(eventually('twice-user')).toBeUndefined();
  });

  test('a rename whose answer was lost: the second delivery answers with the same new physical ID', async () => {
    const { result, invocations } = await rename({
      ...SHORT,
      redeliver: (event) => (event.RequestType === 'Update' ? 'answerLost' : false),
    });
    expect(result).toEqual({ status: 'UPDATE_COMPLETE' });
    const update = invocations.find((i) => i.requestType === 'Update');
    expect(update?.outcome).toBe('SUCCESS');
    expect(update?.returnedPhysicalId).toMatch(/new-name\?owner=created/);
    mq.applyPendingChanges(BROKER);
    expect(eventually('new-name')).toBeDefined();
    expect(eventually('old-name')).toBeUndefined();
  });

  test('a foreign user pending CREATE is never taken over, however often the event comes', async () => {
    mq.seedPendingCreate(BROKER, 'taken-user', { groups: ['theirs'], password: 'Foreign-Passw0rd-77' });
    secrets.add('Foreign-Passw0rd-77');
    const result = await cfn.stack('Orders').deploy(
      synth((s) => user(s, 'Taken', 'taken-user')),
      {
        ...SHORT,
        redeliver: (event) => (event.RequestType === 'Create' ? 'answerLost' : false),
      },
    );
    expect(result.status).toBe('ROLLBACK_COMPLETE');
    expect(result.reason).toMatch(/already exists/);
    expect(mq.user(BROKER, 'taken-user')?.pending).toMatchObject({
      change: 'CREATE',
      groups: ['theirs'],
      password: 'Foreign-Passw0rd-77',
    });
  });

  test('a first delivery that never reached the handler: the second one is the only run', async () => {
    const calls = mq.calls.length;
    const result = await cfn.stack('Orders').deploy(
      synth((s) => user(s, 'Once', 'once-user')),
      {
        ...SHORT,
        redeliver: (event) => (event.RequestType === 'Create' ? 'beforeRun' : false),
      },
    );
    expect(result).toEqual({ status: 'CREATE_COMPLETE' });
    expect(mq.mqCalls(calls, 'CreateUser')).toHaveLength(1);
  });
});

describe('README "Troubleshooting": each recipe of a rebooting broker, run', () => {
  beforeEach(() => {
    mq.callsOutsideRunning = 'reject';
  });
  /** Gives up on the broker after 0.5 s, before the 3-second reboot ends: what 115 minutes are in production. */
  const IMPATIENT: DeployOptions = {
    ...SHORT,
    timings: { ...TIMINGS, retryTiming: { ...TIMINGS.retryTiming, brokerWaitMs: 500 } },
  };

  test('a rollback that could not restore: a plain deploy converges nothing; bumping passwordVersion does', async () => {
    const stack = cfn.stack('Orders');
    const app = (consoleAccess: boolean, reboot: boolean, passwordVersion?: string) =>
      synth((s) => {
        user(s, 'Console', 'console-user', { consoleAccess, groups: ['activemq-webconsole'], passwordVersion });
        if (reboot) impatientReboot(s);
      });
    await stack.deploy(app(false, false), IMPATIENT);
    mq.applyPendingChanges(BROKER);
    mq.rebootDelayMs = REBOOT_MS;
    expect((await stack.deploy(app(true, true), IMPATIENT)).status).toBe('UPDATE_ROLLBACK_COMPLETE');
    expect(cfn.transcript.join('\n')).toMatch(
      new RegExp(`rollback: could not restore the user.*${UNFINISHED_WORK_MARKER}`),
    );
    await waitForRunning();
    expect(eventually('console-user')).toMatchObject({ consoleAccess: true }); // the failed deploy's
    const from = cfn.invocations.length;
    expect(await stack.deploy(app(false, false), IMPATIENT)).toEqual({ status: 'UPDATE_COMPLETE' });
    expect(since(from)).toEqual([]); // no event: nothing converges
    expect(await stack.deploy(app(false, false, '2'), IMPATIENT)).toEqual({ status: 'UPDATE_COMPLETE' });
    expect(eventually('console-user')).toMatchObject({ consoleAccess: false });
  });

  test('a cleanup Delete on a broker rebooting past the wait: says the user stays; deleting it by hand works', async () => {
    const { result, invocations } = await rename(
      {
        ...IMPATIENT,
        redeliver: (event) => {
          if (event.RequestType === 'Delete') rebootElsewhere();
          return false;
        },
      },
      IMPATIENT,
    );
    expect(result).toEqual({ status: 'UPDATE_COMPLETE' });
    const cleanup = invocations.find((i) => i.requestType === 'Delete');
    expect(cleanup?.outcome).toBe('FAILED');
    expect(cleanup?.reason).toMatch(
      /user "old-name" on broker .* was not deleted: .*CloudFormation does not retry a Delete of its cleanup phase/,
    );
    expect(cleanup?.reason).not.toMatch(/retry once it is RUNNING/);
    expect(cfn.transcript.join('\n')).toMatch(
      new RegExp(`cleanup: the user was not deleted.*${UNFINISHED_WORK_MARKER}`),
    );
    await waitForRunning();
    await deleteUserByHand('old-name');
    expect(eventually('old-name')).toBeUndefined();
  });

  test('a forward deploy on a broker rebooting past the wait fails; once RUNNING, deploying again succeeds', async () => {
    const stack = cfn.stack('Orders');
    mq.setBrokerState(BROKER, 'REBOOT_IN_PROGRESS');
    const failed = await stack.deploy(
      synth((s) => user(s, 'Late', 'late-user')),
      IMPATIENT,
    );
    expect(failed.status).toBe('ROLLBACK_COMPLETE');
    expect(failed.reason).toMatch(/still REBOOT_IN_PROGRESS: retry once it is RUNNING/);
    mq.finishReboot(BROKER);
    expect(
      await cfn.stack('Orders').deploy(
        synth((s) => user(s, 'Late', 'late-user')),
        IMPATIENT,
      ),
    ).toEqual({
      status: 'CREATE_COMPLETE',
    });
  });
});

test('finding 6: a failed move within the stack: the rollback keeps the adopted user and restores its settings', async () => {
  const stack = cfn.stack('Orders');
  const before = synth((s) => user(s, 'Old', 'moved-user', { consoleAccess: false, groups: ['orders'] }));
  expect(await stack.deploy(before, SHORT)).toEqual({ status: 'CREATE_COMPLETE' });
  mq.applyPendingChanges(BROKER);
  const linesBefore = cfn.transcript.length;
  const failed = await stack.deploy(
    synth((s) => {
      const moved = user(s, 'New', 'moved-user', {
        consoleAccess: true,
        groups: ['activemq-webconsole', 'orders'],
        adoptExisting: true,
      });
      // Runs after the move, and fails: its secret does not exist.
      const failing = new MqUser(s, 'Failing', {
        broker: MqBroker.fromBrokerArn(s, 'FailingBroker', mq.brokerArn(OTHER)),
        username: 'failing-user',
        passwordSecret: secretsmanager.Secret.fromSecretCompleteArn(
          s,
          'Missing',
          'arn:aws:secretsmanager:us-east-1:123456789012:secret:missing-AbCdEf',
        ),
      });
      failing.node.addDependency(moved);
    }),
    SHORT,
  );
  expect(failed.status).toBe('UPDATE_ROLLBACK_COMPLETE');
  // Kept (it was adopted), with the settings the restored template declares.
  expect(eventually('moved-user')).toMatchObject({ consoleAccess: false, groups: ['orders'], password: PASSWORD });
  expect(cfn.transcript.join('\n')).toMatch(/rollback: restored console access, groups and replication flag/);
  // A rollback that put back what it could is no unfinished work: the alarm stays quiet.
  expect(cfn.transcript.slice(linesBefore).join('\n')).not.toContain(UNFINISHED_WORK_MARKER);
  // README "Moving a user": bumping passwordVersion on the old declaration converges the whole user.
  const bumped = synth((s) =>
    user(s, 'Old', 'moved-user', { consoleAccess: false, groups: ['orders'], passwordVersion: '2' }),
  );
  expect(await stack.deploy(bumped, SHORT)).toEqual({ status: 'UPDATE_COMPLETE' });
  expect(eventually('moved-user')).toMatchObject({ consoleAccess: false, groups: ['orders'] });
});
