/**
 * Every deploy path of the bundled handlers, against the local Amazon MQ endpoint, with faults injected.
 * The templates are synthesized from real apps; the handlers are the esbuild bundles in their assets.
 * See docs/RELIABILITY.md for what each scenario proves.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import {
  CfnResource,
  RemovalPolicy,
  Stack,
  aws_amazonmq as amazonmq,
  aws_secretsmanager as secretsmanager,
} from 'aws-cdk-lib';
import { MqBroker, MqBrokerReboot, MqUser, MqUserProps } from '../lib';
import { activeMq } from './fixtures/brokers';
import { CloudFormation, EmulatedStack } from './support/cloudformation';
import { FakeMq, UserState } from './support/mq-endpoint';
import { failingUserOn, startDoubles, synthApp } from './support/lifecycle';

// aws-cdk-lib's built-in template validation costs about half a second per synth here, and these tests
// synthesize dozens of apps; the example app's test runs it.
process.env.CDK_VALIDATION = 'false';
jest.setTimeout(30_000);

// A folder of its own: this file empties it, while the other lifecycle files write to .test-out in other workers.
const OUT = path.join(__dirname, '..', '.test-out', 'lifecycle');
const BROKER = 'b-1234a5b6-78cd-901e-2fab-3c45d6e178f9';
const PASSWORD = 'Orders-Passw0rd-2026';
const ROLLED_PASSWORD = 'Orders-Passw0rd-2027';
const BYSTANDER = { consoleAccess: true, groups: ['admins'], password: 'Bystander-Passw0rd-1' };

let mq: FakeMq;
let cfn: CloudFormation;
/** Every secret value handed to the handlers: none may appear in any log line, response or error. */
const secrets = new Set<string>([BYSTANDER.password]);
const figures = { scenarios: 0, usersChangedUnexpectedly: 0, faultsInjected: 0, throttled: 0 };

beforeAll(() => fs.rmSync(OUT, { recursive: true, force: true }));

startDoubles({
  out: OUT,
  emulator: {
    queryIntervalMs: 10,
    timings: { rebootTiming: { settleMs: 1_500 }, retryTiming: { brokerWaitMs: 3_000 } },
  },
  started: (doubles) => ({ mq, cfn } = doubles),
  eachScenario: {
    brokers: [{ brokerId: BROKER, brokerName: 'shared', engineType: 'ACTIVEMQ' }],
    bystander: { brokerId: BROKER, seeded: BYSTANDER },
    clearInjections: false,
    passwordsOn: [BROKER],
    secrets,
    figures,
  },
});

afterAll(() => {
  for (const entry of fs.readdirSync(OUT))
    if (entry.startsWith('assembly-')) fs.rmSync(path.join(OUT, entry), { recursive: true });
});

beforeEach(() => {
  if (expect.getState().currentTestName?.startsWith('nothing leaks') === false) figures.scenarios++;
});

afterEach(() => {
  figures.faultsInjected += mq.faultsInjected;
  figures.throttled += mq.rateLimited;
});

/** Synthesizes a one-stack app into its own cloud assembly; returns the assembly folder. */
const synth = (build: (stack: Stack) => void, stackName?: string) => synthApp(OUT, build, stackName);

function broker(stack: Stack, id = BROKER): amazonmq.IBrokerRef {
  return MqBroker.fromBrokerArn(stack, 'Broker', mq.brokerArn(id));
}

function suppliedSecret(stack: Stack, name: string, password = PASSWORD): secretsmanager.ISecret {
  secrets.add(password);
  const arn = mq.putSecret(
    `arn:aws:secretsmanager:us-east-1:123456789012:secret:${name}-AbCdEf`,
    JSON.stringify({ password }),
  );
  return secretsmanager.Secret.fromSecretCompleteArn(stack, `Secret-${name}`, arn);
}

/** An app with one user on the broker `brokerId` of the fake (which may not exist, or not be ActiveMQ). */
function userOnBroker(brokerId: string) {
  return synth(
    (s) =>
      new MqUser(s, 'User', {
        broker: MqBroker.fromBrokerArn(s, 'B', mq.brokerArn(brokerId)),
        username: 'orders-service',
        passwordSecret: suppliedSecret(s, 'orders'),
      }),
  );
}

/** An app with one user; `props` override the defaults. */
function userApp(props: Partial<MqUserProps> = {}, extra?: (stack: Stack, user: MqUser) => void) {
  return synth((stack) => {
    const user = new MqUser(stack, 'Orders', {
      broker: broker(stack),
      username: 'orders-service',
      groups: ['orders-producers'],
      passwordSecret: suppliedSecret(stack, 'orders'),
      ...props,
    });
    extra?.(stack, user);
  });
}

/** A user whose Create fails (its secret does not exist) on BROKER, made to run after `after`. */
const failingUser = (scope: Stack, after: MqUser) => failingUserOn(scope, after, mq.brokerArn(BROKER));

function pendingOf(username: string): UserState['pending'] {
  return mq.user(BROKER, username)?.pending;
}

function expectPending(
  username: string,
  change: string,
  values: { groups?: string[]; consoleAccess?: boolean; password?: string },
) {
  expect(pendingOf(username)).toMatchObject({ change, ...values });
}

describe('lifecycle', () => {
  test('creates, updates in place, replaces and deletes a user', async () => {
    const stack = cfn.stack('Orders');
    expect(await stack.deploy(userApp())).toEqual({ status: 'CREATE_COMPLETE' });
    expectPending('orders-service', 'CREATE', {
      groups: ['orders-producers'],
      consoleAccess: false,
      password: PASSWORD,
    });
    const id = `${BROKER}/orders-service`;

    mq.applyPendingChanges(BROKER);
    expect(
      await stack.deploy(userApp({ groups: ['orders-consumers', 'orders-producers'], consoleAccess: true })),
    ).toEqual({ status: 'UPDATE_COMPLETE' });
    expectPending('orders-service', 'UPDATE', {
      groups: ['orders-consumers', 'orders-producers'],
      consoleAccess: true,
    });
    // The physical ID names broker and user (0.2 adds the owner after a "?"); an in-place update keeps it.
    expect(
      cfn.invocations.filter(
        (i) =>
          (i.physicalId === id || i.physicalId?.startsWith(`${id}?`)) &&
          i.requestType === 'Update' &&
          i.returnedPhysicalId === i.physicalId,
      ),
    ).toHaveLength(1);

    mq.applyPendingChanges(BROKER);
    expect(await stack.deploy(userApp({ username: 'orders-v2' }))).toEqual({ status: 'UPDATE_COMPLETE' });
    expectPending('orders-v2', 'CREATE', { groups: ['orders-producers'] });
    expectPending('orders-service', 'DELETE', {}); // the cleanup phase deleted the old user

    mq.applyPendingChanges(BROKER);
    expect(await stack.destroy()).toEqual({ status: 'DELETE_COMPLETE' });
    expectPending('orders-v2', 'DELETE', {});
    mq.applyPendingChanges(BROKER);
    expect(mq.users(BROKER).map((u) => u.username)).toEqual(['bystander']);
  });

  test('retains the user with RemovalPolicy.RETAIN: no delete call on removal or replacement', async () => {
    const stack = cfn.stack('Orders');
    await stack.deploy(userApp({ removalPolicy: RemovalPolicy.RETAIN }));
    await stack.deploy(userApp({ removalPolicy: RemovalPolicy.RETAIN, username: 'orders-v2' }));
    expect(await stack.destroy()).toEqual({ status: 'DELETE_COMPLETE' });
    expect(mq.calls.filter((c) => c.operation === 'DeleteUser')).toEqual([]);
    expectPending('orders-service', 'CREATE', {});
    expectPending('orders-v2', 'CREATE', {});
  });

  test('creates again a user deleted out of band', async () => {
    const stack = cfn.stack('Orders');
    await stack.deploy(userApp());
    mq.applyPendingChanges(BROKER);
    await mq_deleteUserOutOfBand('orders-service');
    expect(await stack.deploy(userApp({ groups: ['orders-consumers'] }))).toEqual({ status: 'UPDATE_COMPLETE' });
    expectPending('orders-service', 'CREATE', { groups: ['orders-consumers'], password: PASSWORD });
  });

  test('rolls back a rename cleanly, converging the old user that was never deleted', async () => {
    const stack = cfn.stack('Orders');
    await stack.deploy(userApp());
    mq.applyPendingChanges(BROKER);
    const result = await stack.deploy(userApp({ username: 'orders-v2' }, (s, user) => failingUser(s, user)));
    expect(result.status).toBe('UPDATE_ROLLBACK_COMPLETE');
    expect(result.reason).toMatch(/GetSecretValue .* of secret .*missing-AbCdEf failed/);
    expect(mq.user(BROKER, 'orders-service')).toMatchObject({ applied: { groups: ['orders-producers'] } });
    expect(pendingOf('orders-service')).toMatchObject({ change: 'UPDATE', groups: ['orders-producers'] });
    expectPending('orders-v2', 'DELETE', {}); // what the failed deploy made is deleted after the rollback
    expect(mq.user(BROKER, 'failing-user')).toBeUndefined();
  });

  test.each([
    ['readable', false],
    ['deleted meanwhile', true],
  ])('rolls back a change of secret when the old secret is %s', async (_case, deleteOld) => {
    const stack = cfn.stack('Orders');
    await stack.deploy(userApp());
    mq.applyPendingChanges(BROKER);
    const forward = synth((s) => {
      const user = new MqUser(s, 'Orders', {
        broker: broker(s),
        username: 'orders-service',
        groups: ['orders-producers', 'rolled'],
        passwordSecret: suppliedSecret(s, 'rolled', ROLLED_PASSWORD),
      });
      failingUser(s, user);
    });
    if (deleteOld) mq.deleteSecret('arn:aws:secretsmanager:us-east-1:123456789012:secret:orders-AbCdEf');
    const result = await stack.deploy(forward);
    expect(result.status).toBe('UPDATE_ROLLBACK_COMPLETE');
    // Groups are restored either way; the password only when the old secret could be read.
    expect(pendingOf('orders-service')).toMatchObject({
      change: 'UPDATE',
      groups: ['orders-producers'],
      password: deleteOld ? ROLLED_PASSWORD : PASSWORD,
    });
    if (deleteOld)
      expect(cfn.transcript.join('\n')).toMatch(/could not restore the password.*orders-service.*orders-AbCdEf/);
  });

  test('keeps users of two stacks on one broker apart', async () => {
    const a = cfn.stack('TeamA');
    const b = cfn.stack('TeamB');
    const app = (name: string, username: string) =>
      synth(
        (s) => new MqUser(s, 'User', { broker: broker(s), username, passwordSecret: suppliedSecret(s, username) }),
        name,
      );
    expect((await a.deploy(app('TeamA', 'team-a'))).status).toBe('CREATE_COMPLETE');
    expect((await b.deploy(app('TeamB', 'team-b'))).status).toBe('CREATE_COMPLETE');
    await a.destroy();
    expectPending('team-a', 'DELETE', {});
    expectPending('team-b', 'CREATE', {});
  });

  test('moves a user to another stack with RETAIN, then adoptExisting', async () => {
    const old = cfn.stack('Old');
    const next = cfn.stack('New');
    const declare = (name: string, props: Partial<MqUserProps>) =>
      synth(
        (s) =>
          new MqUser(s, 'Mover', {
            broker: broker(s),
            username: 'mover',
            passwordSecret: suppliedSecret(s, 'mover'),
            ...props,
          }),
        name,
      );
    await old.deploy(declare('Old', {}));
    mq.applyPendingChanges(BROKER);
    // Without the procedure the new stack fails safely: the user is not touched.
    const unsafe = await next.deploy(declare('New', { groups: ['moved'] }));
    expect(unsafe).toMatchObject({
      status: 'ROLLBACK_COMPLETE',
      reason: expect.stringContaining('already exists on broker'),
    });
    expect(mq.user(BROKER, 'mover')).toMatchObject({ applied: { groups: [] }, pending: undefined });

    await old.deploy(declare('Old', { removalPolicy: RemovalPolicy.RETAIN }));
    await old.destroy();
    expect(mq.user(BROKER, 'mover')?.pending).toBeUndefined();
    const moved = cfn.stack('New2');
    expect(await moved.deploy(declare('New2', { groups: ['moved'], adoptExisting: true }))).toEqual({
      status: 'CREATE_COMPLETE',
    });
    expectPending('mover', 'UPDATE', { groups: ['moved'] });
  });

  test('keeps an adopted user when the deploy that adopted it rolls back', async () => {
    mq.seedUser(BROKER, 'legacy', { groups: ['old'] });
    const result = await cfn.stack('Orders').deploy(
      synth((s) => {
        const adopted = new MqUser(s, 'Legacy', {
          broker: broker(s),
          username: 'legacy',
          groups: ['new'],
          adoptExisting: true,
          passwordSecret: suppliedSecret(s, 'legacy'),
        });
        failingUser(s, adopted);
      }),
    );
    expect(result.status).toBe('ROLLBACK_COMPLETE');
    expect(mq.user(BROKER, 'legacy')?.pending?.change).not.toBe('DELETE');
    expect(mq.user(BROKER, 'legacy')?.applied).toMatchObject({ groups: ['old'] });
  });

  test.each(['revive', 'error'] as const)(
    'destroys and redeploys within a week (CreateUser on a user pending deletion: %s)',
    async (variant) => {
      mq.createOnPendingDelete = variant;
      const first = cfn.stack('Orders');
      await first.deploy(userApp());
      mq.applyPendingChanges(BROKER);
      await first.destroy();
      expectPending('orders-service', 'DELETE', {});
      const again = await cfn.stack('Orders').deploy(userApp({ groups: ['again'] }));
      if (variant === 'revive') {
        expect(again.status).toBe('CREATE_COMPLETE');
        expect(pendingOf('orders-service')).toMatchObject({ groups: ['again'] });
      } else {
        expect(again.status).toBe('ROLLBACK_COMPLETE');
        expect(again.reason).toMatch(/is pending deletion and Amazon MQ refused to create it again.*Reboot the broker/);
      }
    },
  );

  test('deletes what is already gone: the user, and the user of a broker that is gone', async () => {
    mq.addBroker({ brokerId: 'b-0be7a5b6-78cd-901e-2fab-3c45d6e17801', engineType: 'ACTIVEMQ' });
    const app = synth((s) => {
      new MqUser(s, 'Gone', { broker: broker(s), username: 'gone-user', passwordSecret: suppliedSecret(s, 'gone') });
      const other = MqBroker.fromBrokerArn(s, 'OtherBroker', mq.brokerArn('b-0be7a5b6-78cd-901e-2fab-3c45d6e17801'));
      new MqUser(s, 'OnGoneBroker', {
        broker: other,
        username: 'on-gone-broker',
        passwordSecret: suppliedSecret(s, 'other'),
      });
    });
    const stack = cfn.stack('Orders');
    expect(await stack.deploy(app)).toEqual({ status: 'CREATE_COMPLETE' });
    mq.applyPendingChanges(BROKER);
    await mq_deleteUserOutOfBand('gone-user');
    mq.removeBroker('b-0be7a5b6-78cd-901e-2fab-3c45d6e17801');
    const callsBefore = mq.calls.length;
    expect(await stack.destroy()).toEqual({ status: 'DELETE_COMPLETE' });
    // Nothing was deleted (a DeleteUser answered 404 is fine: asking is cheaper than describing first).
    expect(mq.calls.slice(callsBefore).filter((c) => c.operation === 'DeleteUser' && c.status === 200)).toEqual([]);
  });

  test('answers the Delete of a failed Create without calling the handler (CREATE_FAILED marker)', async () => {
    const result = await cfn.stack('Orders').deploy(userOnBroker('b-0de7a5b6-78cd-901e-2fab-3c45d6e17802'));
    expect(result).toMatchObject({
      status: 'ROLLBACK_COMPLETE',
      reason: expect.stringContaining('errorAttribute "broker-id"'),
    });
    expect(cfn.invocations).toContainEqual(
      expect.objectContaining({
        requestType: 'Delete',
        physicalId: 'AWSCDK::CustomResourceProviderFramework::CREATE_FAILED',
        outcome: 'SKIPPED',
      }),
    );
    expect(mq.calls.filter((c) => c.operation === 'DeleteUser')).toEqual([]);
  });

  test.each(['conflict', 'overwrite'] as const)(
    'fails on a foreign user and leaves it untouched (CreateUser on an existing user: %s)',
    async (variant) => {
      mq.createOnExisting = variant;
      mq.seedUser(BROKER, 'orders-service', { groups: ['theirs'], password: 'Their-Passw0rd-99' });
      secrets.add('Their-Passw0rd-99');
      const result = await cfn.stack('Orders').deploy(userApp());
      expect(result).toMatchObject({
        status: 'ROLLBACK_COMPLETE',
        reason: expect.stringContaining('user "orders-service" already exists on broker'),
      });
      expect(mq.user(BROKER, 'orders-service')).toEqual({
        username: 'orders-service',
        applied: { consoleAccess: false, groups: ['theirs'], replicationUser: false, password: 'Their-Passw0rd-99' },
      });
    },
  );

  test.each([
    ['a RabbitMQ broker', { engineType: 'RABBITMQ' }, /runs RABBITMQ: MqUser manages ActiveMQ users only/],
    ['an LDAP broker', { engineType: 'ActiveMQ', authenticationStrategy: 'ldap' }, /uses ldap authentication/],
  ])('fails clearly on %s, changing nothing', async (_case, spec, message) => {
    mq.addBroker({ brokerId: 'b-0ae7a5b6-78cd-901e-2fab-3c45d6e17803', ...spec });
    const result = await cfn.stack('Orders').deploy(userOnBroker('b-0ae7a5b6-78cd-901e-2fab-3c45d6e17803'));
    expect(result).toMatchObject({ status: 'ROLLBACK_COMPLETE', reason: expect.stringMatching(message) });
    expect(mq.users('b-0ae7a5b6-78cd-901e-2fab-3c45d6e17803')).toEqual([]);
    expect(mq.calls.filter((c) => c.operation === 'CreateUser')).toEqual([]);
  });

  test.each(['reject', 'accept'] as const)(
    'waits for a broker in REBOOT_IN_PROGRESS (user calls: %s), then creates the user',
    async (behaviour) => {
      mq.callsOutsideRunning = behaviour;
      mq.setBrokerState(BROKER, 'REBOOT_IN_PROGRESS');
      const rebooted = setTimeout(() => mq.finishReboot(BROKER), 1_000);
      try {
        expect(await cfn.stack('Orders').deploy(userApp())).toEqual({ status: 'CREATE_COMPLETE' });
      } finally {
        clearTimeout(rebooted);
      }
      expect(mq.user(BROKER, 'orders-service')).toBeDefined();
    },
  );

  test('fails clearly when the broker stays in REBOOT_IN_PROGRESS, and still rolls back', async () => {
    mq.callsOutsideRunning = 'reject';
    mq.setBrokerState(BROKER, 'REBOOT_IN_PROGRESS');
    const result = await cfn.stack('Orders').deploy(userApp(), { handlerTimeoutMs: 9_000 });
    expect(result.status).toBe('ROLLBACK_COMPLETE');
    expect(result.reason).toMatch(/\(BadRequestException.*still REBOOT_IN_PROGRESS: retry once it is RUNNING/);
    mq.setBrokerState(BROKER, 'RUNNING');
  });

  test('creates 50 users at once against the account throttle: all created, none twice', async () => {
    mq.throttle = { capacity: 100, refillPerSecond: 15 };
    const result = await cfn.stack('Many').deploy(
      synth((s) => {
        const b = broker(s);
        const secret = suppliedSecret(s, 'shared');
        for (let i = 0; i < 50; i++)
          new MqUser(s, `User${i}`, { broker: b, username: `user-${i}`, passwordSecret: secret });
      }, 'Many'),
    );
    expect(result).toEqual({ status: 'CREATE_COMPLETE' });
    const created = mq.calls.filter((c) => c.operation === 'CreateUser' && c.status === 200).map((c) => c.username);
    expect(created).toHaveLength(50);
    expect(new Set(created).size).toBe(50);
    expect(mq.users(BROKER)).toHaveLength(51);
    expect(mq.rateLimited).toBeGreaterThan(0); // the bucket really throttled
  }, 120_000);

  test('rides out transient 500s and 503s, dropped connections and a lost CreateUser response', async () => {
    mq.inject({ operation: 'DescribeBroker', fault: 'internal', times: 2 });
    mq.inject({ operation: 'DescribeUser', fault: 'drop' });
    mq.inject({ operation: 'GetSecretValue', fault: 'unavailable' });
    mq.inject({ operation: 'CreateUser', fault: 'lostResponse' });
    expect(await cfn.stack('Orders').deploy(userApp())).toEqual({ status: 'CREATE_COMPLETE' });
    expect(mq.faultsInjected).toBe(5);
    expectPending('orders-service', 'CREATE', { groups: ['orders-producers'], password: PASSWORD });
  });

  test('waits out AccessDenied while IAM propagates', async () => {
    mq.inject({ operation: 'DescribeBroker', fault: 'accessDenied', times: 3 });
    mq.inject({ operation: 'GetSecretValue', fault: 'accessDenied', times: 2 });
    expect(await cfn.stack('Orders').deploy(userApp())).toEqual({ status: 'CREATE_COMPLETE' });
    expectPending('orders-service', 'CREATE', {});
  });

  test('gives up on a call that hangs before the function is killed, with a clear reason', async () => {
    mq.inject({ operation: 'DescribeUser', fault: 'hang', times: Infinity });
    const result = await cfn.stack('Orders').deploy(userApp(), { handlerTimeoutMs: 9_000 });
    expect(result.status).toBe('ROLLBACK_COMPLETE');
    // The handler answered (4 s before its 9 s timeout), rather than being killed by Lambda.
    expect(result.reason).toMatch(
      /DescribeUser for user "orders-service" on broker .* failed.*(no answer within|no time left|deadline)/,
    );
    expect(result.reason).not.toMatch(/Task timed out/);
    expect(mq.calls.filter((c) => c.operation === 'CreateUser')).toEqual([]);
  });

  test.each([
    ['missing', undefined, /ResourceNotFoundException/],
    [
      'holding a password Amazon MQ rejects',
      'short:pw=1',
      /breaks Amazon MQ's password rule: it must be 12 to 250 characters long/,
    ],
  ])('fails clearly on a secret %s, creating nothing', async (_case, password, message) => {
    if (password) secrets.add(password);
    const result = await cfn.stack('Orders').deploy(
      synth((s) => {
        const arn = 'arn:aws:secretsmanager:us-east-1:123456789012:secret:bad-AbCdEf';
        if (password) mq.putSecret(arn, password);
        new MqUser(s, 'User', {
          broker: broker(s),
          username: 'orders-service',
          passwordSecret: secretsmanager.Secret.fromSecretCompleteArn(s, 'S', arn),
        });
      }),
    );
    expect(result).toMatchObject({ status: 'ROLLBACK_COMPLETE', reason: expect.stringMatching(message) });
    expect(mq.user(BROKER, 'orders-service')).toBeUndefined();
  });

  test('rolls a password with passwordVersion', async () => {
    const stack = cfn.stack('Orders');
    await stack.deploy(userApp({ passwordVersion: '1' }));
    mq.applyPendingChanges(BROKER);
    mq.putSecret(
      'arn:aws:secretsmanager:us-east-1:123456789012:secret:orders-AbCdEf',
      JSON.stringify({ password: ROLLED_PASSWORD }),
    );
    secrets.add(ROLLED_PASSWORD);
    // Same ARN, new value: without a new passwordVersion CloudFormation sees no change at all.
    const unchanged = synth((s) => {
      new MqUser(s, 'Orders', {
        broker: broker(s),
        username: 'orders-service',
        groups: ['orders-producers'],
        passwordVersion: '1',
        passwordSecret: secretsmanager.Secret.fromSecretCompleteArn(
          s,
          'S',
          'arn:aws:secretsmanager:us-east-1:123456789012:secret:orders-AbCdEf',
        ),
      });
    });
    await stack.deploy(unchanged);
    expect(mq.user(BROKER, 'orders-service')?.pending).toBeUndefined();
    const bumped = synth((s) => {
      new MqUser(s, 'Orders', {
        broker: broker(s),
        username: 'orders-service',
        groups: ['orders-producers'],
        passwordVersion: '2',
        passwordSecret: secretsmanager.Secret.fromSecretCompleteArn(
          s,
          'S',
          'arn:aws:secretsmanager:us-east-1:123456789012:secret:orders-AbCdEf',
        ),
      });
    });
    expect(await stack.deploy(bumped)).toEqual({ status: 'UPDATE_COMPLETE' });
    expectPending('orders-service', 'UPDATE', { password: ROLLED_PASSWORD });
  });

  test('rolls back the rename of a user with a generated password: its secret and password stay as they were', async () => {
    const stack = cfn.stack('Orders');
    const app = (username: string, fail = false) =>
      synth((s) => {
        const user = new MqUser(s, 'Gen', { broker: broker(s), username });
        if (fail) failingUser(s, user);
      });
    await stack.deploy(app('generated'));
    mq.applyPendingChanges(BROKER);
    const [secretArn] = Object.values(stack.physicalIdsOf('AWS::SecretsManager::Secret'));
    const original = mq.user(BROKER, 'generated')!.applied!.password;
    expect(JSON.parse(mq.secretValue(secretArn)!).password).toBe(original);

    const result = await stack.deploy(app('generated-v2', true));
    expect(result.status).toBe('UPDATE_ROLLBACK_COMPLETE');
    // The rollback converged the old user with the old secret's password, and the secret still holds it.
    expect(mq.user(BROKER, 'generated')?.pending).toMatchObject({ change: 'UPDATE', password: original });
    expect(JSON.parse(mq.secretValue(secretArn)!).password).toBe(original);
    expect(mq.user(BROKER, 'generated-v2')?.pending).toEqual({ change: 'DELETE' });
  });

  test("creates a generated secret's user with the generated password", async () => {
    const stack = cfn.stack('Orders');
    const result = await stack.deploy(synth((s) => new MqUser(s, 'Gen', { broker: broker(s), username: 'generated' })));
    expect(result).toEqual({ status: 'CREATE_COMPLETE' });
    expect(pendingOf('generated')).toMatchObject({
      change: 'CREATE',
      password: expect.stringMatching(/^[A-Za-z0-9]{32}$/),
    });
  });
});

describe('MqBrokerReboot', () => {
  /** A stack with its own ActiveMQ broker, users and the reboot opt-in, as in the example app. */
  function brokerApp(groups: string[], options: { timeoutSeconds?: number; failAfterReboot?: boolean } = {}) {
    return synth((s) => {
      const cfnBroker = activeMq(s);
      for (const name of ['alpha', 'bravo', 'charlie'])
        new MqUser(s, name, { broker: cfnBroker, username: name, groups });
      const reboot = new MqBrokerReboot(s, 'ApplyUsers', { broker: cfnBroker });
      // Below the construct's 1-minute floor, through the escape hatch, so that the test is quick.
      if (options.timeoutSeconds) {
        (reboot.node.findChild('Resource').node.defaultChild as CfnResource).addPropertyOverride(
          'TimeoutSeconds',
          options.timeoutSeconds,
        );
      }
      if (options.failAfterReboot) {
        const missing = secretsmanager.Secret.fromSecretCompleteArn(
          s,
          'Missing',
          'arn:aws:secretsmanager:us-east-1:123456789012:secret:missing-AbCdEf',
        );
        const shared = MqBroker.fromBrokerArn(s, 'SharedBroker', mq.brokerArn(BROKER));
        const late = new MqUser(s, 'Late', { broker: shared, username: 'late-user', passwordSecret: missing });
        late.node.addDependency(reboot);
      }
    });
  }

  function brokerIdOf(stack: EmulatedStack): string {
    return stack.physicalId('Broker')!;
  }

  test('the first deploy of a broker with its users ends with them applied', async () => {
    const stack = cfn.stack('Orders');
    expect(await stack.deploy(brokerApp(['g1']))).toEqual({ status: 'CREATE_COMPLETE' });
    const id = brokerIdOf(stack);
    expect(mq.reboots(id)).toBe(1);
    for (const name of ['alpha', 'bravo', 'charlie']) {
      expect(mq.user(id, name)).toMatchObject({ applied: { groups: ['g1'] }, pending: undefined });
    }
  });

  test('a groups change on three users causes exactly one reboot; a deploy without user change none', async () => {
    const stack = cfn.stack('Orders');
    await stack.deploy(brokerApp(['g1']));
    const id = brokerIdOf(stack);
    await stack.deploy(brokerApp(['g2']));
    expect(mq.reboots(id)).toBe(2);
    for (const name of ['alpha', 'bravo', 'charlie'])
      expect(mq.user(id, name)).toMatchObject({ applied: { groups: ['g2'] }, pending: undefined });
    expect(await stack.deploy(brokerApp(['g2']))).toEqual({ status: 'UPDATE_COMPLETE' });
    expect(mq.reboots(id)).toBe(2);
  });

  test('fails the deploy clearly when the broker never returns to RUNNING', async () => {
    const stack = cfn.stack('Orders');
    mq.rebootDelayMs = 'never';
    // So that the rollback can delete the users of a broker stuck in REBOOT_IN_PROGRESS.
    mq.callsOutsideRunning = 'accept';
    const result = await stack.deploy(brokerApp(['g1'], { timeoutSeconds: 1 }));
    expect(result.status).toBe('ROLLBACK_COMPLETE');
    expect(result.reason).toMatch(
      /did not return to RUNNING with its users' changes applied within 1 second \(state REBOOT_IN_PROGRESS\)/,
    );
  });

  test('a rollback causes no reboot', async () => {
    const stack = cfn.stack('Orders');
    await stack.deploy(brokerApp(['g1']));
    const id = brokerIdOf(stack);
    const result = await stack.deploy(brokerApp(['g2'], { failAfterReboot: true }));
    expect(result.status).toBe('UPDATE_ROLLBACK_COMPLETE');
    expect(mq.reboots(id)).toBe(2); // the forward deploy's reboot, none in the rollback
    // The rolled-back users wait for the next reboot, as the README says.
    expect(mq.user(id, 'alpha')).toMatchObject({
      applied: { groups: ['g2'] },
      pending: { change: 'UPDATE', groups: ['g1'] },
    });
  });
});

describe('nothing leaks', () => {
  test('no log line, response or failure reason of any scenario holds a password or secret string', () => {
    for (const generated of cfn.generatedSecrets) secrets.add(generated);
    const transcript = cfn.transcript.join('\n');
    expect(cfn.transcript.length).toBeGreaterThan(100);
    expect(secrets.size).toBeGreaterThan(5);
    for (const secret of secrets) {
      expect(transcript).not.toContain(secret);
      expect(transcript).not.toContain(JSON.stringify({ password: secret }));
    }
    expect(figures.usersChangedUnexpectedly).toBe(0);
    const summary = {
      ...figures,
      handlerInvocations: cfn.invocations.length,
      secretsChecked: secrets.size,
      transcriptLines: cfn.transcript.length,
    };
    fs.writeFileSync(path.join(OUT, 'reliability.json'), `${JSON.stringify(summary, null, 2)}\n`);
    process.stdout.write(`lifecycle figures: ${JSON.stringify(summary)}\n`);
  });
});

/** Someone deletes a user in the console and reboots: it is gone. */
async function mq_deleteUserOutOfBand(username: string) {
  const { DeleteUserCommand, MqClient } = await import('@aws-sdk/client-mq');
  await new MqClient({ ...mq.clientConfig(), maxAttempts: 1 }).send(
    new DeleteUserCommand({ BrokerId: BROKER, Username: username }),
  );
  mq.applyPendingChanges(BROKER);
}
