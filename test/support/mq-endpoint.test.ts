/**
 * The fake is only useful if the real SDK clients read it as they would read AWS: these tests talk to it
 * through @aws-sdk/client-mq and @aws-sdk/client-secrets-manager, and through raw HTTP where the SDK
 * would hide what is on the wire.
 */
import {
  CreateUserCommand,
  DeleteUserCommand,
  DescribeBrokerCommand,
  DescribeUserCommand,
  ListUsersCommand,
  MqClient,
  RebootBrokerCommand,
  UpdateUserCommand,
} from '@aws-sdk/client-mq';
import {
  DescribeSecretCommand,
  GetSecretValueCommand,
  PutSecretValueCommand,
  SecretsManagerClient,
  UpdateSecretVersionStageCommand,
} from '@aws-sdk/client-secrets-manager';
import { FakeMq } from './mq-endpoint';

const B = 'b-1234a5b6-78cd-901e-2fab-3c45d6e178f9';
const PASSWORD = 'correct-horse-battery';

let fake: FakeMq;
let mq: MqClient;
let sm: SecretsManagerClient;

beforeAll(async () => {
  fake = await FakeMq.start();
  mq = new MqClient({ ...fake.clientConfig(), maxAttempts: 1 });
  sm = new SecretsManagerClient({ ...fake.clientConfig(), maxAttempts: 1 });
});

afterAll(async () => {
  mq.destroy();
  sm.destroy();
  await fake.stop();
});

beforeEach(() => {
  fake.reset();
  fake.addBroker({ brokerId: B, brokerName: 'orders', engineType: 'ACTIVEMQ' });
});

const create = (
  username: string,
  extra: Partial<{ Password: string; ConsoleAccess: boolean; Groups: string[]; ReplicationUser: boolean }> = {},
) =>
  mq.send(
    new CreateUserCommand({
      BrokerId: B,
      Username: username,
      Password: PASSWORD,
      ConsoleAccess: false,
      Groups: [],
      ReplicationUser: false,
      ...extra,
    }),
  );
const describe_ = (username: string, brokerId = B) =>
  mq.send(new DescribeUserCommand({ BrokerId: brokerId, Username: username }));
const reboot = () => mq.send(new RebootBrokerCommand({ BrokerId: B }));

/** The SDK error, so tests can look at name, status and ErrorAttribute. */
async function failure(promise: Promise<unknown>): Promise<any> {
  try {
    await promise;
  } catch (err) {
    return err;
  }
  throw new Error('expected the call to fail');
}

async function untilRunning(): Promise<void> {
  for (let i = 0; i < 100; i++) {
    const broker = await mq.send(new DescribeBrokerCommand({ BrokerId: B }));
    if (broker.BrokerState === 'RUNNING') return;
    await new Promise((r) => setTimeout(r, 10));
  }
  throw new Error('broker never came back');
}

describe('pending changes', () => {
  test('a created user is pending CREATE, without top-level consoleAccess or groups', async () => {
    await create('app', { Groups: ['writers'] });
    const user = await describe_('app');
    expect(user.Pending).toEqual({ PendingChange: 'CREATE', ConsoleAccess: false, Groups: ['writers'] });
    expect(user.ConsoleAccess).toBeUndefined();
    expect(user.Groups).toBeUndefined();
    const list = await mq.send(new ListUsersCommand({ BrokerId: B }));
    expect(list.Users).toEqual([{ Username: 'app', PendingChange: 'CREATE' }]);
    expect(fake.user(B, 'app')).toMatchObject({ pending: { change: 'CREATE', password: PASSWORD } });
  });

  test('a reboot goes through REBOOT_IN_PROGRESS and applies every pending change', async () => {
    fake.seedUser(B, 'old');
    await create('app', { ConsoleAccess: true, Groups: ['admins'] });
    await mq.send(new DeleteUserCommand({ BrokerId: B, Username: 'old' }));
    await reboot();
    expect((await mq.send(new DescribeBrokerCommand({ BrokerId: B }))).BrokerState).toBe('REBOOT_IN_PROGRESS');
    await untilRunning();
    const user = await describe_('app');
    expect(user).toMatchObject({ ConsoleAccess: true, Groups: ['admins'], ReplicationUser: false });
    expect(user.Pending).toBeUndefined();
    expect(fake.user(B, 'app')?.applied?.password).toBe(PASSWORD);
    expect(fake.user(B, 'old')).toBeUndefined();
    expect(fake.reboots(B)).toBe(1);
  });

  test('a reboot is refused unless the broker is RUNNING', async () => {
    fake.rebootDelayMs = 'never';
    await reboot();
    const err = await failure(reboot());
    expect(err.name).toBe('BadRequestException');
    expect(fake.brokerState(B)).toBe('REBOOT_IN_PROGRESS');
    fake.finishReboot(B);
    expect(fake.brokerState(B)).toBe('RUNNING');
    expect(fake.reboots(B)).toBe(1);
  });

  test('updating a pending CREATE keeps it a pending CREATE with the new values', async () => {
    await create('app');
    await mq.send(
      new UpdateUserCommand({
        BrokerId: B,
        Username: 'app',
        ConsoleAccess: true,
        Groups: ['g1'],
        ReplicationUser: false,
      }),
    );
    expect((await describe_('app')).Pending).toEqual({ PendingChange: 'CREATE', ConsoleAccess: true, Groups: ['g1'] });
  });

  test('updating an applied user shows the old values live and the new ones pending', async () => {
    fake.seedUser(B, 'app', { groups: ['old'] });
    await mq.send(
      new UpdateUserCommand({
        BrokerId: B,
        Username: 'app',
        ConsoleAccess: false,
        Groups: ['new'],
        ReplicationUser: false,
        Password: 'another-long-pass',
      }),
    );
    const user = await describe_('app');
    expect(user.Groups).toEqual(['old']);
    expect(user.Pending).toEqual({ PendingChange: 'UPDATE', ConsoleAccess: false, Groups: ['new'] });
    expect(fake.user(B, 'app')?.pending).toMatchObject({ change: 'UPDATE', password: 'another-long-pass' });
  });

  test('deleting a pending CREATE leaves it listed as pending DELETE until the reboot', async () => {
    await create('app');
    await mq.send(new DeleteUserCommand({ BrokerId: B, Username: 'app' }));
    expect((await mq.send(new ListUsersCommand({ BrokerId: B }))).Users).toEqual([
      { Username: 'app', PendingChange: 'DELETE' },
    ]);
    expect((await describe_('app')).Pending).toEqual({ PendingChange: 'DELETE' });
    await reboot();
    await untilRunning();
    expect((await mq.send(new ListUsersCommand({ BrokerId: B }))).Users).toEqual([]);
  });

  test('DescribeBroker reports engine, strategy, ARN and a user summary', async () => {
    await create('app');
    const broker = await mq.send(new DescribeBrokerCommand({ BrokerId: B }));
    expect(broker).toMatchObject({
      BrokerId: B,
      BrokerName: 'orders',
      BrokerArn: `arn:aws:mq:us-east-1:123456789012:broker:orders:${B}`,
      EngineType: 'ACTIVEMQ',
      AuthenticationStrategy: 'SIMPLE',
      BrokerState: 'RUNNING',
      Users: [{ Username: 'app', PendingChange: 'CREATE' }],
    });
  });
});

describe('configurations', () => {
  const C1 = { id: 'c-3c0f6a2e-5d4b-4c1a-9f7e-2b8d6e4a1c90', revision: 1 };
  const C2 = { ...C1, revision: 2 };
  const configurationsOf = async () => (await mq.send(new DescribeBrokerCommand({ BrokerId: B }))).Configurations;

  test('a broker created with a configuration runs it at once by default, or has it pending (configurationAtCreate)', async () => {
    fake.addBroker({ brokerId: B, engineType: 'ACTIVEMQ', configuration: C1 });
    expect(await configurationsOf()).toEqual({
      Current: { Id: C1.id, Revision: 1 },
      History: [{ Id: C1.id, Revision: 1 }],
    });
    fake.configurationAtCreate = 'pending';
    fake.addBroker({ brokerId: B, engineType: 'ACTIVEMQ', configuration: C1 });
    expect(await configurationsOf()).toEqual({ Pending: { Id: C1.id, Revision: 1 }, History: [] });
    await reboot();
    await untilRunning();
    expect(await configurationsOf()).toEqual({
      Current: { Id: C1.id, Revision: 1 },
      History: [{ Id: C1.id, Revision: 1 }],
    });
  });

  test("a new revision stays pending until a reboot applies it, with the users' changes", async () => {
    fake.addBroker({ brokerId: B, engineType: 'ACTIVEMQ', configuration: C1 });
    await create('app');
    fake.setPendingConfiguration(B, C2);
    expect(await configurationsOf()).toEqual({
      Current: { Id: C1.id, Revision: 1 },
      Pending: { Id: C1.id, Revision: 2 },
      History: [{ Id: C1.id, Revision: 1 }],
    });
    await reboot();
    expect(await configurationsOf()).toMatchObject({ Pending: { Revision: 2 } }); // rebooting: not yet
    await untilRunning();
    expect(await configurationsOf()).toEqual({
      Current: { Id: C1.id, Revision: 2 },
      History: [
        { Id: C1.id, Revision: 1 },
        { Id: C1.id, Revision: 2 },
      ],
    });
    expect(fake.user(B, 'app')?.pending).toBeUndefined();
  });

  test('a maintenance window applies a pending revision; pointing back at the current one leaves nothing pending', async () => {
    fake.addBroker({ brokerId: B, engineType: 'ACTIVEMQ', configuration: C1 });
    fake.setPendingConfiguration(B, C2);
    fake.setPendingConfiguration(B, C1);
    expect(fake.configurations(B).pending).toBeUndefined();
    fake.setPendingConfiguration(B, C2);
    fake.advanceTo(fake.nextWindowStart(B) + 60_000);
    expect(fake.configurations(B)).toMatchObject({ current: C2, pending: undefined });
    expect(fake.reboots(B)).toBe(0);
  });

  test('a broker without a configuration shows none', async () => {
    expect(await configurationsOf()).toEqual({ History: [] });
  });
});

describe('errors', () => {
  test('an unknown broker and an unknown user are both 404, told apart by errorAttribute', async () => {
    const noBroker = await failure(mq.send(new DeleteUserCommand({ BrokerId: 'b-nope', Username: 'app' })));
    expect(noBroker).toMatchObject({
      name: 'NotFoundException',
      ErrorAttribute: 'broker-id',
      $metadata: { httpStatusCode: 404 },
    });
    const noUser = await failure(mq.send(new DeleteUserCommand({ BrokerId: B, Username: 'ghost' })));
    expect(noUser).toMatchObject({
      name: 'NotFoundException',
      ErrorAttribute: 'username',
      $metadata: { httpStatusCode: 404 },
    });
  });

  test.each([
    ['a one-character username', 'a', {}, 'username'],
    ['a username with an @', 'bad@name', {}, 'username'],
    ['a short password', 'app', { Password: 'short-pass' }, 'password'],
    ['a password with fewer than 4 distinct characters', 'app', { Password: 'abcabcabcabcabc' }, 'password'],
    ['a password containing a colon', 'app', { Password: 'long:password-1' }, 'password'],
    ['21 groups', 'app', { Groups: Array.from({ length: 21 }, (_, i) => `group${i}`) }, 'groups'],
    ['a group with a space', 'app', { Groups: ['bad group'] }, 'groups'],
  ])('the service rejects %s with a 400 naming the attribute', async (_what, username, extra, attribute) => {
    const err = await failure(create(username, extra));
    expect(err).toMatchObject({
      name: 'BadRequestException',
      ErrorAttribute: attribute,
      $metadata: { httpStatusCode: 400 },
    });
    expect(fake.users(B)).toEqual([]);
  });

  test('a replication user cannot have console access', async () => {
    const err = await failure(create('app', { ReplicationUser: true, ConsoleAccess: true }));
    expect(err.name).toBe('BadRequestException');
    expect(err.message).toBe('[replicationUser] and [consoleAccess] are mutually exclusive');
  });

  test('a broker holds at most 250 users', async () => {
    for (let i = 0; i < 250; i++) fake.seedUser(B, `user${i}`);
    expect((await failure(create('one-too-many'))).name).toBe('BadRequestException');
  });

  test('RabbitMQ brokers send users to the RabbitMQ console', async () => {
    fake.addBroker({ brokerId: 'b-rabbit', engineType: 'RabbitMQ' });
    const err = await failure(mq.send(new ListUsersCommand({ BrokerId: 'b-rabbit' })));
    expect(err.name).toBe('BadRequestException');
    expect(err.message).toBe('To manage broker users, please use the RabbitMQ web console, or the management API');
  });

  test('LDAP brokers refuse the user API with a 400', async () => {
    fake.addBroker({ brokerId: 'b-ldap', engineType: 'ActiveMQ', authenticationStrategy: 'ldap' });
    const err = await failure(
      mq.send(new CreateUserCommand({ BrokerId: 'b-ldap', Username: 'app', Password: PASSWORD })),
    );
    expect(err.name).toBe('BadRequestException');
    expect(err.message).toMatch(/LDAP/);
  });
});

describe('unverified behaviours are options', () => {
  test('CreateUser on an existing user: 409 or a silent pending UPDATE', async () => {
    fake.seedUser(B, 'app');
    expect((await failure(create('app'))).name).toBe('ConflictException');
    fake.createOnExisting = 'overwrite';
    await create('app', { Groups: ['g1'] });
    expect((await describe_('app')).Pending).toEqual({ PendingChange: 'UPDATE', ConsoleAccess: false, Groups: ['g1'] });
  });

  test('CreateUser on a user pending DELETE: 409 or it comes back', async () => {
    fake.seedUser(B, 'app');
    await mq.send(new DeleteUserCommand({ BrokerId: B, Username: 'app' }));
    expect((await failure(create('app'))).name).toBe('ConflictException');
    fake.createOnPendingDelete = 'revive';
    await create('app');
    expect((await describe_('app')).Pending?.PendingChange).toBe('UPDATE');
  });

  test('user calls outside RUNNING: rejected with 400, or accepted', async () => {
    fake.setBrokerState(B, 'REBOOT_IN_PROGRESS');
    expect((await failure(create('app'))).name).toBe('BadRequestException');
    fake.callsOutsideRunning = 'rejectWrites';
    expect((await mq.send(new ListUsersCommand({ BrokerId: B }))).Users).toEqual([]);
    fake.callsOutsideRunning = 'accept';
    await create('app');
    expect(fake.user(B, 'app')?.pending?.change).toBe('CREATE');
  });
});

describe('adversarial answers (both, switchable)', () => {
  const update = (username: string, extra: Partial<{ Password: string; Groups: string[] }> = {}) =>
    mq.send(
      new UpdateUserCommand({
        BrokerId: B,
        Username: username,
        ConsoleAccess: false,
        Groups: ['g2'],
        ReplicationUser: false,
        ...extra,
      }),
    );

  test('RebootBroker at once, or after the broker still said RUNNING for a while (still one reboot)', async () => {
    await create('app');
    fake.rebootDelayMs = 'never';
    await reboot();
    expect(fake.brokerState(B)).toBe('REBOOT_IN_PROGRESS');
    fake.finishReboot(B);
    expect(fake.user(B, 'app')?.pending).toBeUndefined();

    // The reboot then never ends by itself: a window of a few ms between its start and its end was missed on a
    // loaded machine, so the test ends it once it has seen it.
    fake.rebootStartsAfterMs = 60;
    await update('app');
    await reboot();
    // The answer came back; the broker still says RUNNING with the change pending, and accepts another request.
    expect((await mq.send(new DescribeBrokerCommand({ BrokerId: B }))).BrokerState).toBe('RUNNING');
    expect((await describe_('app')).Pending?.PendingChange).toBe('UPDATE');
    await reboot();
    for (let i = 0; i < 200 && fake.brokerState(B) === 'RUNNING'; i++) await new Promise((r) => setTimeout(r, 10));
    expect(fake.brokerState(B)).toBe('REBOOT_IN_PROGRESS');
    expect(fake.user(B, 'app')?.pending).toBeDefined(); // applied only when the reboot ends
    fake.finishReboot(B);
    await untilRunning();
    expect(fake.user(B, 'app')).toMatchObject({ applied: { groups: ['g2'] }, pending: undefined });
    expect(fake.reboots(B)).toBe(3); // RebootBroker calls accepted
  });

  test('a user pending CREATE made by someone else looks like any pending CREATE', async () => {
    fake.seedPendingCreate(B, 'legacy', { groups: ['old'] });
    expect(await describe_('legacy')).toMatchObject({
      Pending: { PendingChange: 'CREATE', Groups: ['old'], ConsoleAccess: false },
    });
    expect((await describe_('legacy')).Groups).toBeUndefined();
    expect(fake.calls).toHaveLength(2); // seeding made no call
  });

  test.each([
    ['conflict', 'ConflictException', { change: 'DELETE' }],
    ['revive', undefined, { change: 'UPDATE', groups: ['g2'] }],
    ['keepDelete', undefined, { change: 'DELETE' }],
  ] as const)('UpdateUser on a user pending DELETE: %s', async (mode, error, pending) => {
    fake.updateOnPendingDelete = mode;
    fake.seedUser(B, 'app');
    await mq.send(new DeleteUserCommand({ BrokerId: B, Username: 'app' }));
    const result = await update('app').then(
      () => undefined,
      (e: Error) => e.name,
    );
    expect(result).toBe(error);
    expect(fake.user(B, 'app')?.pending).toMatchObject(pending);
  });

  test('a revived pending CREATE keeps its password when UpdateUser sends none', async () => {
    fake.updateOnPendingDelete = 'revive';
    await create('app');
    await mq.send(new DeleteUserCommand({ BrokerId: B, Username: 'app' }));
    await update('app');
    expect(fake.user(B, 'app')?.pending).toMatchObject({ change: 'CREATE', password: PASSWORD, groups: ['g2'] });
  });

  test('writes close together on one broker get a transient 409 that does nothing', async () => {
    fake.writeConflictWindowMs = 200;
    await create('one');
    const refused = await failure(create('two'));
    expect(refused.name).toBe('ConflictException');
    expect(refused.$metadata.httpStatusCode).toBe(409);
    expect(fake.user(B, 'two')).toBeUndefined();
    expect(fake.concurrencyConflicts).toBe(1);
    await describe_('one'); // reads never conflict
    await new Promise((r) => setTimeout(r, 220));
    await create('two');
    expect(fake.user(B, 'two')?.pending?.change).toBe('CREATE');
  });

  test('counts the MQ calls from a position, secrets excluded', async () => {
    fake.putSecret('s', 'v');
    await create('app');
    const from = fake.calls.length;
    await describe_('app');
    await sm.send(new GetSecretValueCommand({ SecretId: 's' }));
    await update('app');
    expect(fake.mqCalls(from).map((c) => c.operation)).toEqual(['DescribeUser', 'UpdateUser']);
    expect(fake.mqCalls(0, 'CreateUser')).toHaveLength(1);
    expect(fake.calls[from]).toMatchObject({ index: from, at: expect.any(Number) });
  });
});

describe('ListUsers', () => {
  test('pages with maxResults and nextToken', async () => {
    for (let i = 0; i < 12; i++) fake.seedUser(B, `user${String(i).padStart(2, '0')}`);
    const names: string[] = [];
    let token: string | undefined;
    let pages = 0;
    do {
      const page = await mq.send(new ListUsersCommand({ BrokerId: B, MaxResults: 5, NextToken: token }));
      names.push(...page.Users!.map((u) => u.Username!));
      token = page.NextToken;
      pages++;
    } while (token);
    expect(pages).toBe(3);
    expect(names).toHaveLength(12);
    expect(new Set(names).size).toBe(12);
  });

  test('rejects maxResults outside 5..100', async () => {
    const err = await failure(mq.send(new ListUsersCommand({ BrokerId: B, MaxResults: 4 })));
    expect(err).toMatchObject({ name: 'BadRequestException', ErrorAttribute: 'maxResults' });
  });
});

describe('passwords', () => {
  test('never come back on the wire', async () => {
    await create('app');
    fake.seedUser(B, 'live', { password: 'live-password-42' });
    await mq.send(
      new UpdateUserCommand({
        BrokerId: B,
        Username: 'live',
        Password: 'fresh-password-43',
        ConsoleAccess: false,
        Groups: [],
        ReplicationUser: false,
      }),
    );
    const bodies = await Promise.all(
      [`/v1/brokers/${B}/users/app`, `/v1/brokers/${B}/users/live`, `/v1/brokers/${B}/users`, `/v1/brokers/${B}`].map(
        async (path) => (await fetch(fake.url + path)).text(),
      ),
    );
    for (const body of bodies) {
      expect(body).not.toMatch(/password|correct-horse|live-password|fresh-password/i);
    }
    expect(JSON.parse(bodies[0])).toEqual({
      brokerId: B,
      username: 'app',
      pending: { pendingChange: 'CREATE', consoleAccess: false, groups: [] },
    });
  });
});

describe('faults', () => {
  test.each([
    ['throttle', 'TooManyRequestsException', 429],
    ['conflict', 'ConflictException', 409],
    ['internal', 'InternalServerErrorException', 500],
    ['unavailable', 'ServiceUnavailableException', 503],
    ['accessDenied', 'ForbiddenException', 403],
  ] as const)('%s answers %s (%i) and changes nothing', async (fault, name, status) => {
    fake.inject({ operation: 'CreateUser', fault });
    const err = await failure(create('app'));
    expect(err).toMatchObject({ name, $metadata: { httpStatusCode: status } });
    expect(fake.users(B)).toEqual([]);
    expect(fake.faultsInjected).toBe(1);
    await create('app'); // times defaults to 1
    expect(fake.calls.map((c) => c.status)).toEqual([status, 200]);
  });

  test('access denied can arrive as AccessDeniedException', async () => {
    fake.accessDeniedAs = 'AccessDeniedException';
    fake.inject({ fault: 'accessDenied' });
    expect(await failure(describe_('app'))).toMatchObject({
      name: 'AccessDeniedException',
      $metadata: { httpStatusCode: 403 },
    });
  });

  test('a throttle carries x-amzn-ErrorType and "Rate exceeded" on the wire', async () => {
    fake.inject({ fault: 'throttle' });
    const res = await fetch(`${fake.url}/v1/brokers/${B}`);
    expect(res.status).toBe(429);
    expect(res.headers.get('x-amzn-errortype')).toBe('TooManyRequestsException');
    expect(await res.json()).toEqual({ message: 'Rate exceeded' });
  });

  test('drop closes the connection without doing anything', async () => {
    fake.inject({ operation: 'CreateUser', username: 'app', fault: 'drop' });
    await failure(create('app'));
    expect(fake.users(B)).toEqual([]);
    expect(fake.calls[0]).toMatchObject({ operation: 'CreateUser', fault: 'drop' });
    expect(fake.calls[0].status).toBeUndefined();
  });

  test('lostResponse performs the change, then closes the connection', async () => {
    fake.inject({ operation: 'CreateUser', fault: 'lostResponse' });
    await failure(create('app'));
    expect(fake.user(B, 'app')?.pending?.change).toBe('CREATE');
  });

  test('a fault only hits the matching username, as many times as asked', async () => {
    fake.inject({ username: 'victim', fault: 'internal', times: 2 });
    await create('bystander');
    expect((await failure(create('victim'))).name).toBe('InternalServerErrorException');
    expect((await failure(describe_('victim'))).name).toBe('InternalServerErrorException');
    expect((await failure(describe_('victim'))).name).toBe('NotFoundException');
    expect(fake.faultsInjected).toBe(2);
  });

  test('hang never answers, and stop() still closes the connection', async () => {
    const other = await FakeMq.start();
    other.addBroker({ brokerId: B, engineType: 'ACTIVEMQ' });
    other.inject({ fault: 'hang' });
    const client = new MqClient({ ...other.clientConfig(), maxAttempts: 1 });
    const pending = failure(client.send(new DescribeBrokerCommand({ BrokerId: B })));
    while (other.calls.length === 0) await new Promise((r) => setTimeout(r, 5));
    await new Promise((r) => setTimeout(r, 50));
    expect(other.calls[0]).toMatchObject({ fault: 'hang' });
    await other.stop();
    expect(await pending).toBeInstanceOf(Error);
    client.destroy();
  });

  test('the token bucket answers 429 when empty and refills over time', async () => {
    fake.throttle = { capacity: 3, refillPerSecond: 20 };
    for (let i = 0; i < 3; i++) await mq.send(new DescribeBrokerCommand({ BrokerId: B }));
    const err = await failure(mq.send(new ListUsersCommand({ BrokerId: B })));
    expect(err).toMatchObject({ name: 'TooManyRequestsException', $metadata: { httpStatusCode: 429 } });
    expect(fake.rateLimited).toBe(1);
    expect(fake.faultsInjected).toBe(0);
    await new Promise((r) => setTimeout(r, 60));
    await mq.send(new ListUsersCommand({ BrokerId: B }));
  });

  test('latency delays every answer', async () => {
    fake.latencyMs = 80;
    const start = Date.now();
    await mq.send(new DescribeBrokerCommand({ BrokerId: B }));
    expect(Date.now() - start).toBeGreaterThanOrEqual(75);
  });
});

describe('Secrets Manager', () => {
  test('GetSecretValue finds a secret by ARN, by name and by ARN without its suffix', async () => {
    const arn = fake.putSecret('mq/app', '{"password":"x"}');
    for (const id of [arn, 'mq/app', arn.slice(0, -7)]) {
      const out = await sm.send(new GetSecretValueCommand({ SecretId: id }));
      expect(out).toMatchObject({ ARN: arn, Name: 'mq/app', SecretString: '{"password":"x"}' });
    }
  });

  test('a missing secret is ResourceNotFoundException, a denied one AccessDeniedException', async () => {
    expect(await failure(sm.send(new GetSecretValueCommand({ SecretId: 'nope' })))).toMatchObject({
      name: 'ResourceNotFoundException',
      $metadata: { httpStatusCode: 400 },
    });
    const arn = fake.putSecret('arn:aws:secretsmanager:us-east-1:123456789012:secret:mq/app-AbCdEf', 'p');
    fake.denySecret(arn);
    expect(await failure(sm.send(new GetSecretValueCommand({ SecretId: 'mq/app' })))).toMatchObject({
      name: 'AccessDeniedException',
      $metadata: { httpStatusCode: 400 },
    });
    fake.deleteSecret(arn);
    fake.denySecret(arn, false);
    expect((await failure(sm.send(new GetSecretValueCommand({ SecretId: arn })))).name).toBe(
      'ResourceNotFoundException',
    );
  });

  test('faults hit GetSecretValue only when it is named', async () => {
    fake.putSecret('s', 'v');
    fake.inject({ fault: 'internal' });
    await sm.send(new GetSecretValueCommand({ SecretId: 's' }));
    fake.inject({ operation: 'GetSecretValue', fault: 'throttle' });
    expect((await failure(sm.send(new GetSecretValueCommand({ SecretId: 's' })))).name).toBe('ThrottlingException');
  });

  test('clients built from env() reach the fake without an explicit endpoint', async () => {
    const saved = { ...process.env };
    Object.assign(process.env, fake.env());
    try {
      const client = new SecretsManagerClient({ maxAttempts: 1 });
      fake.putSecret('s', 'v');
      expect((await client.send(new GetSecretValueCommand({ SecretId: 's' }))).SecretString).toBe('v');
      const mqFromEnv = new MqClient({ maxAttempts: 1 });
      expect((await mqFromEnv.send(new DescribeBrokerCommand({ BrokerId: B }))).BrokerId).toBe(B);
      client.destroy();
      mqFromEnv.destroy();
    } finally {
      process.env = saved;
    }
  });
});

describe('Secrets Manager versions and staging labels (rotation)', () => {
  const T1 = '11111111-1111-4111-8111-111111111111';
  const T2 = '22222222-2222-4222-8222-222222222222';

  test('PutSecretValue: the token is the version, idempotent for the same value, ResourceExistsException for another', async () => {
    const arn = fake.putSecret('rot', '{"password":"a"}');
    const first = fake.secretVersionWith(arn, 'AWSCURRENT')!.versionId;
    await sm.send(
      new PutSecretValueCommand({
        SecretId: arn,
        ClientRequestToken: T1,
        SecretString: 'b',
        VersionStages: ['AWSPENDING'],
      }),
    );
    await sm.send(
      new PutSecretValueCommand({
        SecretId: arn,
        ClientRequestToken: T1,
        SecretString: 'b',
        VersionStages: ['AWSPENDING'],
      }),
    );
    expect(
      (await failure(sm.send(new PutSecretValueCommand({ SecretId: arn, ClientRequestToken: T1, SecretString: 'c' }))))
        .name,
    ).toBe('ResourceExistsException');
    expect(fake.secretStages(arn)).toEqual({ [first]: ['AWSCURRENT'], [T1]: ['AWSPENDING'] });
    // Without VersionStages the new version becomes AWSCURRENT and the old one AWSPREVIOUS.
    await sm.send(new PutSecretValueCommand({ SecretId: arn, ClientRequestToken: T2, SecretString: 'd' }));
    expect(fake.secretStages(arn)).toEqual({ [first]: ['AWSPREVIOUS'], [T1]: ['AWSPENDING'], [T2]: ['AWSCURRENT'] });
    expect(await sm.send(new GetSecretValueCommand({ SecretId: arn, VersionStage: 'AWSPENDING' }))).toMatchObject({
      VersionId: T1,
      SecretString: 'b',
    });
    expect(
      (await failure(sm.send(new GetSecretValueCommand({ SecretId: arn, VersionId: T1, VersionStage: 'AWSCURRENT' }))))
        .name,
    ).toBe('ResourceNotFoundException');
  });

  test('UpdateSecretVersionStage: RemoveFromVersionId is required to move a label, AWSCURRENT cannot just be removed', async () => {
    const arn = fake.putSecret('rot', 'a');
    const first = fake.secretVersionWith(arn, 'AWSCURRENT')!.versionId;
    await sm.send(
      new PutSecretValueCommand({
        SecretId: arn,
        ClientRequestToken: T1,
        SecretString: 'b',
        VersionStages: ['AWSPENDING'],
      }),
    );
    const move = (input: object) =>
      sm.send(new UpdateSecretVersionStageCommand({ SecretId: arn, VersionStage: 'AWSCURRENT', ...input }));
    expect((await failure(move({ MoveToVersionId: T1 }))).name).toBe('InvalidParameterException');
    expect((await failure(move({ RemoveFromVersionId: first }))).name).toBe('InvalidParameterException');
    await move({ MoveToVersionId: T1, RemoveFromVersionId: first });
    expect(fake.secretStages(arn)).toEqual({ [first]: ['AWSPREVIOUS'], [T1]: ['AWSCURRENT', 'AWSPENDING'] });
    await sm.send(
      new UpdateSecretVersionStageCommand({ SecretId: arn, VersionStage: 'AWSPENDING', RemoveFromVersionId: T1 }),
    );
    const described = await sm.send(new DescribeSecretCommand({ SecretId: arn }));
    expect(described.VersionIdsToStages).toEqual({ [first]: ['AWSPREVIOUS'], [T1]: ['AWSCURRENT'] });
  });

  test('RotateSecret (startRotation) leaves an empty AWSPENDING version and refuses while another rotation is pending', async () => {
    const arn = fake.putSecret('rot', 'a', { tags: { team: 'orders' } });
    fake.setRotation(arn, { lambdaArn: 'arn:aws:lambda:us-east-1:123456789012:function:f', automaticallyAfterDays: 8 });
    fake.startRotation(arn, T1);
    expect(fake.secretVersionWith(arn, 'AWSPENDING')).toEqual({ versionId: T1, stages: ['AWSPENDING'] });
    expect((await failure(sm.send(new GetSecretValueCommand({ SecretId: arn, VersionId: T1 })))).name).toBe(
      'ResourceNotFoundException',
    );
    expect(() => fake.startRotation(arn, T2)).toThrow(/previous rotation/);
    fake.startRotation(arn, T1); // resuming the same token
    const described = await sm.send(new DescribeSecretCommand({ SecretId: arn }));
    expect(described).toMatchObject({ RotationEnabled: true, Tags: [{ Key: 'team', Value: 'orders' }] });
  });
});

describe('clock and maintenance windows', () => {
  test('pending changes apply when the simulated time passes the window; late windows; authenticates sees the applied state', async () => {
    await create('app');
    expect(fake.authenticates(B, 'app', PASSWORD)).toBe(false);
    fake.setMaintenanceWindow(B, { dayOfWeek: 'WEDNESDAY', timeOfDay: '03:00', durationMinutes: 60 });
    expect(() =>
      fake.setMaintenanceWindow(B, { dayOfWeek: 'MONDAY', timeOfDay: '03:00', durationMinutes: 121 }),
    ).toThrow();
    fake.postponeWindows(B, 1);
    fake.advance(7 * 86_400_000); // the first Wednesday's window is skipped
    expect(fake.windowsApplied(B)).toBe(0);
    fake.advanceTo(fake.nextWindowStart(B) + 60_000);
    expect(fake.windowsApplied(B)).toBe(1);
    expect(fake.user(B, 'app')?.pending).toBeUndefined();
    expect(fake.authenticates(B, 'app', PASSWORD)).toBe(true);
  });
});
