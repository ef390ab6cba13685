/**
 * Issue 8, finding by finding: each scenario drives the bundled handlers through the adversarial doubles
 * (test/support) and asserts the ownership contract (docs/RELIABILITY.md lists what each proves). Only
 * observable outcomes are asserted: the broker's users, passwords and pending changes, the stack status, the
 * Amazon MQ calls per event, and failure text where the contract names it.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import {
  CfnParameter,
  CfnResource,
  NestedStack,
  RemovalPolicy,
  Stack,
  aws_amazonmq as amazonmq,
  aws_secretsmanager as secretsmanager,
  aws_ssm as ssm,
} from 'aws-cdk-lib';
import { Construct } from 'constructs';
import { MqBroker, MqBrokerReboot, MqUser, MqUserProps } from '../lib';
import { CloudFormation, EmulatedStack, Invocation } from './support/cloudformation';
import { FakeMq } from './support/mq-endpoint';
import { failingUserOn, startDoubles, synthApp } from './support/lifecycle';

process.env.CDK_VALIDATION = 'false';
jest.setTimeout(30_000);

const OUT = path.join(__dirname, '..', '.test-out');
const BROKER = 'b-8f1c2d3e-4a5b-6c7d-8e9f-0a1b2c3d4e5f';
/** Failing resources live on another broker, so that no MqBrokerReboot of BROKER covers (and waits for) them. */
const OTHER = 'b-0f0e0d0c-0b0a-0908-0706-050403020100';
const PASSWORD = 'Orders-Passw0rd-2026';
const ROLLED_PASSWORD = 'Orders-Passw0rd-2027';
const FOREIGN = { consoleAccess: false, groups: ['theirs'], replicationUser: false, password: 'Foreign-Passw0rd-77' };
const BYSTANDER = { consoleAccess: true, groups: ['admins'], password: 'Bystander-Passw0rd-1' };
/** Timing knobs set on the bundles that export them: the production waits are minutes. */
const TIMINGS = {
  retryTiming: {
    baseDelayMs: 20,
    maxDelayMs: 200,
    throttleBaseDelayMs: 20,
    throttleMaxDelayMs: 200,
    brokerWaitMs: 1_500,
  },
  rebootTiming: { settleMs: 1_500 },
};
/** A handler timeout that leaves a few seconds of deadline (the handler keeps 5 s to answer). */
const SHORT = { handlerTimeoutMs: 9_000 };

let mq: FakeMq;
let cfn: CloudFormation;
const secrets = new Set<string>([BYSTANDER.password, FOREIGN.password]);
const figures = { scenarios: 0, usersChangedUnexpectedly: 0, faultsInjected: 0 };
/** Amazon MQ calls of each MqUser event that ran alone, by request type, over every scenario. */
const callsPerEvent: Record<string, number[]> = { Create: [], Update: [], Delete: [] };

startDoubles({
  out: OUT,
  emulator: { queryIntervalMs: 10, timings: TIMINGS },
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

let invocationsBefore = 0;
beforeEach(() => {
  figures.scenarios++;
  invocationsBefore = cfn.invocations.length;
});

afterEach(() => {
  figures.faultsInjected += mq.faultsInjected;
  for (const i of cfn.invocations.slice(invocationsBefore))
    if (!i.overlapped && !i.redelivered && i.outcome === 'SUCCESS' && i.resourceType === 'Custom::MqUser')
      callsPerEvent[i.requestType]?.push(i.mqCalls.length);
});

// ---- apps ----

const synth = (build: (stack: Stack) => void, stackName?: string) => synthApp(OUT, build, stackName);

function broker(scope: Construct, id = 'Broker'): amazonmq.IBrokerRef {
  return MqBroker.fromBrokerArn(scope, id, mq.brokerArn(BROKER));
}

function secret(scope: Construct, name: string, password = PASSWORD): secretsmanager.ISecret {
  secrets.add(password);
  const arn = `arn:aws:secretsmanager:us-east-1:123456789012:secret:${name}-AbCdEf`;
  if (mq.secretValue(arn) === undefined) mq.putSecret(arn, JSON.stringify({ password }));
  return secretsmanager.Secret.fromSecretCompleteArn(scope, `Secret-${name}`, arn);
}

function user(scope: Construct, id: string, username: string, props: Partial<MqUserProps> = {}): MqUser {
  return new MqUser(scope, id, {
    broker: broker(scope, `Broker-${id}`),
    username,
    passwordSecret: secret(scope, id.toLowerCase()),
    ...props,
  });
}

/** A user whose Create fails (its secret does not exist) on OTHER, made to run after `after`. */
const failingUser = (scope: Construct, after: Construct) => failingUserOn(scope, after, mq.brokerArn(OTHER));

function rebootOf(scope: Construct, props: { revision?: string; timeoutSeconds?: number } = {}): MqBrokerReboot {
  const reboot = new MqBrokerReboot(scope, 'ApplyUsers', {
    broker: broker(scope, 'RebootBroker'),
    revision: props.revision,
  });
  if (props.timeoutSeconds) {
    // Below the construct's 1-minute floor, through the escape hatch, so that the test is quick.
    (reboot.node.findChild('Resource').node.defaultChild as CfnResource).addPropertyOverride(
      'TimeoutSeconds',
      props.timeoutSeconds,
    );
  }
  return reboot;
}

/** The assembly as 0.1 wrote it for this test's purpose: the user resources without `FormatVersion`. */
function withoutFormatVersion(assemblyDir: string): string {
  const file = path.join(assemblyDir, 'Orders.template.json');
  const template = JSON.parse(fs.readFileSync(file, 'utf8'));
  for (const resource of Object.values<{ Type: string; Properties?: Record<string, unknown> }>(template.Resources)) {
    if (resource.Type === 'Custom::MqUser') delete resource.Properties?.FormatVersion;
  }
  fs.writeFileSync(file, JSON.stringify(template));
  return assemblyDir;
}

function logicalIdOf(stack: EmulatedStack, type = 'Custom::MqUser', contains = ''): string {
  const id = Object.keys(stack.customResources(type)).find((logicalId) => logicalId.includes(contains));
  if (!id) throw new Error(`no ${type} ${contains} in ${stack.name}`);
  return id;
}

function since(from: number): Invocation[] {
  return cfn.invocations.slice(from);
}

/** A user that is gone or on its way out. */
function expectRemoved(username: string) {
  const state = mq.user(BROKER, username);
  expect(state === undefined || state.pending?.change === 'DELETE').toBe(true);
}

function expectKept(username: string) {
  expect(mq.user(BROKER, username)).toBeDefined();
  expect(mq.user(BROKER, username)?.pending?.change).not.toBe('DELETE');
}

// ---- the findings ----

describe('issue 8', () => {
  test('finding 1: a rollback keeps an adopted user that someone else created through the API (pending CREATE)', async () => {
    mq.seedPendingCreate(BROKER, 'legacy', { groups: ['old'], password: FOREIGN.password });
    const result = await cfn
      .stack('Orders')
      .deploy(synth((s) => failingUser(s, user(s, 'Legacy', 'legacy', { groups: ['new'], adoptExisting: true }))));
    expect(result.status).toBe('ROLLBACK_COMPLETE');
    expectKept('legacy');
    mq.applyPendingChanges(BROKER);
    expect(mq.user(BROKER, 'legacy')).toBeDefined();
  });

  test('finding 2: the rollback removes an adopted user that this deploy created, even after the reboot applied it', async () => {
    const result = await cfn.stack('Orders').deploy(
      synth((s) => {
        user(s, 'Fresh', 'fresh-user', { adoptExisting: true });
        failingUser(s, rebootOf(s));
      }),
    );
    expect(result.status).toBe('ROLLBACK_COMPLETE');
    expect(mq.completedReboots(BROKER)).toBe(1); // the reboot applied the creation before the failure
    expectRemoved('fresh-user');
    mq.applyPendingChanges(BROKER);
    expect(mq.user(BROKER, 'fresh-user')).toBeUndefined();
  });

  test.each(['current', 'deleting'] as const)(
    'finding 3: swapping two usernames with adoptExisting keeps both users (a swapped resource in the cleanup shows as %s)',
    async (cleanupView) => {
      const app = (first: string, second: string) =>
        synth((s) => {
          user(s, 'UserA', first, { groups: ['group-a'], adoptExisting: true });
          user(s, 'UserB', second, { groups: ['group-b'], adoptExisting: true });
        });
      const stack = cfn.stack('Orders');
      expect(await stack.deploy(app('swap-one', 'swap-two'))).toEqual({ status: 'CREATE_COMPLETE' });
      mq.applyPendingChanges(BROKER);
      expect(await stack.deploy(app('swap-two', 'swap-one'), { cleanupView })).toEqual({ status: 'UPDATE_COMPLETE' });
      mq.applyPendingChanges(BROKER);
      expect(mq.user(BROKER, 'swap-one')?.applied).toMatchObject({ groups: ['group-b'] });
      expect(mq.user(BROKER, 'swap-two')?.applied).toMatchObject({ groups: ['group-a'] });
      // A later deploy (no change) and a destroy still find and remove both.
      expect(await stack.deploy(app('swap-two', 'swap-one'))).toEqual({ status: 'UPDATE_COMPLETE' });
      expectKept('swap-one');
      expectKept('swap-two');
      expect(await stack.destroy()).toEqual({ status: 'DELETE_COMPLETE' });
      expectRemoved('swap-one');
      expectRemoved('swap-two');
    },
  );

  test('finding 3: a user moved between two constructs of one stack in one deploy is kept', async () => {
    const stack = cfn.stack('Orders');
    await stack.deploy(synth((s) => user(s, 'OldHome', 'mover', { groups: ['old'] })));
    mq.applyPendingChanges(BROKER);
    const moved = await stack.deploy(
      synth((s) => user(s, 'NewHome', 'mover', { groups: ['new'], adoptExisting: true })),
      { listPageSize: 1 }, // ListStackResources in pages of one: the holder is on a later page
    );
    expect(moved).toEqual({ status: 'UPDATE_COMPLETE' });
    expectKept('mover');
    mq.applyPendingChanges(BROKER);
    expect(mq.user(BROKER, 'mover')?.applied).toMatchObject({ groups: ['new'] });
  });

  test('finding 4: a Create whose CreateUser answer was lost, then hangs, removes the user it made; a retry succeeds', async () => {
    mq.inject({ operation: 'CreateUser', fault: 'lostResponse' });
    mq.inject({ operation: 'CreateUser', fault: 'hang', times: Infinity });
    const first = await cfn.stack('Orders').deploy(
      synth((s) => user(s, 'Orders', 'orders-service')),
      { handlerTimeoutMs: 10_000 },
    );
    expect(first.status).toBe('ROLLBACK_COMPLETE');
    expect(first.reason).not.toMatch(/Task timed out/);
    expectRemoved('orders-service');
    mq.clearInjections();
    mq.applyPendingChanges(BROKER);
    expect(await cfn.stack('Orders').deploy(synth((s) => user(s, 'Orders', 'orders-service')))).toEqual({
      status: 'CREATE_COMPLETE',
    });
    expect(mq.user(BROKER, 'orders-service')?.pending).toMatchObject({ change: 'CREATE', password: PASSWORD });
  });

  test('finding 4: a 500 after the user was made, a 400 while the broker reboots, then a 409: the Create knows its own user', async () => {
    mq.inject({
      operation: 'CreateUser',
      fault: 'internalAfterWrite',
      then: () => {
        mq.setBrokerState(BROKER, 'REBOOT_IN_PROGRESS');
        setTimeout(() => mq.finishReboot(BROKER), 1_000);
      },
    });
    const result = await cfn.stack('Orders').deploy(
      synth((s) => user(s, 'Orders', 'orders-service', { groups: ['orders-producers'] })),
      { handlerTimeoutMs: 20_000 },
    );
    expect(result).toEqual({ status: 'CREATE_COMPLETE' });
    const state = mq.user(BROKER, 'orders-service');
    expect(state?.pending?.change).not.toBe('DELETE');
    expect(state?.pending ?? state?.applied).toMatchObject({ groups: ['orders-producers'], password: PASSWORD });
  });

  test('finding 5: a broker stuck in REBOOT_IN_PROGRESS past the reboot timeout: the rollback completes, never UPDATE_ROLLBACK_FAILED', async () => {
    const app = (groups: string[]) =>
      synth((s) => {
        user(s, 'Stuck', 'stuck-user', { groups });
        rebootOf(s, { timeoutSeconds: 1 });
      });
    const stack = cfn.stack('Orders');
    expect(await stack.deploy(app(['g1']))).toEqual({ status: 'CREATE_COMPLETE' });
    mq.rebootDelayMs = 'never';
    mq.callsOutsideRunning = 'reject'; // the fake keeps refusing user calls
    const result = await stack.deploy(app(['g2']), SHORT);
    expect(result.status).toBe('UPDATE_ROLLBACK_COMPLETE');
    expect(mq.brokerState(BROKER)).toBe('REBOOT_IN_PROGRESS');
    // The rollback could not restore g1 on a broker that refuses calls; it says so, naming the user.
    expect(cfn.transcript.join('\n')).toContain('stuck-user');
    mq.setBrokerState(BROKER, 'RUNNING');
  });

  test('finding 6: turning adoptExisting off sends no UpdateUser and causes no reboot', async () => {
    const app = (adoptExisting: boolean) =>
      synth((s) => {
        user(s, 'Adopted', 'adopted-user', { groups: ['g1'], adoptExisting });
        rebootOf(s);
      });
    mq.seedUser(BROKER, 'adopted-user', { groups: ['g0'], password: PASSWORD });
    const stack = cfn.stack('Orders');
    expect(await stack.deploy(app(true))).toEqual({ status: 'CREATE_COMPLETE' });
    expect(mq.user(BROKER, 'adopted-user')).toMatchObject({ applied: { groups: ['g1'] }, pending: undefined });
    const reboots = mq.reboots(BROKER);
    const from = mq.calls.length;
    expect(await stack.deploy(app(false))).toEqual({ status: 'UPDATE_COMPLETE' });
    expect(mq.mqCalls(from, 'UpdateUser')).toEqual([]);
    expect(mq.mqCalls(from, 'RebootBroker')).toEqual([]);
    expect(mq.reboots(BROKER)).toBe(reboots);
    expect(mq.user(BROKER, 'adopted-user')?.pending).toBeUndefined();
  });

  test('finding 6: a deploy that only removes users causes no reboot', async () => {
    const app = (names: string[]) =>
      synth((s) => {
        for (const name of names) user(s, `User${name.replace(/-/g, '')}`, name);
        rebootOf(s);
      });
    const stack = cfn.stack('Orders');
    expect(await stack.deploy(app(['keep-me', 'drop-me']))).toEqual({ status: 'CREATE_COMPLETE' });
    const reboots = mq.reboots(BROKER);
    expect(await stack.deploy(app(['keep-me']))).toEqual({ status: 'UPDATE_COMPLETE' });
    expect(mq.reboots(BROKER)).toBe(reboots);
    expectRemoved('drop-me');
    expect(mq.user(BROKER, 'keep-me')).toMatchObject({ pending: undefined });
  });

  test.each(['CfnParameter', 'SSM parameter'] as const)(
    'finding 7: a passwordVersion from a %s that changes at deploy time reaches the reboot',
    async (source) => {
      const stack = cfn.stack('Orders');
      const app = synth((s) => {
        const version =
          source === 'CfnParameter'
            ? new CfnParameter(s, 'PasswordVersion', { default: '1' }).valueAsString
            : ssm.StringParameter.valueForStringParameter(s, '/orders/password-version');
        user(s, 'Orders', 'orders-service', { passwordVersion: version });
        rebootOf(s);
      });
      cfn.ssm.set('/orders/password-version', '1');
      expect(await stack.deploy(app)).toEqual({ status: 'CREATE_COMPLETE' });
      expect(mq.user(BROKER, 'orders-service')).toMatchObject({ applied: { password: PASSWORD }, pending: undefined });
      const reboots = mq.completedReboots(BROKER);
      mq.putSecret(
        'arn:aws:secretsmanager:us-east-1:123456789012:secret:orders-AbCdEf',
        JSON.stringify({ password: ROLLED_PASSWORD }),
      );
      secrets.add(ROLLED_PASSWORD);
      cfn.ssm.set('/orders/password-version', '2');
      const parameters: Record<string, string> = source === 'CfnParameter' ? { PasswordVersion: '2' } : {};
      expect(await stack.deploy(app, { parameters })).toEqual({ status: 'UPDATE_COMPLETE' });
      expect(mq.completedReboots(BROKER)).toBe(reboots + 1);
      expect(mq.user(BROKER, 'orders-service')).toMatchObject({
        applied: { password: ROLLED_PASSWORD },
        pending: undefined,
      });
    },
  );

  test('finding 8: two stacks rebooting one broker at once both complete', async () => {
    mq.rebootDelayMs = 1_000;
    // The first RebootBroker reaches the broker late: the other stack's reboot has started by then (400).
    mq.inject({ operation: 'RebootBroker', fault: 'slow', delayMs: 300 });
    const app = (name: string, username: string) =>
      synth((s) => {
        user(s, 'Team', username);
        rebootOf(s);
      }, name);
    const [a, b] = await Promise.all([
      cfn.stack('TeamA').deploy(app('TeamA', 'team-a')),
      cfn.stack('TeamB').deploy(app('TeamB', 'team-b')),
    ]);
    expect(a).toEqual({ status: 'CREATE_COMPLETE' });
    expect(b).toEqual({ status: 'CREATE_COMPLETE' });
    expect(mq.mqCalls(0, 'RebootBroker').some((c) => c.status === 400)).toBe(true);
    expect(mq.user(BROKER, 'team-a')).toMatchObject({ pending: undefined });
    expect(mq.user(BROKER, 'team-b')).toMatchObject({ pending: undefined });
  });

  test('finding 9: transient 409s on CreateUser are retried with backoff until they pass', async () => {
    mq.inject({ operation: 'CreateUser', fault: 'conflict', times: 5 });
    expect(await cfn.stack('Orders').deploy(synth((s) => user(s, 'Orders', 'orders-service')))).toEqual({
      status: 'CREATE_COMPLETE',
    });
    expect(mq.mqCalls(0, 'CreateUser').filter((c) => c.status === 200)).toHaveLength(1);
    expect(mq.user(BROKER, 'orders-service')?.pending).toMatchObject({ change: 'CREATE', password: PASSWORD });
  });

  test('finding 9: writes that conflict under concurrency (409) all succeed in the end', async () => {
    mq.writeConflictWindowMs = 250; // wide enough that eight concurrent creates meet it on a busy machine too
    const names = Array.from({ length: 8 }, (_, i) => `busy-${i}`);
    const result = await cfn
      .stack('Busy')
      .deploy(synth((s) => names.forEach((name, i) => user(s, `User${i}`, name)), 'Busy'));
    expect(result).toEqual({ status: 'CREATE_COMPLETE' });
    expect(mq.concurrencyConflicts).toBeGreaterThan(0);
    for (const name of names) expect(mq.user(BROKER, name)?.pending).toMatchObject({ change: 'CREATE' });
  });

  test('finding 10: a revision-only reboot is not reported done before the broker has really rebooted', async () => {
    const app = (revision: string) =>
      synth((s) => {
        user(s, 'Orders', 'orders-service');
        rebootOf(s, { revision });
      });
    const stack = cfn.stack('Orders');
    expect(await stack.deploy(app('1'))).toEqual({ status: 'CREATE_COMPLETE' });
    // RebootBroker answers, the broker keeps saying RUNNING (nothing pending) for a while.
    mq.rebootStartsAfterMs = 500;
    mq.rebootDelayMs = 300;
    const completed = mq.completedReboots(BROKER);
    expect(await stack.deploy(app('2'))).toEqual({ status: 'UPDATE_COMPLETE' });
    expect(mq.reboots(BROKER)).toBeGreaterThan(completed);
    expect(mq.completedReboots(BROKER)).toBe(completed + 1);
    expect(mq.brokerState(BROKER)).toBe('RUNNING');
  });

  test.each([
    ['accepted but kept the pending DELETE', 'keepDelete'],
    ['revived it', 'revive'],
  ] as const)('finding 11: reviving a user pending DELETE when UpdateUser %s', async (_case, behaviour) => {
    mq.createOnPendingDelete = 'error';
    mq.updateOnPendingDelete = behaviour;
    const first = cfn.stack('Orders');
    await first.deploy(synth((s) => user(s, 'Orders', 'orders-service')));
    mq.applyPendingChanges(BROKER);
    await first.destroy();
    expect(mq.user(BROKER, 'orders-service')?.pending).toEqual({ change: 'DELETE' });
    const again = await cfn
      .stack('Orders')
      .deploy(synth((s) => user(s, 'Orders', 'orders-service', { groups: ['again'] })));
    if (behaviour === 'keepDelete') {
      expect(again.status).toBe('ROLLBACK_COMPLETE');
      expect(again.reason).toMatch(/reboot the broker/i);
      expect(mq.user(BROKER, 'orders-service')?.pending).toEqual({ change: 'DELETE' });
    } else {
      expect(again).toEqual({ status: 'CREATE_COMPLETE' });
      expect(mq.user(BROKER, 'orders-service')?.pending).toMatchObject({ change: 'UPDATE', groups: ['again'] });
    }
  });

  test('finding 12: a username of dots is refused at synth and by the handler', async () => {
    expect(() => synth((s) => user(s, 'Dots', '..'))).toThrow(/username/i);
    expect(() => synth((s) => user(s, 'Dots', '...'))).toThrow(/username/i);
    const app = synth((s) => user(s, 'Dots', new CfnParameter(s, 'Username', { default: 'fine-name' }).valueAsString));
    const result = await cfn.stack('Orders').deploy(app, { parameters: { Username: '..' } });
    expect(result.status).toBe('ROLLBACK_COMPLETE');
    expect(mq.calls.filter((c) => c.username === '..')).toEqual([]);
    expect(mq.user(BROKER, '..')).toBeUndefined();
  });

  test('finding 13: a forward rename onto a foreign user while DescribeStacks already says rollback leaves it untouched', async () => {
    const stack = cfn.stack('Orders');
    await stack.deploy(synth((s) => user(s, 'Orders', 'orders-service', { groups: ['ours'] })));
    mq.applyPendingChanges(BROKER);
    mq.seedUser(BROKER, 'foreign-user', FOREIGN);
    const result = await stack.deploy(
      synth((s) => user(s, 'Orders', 'foreign-user', { groups: ['ours'] })),
      {
        cancelUpdateOnStart: logicalIdOf(stack), // CancelUpdateStack as the rename starts
      },
    );
    expect(result.status).toBe('UPDATE_ROLLBACK_COMPLETE');
    expect(mq.user(BROKER, 'foreign-user')).toEqual({ username: 'foreign-user', applied: FOREIGN });
    expectKept('orders-service');
    expect(mq.user(BROKER, 'orders-service')?.applied).toMatchObject({ groups: ['ours'], password: PASSWORD });
  });

  test('finding 13: the same when a sibling failed first and the stack status already says rollback', async () => {
    const stack = cfn.stack('Orders');
    await stack.deploy(synth((s) => user(s, 'Orders', 'orders-service')));
    mq.applyPendingChanges(BROKER);
    mq.seedUser(BROKER, 'foreign-user', FOREIGN);
    // The sibling fails at once; the rename's DescribeUser is slow, so the stack already says rollback.
    mq.inject({ operation: 'DescribeUser', username: 'foreign-user', fault: 'slow', delayMs: 300, times: 3 });
    const result = await stack.deploy(
      synth((s) => {
        user(s, 'Orders', 'foreign-user');
        failingUser(s, new Construct(s, 'Nothing'));
      }),
      { rollbackStatus: 'onFirstFailure' },
    );
    expect(result.status).toBe('UPDATE_ROLLBACK_COMPLETE');
    expect(mq.user(BROKER, 'foreign-user')).toEqual({ username: 'foreign-user', applied: FOREIGN });
    expectKept('orders-service');
  });
});

describe('ownership beyond the findings', () => {
  test.each([
    [RemovalPolicy.RETAIN_ON_UPDATE_OR_DELETE, 'removed'],
    [RemovalPolicy.RETAIN, 'kept'],
  ] as const)('a failed first deploy with %s: the user it created is %s', async (removalPolicy, fate) => {
    const result = await cfn
      .stack('Orders')
      .deploy(synth((s) => failingUser(s, user(s, 'Orders', 'orders-service', { removalPolicy }))));
    expect(result.status).toBe('ROLLBACK_COMPLETE');
    if (fate === 'removed') expectRemoved('orders-service');
    else expectKept('orders-service');
  });

  test('an adopted user in a nested stack deleted during the parent rollback is kept', async () => {
    mq.seedUser(BROKER, 'legacy', { groups: ['old'], password: FOREIGN.password });
    const root = cfn.stack('Root');
    expect(await root.deploy(synth((s) => user(s, 'RootUser', 'root-user'), 'Root'))).toEqual({
      status: 'CREATE_COMPLETE',
    });
    const result = await root.deploy(
      synth((s) => {
        user(s, 'RootUser', 'root-user');
        const nested = new NestedStack(s, 'Team');
        user(nested, 'Legacy', 'legacy', { groups: ['new'], adoptExisting: true });
        failingUser(s, nested);
      }, 'Root'),
    );
    expect(result.status).toBe('UPDATE_ROLLBACK_COMPLETE');
    const [child] = Object.values(root.allNestedStacks());
    expect(child?.status).toBe('DELETE_COMPLETE');
    // The nested stack's Delete ran while it said DELETE_IN_PROGRESS and the root UPDATE_ROLLBACK_IN_PROGRESS.
    expect(cfn.invocations).toContainEqual(
      expect.objectContaining({ stackName: child!.name, requestType: 'Delete', outcome: 'SUCCESS' }),
    );
    expectKept('legacy');
  });

  test('review: a stale previous ID is no proof: a forward rename back onto a foreign user, status already rollback, leaves it untouched', async () => {
    const stack = cfn.stack('Orders');
    await stack.deploy(synth((s) => user(s, 'Orders', 'old-name', { groups: ['ours'] })));
    mq.applyPendingChanges(BROKER);
    expect(await stack.deploy(synth((s) => user(s, 'Orders', 'new-name', { groups: ['ours'] })))).toEqual({
      status: 'UPDATE_COMPLETE',
    });
    mq.applyPendingChanges(BROKER); // the cleanup's deletion of old-name applies
    mq.seedUser(BROKER, 'old-name', FOREIGN); // later, someone else creates old-name
    const result = await stack.deploy(
      synth((s) => user(s, 'Orders', 'old-name', { groups: ['ours'] })),
      { cancelUpdateOnStart: logicalIdOf(stack) }, // the status says rollback while the rename runs
    );
    expect(result.status).toBe('UPDATE_ROLLBACK_COMPLETE');
    expect(mq.user(BROKER, 'old-name')).toEqual({ username: 'old-name', applied: FOREIGN });
    expectKept('new-name');
    expect(await stack.destroy()).toEqual({ status: 'DELETE_COMPLETE' });
    expect(mq.user(BROKER, 'old-name')).toEqual({ username: 'old-name', applied: FOREIGN });
    expectRemoved('new-name');
  });

  test('review: the rollback of a rename while the broker refuses calls restores the old ID; the cleanup Delete of the new user logs what it could not do', async () => {
    const app = (username: string, groups = ['g1']) =>
      synth((s) => {
        user(s, 'Stuck', username, { groups });
        rebootOf(s, { timeoutSeconds: 1 });
      });
    const stack = cfn.stack('Orders');
    expect(await stack.deploy(app('name-a'))).toEqual({ status: 'CREATE_COMPLETE' });
    mq.rebootDelayMs = 'never';
    mq.callsOutsideRunning = 'reject';
    const result = await stack.deploy(app('name-b'), SHORT);
    expect(result.status).toBe('UPDATE_ROLLBACK_COMPLETE');
    // The resource holds name-a again, so the rollback's cleanup was asked to delete name-b. The broker still
    // refused user calls then: the Delete logged what it left and answered SUCCESS (never wedge).
    expect(stack.physicalId(logicalIdOf(stack))).toMatch(/\/name-a\?/);
    expect(cfn.transcript.join('\n')).toMatch(/rollback: could not delete the user.*name-b/);
    // CloudFormation ends the rollback complete whatever a cleanup Delete answers: the answer itself is SUCCESS.
    const cleanup = cfn.invocations.filter((i) => i.requestType === 'Delete' && /\/name-b\?/.test(i.physicalId ?? ''));
    expect(cleanup.map((i) => i.outcome)).toEqual(['SUCCESS']);
    expect(mq.user(BROKER, 'name-b')?.pending?.change).toBe('CREATE');
    mq.setBrokerState(BROKER, 'RUNNING');
    mq.rebootDelayMs = 10;
    mq.callsOutsideRunning = 'accept';
    expect(await stack.deploy(app('name-a', ['g2']))).toEqual({ status: 'UPDATE_COMPLETE' });
    expect(await stack.destroy()).toEqual({ status: 'DELETE_COMPLETE' });
    expectRemoved('name-a');
  });

  test('review: a user deployed by 0.1 upgrades under MqBrokerReboot: FormatVersion gives it the Update that answers StateDigest', async () => {
    const stack = cfn.stack('Orders');
    expect(await stack.deploy(withoutFormatVersion(synth((s) => user(s, 'Orders', 'orders-service'))))).toEqual({
      status: 'CREATE_COMPLETE',
    });
    delete stack.data(logicalIdOf(stack))!.StateDigest; // 0.1 answered Username, BrokerId and PendingChange only
    mq.applyPendingChanges(BROKER);
    const upgrade = (s: Stack) => {
      user(s, 'Orders', 'orders-service');
      rebootOf(s);
    };
    // Without the new property the user gets no Update, and the reboot's Fn::GetAtt of StateDigest fails.
    const unchanged = await stack.deploy(withoutFormatVersion(synth(upgrade)));
    expect(unchanged.status).toBe('UPDATE_ROLLBACK_COMPLETE');
    expect(unchanged.reason).toMatch(/StateDigest/);
    const before = mq.mqCalls().length;
    expect(await stack.deploy(synth(upgrade))).toEqual({ status: 'UPDATE_COMPLETE' });
    // That Update writes nothing: the user holds the declared state, so nothing is pending and nothing reboots.
    expect(mq.mqCalls(before, 'UpdateUser')).toEqual([]);
    expect(mq.user(BROKER, 'orders-service')?.pending).toBeUndefined();
    expect(mq.reboots(BROKER)).toBe(0);
  });

  test('every event delivered twice: the second delivery changes nothing that the first did', async () => {
    const redeliver = () => true;
    const stack = cfn.stack('Orders');
    expect(
      await stack.deploy(
        synth((s) => user(s, 'Orders', 'orders-service', { groups: ['g1'] })),
        { redeliver },
      ),
    ).toEqual({ status: 'CREATE_COMPLETE' });
    expect(cfn.invocations.filter((i) => i.redelivered)).toHaveLength(1);
    expectKept('orders-service');
    expect(mq.user(BROKER, 'orders-service')?.pending).toMatchObject({
      change: 'CREATE',
      groups: ['g1'],
      password: PASSWORD,
    });
    mq.applyPendingChanges(BROKER);

    expect(
      await stack.deploy(
        synth((s) => user(s, 'Orders', 'orders-service', { groups: ['g2'] })),
        { redeliver },
      ),
    ).toEqual({ status: 'UPDATE_COMPLETE' });
    expect(mq.user(BROKER, 'orders-service')?.pending).toMatchObject({ change: 'UPDATE', groups: ['g2'] });
    mq.applyPendingChanges(BROKER);

    expect(
      await stack.deploy(
        synth((s) => user(s, 'Orders', 'orders-v2', { groups: ['g2'] })),
        { redeliver },
      ),
    ).toEqual({ status: 'UPDATE_COMPLETE' });
    expectKept('orders-v2');
    expectRemoved('orders-service');
    mq.applyPendingChanges(BROKER);

    expect(await stack.destroy({ redeliver })).toEqual({ status: 'DELETE_COMPLETE' });
    expectRemoved('orders-v2');
  });

  test('Amazon MQ calls per event in the common case: create ≤ 3, update ≤ 2, delete ≤ 2', async () => {
    const stack = cfn.stack('Orders');
    const app = (groups: string[]) => synth((s) => user(s, 'Orders', 'orders-service', { groups }));
    const counts = async (deploy: () => Promise<unknown>, requestType: string) => {
      const from = cfn.invocations.length;
      await deploy();
      const [event] = since(from).filter((i) => i.requestType === requestType && i.logicalId.includes('Orders'));
      expect(event.outcome).toBe('SUCCESS');
      return event.mqCalls.map((c) => c.operation);
    };
    expect((await counts(() => stack.deploy(app(['g1'])), 'Create')).length).toBeLessThanOrEqual(3);
    mq.applyPendingChanges(BROKER);
    expect((await counts(() => stack.deploy(app(['g2'])), 'Update')).length).toBeLessThanOrEqual(2);
    mq.applyPendingChanges(BROKER);
    expect((await counts(() => stack.destroy(), 'Delete')).length).toBeLessThanOrEqual(2);
  });

  test('ListStackResources and DescribeStacks failing for a while: the deletes still end right', async () => {
    const stack = cfn.stack('Orders');
    await stack.deploy(synth((s) => user(s, 'Orders', 'orders-service')));
    cfn.inject({ fault: 'internal', times: 3 });
    expect(await stack.destroy()).toEqual({ status: 'DELETE_COMPLETE' });
    expectRemoved('orders-service');
  });
});

describe('nothing leaks', () => {
  test('no log line, response or failure reason of any scenario holds a password or secret string', () => {
    for (const generated of cfn.generatedSecrets) secrets.add(generated);
    const transcript = cfn.transcript.join('\n');
    expect(cfn.transcript.length).toBeGreaterThan(50);
    for (const value of secrets) {
      expect(transcript).not.toContain(value);
      expect(transcript).not.toContain(JSON.stringify({ password: value }));
    }
    expect(figures.usersChangedUnexpectedly).toBe(0);
    const perEvent = Object.fromEntries(
      Object.entries(callsPerEvent).map(([type, list]) => [
        type,
        {
          events: list.length,
          max: Math.max(0, ...list),
          mean: list.length ? +(list.reduce((a, b) => a + b, 0) / list.length).toFixed(2) : 0,
        },
      ]),
    );
    const summary = {
      ...figures,
      mqCallsPerUserEvent: perEvent,
      handlerInvocations: cfn.invocations.length,
      secretsChecked: secrets.size,
    };
    fs.writeFileSync(path.join(OUT, 'findings.json'), `${JSON.stringify(summary, null, 2)}\n`);
    process.stdout.write(`findings figures: ${JSON.stringify(summary)}\n`);
  });
});
