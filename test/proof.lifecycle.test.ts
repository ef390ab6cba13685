/**
 * Issue 13: every event proves itself against CloudFormation before anything is written. The bundled handlers run
 * in the CloudFormation emulator; forged events are handed to the deployed functions directly (as anyone allowed
 * to invoke them, or to start the reboot waiter, could), and real deploys run with each answer the documentation
 * leaves open (`cleanupView`, `rollbackResourceStatus`) and with CloudFormation throttling or denying its reads.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { Stack, aws_amazonmq as amazonmq, aws_secretsmanager as secretsmanager } from 'aws-cdk-lib';
import { MqBroker, MqBrokerReboot, MqUser, MqUserProps } from '../lib';
import { CloudFormation, EmulatedStack, EmulatorOptions, contextFor } from './support/cloudformation';
import { FakeMq } from './support/mq-endpoint';
import { failingUserOn, startDoubles, synthApp } from './support/lifecycle';

process.env.CDK_VALIDATION = 'false';
jest.setTimeout(30_000);

const OUT = path.join(__dirname, '..', '.test-out');
const BROKER = 'b-3c1d2e3f-4a5b-4c6d-8e9f-0a1b2c3d4e5f';
/** Another team's broker, with its administrator. */
const THEIRS = 'b-4d2e3f4a-5b6c-4d7e-8f9a-1b2c3d4e5f60';
const PASSWORD = 'Orders-Passw0rd-2026';
const ATTACKER_PASSWORD = 'Attacker-Chose-Th1s';
const BYSTANDER = { consoleAccess: true, groups: ['admins'], password: 'Bystander-Passw0rd-1' };
const ADMIN = { consoleAccess: true, groups: ['admins'], password: 'Their-Admin-Passw0rd-1' };
const TIMINGS = {
  // Throttled proofs are retried like every call: with the production 429 backoff (3 s to 20 s) a scenario that
  // injects several throttles outlasts jest's timeout.
  retryTiming: {
    baseDelayMs: 20,
    maxDelayMs: 200,
    throttleBaseDelayMs: 20,
    throttleMaxDelayMs: 200,
    accessDeniedWindowMs: 500,
  },
  rebootTiming: { settleMs: 300 },
};

let mq: FakeMq;
let cfn: CloudFormation;
const secrets = new Set<string>([BYSTANDER.password, ADMIN.password, ATTACKER_PASSWORD]);
const figures = { usersChangedUnexpectedly: 0 };

startDoubles({
  out: OUT,
  emulator: { queryIntervalMs: 10, timings: TIMINGS },
  started: (doubles) => ({ mq, cfn } = doubles),
  eachScenario: {
    brokers: [
      { brokerId: BROKER, brokerName: 'shared', engineType: 'ACTIVEMQ' },
      { brokerId: THEIRS, brokerName: 'theirs', engineType: 'ACTIVEMQ' },
    ],
    bystander: { brokerId: BROKER, seeded: BYSTANDER },
    passwordsOn: [BROKER, THEIRS],
    secrets,
    figures,
  },
});

beforeEach(() => {
  mq.seedUser(THEIRS, 'admin', ADMIN);
});

afterEach(() => {
  expect(mq.user(THEIRS, 'admin')).toEqual({ username: 'admin', applied: { replicationUser: false, ...ADMIN } });
});

const synth = (build: (stack: Stack) => void, stackName?: string) => synthApp(OUT, build, stackName);

function broker(stack: Stack): amazonmq.IBrokerRef {
  return MqBroker.fromBrokerArn(stack, 'Broker', mq.brokerArn(BROKER));
}

function suppliedSecret(stack: Stack, name: string, password = PASSWORD): secretsmanager.ISecret {
  secrets.add(password);
  const arn = `arn:aws:secretsmanager:us-east-1:123456789012:secret:${name}-AbCdEf`;
  if (mq.secretValue(arn) === undefined) mq.putSecret(arn, JSON.stringify({ password }));
  return secretsmanager.Secret.fromSecretCompleteArn(stack, `Secret-${name}`, arn);
}

function userApp(props: Partial<MqUserProps> = {}, extra?: (stack: Stack, user: MqUser) => void) {
  return synth((stack) => {
    const user = new MqUser(stack, 'Orders', {
      broker: broker(stack),
      username: 'orders-service',
      passwordSecret: suppliedSecret(stack, 'orders'),
      ...props,
    });
    extra?.(stack, user);
  });
}

/** A user whose Create fails (its secret does not exist) on BROKER, made to run after `after`. */
const failingUser = (scope: Stack, after: MqUser) => failingUserOn(scope, after, mq.brokerArn(BROKER));

/** The deployed function whose logical ID starts with `prefix`, run as Lambda would run it (its environment). */
function deployedFunction(stack: EmulatedStack, assembly: string, prefix: string) {
  const template = JSON.parse(fs.readFileSync(path.join(assembly, `${stack.name}.template.json`), 'utf8'));
  const logicalId = Object.keys(template.Resources).find(
    (id) => id.startsWith(prefix) && template.Resources[id].Type === 'AWS::Lambda::Function',
  )!;
  const fn = stack.lambdaFunction(logicalId);
  return (exported: string, event: unknown) =>
    cfn.runAs(fn.env, () => fn.module[exported](event, contextFor(fn.timeoutMs)) as Promise<unknown>);
}

function logicalIdOf(stack: EmulatedStack, type: string): string {
  return Object.keys(stack.customResources(type))[0];
}

describe('forged events against an idle stack write nothing', () => {
  let stack: EmulatedStack;
  let assembly: string;
  let invoke: (exported: string, event: unknown) => Promise<unknown>;

  beforeEach(async () => {
    stack = cfn.stack('Orders');
    assembly = userApp();
    expect(await stack.deploy(assembly)).toEqual({ status: 'CREATE_COMPLETE' });
    invoke = deployedFunction(stack, assembly, 'CdkMqUserProviderHandler');
  });

  const attackerSecret = () => {
    const arn = 'arn:aws:secretsmanager:us-east-1:123456789012:secret:attacker-AbCdEf';
    mq.putSecret(arn, JSON.stringify({ password: ATTACKER_PASSWORD }), {
      tags: { 'cdk-mq-user:stack-id': 'the stack ID, which is no secret' },
    });
    return arn;
  };

  /** The deployed handler refuses the forged `event` of this stack with `reason`, and Amazon MQ gets no call. */
  async function expectRefused(event: Record<string, unknown>, reason: RegExp): Promise<void> {
    const before = mq.calls.length;
    await expect(invoke('handler', { StackId: stack.stackId, ...event })).rejects.toThrow(reason);
    expect(mq.mqCalls(before)).toEqual([]);
  }

  test("finding 1: a forged Create adopting another team's admin, with the attacker's secret", async () => {
    await expectRefused(
      {
        RequestType: 'Create',
        LogicalResourceId: logicalIdOf(stack, 'Custom::MqUser'),
        ResourceType: 'Custom::MqUser',
        ResourceProperties: {
          BrokerId: THEIRS,
          Username: 'admin',
          Groups: ['admins'],
          PasswordSecretArn: attackerSecret(),
          AdoptExisting: 'true',
        },
      },
      /^refused a Create of .* CloudFormation is not working on it now: it is CREATE_COMPLETE/,
    );
    expect(mq.secretsCalls(0, 'GetSecretValue').filter((c) => JSON.stringify(c).includes('attacker'))).toEqual([]);
  });

  test.each([
    ['the logical ID of the real user', (s: EmulatedStack) => logicalIdOf(s, 'Custom::MqUser')],
    ['another logical ID of the stack (the handler function)', () => 'CdkMqUserProviderHandlerRole'],
    ['a logical ID the stack does not hold', () => 'Nothing'],
  ])('finding 2: a forged Delete of any user, naming %s', async (_case, logicalId) => {
    await expectRefused(
      {
        RequestType: 'Delete',
        LogicalResourceId: logicalId(stack),
        ResourceType: 'Custom::MqUser',
        PhysicalResourceId: `${BROKER}/bystander?owner=created`,
        ResourceProperties: {},
      },
      /^refused a Delete of .* CloudFormation is not working on it now/,
    );
  });

  test('a replayed Update of the real resource, once its deploy is over', async () => {
    const logicalId = logicalIdOf(stack, 'Custom::MqUser');
    const physicalId = stack.customResources('Custom::MqUser')[logicalId]!;
    await expectRefused(
      {
        RequestType: 'Update',
        LogicalResourceId: logicalId,
        PhysicalResourceId: physicalId,
        ResourceProperties: { BrokerId: BROKER, Username: 'orders-service', Groups: ['admins'], ConsoleAccess: 'true' },
        OldResourceProperties: { BrokerId: BROKER, Username: 'orders-service' },
      },
      /it is CREATE_COMPLETE, not in progress for a Update/,
    );
  });

  test('an event of the stack while it is being deleted, for a resource not being deleted', async () => {
    stack.statusOverride = 'DELETE_IN_PROGRESS';
    await expectRefused(
      {
        RequestType: 'Delete',
        LogicalResourceId: logicalIdOf(stack, 'Custom::MqUser'),
        PhysicalResourceId: `${BROKER}/bystander?owner=created`,
        ResourceProperties: {},
      },
      /^refused a Delete/,
    );
    stack.statusOverride = undefined;
  });
});

test('finding 3: forged input to the reboot waiter never reboots the broker', async () => {
  const stack = cfn.stack('Orders');
  const assembly = synth((s) => {
    const shared = broker(s);
    const user = new MqUser(s, 'Orders', {
      broker: shared,
      username: 'orders-service',
      passwordSecret: suppliedSecret(s, 'orders'),
    });
    new MqBrokerReboot(s, 'Reboot', { broker: shared }).node.addDependency(user);
  });
  expect(await stack.deploy(assembly)).toEqual({ status: 'CREATE_COMPLETE' });
  // A covered user with a change pending, as after a deploy whose reboot did not apply it.
  mq.seedPendingCreate(BROKER, 'covered', { consoleAccess: false, groups: [], password: PASSWORD });
  const waiter = deployedFunction(stack, assembly, 'CdkMqUserRebootProviderIsComplete');
  const logicalId = logicalIdOf(stack, 'Custom::MqBrokerReboot');
  const before = mq.mqCalls(0, 'RebootBroker').length;
  await expect(
    waiter('isComplete', {
      RequestType: 'Update',
      StackId: stack.stackId,
      LogicalResourceId: logicalId,
      PhysicalResourceId: stack.customResources('Custom::MqBrokerReboot')[logicalId],
      ResourceProperties: { BrokerId: BROKER, Usernames: ['covered'], UsersDigest: 'x', TimeoutSeconds: '900' },
      Data: { Action: 'WAITING', RequestedAt: String(Date.now() - 600_000), HadPending: 'true' },
    }),
  ).rejects.toThrow(/^refused a Update of .* it is CREATE_COMPLETE/);
  expect(mq.mqCalls(0, 'RebootBroker').length).toBe(before);
});

describe('real deploys prove every event, whatever CloudFormation shows where its documentation is silent', () => {
  test.each<[string, EmulatorOptions]>([
    ['the new ID, complete (cleanupView current)', { cleanupView: 'current' }],
    ['the new ID, being deleted (cleanupView deleting)', { cleanupView: 'deleting' }],
    ['the old ID, being deleted (cleanupView old)', { cleanupView: 'old' }],
  ])('a rename deletes the old user in the cleanup phase when the resource shows %s', async (_case, options) => {
    const stack = cfn.stack('Orders');
    await stack.deploy(userApp());
    mq.applyPendingChanges(BROKER);
    const result = await stack.deploy(userApp({ username: 'orders-v2' }), options);
    expect(result).toEqual({ status: 'UPDATE_COMPLETE' });
    expect(mq.user(BROKER, 'orders-service')?.pending).toMatchObject({ change: 'DELETE' });
    expect(mq.user(BROKER, 'orders-v2')?.pending).toMatchObject({ change: 'CREATE' });
  });

  test.each<[string, EmulatorOptions]>([
    ['plain statuses, cleanup showing the new ID', { rollbackResourceStatus: 'plain', cleanupView: 'current' }],
    ['rollback statuses, cleanup showing the old ID', { rollbackResourceStatus: 'rollback', cleanupView: 'old' }],
    ['rollback statuses, cleanup showing it deleting', { rollbackResourceStatus: 'rollback', cleanupView: 'deleting' }],
  ])('a rename rolls back and its rollback cleanup deletes what it made, with %s', async (_case, options) => {
    const stack = cfn.stack('Orders');
    await stack.deploy(userApp());
    mq.applyPendingChanges(BROKER);
    const result = await stack.deploy(
      userApp({ username: 'orders-v2' }, (s, user) => failingUser(s, user)),
      options,
    );
    expect(result.status).toBe('UPDATE_ROLLBACK_COMPLETE');
    // The old user is converged again (it was never deleted); the one the failed deploy made is deleted.
    expect(mq.user(BROKER, 'orders-service')?.pending).toMatchObject({ change: 'UPDATE' });
    expect(mq.user(BROKER, 'orders-v2')?.pending).toMatchObject({ change: 'DELETE' });
  });

  test('a stack whose creation rolls back, with rollback statuses, deletes what it created', async () => {
    const stack = cfn.stack('Orders');
    const result = await stack.deploy(
      userApp({}, (s, user) => failingUser(s, user)),
      {
        rollbackResourceStatus: 'rollback',
      },
    );
    expect(result.status).toBe('ROLLBACK_COMPLETE');
    expect(mq.user(BROKER, 'orders-service')?.pending).toMatchObject({ change: 'DELETE' });
  });

  test('the Provider framework delivering each event twice: the first delivery is proven, no user made twice', async () => {
    const stack = cfn.stack('Orders');
    const first = cfn.invocations.length;
    const redeliver = () => true;
    expect(await stack.deploy(userApp(), { redeliver })).toEqual({ status: 'CREATE_COMPLETE' });
    mq.applyPendingChanges(BROKER);
    expect(await stack.deploy(userApp({ username: 'orders-v2' }), { redeliver })).toEqual({
      status: 'UPDATE_COMPLETE',
    });
    expect(await stack.destroy({ redeliver })).toEqual({ status: 'DELETE_COMPLETE' });
    // CloudFormation keeps the first answer; a second delivery may fail (it finds the work done) or be refused.
    const invocations = cfn.invocations.slice(first);
    expect(invocations.filter((i) => !i.redelivered && i.outcome !== 'SUCCESS')).toEqual([]);
    expect(invocations.filter((i) => i.redelivered).length).toBeGreaterThanOrEqual(3);
    // A second Delete of a user pending deletion is CloudFormation's own event too: proven, and harmless.
    for (const username of ['orders-service', 'orders-v2'])
      expect(mq.mqCalls(0, 'CreateUser').filter((c) => c.username === username && c.status === 200)).toHaveLength(1);
    expect(mq.user(BROKER, 'orders-service')?.pending).toMatchObject({ change: 'DELETE' });
    expect(mq.user(BROKER, 'orders-v2')?.pending).toMatchObject({ change: 'DELETE' });
  });

  test('two stacks deployed at once each prove their own events', async () => {
    const app = (name: string, username: string) =>
      synth(
        (s) => new MqUser(s, 'User', { broker: broker(s), username, passwordSecret: suppliedSecret(s, username) }),
        name,
      );
    const [a, b] = await Promise.all([
      cfn.stack('TeamA').deploy(app('TeamA', 'team-a')),
      cfn.stack('TeamB').deploy(app('TeamB', 'team-b')),
    ]);
    expect([a, b]).toEqual([{ status: 'CREATE_COMPLETE' }, { status: 'CREATE_COMPLETE' }]);
    expect(mq.user(BROKER, 'team-a')?.pending).toMatchObject({ change: 'CREATE' });
    expect(mq.user(BROKER, 'team-b')?.pending).toMatchObject({ change: 'CREATE' });
  });
});

describe('when CloudFormation cannot be read', () => {
  test('rides out throttled proofs', async () => {
    cfn.inject({ operation: 'DescribeStackResource', fault: 'throttle', times: 3 });
    const stack = cfn.stack('Orders');
    expect(await stack.deploy(userApp())).toEqual({ status: 'CREATE_COMPLETE' });
    expect(mq.user(BROKER, 'orders-service')?.pending).toMatchObject({ change: 'CREATE' });
  });

  test('a Create that cannot be proven fails and writes nothing; its rollback completes', async () => {
    cfn.inject({ operation: 'DescribeStackResource', fault: 'accessDenied', times: Infinity });
    const stack = cfn.stack('Orders');
    const result = await stack.deploy(userApp());
    expect(result.status).toBe('ROLLBACK_COMPLETE');
    expect(result.reason).toMatch(/could not confirm with CloudFormation .* nothing is written without that proof/);
    expect(mq.user(BROKER, 'orders-service')).toBeUndefined();
  });

  test('an Update and a Delete that cannot be proven answer SUCCESS and leave the user untouched', async () => {
    const stack = cfn.stack('Orders');
    await stack.deploy(userApp());
    mq.applyPendingChanges(BROKER);
    cfn.inject({ operation: 'DescribeStackResource', fault: 'accessDenied', times: Infinity });
    expect(await stack.deploy(userApp({ groups: ['more'] }))).toEqual({ status: 'UPDATE_COMPLETE' });
    expect(await stack.destroy()).toEqual({ status: 'DELETE_COMPLETE' });
    expect(mq.user(BROKER, 'orders-service')).toMatchObject({ applied: { groups: [] } });
    expect(mq.user(BROKER, 'orders-service')?.pending).toBeUndefined();
    expect(cfn.transcript.join('\n')).toMatch(
      /could not confirm the Delete with CloudFormation: left the user untouched/,
    );
  });

  test('a stack deletion whose Delete fails keeps what that user depends on; deleting again finishes', async () => {
    const stack = cfn.stack('Orders');
    // "Second" depends on "Orders": CloudFormation deletes Second first, and keeps Orders while Second stays.
    const app = userApp({}, (s, first) => {
      const second = new MqUser(s, 'Second', {
        broker: s.node.findChild('Broker') as amazonmq.IBrokerRef,
        username: 'second-service',
        passwordSecret: suppliedSecret(s, 'second'),
      });
      second.node.addDependency(first);
    });
    expect(await stack.deploy(app)).toEqual({ status: 'CREATE_COMPLETE' });
    cfn.inject({ operation: 'ListStackResources', fault: 'accessDenied', times: Infinity });
    const from = cfn.invocations.length;
    const failed = await stack.destroy();
    expect(failed.status).toBe('DELETE_FAILED');
    const deletes = () => cfn.invocations.slice(from).filter((i) => i.requestType === 'Delete');
    expect(deletes().map((i) => [i.logicalId.replace(/[0-9A-F]{8}$/, ''), i.outcome])).toEqual([['Second', 'FAILED']]);
    expect(mq.user(BROKER, 'orders-service')).toBeDefined();
    cfn.clearInjections();
    expect(await stack.destroy()).toEqual({ status: 'DELETE_COMPLETE' });
    expect(deletes().map((i) => i.logicalId.replace(/[0-9A-F]{8}$/, ''))).toEqual(['Second', 'Second', 'Orders']);
    expect(mq.user(BROKER, 'orders-service')?.pending?.change).toBe('DELETE');
    expect(mq.user(BROKER, 'second-service')?.pending?.change).toBe('DELETE');
  });
});
