import { CloudFormationClient, DescribeStacksCommand } from '@aws-sdk/client-cloudformation';
import {
  BadRequestException,
  ConflictException,
  CreateUserCommand,
  DeleteUserCommand,
  DescribeBrokerCommand,
  DescribeUserCommand,
  ForbiddenException,
  InternalServerErrorException,
  MqClient,
  NotFoundException,
  UpdateUserCommand,
} from '@aws-sdk/client-mq';
import {
  GetSecretValueCommand,
  ResourceNotFoundException,
  SecretsManagerClient,
} from '@aws-sdk/client-secrets-manager';
import { mockClient } from 'aws-sdk-client-mock';
import 'aws-sdk-client-mock-jest';
import { handler, UserEvent } from '../lambda/index';
import { retryTiming } from '../lambda/retry';
import {
  BROKER_ID,
  OTHER_BROKER_ID,
  OTHER_SECRET_ARN,
  PASSWORD,
  SECRET_ARN,
  SECRET_STRING,
  createEvent,
  deleteEvent,
  lambdaContext,
  physicalId,
  updateEvent,
} from './fixtures/events';

const mq = mockClient(MqClient);
const secrets = mockClient(SecretsManagerClient);
const cloudFormation = mockClient(CloudFormationClient);

const USER = { BrokerId: BROKER_ID, Username: 'orders-service' };
const notFound = (attribute = 'username') =>
  new NotFoundException({
    message: `Can't find requested ${attribute}`,
    $metadata: { httpStatusCode: 404 },
    ErrorAttribute: attribute,
  });
const conflict = () =>
  new ConflictException({ message: 'Conflict', $metadata: { httpStatusCode: 409 }, ErrorAttribute: 'username' });
const badRequest = (message: string, attribute?: string) =>
  new BadRequestException({ message, $metadata: { httpStatusCode: 400 }, ErrorAttribute: attribute });
const serverError = () =>
  new InternalServerErrorException({ message: 'Internal error', $metadata: { httpStatusCode: 500 } });
const forbidden = () => new ForbiddenException({ message: 'not authorized', $metadata: { httpStatusCode: 403 } });
const throttled = () =>
  Object.assign(new Error('Rate exceeded'), { name: 'TooManyRequestsException', $metadata: { httpStatusCode: 429 } });
const dropped = () => Object.assign(new Error('socket hang up'), { code: 'ECONNRESET' });

const live = (pendingChange?: 'CREATE' | 'UPDATE' | 'DELETE') => ({
  ...USER,
  ConsoleAccess: false,
  Groups: ['orders-consumers'],
  ...(pendingChange ? { Pending: { PendingChange: pendingChange } } : {}),
});

let logs: string[];

beforeEach(() => {
  mq.reset();
  secrets.reset();
  cloudFormation.reset();
  Object.assign(retryTiming, {
    baseDelayMs: 1,
    maxDelayMs: 5,
    attemptTimeoutMs: 300,
    accessDeniedWindowMs: 150,
    brokerPollMs: 20,
  });
  mq.on(DescribeBrokerCommand).resolves({
    EngineType: 'ACTIVEMQ',
    AuthenticationStrategy: 'SIMPLE',
    BrokerState: 'RUNNING',
  });
  mq.on(CreateUserCommand).resolves({});
  mq.on(UpdateUserCommand).resolves({});
  mq.on(DeleteUserCommand).resolves({});
  secrets.on(GetSecretValueCommand).resolves({ ARN: SECRET_ARN, SecretString: SECRET_STRING });
  cloudFormation
    .on(DescribeStacksCommand)
    .resolves({ Stacks: [{ StackName: 'Orders', StackStatus: 'UPDATE_IN_PROGRESS', CreationTime: new Date() }] });
  logs = [];
  for (const level of ['log', 'warn', 'error', 'info'] as const) {
    jest.spyOn(console, level).mockImplementation((...args: unknown[]) => void logs.push(args.map(String).join(' ')));
  }
});

afterEach(() => jest.restoreAllMocks());

/** Runs the handler; any outcome is recorded so that tests can also check it holds no secret. */
const outcomes: string[] = [];
async function run(event: UserEvent, remainingMs?: number) {
  try {
    const response = await handler(event, lambdaContext(remainingMs));
    outcomes.push(JSON.stringify(response));
    return response;
  } catch (error) {
    outcomes.push((error as Error).message);
    throw error;
  }
}

function stackStatus(status: string) {
  cloudFormation
    .on(DescribeStacksCommand)
    .resolves({ Stacks: [{ StackName: 'Orders', StackStatus: status as never, CreationTime: new Date() }] });
}

describe('Create', () => {
  test('creates the user with the whole desired state and the password from the secret', async () => {
    mq.on(DescribeUserCommand).rejectsOnce(notFound()).resolves(live('CREATE'));

    const response = await run(createEvent({ ConsoleAccess: true }));

    expect(mq).toHaveReceivedCommandWith(CreateUserCommand, {
      ...USER,
      Password: PASSWORD,
      ConsoleAccess: true,
      Groups: ['orders-consumers', 'orders-producers'],
      ReplicationUser: false,
    });
    expect(secrets).toHaveReceivedCommandWith(GetSecretValueCommand, { SecretId: SECRET_ARN });
    expect(response).toEqual({
      PhysicalResourceId: `${BROKER_ID}/orders-service`,
      Data: { Username: 'orders-service', BrokerId: BROKER_ID, PendingChange: 'CREATE' },
    });
  });

  test('reads string booleans as CloudFormation sends them', async () => {
    mq.on(DescribeUserCommand).rejectsOnce(notFound()).resolves(live('CREATE'));
    const event = createEvent();
    await run({
      ...event,
      ResourceProperties: { ...event.ResourceProperties, ConsoleAccess: 'false', ReplicationUser: 'true' },
    });
    expect(mq).toHaveReceivedCommandWith(CreateUserCommand, { ConsoleAccess: false, ReplicationUser: true });
  });

  test('fails when a property does not parse, naming it and the value', async () => {
    const event = createEvent();
    await expect(
      run({ ...event, ResourceProperties: { ...event.ResourceProperties, ConsoleAccess: 'yes' } }),
    ).rejects.toThrow('ConsoleAccess must be "true" or "false", got "yes"');
    expect(mq).not.toHaveReceivedAnyCommand();
  });

  test('fails on a RabbitMQ broker without touching users', async () => {
    mq.on(DescribeBrokerCommand).resolves({ EngineType: 'RabbitMQ' as never, BrokerState: 'RUNNING' });
    await expect(run(createEvent())).rejects.toThrow(
      `broker ${BROKER_ID} runs RabbitMQ: MqUser manages ActiveMQ users only`,
    );
    expect(mq).not.toHaveReceivedCommand(CreateUserCommand);
    expect(mq).not.toHaveReceivedCommand(DescribeUserCommand);
  });

  test('fails on an LDAP broker, comparing case-insensitively', async () => {
    mq.on(DescribeBrokerCommand).resolves({
      EngineType: 'activemq' as never,
      AuthenticationStrategy: 'ldap' as never,
      BrokerState: 'RUNNING',
    });
    await expect(run(createEvent())).rejects.toThrow(`broker ${BROKER_ID} uses ldap authentication`);
    expect(mq).not.toHaveReceivedCommand(CreateUserCommand);
  });

  test('fails when the broker is gone, with the service message and errorAttribute', async () => {
    mq.on(DescribeBrokerCommand).rejects(notFound('broker-id'));
    await expect(run(createEvent())).rejects.toThrow(
      `DescribeBroker on broker ${BROKER_ID} failed: Can't find requested broker-id (NotFoundException, errorAttribute "broker-id")`,
    );
  });

  test('fails when the user already exists, leaving it untouched and naming the way out', async () => {
    mq.on(DescribeUserCommand).resolves(live());
    const failure = run(createEvent());
    await expect(failure).rejects.toThrow(
      `user "orders-service" already exists on broker ${BROKER_ID} and MqUser left it untouched`,
    );
    await expect(failure).rejects.toThrow(/adoptExisting: true.*"Moving a user"/);
    expect(mq).not.toHaveReceivedCommand(CreateUserCommand);
    expect(mq).not.toHaveReceivedCommand(UpdateUserCommand);
    expect(mq).not.toHaveReceivedCommand(DeleteUserCommand);
  });

  test('adopts an existing user when adoptExisting is set, converging it with its password', async () => {
    mq.on(DescribeUserCommand).resolves(live());
    await run(createEvent({ AdoptExisting: true }));
    expect(mq).not.toHaveReceivedCommand(CreateUserCommand);
    expect(mq).toHaveReceivedCommandWith(UpdateUserCommand, {
      ...USER,
      Password: PASSWORD,
      Groups: ['orders-consumers', 'orders-producers'],
    });
  });

  test('creates a user again when it is pending deletion', async () => {
    mq.on(DescribeUserCommand).resolvesOnce(live('DELETE')).resolves(live('CREATE'));
    await run(createEvent());
    expect(mq).toHaveReceivedCommandWith(CreateUserCommand, { ...USER, Password: PASSWORD });
  });

  test('revives a user pending deletion with UpdateUser when CreateUser refuses it', async () => {
    mq.on(DescribeUserCommand).resolves(live('DELETE'));
    mq.on(CreateUserCommand).rejects(badRequest('User is pending deletion'));
    await run(createEvent());
    expect(mq).toHaveReceivedCommandWith(UpdateUserCommand, { ...USER, Password: PASSWORD });
  });

  test('fails clearly when Amazon MQ refuses to revive a user pending deletion', async () => {
    mq.on(DescribeUserCommand).resolves(live('DELETE'));
    mq.on(CreateUserCommand).rejects(badRequest('User is pending deletion'));
    mq.on(UpdateUserCommand).rejects(badRequest('User is pending deletion'));
    await expect(run(createEvent())).rejects.toThrow(
      /is pending deletion and Amazon MQ refused to create it again.*Reboot the broker/,
    );
  });

  test('takes a 409 after a lost CreateUser response as its own creation', async () => {
    // The first CreateUser created the user but its response was lost; the retry meets the user.
    mq.on(DescribeUserCommand).rejectsOnce(notFound()).resolves(live('CREATE'));
    mq.on(CreateUserCommand).rejectsOnce(dropped()).rejects(conflict());
    const response = await run(createEvent());
    expect(mq).toHaveReceivedCommandTimes(CreateUserCommand, 2);
    expect(mq).toHaveReceivedCommandWith(UpdateUserCommand, { ...USER, Password: PASSWORD });
    expect(response.PhysicalResourceId).toBe(physicalId());
  });

  test('fails when a user appears between DescribeUser and its first CreateUser: not ours', async () => {
    mq.on(DescribeUserCommand).rejectsOnce(notFound()).resolves(live());
    mq.on(CreateUserCommand).rejects(conflict());
    await expect(run(createEvent())).rejects.toThrow(`user "orders-service" already exists on broker ${BROKER_ID}`);
    expect(mq).toHaveReceivedCommandTimes(CreateUserCommand, 1);
    expect(mq).not.toHaveReceivedCommand(UpdateUserCommand);
  });

  test('fails when a user appears while CreateUser was throttled: a throttled attempt created nothing', async () => {
    mq.on(DescribeUserCommand).rejectsOnce(notFound()).resolves(live());
    mq.on(CreateUserCommand).rejectsOnce(throttled()).rejects(conflict());
    await expect(run(createEvent())).rejects.toThrow(`user "orders-service" already exists on broker ${BROKER_ID}`);
    expect(mq).not.toHaveReceivedCommand(UpdateUserCommand);
  });

  test('adopts a user that appears between DescribeUser and CreateUser when adoptExisting is set', async () => {
    mq.on(DescribeUserCommand).rejectsOnce(notFound()).resolves(live());
    mq.on(CreateUserCommand).rejects(conflict());
    await run(createEvent({ AdoptExisting: true }));
    expect(mq).toHaveReceivedCommandWith(UpdateUserCommand, { ...USER, Password: PASSWORD });
  });

  test('answers success with PendingChange UNKNOWN when the user cannot be read after its creation', async () => {
    // Failing now would leave the created user behind: the framework answers the next Delete itself.
    mq.on(DescribeUserCommand).rejectsOnce(notFound()).rejects(badRequest('Internal glitch'));
    const response = await run(createEvent());
    expect(response.Data?.PendingChange).toBe('UNKNOWN');
    expect(mq).toHaveReceivedCommand(CreateUserCommand);
  });

  test('waits for a rebooting broker that refuses user calls, then creates the user', async () => {
    mq.on(DescribeUserCommand)
      .rejectsOnce(badRequest('Broker is rebooting'))
      .rejectsOnce(notFound())
      .resolves(live('CREATE'));
    mq.on(DescribeBrokerCommand)
      .resolvesOnce({ EngineType: 'ACTIVEMQ', AuthenticationStrategy: 'SIMPLE', BrokerState: 'RUNNING' })
      .resolvesOnce({ EngineType: 'ACTIVEMQ', BrokerState: 'REBOOT_IN_PROGRESS' })
      .resolves({ EngineType: 'ACTIVEMQ', BrokerState: 'RUNNING' });
    await run(createEvent());
    expect(mq).toHaveReceivedCommandTimes(CreateUserCommand, 1);
    expect(logs.join('\n')).toContain('the broker is rebooting and refuses user calls: waiting for it');
  });

  test('gives up on a broker that stays in REBOOT_IN_PROGRESS, before the deadline, saying so', async () => {
    mq.on(DescribeUserCommand).rejects(badRequest('Broker is rebooting'));
    mq.on(DescribeBrokerCommand)
      .resolvesOnce({ EngineType: 'ACTIVEMQ', AuthenticationStrategy: 'SIMPLE', BrokerState: 'RUNNING' })
      .resolves({ EngineType: 'ACTIVEMQ', BrokerState: 'REBOOT_IN_PROGRESS' });
    await expect(run(createEvent(), 5_300)).rejects.toThrow(
      /Broker is rebooting.*still REBOOT_IN_PROGRESS: retry once it is RUNNING/,
    );
  });

  test('retries throttling answered with HTTP 400 (Secrets Manager, CloudFormation)', async () => {
    mq.on(DescribeUserCommand).rejectsOnce(notFound()).resolves(live('CREATE'));
    secrets
      .on(GetSecretValueCommand)
      .rejectsOnce(
        Object.assign(new Error('Rate exceeded'), { name: 'ThrottlingException', $metadata: { httpStatusCode: 400 } }),
      )
      .resolves({ SecretString: SECRET_STRING });
    await run(createEvent());
    expect(secrets).toHaveReceivedCommandTimes(GetSecretValueCommand, 2);
  });

  test('retries throttling, server errors and dropped connections, then succeeds', async () => {
    mq.on(DescribeUserCommand).rejectsOnce(throttled()).rejectsOnce(notFound()).resolves(live('CREATE'));
    mq.on(CreateUserCommand).rejectsOnce(serverError()).rejectsOnce(dropped()).resolves({});
    await run(createEvent());
    expect(mq).toHaveReceivedCommandTimes(CreateUserCommand, 3);
  });

  test('retries AccessDenied while IAM propagates, then succeeds', async () => {
    mq.on(DescribeUserCommand).rejectsOnce(notFound()).resolves(live('CREATE'));
    mq.on(DescribeBrokerCommand)
      .rejectsOnce(forbidden())
      .resolves({ EngineType: 'ACTIVEMQ', AuthenticationStrategy: 'SIMPLE', BrokerState: 'RUNNING' });
    await run(createEvent());
    expect(mq).toHaveReceivedCommandTimes(DescribeBrokerCommand, 2);
    expect(mq).toHaveReceivedCommand(CreateUserCommand);
  });

  test('fails on AccessDenied that outlasts the propagation window', async () => {
    mq.on(DescribeBrokerCommand).rejects(forbidden());
    await expect(run(createEvent())).rejects.toThrow(
      /DescribeBroker on broker .* failed after \d+ attempts: not authorized \(ForbiddenException\)/,
    );
  });

  test('never retries a 400', async () => {
    mq.on(DescribeUserCommand).rejects(notFound());
    mq.on(CreateUserCommand).rejects(
      badRequest('[replicationUser] and [consoleAccess] are mutually exclusive', 'replicationUser'),
    );
    await expect(run(createEvent())).rejects.toThrow(
      'CreateUser for user "orders-service" on broker ' +
        `${BROKER_ID} failed: [replicationUser] and [consoleAccess] are mutually exclusive (BadRequestException, errorAttribute "replicationUser")`,
    );
    expect(mq).toHaveReceivedCommandTimes(CreateUserCommand, 1);
  });

  test('gives up on a hung call before its deadline, with a clear reason', async () => {
    mq.on(DescribeUserCommand).callsFake(() => new Promise(() => undefined));
    // 6 s left: the handler keeps 5 s to answer, so it has about 1 s for its calls.
    await expect(run(createEvent(), 6_000)).rejects.toThrow(
      /DescribeUser for user "orders-service" on broker .* (no answer within|no time left)/,
    );
    expect(mq).not.toHaveReceivedCommand(CreateUserCommand);
  });

  test('fails when the secret is missing, creating nothing', async () => {
    secrets.on(GetSecretValueCommand).rejects(
      new ResourceNotFoundException({
        message: "Secrets Manager can't find the specified secret.",
        $metadata: { httpStatusCode: 400 },
      }),
    );
    await expect(run(createEvent())).rejects.toThrow(
      `GetSecretValue for user "orders-service" on broker ${BROKER_ID} of secret ${SECRET_ARN} failed: Secrets Manager can't find`,
    );
    expect(mq).not.toHaveReceivedCommand(CreateUserCommand);
  });

  test('fails when the password breaks Amazon MQ rules, without quoting it, creating nothing', async () => {
    secrets.on(GetSecretValueCommand).resolves({ SecretString: JSON.stringify({ password: 'short:pass=1' }) });
    await expect(run(createEvent())).rejects.toThrow(
      `the password in secret ${SECRET_ARN} breaks Amazon MQ's password rule: it must not contain a comma, a colon or an equals sign`,
    );
    expect(mq).not.toHaveReceivedCommand(CreateUserCommand);
    expect(logs.join('\n')).not.toContain('short:pass=1');
  });

  test('reads the named JSON field of a supplied secret', async () => {
    mq.on(DescribeUserCommand).rejectsOnce(notFound()).resolves(live('CREATE'));
    secrets
      .on(GetSecretValueCommand)
      .resolves({ SecretString: JSON.stringify({ mq: 'Another-Passw0rd-123', password: 'not-this-one-XYZ' }) });
    await run(createEvent({ PasswordField: 'mq' }));
    expect(mq).toHaveReceivedCommandWith(CreateUserCommand, { Password: 'Another-Passw0rd-123' });
  });
});

describe('Update', () => {
  const before = { Groups: ['orders-consumers'] };
  const after = { Groups: ['orders-consumers', 'orders-producers'] };

  test('updates in place with the whole desired state, leaving the password alone when its source is unchanged', async () => {
    mq.on(DescribeUserCommand).resolves(live('UPDATE'));
    const response = await run(updateEvent(before, after));
    expect(mq).toHaveReceivedCommandTimes(UpdateUserCommand, 1);
    const input = mq.commandCalls(UpdateUserCommand)[0].args[0].input;
    expect(input).toEqual({
      ...USER,
      ConsoleAccess: false,
      Groups: ['orders-consumers', 'orders-producers'],
      ReplicationUser: false,
    });
    expect(secrets).not.toHaveReceivedCommand(GetSecretValueCommand);
    expect(response.PhysicalResourceId).toBe(physicalId());
  });

  test('sends an empty group list to clear the groups', async () => {
    mq.on(DescribeUserCommand).resolves(live());
    await run(updateEvent(before, { Groups: [] }));
    expect(mq).toHaveReceivedCommandWith(UpdateUserCommand, { Groups: [] });
  });

  test.each([
    ['passwordVersion', { PasswordVersion: '2' }],
    ['secret', { PasswordSecretArn: OTHER_SECRET_ARN }],
    ['field', { PasswordField: 'password' }],
  ])('sets the password again when its %s changes', async (_what, change) => {
    mq.on(DescribeUserCommand).resolves(live());
    await run(updateEvent({ PasswordVersion: '1' }, { PasswordVersion: '1', ...change }));
    expect(mq).toHaveReceivedCommandWith(UpdateUserCommand, { ...USER, Password: PASSWORD });
  });

  test('creates the user again when it vanished out of band', async () => {
    mq.on(DescribeUserCommand).rejectsOnce(notFound()).resolves(live('CREATE'));
    await run(updateEvent(before, after));
    expect(mq).toHaveReceivedCommandWith(CreateUserCommand, { ...USER, Password: PASSWORD, Groups: after.Groups });
    expect(mq).not.toHaveReceivedCommand(UpdateUserCommand);
  });

  test('replaces the user when the username changes, leaving the old one for the cleanup Delete', async () => {
    mq.on(DescribeUserCommand).rejectsOnce(notFound()).resolves(live('CREATE'));
    const response = await run(updateEvent({}, { Username: 'orders-v2' }));
    expect(mq).toHaveReceivedCommandWith(CreateUserCommand, {
      BrokerId: BROKER_ID,
      Username: 'orders-v2',
      Password: PASSWORD,
    });
    expect(mq).not.toHaveReceivedCommand(DeleteUserCommand);
    expect(response.PhysicalResourceId).toBe(`${BROKER_ID}/orders-v2`);
  });

  test('replaces the user when the broker changes', async () => {
    mq.on(DescribeUserCommand).rejectsOnce(notFound()).resolves(live('CREATE'));
    const response = await run(updateEvent({}, { BrokerId: OTHER_BROKER_ID }));
    expect(mq).toHaveReceivedCommandWith(DescribeBrokerCommand, { BrokerId: OTHER_BROKER_ID });
    expect(mq).toHaveReceivedCommandWith(CreateUserCommand, { BrokerId: OTHER_BROKER_ID, Username: 'orders-service' });
    expect(response.PhysicalResourceId).toBe(`${OTHER_BROKER_ID}/orders-service`);
  });

  test('converges the old user in the rollback of a rename, returning its physical ID', async () => {
    // Forward: orders-service -> orders-v2 succeeded, then the stack failed. The rollback swaps the
    // properties; orders-service still exists, because its cleanup Delete never ran.
    stackStatus('UPDATE_ROLLBACK_IN_PROGRESS');
    mq.on(DescribeUserCommand).resolves(live());
    const response = await run(updateEvent({ Username: 'orders-v2' }, {}, `${BROKER_ID}/orders-v2`));
    expect(mq).toHaveReceivedCommandWith(UpdateUserCommand, { ...USER, Password: PASSWORD });
    expect(mq).not.toHaveReceivedCommand(CreateUserCommand);
    expect(mq).not.toHaveReceivedCommand(DeleteUserCommand);
    expect(response.PhysicalResourceId).toBe(physicalId());
    expect(logs.join('\n')).toContain('this rollback restores a user that was never deleted');
  });

  test('fails a rename onto a user it does not own, leaving that user untouched', async () => {
    mq.on(DescribeUserCommand).resolves(live());
    await expect(run(updateEvent({}, { Username: 'someone-else' }))).rejects.toThrow(
      `user "someone-else" already exists on broker ${BROKER_ID} and MqUser left it untouched`,
    );
    expect(mq).not.toHaveReceivedCommand(UpdateUserCommand);
    expect(mq).not.toHaveReceivedCommand(CreateUserCommand);
  });

  test('restores everything but the password in a rollback whose old secret cannot be read', async () => {
    stackStatus('UPDATE_ROLLBACK_IN_PROGRESS');
    mq.on(DescribeUserCommand).resolves(live());
    secrets.on(GetSecretValueCommand).rejects(
      Object.assign(new Error('User is not authorized to perform: secretsmanager:GetSecretValue'), {
        name: 'AccessDeniedException',
        $metadata: { httpStatusCode: 400 },
      }),
    );
    // The forward deploy moved the user to OTHER_SECRET_ARN; the rollback restores SECRET_ARN.
    const response = await run(updateEvent({ PasswordSecretArn: OTHER_SECRET_ARN, ...after }, before));
    const input = mq.commandCalls(UpdateUserCommand)[0].args[0].input;
    expect(input).toEqual({ ...USER, ConsoleAccess: false, Groups: ['orders-consumers'], ReplicationUser: false });
    expect(response.PhysicalResourceId).toBe(physicalId());
    const warning = logs.find((line) => line.includes('could not restore the password'));
    expect(warning).toContain(SECRET_ARN);
    expect(warning).toContain('orders-service');
    expect(warning).toContain('secretsmanager:GetSecretValue');
  });

  test('fails a forward update whose new secret cannot be read', async () => {
    mq.on(DescribeUserCommand).resolves(live());
    secrets.on(GetSecretValueCommand).rejects(
      new ResourceNotFoundException({
        message: "Secrets Manager can't find the specified secret.",
        $metadata: { httpStatusCode: 400 },
      }),
    );
    await expect(run(updateEvent({}, { PasswordSecretArn: OTHER_SECRET_ARN }))).rejects.toThrow(
      `of secret ${OTHER_SECRET_ARN} failed`,
    );
    expect(mq).not.toHaveReceivedCommand(UpdateUserCommand);
  });
});

describe('Delete', () => {
  test('deletes the user named by the physical ID, whatever the properties say', async () => {
    mq.on(DescribeUserCommand).resolves(live());
    const response = await run(deleteEvent(physicalId(), { Username: 'something-else' }));
    expect(mq).toHaveReceivedCommandWith(DeleteUserCommand, USER);
    expect(mq).toHaveReceivedCommandTimes(DeleteUserCommand, 1);
    expect(response.PhysicalResourceId).toBe(physicalId());
    expect(secrets).not.toHaveReceivedAnyCommand();
  });

  test.each([
    ['the user is gone', () => mq.on(DescribeUserCommand).rejects(notFound('username'))],
    ['the broker is gone', () => mq.on(DescribeUserCommand).rejects(notFound('broker-id'))],
  ])('succeeds when %s', async (_case, arrange) => {
    arrange();
    await run(deleteEvent(physicalId()));
    expect(mq).not.toHaveReceivedCommand(DeleteUserCommand);
  });

  test('succeeds when the user disappears between DescribeUser and DeleteUser', async () => {
    mq.on(DescribeUserCommand).resolves(live());
    mq.on(DeleteUserCommand).rejects(notFound());
    await run(deleteEvent(physicalId()));
    expect(mq).toHaveReceivedCommandTimes(DeleteUserCommand, 1);
  });

  test('keeps an adopted user in a rollback: it existed before the stack took it over', async () => {
    stackStatus('ROLLBACK_IN_PROGRESS');
    mq.on(DescribeUserCommand).resolves(live());
    await run(deleteEvent(physicalId(), { AdoptExisting: true }));
    expect(mq).not.toHaveReceivedCommand(DeleteUserCommand);
    expect(logs.join('\n')).toContain('not deleting an adopted user during a rollback');
  });

  test.each(['UPDATE_ROLLBACK_COMPLETE_CLEANUP_IN_PROGRESS', 'UPDATE_ROLLBACK_IN_PROGRESS'])(
    'keeps an adopted user while the stack is in %s',
    async (status) => {
      stackStatus(status);
      mq.on(DescribeUserCommand).resolves(live());
      await run(deleteEvent(physicalId(), { AdoptExisting: true }));
      expect(mq).not.toHaveReceivedCommand(DeleteUserCommand);
    },
  );

  test('keeps an adopted user when the stack status cannot be read', async () => {
    cloudFormation
      .on(DescribeStacksCommand)
      .rejects(Object.assign(new Error('denied'), { name: 'AccessDenied', $metadata: { httpStatusCode: 403 } }));
    mq.on(DescribeUserCommand).resolves(live());
    await run(deleteEvent(physicalId(), { AdoptExisting: true }));
    expect(mq).not.toHaveReceivedCommand(DeleteUserCommand);
  });

  test('deletes, in a rollback, an adoptExisting user this stack created (still pending CREATE)', async () => {
    stackStatus('ROLLBACK_IN_PROGRESS');
    mq.on(DescribeUserCommand).resolves(live('CREATE'));
    await run(deleteEvent(physicalId(), { AdoptExisting: true }));
    expect(mq).toHaveReceivedCommandWith(DeleteUserCommand, USER);
  });

  test('deletes an adopted user when the stack itself is deleted', async () => {
    stackStatus('DELETE_IN_PROGRESS');
    mq.on(DescribeUserCommand).resolves(live());
    await run(deleteEvent(physicalId(), { AdoptExisting: true }));
    expect(mq).toHaveReceivedCommandWith(DeleteUserCommand, USER);
  });

  test('succeeds without a call when the user is already pending deletion', async () => {
    mq.on(DescribeUserCommand).resolves(live('DELETE'));
    await run(deleteEvent(physicalId()));
    expect(mq).not.toHaveReceivedCommand(DeleteUserCommand);
  });

  test.each([
    ['the Provider framework marker of a failed Create', 'AWSCDK::CustomResourceProviderFramework::CREATE_FAILED'],
    ['an ID CloudFormation made up', 'Orders-OrdersService-1ABCDEFGHIJ'],
  ])('does nothing for %s', async (_case, id) => {
    const response = await run(deleteEvent(id));
    expect(mq).not.toHaveReceivedAnyCommand();
    expect(response.PhysicalResourceId).toBe(id);
  });
});

describe('secrets never leave the handler', () => {
  test('no log line or failure reason holds the password or the secret string', async () => {
    // A service that echoes input back in its error message must not leak it either.
    mq.on(DescribeUserCommand).rejects(notFound());
    mq.on(CreateUserCommand).rejects(badRequest(`Password ${PASSWORD} is not allowed`, 'password'));
    await expect(run(createEvent())).rejects.toThrow('Password *** is not allowed');

    const everything = [...logs, ...outcomes].join('\n');
    expect(outcomes.length).toBeGreaterThan(20);
    expect(everything).not.toContain(PASSWORD);
    expect(everything).not.toContain(SECRET_STRING);
    expect(everything).not.toMatch(/ResponseURL|amazonaws\.com\/.*Signature/);
  });

  test('failure reasons stay under 1 KB', async () => {
    mq.on(DescribeBrokerCommand).rejects(badRequest('x'.repeat(5_000)));
    const failure = await run(createEvent()).catch((error: Error) => error);
    expect((failure as Error).message.length).toBeLessThan(1_024);
  });
});
