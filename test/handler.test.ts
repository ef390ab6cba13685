import {
  CloudFormationClient,
  DescribeStackEventsCommand,
  DescribeStackResourceCommand,
  DescribeStacksCommand,
  ListStackResourcesCommand,
  type StackResourceSummary,
} from '@aws-sdk/client-cloudformation';
import {
  BadRequestException,
  ConflictException,
  CreateUserCommand,
  DeleteUserCommand,
  DescribeBrokerCommand,
  DescribeUserCommand,
  type DescribeUserResponse,
  ForbiddenException,
  InternalServerErrorException,
  ListUsersCommand,
  MqClient,
  NotFoundException,
  RebootBrokerCommand,
  UpdateUserCommand,
} from '@aws-sdk/client-mq';
import {
  GetSecretValueCommand,
  ResourceNotFoundException,
  SecretsManagerClient,
} from '@aws-sdk/client-secrets-manager';
import { mockClient } from 'aws-sdk-client-mock';
import 'aws-sdk-client-mock-jest';
import { handler, isComplete, UserEvent, WAITING_FIELD, type HandedOff } from '../lambda/user/index';
import { retryTiming } from '../lambda/shared/retry';
import { UNFINISHED_WORK_MARKER } from '../lib/private/handler-props';
import {
  BROKER_ID,
  LOGICAL_ID,
  OTHER_BROKER_ID,
  OTHER_SECRET_ARN,
  OTHER_STACK_ID,
  PASSWORD,
  ROOT_STACK_ID,
  SECRET_ARN,
  SECRET_STRING,
  STACK_ID,
  createEvent,
  deleteEvent,
  lambdaContext,
  legacyPhysicalId,
  physicalId,
  updateEvent,
} from './fixtures/events';
import { CloudFormationAtWork, resourceDetail } from './fixtures/proof';

const mq = mockClient(MqClient);
const secrets = mockClient(SecretsManagerClient);
const cloudFormation = mockClient(CloudFormationClient);
/** CloudFormation confirms every event `run` hands the handler (the proof), unless a test says otherwise. */
const atWork = new CloudFormationAtWork(cloudFormation, 'Custom::MqUser');

const USER = { BrokerId: BROKER_ID, Username: 'orders-service' };
const GROUPS = ['orders-consumers', 'orders-producers'];

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
const validationError = (message: string) =>
  Object.assign(new Error(message), { name: 'ValidationError', $metadata: { httpStatusCode: 400 } });
const hang = () => new Promise<never>(() => undefined);

const RUNNING = {
  EngineType: 'ACTIVEMQ' as const,
  AuthenticationStrategy: 'SIMPLE' as const,
  BrokerState: 'RUNNING' as const,
};
const REBOOTING = { ...RUNNING, BrokerState: 'REBOOT_IN_PROGRESS' as const };

/** A user that does not hold the declared state (one group, replication flag unreported). */
const live = (pendingChange?: 'CREATE' | 'UPDATE' | 'DELETE'): DescribeUserResponse => ({
  ...USER,
  ConsoleAccess: false,
  Groups: ['orders-consumers'],
  ...(pendingChange ? { Pending: { PendingChange: pendingChange } } : {}),
});

/** A user whose applied state is exactly `state` (the declared state by default), with no pending change. */
const holding = (state: { ConsoleAccess?: boolean; Groups?: string[]; ReplicationUser?: boolean } = {}) => ({
  ...USER,
  ConsoleAccess: false,
  // Amazon MQ does not promise an order: the handler compares sets.
  Groups: [...GROUPS].reverse(),
  ReplicationUser: false,
  ...state,
});

const MQ_COMMANDS = {
  DescribeBroker: DescribeBrokerCommand,
  DescribeUser: DescribeUserCommand,
  CreateUser: CreateUserCommand,
  UpdateUser: UpdateUserCommand,
  DeleteUser: DeleteUserCommand,
  ListUsers: ListUsersCommand,
  RebootBroker: RebootBrokerCommand,
};

/** Asserts every Amazon MQ call of the event: the commands named, that many times, and nothing else. */
function expectMqCalls(expected: Partial<Record<keyof typeof MQ_COMMANDS, number>>) {
  for (const [name, command] of Object.entries(MQ_COMMANDS)) {
    expect(mq).toHaveReceivedCommandTimes(command as never, expected[name as keyof typeof MQ_COMMANDS] ?? 0);
  }
  const total = Object.values(expected).reduce((sum, n) => sum + (n ?? 0), 0);
  expect(mq.calls()).toHaveLength(total);
}

/** A stack event as DescribeStackEvents returns it. */
function stackEvent(logicalId: string, physicalId: string, status: string, type = 'Custom::MqUser') {
  return {
    StackId: STACK_ID,
    EventId: `${logicalId}-${status}`,
    StackName: 'Orders',
    LogicalResourceId: logicalId,
    PhysicalResourceId: physicalId,
    ResourceType: type,
    ResourceStatus: status as never,
    Timestamp: new Date(),
  };
}

/** The history of a rollback of this resource's rename: it completed with `incoming` in the current operation. */
function history(incoming: string) {
  cloudFormation.on(DescribeStackEventsCommand).resolves({
    StackEvents: [
      stackEvent('Orders', STACK_ID, 'UPDATE_ROLLBACK_IN_PROGRESS', 'AWS::CloudFormation::Stack'),
      stackEvent('Sibling', 'sibling', 'UPDATE_FAILED', 'AWS::SNS::Topic'),
      stackEvent(LOGICAL_ID, incoming, 'UPDATE_COMPLETE'),
      stackEvent(LOGICAL_ID, physicalId(), 'UPDATE_IN_PROGRESS'),
      stackEvent('Orders', STACK_ID, 'UPDATE_IN_PROGRESS', 'AWS::CloudFormation::Stack'),
    ],
  });
}

function stackStatus(status: string, rootId?: string) {
  cloudFormation.on(DescribeStacksCommand).resolves({
    Stacks: [{ StackName: 'Orders', StackStatus: status as never, CreationTime: new Date(), RootId: rootId }],
  });
}

/** A nested stack being deleted, whose root stack is in `rootStatus` (or whose status cannot be read). */
function nestedStackDeletedWhileRootIs(rootStatus: string | Error) {
  cloudFormation.on(DescribeStacksCommand).callsFake(async (input: { StackName?: string }) => {
    if (input.StackName === STACK_ID) {
      return {
        Stacks: [
          { StackName: 'Nested', StackStatus: 'DELETE_IN_PROGRESS', CreationTime: new Date(), RootId: ROOT_STACK_ID },
        ],
      };
    }
    if (input.StackName !== ROOT_STACK_ID) throw new Error(`unexpected DescribeStacks of ${input.StackName}`);
    if (rootStatus instanceof Error) throw rootStatus;
    return { Stacks: [{ StackName: 'Root', StackStatus: rootStatus, CreationTime: new Date() }] };
  });
}

const userResource = (logicalId: string, id: string, status = 'UPDATE_COMPLETE'): StackResourceSummary => ({
  LogicalResourceId: logicalId,
  PhysicalResourceId: id,
  ResourceType: 'Custom::MqUser',
  ResourceStatus: status as never,
  LastUpdatedTimestamp: new Date(),
});

/** ListStackResources answers these pages, chained by NextToken. */
function stackResources(...pages: StackResourceSummary[][]) {
  // The SDK answers with a promise; so must the fake (the handler relies on it).
  cloudFormation.on(ListStackResourcesCommand).callsFake(async (input: { NextToken?: string }) => {
    const index = input.NextToken ? Number(input.NextToken.replace('page-', '')) : 0;
    return {
      StackResourceSummaries: pages[index],
      NextToken: index + 1 < pages.length ? `page-${index + 1}` : undefined,
    };
  });
}

let logs: string[];
let warnings: string[];
let outcomes: string[];

beforeEach(() => {
  mq.reset();
  secrets.reset();
  cloudFormation.reset();
  atWork.install();
  process.env.CDK_MQ_USER_STACK_ID = STACK_ID;
  Object.assign(retryTiming, {
    baseDelayMs: 1,
    throttleBaseDelayMs: 1,
    throttleMaxDelayMs: 5,
    maxDelayMs: 5,
    attemptTimeoutMs: 300,
    accessDeniedWindowMs: 150,
    brokerWaitMs: 115 * 60_000,
    undoReserveMs: 20_000,
  });
  mq.on(DescribeBrokerCommand).resolves(RUNNING);
  mq.on(CreateUserCommand).resolves({});
  mq.on(UpdateUserCommand).resolves({});
  mq.on(DeleteUserCommand).resolves({});
  secrets.on(GetSecretValueCommand).resolves({ ARN: SECRET_ARN, SecretString: SECRET_STRING });
  stackStatus('UPDATE_IN_PROGRESS');
  stackResources([]);
  logs = [];
  warnings = [];
  outcomes = [];
  for (const level of ['log', 'warn', 'error', 'info'] as const) {
    jest.spyOn(console, level).mockImplementation((...args: unknown[]) => {
      const line = args.map(String).join(' ');
      logs.push(line);
      if (level === 'warn') warnings.push(line);
    });
  }
});

afterEach(() => {
  // Whatever a test did, neither the password nor the secret string left the handler.
  const everything = [...logs, ...outcomes].join('\n');
  jest.restoreAllMocks();
  delete process.env.CDK_MQ_USER_STACK_ID;
  expect(everything).not.toContain(PASSWORD);
  expect(everything).not.toContain(SECRET_STRING);
});

/**
 * Runs the handler with an event CloudFormation is working on, recording its answer or failure reason for the
 * secrecy check.
 */
async function run(event: UserEvent, remainingMs?: number) {
  atWork.workOn(event);
  return runUnproven(event, remainingMs);
}

/** Runs the handler with an event CloudFormation says nothing about unless the test set DescribeStackResource. */
async function runUnproven(event: UserEvent, remainingMs?: number) {
  try {
    const response = await handler(event, lambdaContext(remainingMs));
    outcomes.push(JSON.stringify(response));
    return response;
  } catch (error) {
    outcomes.push((error as Error).message);
    throw error;
  }
}

describe('Create', () => {
  test('creates the user with three MQ calls, the whole desired state and the password from the secret', async () => {
    mq.on(DescribeUserCommand).rejects(notFound());

    const response = await run(createEvent({ ConsoleAccess: true }));

    expect(mq).toHaveReceivedCommandWith(CreateUserCommand, {
      ...USER,
      Password: PASSWORD,
      ConsoleAccess: true,
      Groups: GROUPS,
      ReplicationUser: false,
    });
    expect(secrets).toHaveReceivedCommandWith(GetSecretValueCommand, { SecretId: SECRET_ARN });
    // No DescribeUser after the write: a created user is pending CREATE.
    expectMqCalls({ DescribeBroker: 1, DescribeUser: 1, CreateUser: 1 });
    expect(response).toEqual({
      PhysicalResourceId: `${BROKER_ID}/orders-service?owner=created`,
      Data: {
        Username: 'orders-service',
        BrokerId: BROKER_ID,
        PendingChange: 'CREATE',
        StateDigest: expect.stringMatching(/^[0-9a-f]{32}$/),
      },
    });
  });

  test('reads string booleans as CloudFormation sends them', async () => {
    mq.on(DescribeUserCommand).rejects(notFound());
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

  test.each(['..', '...'])('fails on the username %j, made only of dots, after the proof alone', async (username) => {
    await expect(run(createEvent({ Username: username }))).rejects.toThrow(
      `Username "${username}" must be 2 to 100 characters of A-Z a-z 0-9 - . _ ~, and not only dots`,
    );
    expect(mq).not.toHaveReceivedAnyCommand();
    expect(secrets).not.toHaveReceivedAnyCommand();
    expect(cloudFormation.calls().map((call) => call.args[0].constructor.name)).toEqual([
      'DescribeStackResourceCommand',
    ]);
  });

  test('fails on a RabbitMQ broker without touching users', async () => {
    mq.on(DescribeBrokerCommand).resolves({ EngineType: 'RabbitMQ' as never, BrokerState: 'RUNNING' });
    await expect(run(createEvent())).rejects.toThrow(
      `broker ${BROKER_ID} runs RabbitMQ: MqUser manages ActiveMQ users only`,
    );
    expectMqCalls({ DescribeBroker: 1 });
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

  test('fails when the broker is gone, with the service message, HTTP status and errorAttribute', async () => {
    mq.on(DescribeBrokerCommand).rejects(notFound('broker-id'));
    await expect(run(createEvent())).rejects.toThrow(
      `DescribeBroker on broker ${BROKER_ID} failed: Can't find requested broker-id (NotFoundException, HTTP 404, errorAttribute "broker-id")`,
    );
  });

  test('fails when the user already exists, leaving it untouched and naming the way out', async () => {
    mq.on(DescribeUserCommand).resolves(live());
    const failure = run(createEvent());
    await expect(failure).rejects.toThrow(
      `user "orders-service" already exists on broker ${BROKER_ID} and MqUser left it untouched`,
    );
    await expect(failure).rejects.toThrow(/adoptExisting: true.*"Moving a user"/);
    expectMqCalls({ DescribeBroker: 1, DescribeUser: 1 });
  });

  describe('records who made the user in the physical ID', () => {
    test('adopts an existing user when adoptExisting is set, converging it with its password', async () => {
      mq.on(DescribeUserCommand).resolves(live());
      const response = await run(createEvent({ AdoptExisting: true }));
      expect(mq).toHaveReceivedCommandWith(UpdateUserCommand, { ...USER, Password: PASSWORD, Groups: GROUPS });
      expectMqCalls({ DescribeBroker: 1, DescribeUser: 1, UpdateUser: 1 });
      expect(response.PhysicalResourceId).toBe(physicalId({}, 'adopted'));
      expect(response.Data?.PendingChange).toBe('UPDATE');
    });

    test('records owner=created when adoptExisting meets no user: its own CreateUser made it', async () => {
      mq.on(DescribeUserCommand).rejects(notFound());
      const response = await run(createEvent({ AdoptExisting: true }));
      expect(mq).toHaveReceivedCommandTimes(CreateUserCommand, 1);
      expect(response.PhysicalResourceId).toBe(physicalId({}, 'created'));
    });

    test('adopts a user pending CREATE that someone else made, and its rollback Delete keeps it', async () => {
      // Pending CREATE proves nothing about who made the user: someone did, through the API, since the last reboot.
      mq.on(DescribeUserCommand).resolves(live('CREATE'));
      const created = await run(createEvent({ AdoptExisting: true }));
      expect(created.PhysicalResourceId).toBe(physicalId({}, 'adopted'));
      expect(created.Data?.PendingChange).toBe('CREATE');
      expect(mq).not.toHaveReceivedCommand(CreateUserCommand);

      mq.resetHistory();
      stackStatus('ROLLBACK_IN_PROGRESS');
      await run(deleteEvent(created.PhysicalResourceId, { AdoptExisting: true }));
      expectMqCalls({});
    });

    test('adopts (owner=adopted) a user that appears between DescribeUser and CreateUser', async () => {
      mq.on(DescribeUserCommand).rejectsOnce(notFound()).resolves(live());
      mq.on(CreateUserCommand).rejects(conflict());
      const response = await run(createEvent({ AdoptExisting: true }));
      expect(mq).toHaveReceivedCommandWith(UpdateUserCommand, { ...USER, Password: PASSWORD });
      expect(response.PhysicalResourceId).toBe(physicalId({}, 'adopted'));
      expect(mq).not.toHaveReceivedCommand(DeleteUserCommand);
    });

    test('fails when a user appears between DescribeUser and its first CreateUser: not ours', async () => {
      mq.on(DescribeUserCommand).rejectsOnce(notFound()).resolves(live());
      mq.on(CreateUserCommand).rejects(conflict());
      await expect(run(createEvent())).rejects.toThrow(`user "orders-service" already exists on broker ${BROKER_ID}`);
      expect(mq).toHaveReceivedCommandTimes(CreateUserCommand, 1);
      expect(mq).not.toHaveReceivedCommand(UpdateUserCommand);
      expect(mq).not.toHaveReceivedCommand(DeleteUserCommand);
    });

    test('fails when a user appears while CreateUser was throttled: a throttled attempt created nothing', async () => {
      mq.on(DescribeUserCommand).rejectsOnce(notFound()).resolves(live());
      mq.on(CreateUserCommand).rejectsOnce(throttled()).rejects(conflict());
      await expect(run(createEvent())).rejects.toThrow(`user "orders-service" already exists on broker ${BROKER_ID}`);
      expect(mq).not.toHaveReceivedCommand(UpdateUserCommand);
      expect(mq).not.toHaveReceivedCommand(DeleteUserCommand);
    });

    test.each([false, true])(
      'takes a 409 after a lost CreateUser response as its own creation (adoptExisting %s)',
      async (adoptExisting) => {
        // The first CreateUser created the user but its response was lost; the retry meets the user.
        mq.on(DescribeUserCommand).rejectsOnce(notFound()).resolves(live('CREATE'));
        mq.on(CreateUserCommand).rejectsOnce(dropped()).rejects(conflict());
        const response = await run(createEvent({ AdoptExisting: adoptExisting }));
        expect(mq).toHaveReceivedCommandTimes(CreateUserCommand, 2);
        expect(mq).toHaveReceivedCommandWith(UpdateUserCommand, { ...USER, Password: PASSWORD });
        expect(mq).not.toHaveReceivedCommand(DeleteUserCommand);
        expect(response.PhysicalResourceId).toBe(physicalId({}, 'created'));
      },
    );

    test('keeps "an earlier attempt may have succeeded" through a 500, a 400 while the broker reboots, then a 409', async () => {
      mq.on(DescribeUserCommand).rejectsOnce(notFound()).resolves(live('CREATE'));
      mq.on(CreateUserCommand)
        .rejectsOnce(serverError())
        .rejectsOnce(badRequest('Broker is rebooting'))
        .rejects(conflict());
      mq.on(DescribeBrokerCommand).resolvesOnce(RUNNING).resolvesOnce(REBOOTING).resolves(RUNNING);
      const handedOff: HandedOff = await run(createEvent());
      // The waiter carries what the first attempt may have done: the user it then finds is its own.
      expect(handedOff[WAITING_FIELD]).toMatchObject({ ownCreate: true });
      const response = await isComplete({ ...createEvent(), ...handedOff }, lambdaContext());
      expect(mq).toHaveReceivedCommandTimes(CreateUserCommand, 2);
      expect(mq).toHaveReceivedCommandWith(UpdateUserCommand, { ...USER, Password: PASSWORD });
      expect(mq).not.toHaveReceivedCommand(DeleteUserCommand);
      expect(response.PhysicalResourceId).toBe(physicalId({}, 'created'));
    });
  });

  describe('a failed Create undoes its own work', () => {
    test('deletes the user its lost CreateUser made when the later attempts hang, then fails', async () => {
      retryTiming.undoReserveMs = 200;
      mq.on(DescribeUserCommand).rejects(notFound());
      mq.on(CreateUserCommand).rejectsOnce(dropped()).callsFake(hang);
      await expect(run(createEvent(), 6_000)).rejects.toThrow(
        new RegExp(`CreateUser for user "orders-service" on broker ${BROKER_ID} failed after \\d+ attempts`),
      );
      expect(mq).toHaveReceivedCommandWith(DeleteUserCommand, USER);
      expect(mq).toHaveReceivedCommandTimes(DeleteUserCommand, 1);
      // The undo comes last, after every CreateUser.
      expect(mq.calls().at(-1)?.args[0]).toBeInstanceOf(DeleteUserCommand);
      expect(warnings.join('\n')).toContain('may have made the user: deleted it again');
    });

    test('deletes its own user when converging it after a 409 fails', async () => {
      mq.on(DescribeUserCommand).rejectsOnce(notFound()).resolves(live('CREATE'));
      mq.on(CreateUserCommand).rejectsOnce(serverError()).rejects(conflict());
      mq.on(UpdateUserCommand).rejects(badRequest('Groups are invalid', 'groups'));
      await expect(run(createEvent())).rejects.toThrow('UpdateUser for user "orders-service"');
      expect(mq).toHaveReceivedCommandWith(DeleteUserCommand, USER);
    });

    test('fails on a definite refusal (400) without retrying it or deleting anything', async () => {
      mq.on(DescribeUserCommand).rejects(notFound());
      mq.on(CreateUserCommand).rejects(
        badRequest('[replicationUser] and [consoleAccess] are mutually exclusive', 'replicationUser'),
      );
      await expect(run(createEvent())).rejects.toThrow(
        `CreateUser for user "orders-service" on broker ${BROKER_ID} failed: the service's message is withheld: ` +
          'the request carried a password (BadRequestException, HTTP 400, errorAttribute "replicationUser")',
      );
      expect(mq).toHaveReceivedCommandTimes(CreateUserCommand, 1);
      expect(mq).not.toHaveReceivedCommand(DeleteUserCommand);
    });

    test('never deletes a user that existed before: a failed adoption leaves it in place', async () => {
      mq.on(DescribeUserCommand).resolves(live('CREATE'));
      mq.on(UpdateUserCommand).rejects(serverError());
      await expect(run(createEvent({ AdoptExisting: true }), 5_600)).rejects.toThrow(
        'UpdateUser for user "orders-service"',
      );
      expect(mq).not.toHaveReceivedCommand(CreateUserCommand);
      expect(mq).not.toHaveReceivedCommand(DeleteUserCommand);
    });
  });

  describe('CreateUser conflicts', () => {
    test('backs off between CreateUser conflicts, longer each round, then creates the user', async () => {
      Object.assign(retryTiming, { baseDelayMs: 10, maxDelayMs: 1_000 });
      jest.spyOn(Math, 'random').mockReturnValue(0.999); // the longest delay full jitter allows
      mq.on(DescribeUserCommand).rejects(notFound());
      const attempts: number[] = [];
      mq.on(CreateUserCommand).callsFake(async () => {
        attempts.push(Date.now());
        if (attempts.length <= 4) throw conflict();
        return {};
      });
      const response = await run(createEvent());
      expect(response.PhysicalResourceId).toBe(physicalId({}, 'created'));
      expect(attempts).toHaveLength(5);
      const gaps = attempts.slice(1).map((at, i) => at - attempts[i]);
      gaps.forEach((gap, i) => expect(gap).toBeGreaterThanOrEqual(10 * 2 ** i - 2));
    });

    test('fails CreateUser conflicts only near its deadline, keeping the undo reserve, deleting nothing', async () => {
      retryTiming.undoReserveMs = 200;
      mq.on(DescribeUserCommand).rejects(notFound());
      mq.on(CreateUserCommand).rejects(conflict());
      const started = Date.now();
      // 5.6 s left: the handler keeps 5 s to answer, so it has 1 s, less 0.2 s for an undo. The round that runs
      // out of time is the 409 itself, or (on a loaded machine) the DescribeUser or CreateUser after it.
      await expect(run(createEvent(), 5_600)).rejects.toThrow(
        new RegExp(`(CreateUser|DescribeUser) for user "orders-service" on broker ${BROKER_ID} failed`),
      );
      const elapsed = Date.now() - started;
      expect(elapsed).toBeGreaterThanOrEqual(600);
      expect(elapsed).toBeLessThan(1_000);
      expect(mq.commandCalls(CreateUserCommand).length).toBeGreaterThan(3);
      expect(mq).not.toHaveReceivedCommand(DeleteUserCommand);
    });
  });

  describe('a user pending deletion', () => {
    test('creates the user again when it is pending deletion', async () => {
      mq.on(DescribeUserCommand).resolves(live('DELETE'));
      const response = await run(createEvent());
      expect(mq).toHaveReceivedCommandWith(CreateUserCommand, { ...USER, Password: PASSWORD });
      expectMqCalls({ DescribeBroker: 1, DescribeUser: 1, CreateUser: 1 });
      expect(response.PhysicalResourceId).toBe(physicalId({}, 'created'));
    });

    test('revives a user pending deletion with UpdateUser when CreateUser refuses it, verifying it', async () => {
      mq.on(DescribeUserCommand).resolvesOnce(live('DELETE')).resolvesOnce(live('DELETE')).resolves(live('UPDATE'));
      mq.on(CreateUserCommand).rejects(badRequest('User is pending deletion'));
      const response = await run(createEvent());
      expect(mq).toHaveReceivedCommandWith(UpdateUserCommand, { ...USER, Password: PASSWORD });
      expect(mq).toHaveReceivedCommandTimes(DescribeUserCommand, 3);
      expect(mq).not.toHaveReceivedCommand(DeleteUserCommand);
      expect(response.PhysicalResourceId).toBe(physicalId({}, 'created'));
      expect(response.Data?.PendingChange).toBe('UPDATE');
    });

    test('fails with "reboot the broker" when UpdateUser is accepted but the user stays pending DELETE', async () => {
      mq.on(DescribeUserCommand).resolves(live('DELETE'));
      mq.on(CreateUserCommand).rejects(badRequest('User is pending deletion'));
      await expect(run(createEvent())).rejects.toThrow(
        /UpdateUser was accepted but the user is still pending DELETE\)\. Reboot the broker to apply the deletion/,
      );
      expect(mq).toHaveReceivedCommandTimes(UpdateUserCommand, 1);
    });

    test('fails clearly when Amazon MQ refuses to revive a user pending deletion', async () => {
      mq.on(DescribeUserCommand).resolves(live('DELETE'));
      mq.on(CreateUserCommand).rejects(badRequest('User is pending deletion'));
      mq.on(UpdateUserCommand).rejects(badRequest('User is pending deletion'));
      await expect(run(createEvent())).rejects.toThrow(
        /is pending deletion and Amazon MQ refused to create it again.*Reboot the broker/,
      );
    });
  });

  test('hands an event that meets a rebooting broker to the waiter, which creates the user once it is RUNNING', async () => {
    mq.on(DescribeUserCommand).rejectsOnce(badRequest('Broker is rebooting')).rejects(notFound());
    mq.on(DescribeBrokerCommand)
      .resolvesOnce(RUNNING)
      .resolvesOnce(REBOOTING)
      .resolvesOnce(REBOOTING)
      .resolves(RUNNING);
    const handedOff: HandedOff = await run(createEvent());
    expect(handedOff.PhysicalResourceId).toBe('AWSCDK::CustomResourceProviderFramework::CREATE_FAILED');
    expect(handedOff[WAITING_FIELD]).toMatchObject({ ownCreate: false });
    expect(mq).not.toHaveReceivedCommand(CreateUserCommand);
    const polled = { ...createEvent(), ...handedOff };
    expect(await isComplete(polled, lambdaContext())).toEqual({ IsComplete: false });
    const done = await isComplete(polled, lambdaContext());
    expect(done).toMatchObject({ IsComplete: true, PhysicalResourceId: physicalId() });
    expect(mq).toHaveReceivedCommandTimes(CreateUserCommand, 1);
    expect(logs.join('\n')).toContain('handing the event to the waiter');
  });

  test('without a table of deliveries (an older template), a second delivery of a request runs as a first one', async () => {
    // test/deliveries.test.ts: with the table, it answers as the first delivery did, in any Lambda environment.
    mq.on(DescribeUserCommand).rejects(notFound());
    const event = { ...createEvent(), RequestId: 'b7f3c1de-0000-4000-8000-000000000001' };
    const first = await run(event);
    mq.resetHistory();
    expect(await run(event)).toEqual(first);
    expect(mq).toHaveReceivedCommandTimes(CreateUserCommand, 1);
  });

  test('answers an event onEvent finished at once, asking nothing of AWS', async () => {
    mq.on(DescribeUserCommand).rejects(notFound());
    const response = await run(createEvent());
    mq.resetHistory();
    expect(await isComplete({ ...createEvent(), ...response }, lambdaContext())).toEqual({ IsComplete: true });
    expect(mq.commandCalls(DescribeBrokerCommand)).toHaveLength(0);
  });

  test('fails on a broker that stays in REBOOT_IN_PROGRESS longer than the wait, saying so', async () => {
    retryTiming.brokerWaitMs = 0;
    mq.on(DescribeUserCommand).rejects(badRequest('Broker is rebooting'));
    mq.on(DescribeBrokerCommand).resolvesOnce(RUNNING).resolves(REBOOTING);
    await expect(run(createEvent(), 5_300)).rejects.toThrow(
      /Broker is rebooting.*still REBOOT_IN_PROGRESS: retry once it is RUNNING/,
    );
    expect(mq).not.toHaveReceivedCommand(CreateUserCommand);
  });

  test('retries throttling answered with HTTP 400 (Secrets Manager, CloudFormation)', async () => {
    mq.on(DescribeUserCommand).rejects(notFound());
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
    mq.on(DescribeUserCommand).rejectsOnce(throttled()).rejects(notFound());
    mq.on(CreateUserCommand).rejectsOnce(serverError()).rejectsOnce(dropped()).resolves({});
    const response = await run(createEvent());
    expect(mq).toHaveReceivedCommandTimes(CreateUserCommand, 3);
    expect(mq).not.toHaveReceivedCommand(DeleteUserCommand);
    expect(response.PhysicalResourceId).toBe(physicalId({}, 'created'));
  });

  test('retries AccessDenied while IAM propagates, then succeeds', async () => {
    mq.on(DescribeUserCommand).rejects(notFound());
    mq.on(DescribeBrokerCommand).rejectsOnce(forbidden()).resolves(RUNNING);
    await run(createEvent());
    expect(mq).toHaveReceivedCommandTimes(DescribeBrokerCommand, 2);
    expect(mq).toHaveReceivedCommand(CreateUserCommand);
  });

  test('fails on AccessDenied that outlasts the propagation window', async () => {
    mq.on(DescribeBrokerCommand).rejects(forbidden());
    await expect(run(createEvent())).rejects.toThrow(
      /DescribeBroker on broker .* failed after \d+ attempts: not authorized \(ForbiddenException, HTTP 403\)/,
    );
  });

  test('fails on a hung call before its deadline, with a clear reason', async () => {
    mq.on(DescribeUserCommand).callsFake(hang);
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
    mq.on(DescribeUserCommand).rejects(notFound());
    secrets
      .on(GetSecretValueCommand)
      .resolves({ SecretString: JSON.stringify({ mq: 'Another-Passw0rd-123', password: 'not-this-one-XYZ' }) });
    await run(createEvent({ PasswordField: 'mq' }));
    expect(mq).toHaveReceivedCommandWith(CreateUserCommand, { Password: 'Another-Passw0rd-123' });
  });
});

describe('Update', () => {
  const before = { Groups: ['orders-consumers'] };
  const after = { Groups: GROUPS };

  test('updates in place with two MQ calls and the whole desired state, leaving the password alone', async () => {
    mq.on(DescribeUserCommand).resolves(live('UPDATE'));
    const response = await run(updateEvent(before, after));
    expectMqCalls({ DescribeUser: 1, UpdateUser: 1 });
    const input = mq.commandCalls(UpdateUserCommand)[0].args[0].input;
    expect(input).toEqual({ ...USER, ConsoleAccess: false, Groups: GROUPS, ReplicationUser: false });
    expect(secrets).not.toHaveReceivedCommand(GetSecretValueCommand);
    expect(response).toEqual({
      PhysicalResourceId: physicalId(before),
      Data: {
        Username: 'orders-service',
        BrokerId: BROKER_ID,
        PendingChange: 'UPDATE',
        StateDigest: expect.stringMatching(/^[0-9a-f]{32}$/),
      },
    });
  });

  test.each([
    ['a 0.1 physical ID', legacyPhysicalId()],
    ['an adopted user', physicalId({}, 'adopted')],
    ['an ID that records a previous one', physicalId({}, 'created', physicalId({ Username: 'orders-v0' }))],
  ])('returns the incoming physical ID of %s unchanged', async (_case, id) => {
    mq.on(DescribeUserCommand).resolves(live());
    const response = await run(updateEvent(before, after, id));
    expect(response.PhysicalResourceId).toBe(id);
    expect(mq).toHaveReceivedCommandTimes(UpdateUserCommand, 1);
    expect(mq).not.toHaveReceivedCommand(CreateUserCommand);
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
  ])('sets the password again when its %s changes, even when nothing else differs', async (_what, change) => {
    mq.on(DescribeUserCommand).resolves(holding());
    await run(updateEvent({ PasswordVersion: '1' }, { PasswordVersion: '1', ...change }));
    expect(mq).toHaveReceivedCommandWith(UpdateUserCommand, { ...USER, Password: PASSWORD });
  });

  describe('a rotated password (RotationEnabled)', () => {
    const STAGED = 'Staged-Passw0rd-for-Orders';
    const PREVIOUS = 'Previous-Passw0rd-for-Orders';
    const ALTERNATE = 'orders-service_clone';
    /** The secret's versions by staging label, as the rotation function leaves them. */
    function versions(byStage: Record<string, object>) {
      secrets.on(GetSecretValueCommand).callsFake(async (input: { VersionStage?: string }) => {
        const value = byStage[input.VersionStage ?? 'AWSCURRENT'];
        if (!value) {
          throw new ResourceNotFoundException({
            message: `Secrets Manager can't find the specified secret value for staging label: ${input.VersionStage}`,
            $metadata: { httpStatusCode: 400 },
          });
        }
        return { ARN: SECRET_ARN, SecretString: JSON.stringify(value) };
      });
    }
    const rotated = { RotationEnabled: true, PasswordVersion: '1' };

    afterEach(() => {
      for (const line of logs) expect(line).not.toContain(STAGED);
      for (const line of logs) expect(line).not.toContain(PREVIOUS);
    });

    test.each([
      ['passwordVersion', { PasswordVersion: '2' }],
      ['secret', { PasswordSecretArn: OTHER_SECRET_ARN }],
      ['field', { PasswordField: 'password' }],
    ])('never sets a new password when its %s changes: the rotation owns it', async (_what, change) => {
      versions({ AWSCURRENT: { username: 'orders-service', password: PASSWORD } });
      mq.on(DescribeUserCommand).resolves(holding());
      await run(updateEvent(rotated, { ...rotated, ...change }));
      expect(mq).not.toHaveReceivedCommand(UpdateUserCommand);
      expect(secrets).not.toHaveReceivedCommand(GetSecretValueCommand);
    });

    test('sends the staged password it has pending along with a groups change, never omitting it', async () => {
      // Amazon MQ may drop a pending password change when UpdateUser omits Password (undocumented).
      versions({
        MQUSER_SENT: { username: 'orders-service', password: STAGED, stagedFor: BROKER_ID },
        AWSCURRENT: { username: ALTERNATE, password: PASSWORD },
      });
      mq.on(DescribeUserCommand).resolves(holding({ Groups: ['something-else'] }));
      await run(updateEvent(rotated, rotated));
      expect(mq).toHaveReceivedCommandWith(UpdateUserCommand, { ...USER, Groups: GROUPS, Password: STAGED });
    });

    test('sends again the password a rotation sent this user while the deploy was writing', async () => {
      // The first read finds no password sent for this user (it holds the previous one); by the time the deploy
      // has written, a rotation has staged and sent a new one: the deploy's write would undo it.
      let reads = 0;
      secrets.on(GetSecretValueCommand).callsFake(async (input: { VersionStage?: string }) => {
        const stage = input.VersionStage ?? 'AWSCURRENT';
        if (stage === 'MQUSER_SENT') reads++;
        const byStage: Record<string, object> = {
          AWSCURRENT: { username: ALTERNATE, password: PASSWORD },
          AWSPREVIOUS: { username: 'orders-service', password: PREVIOUS },
          ...(reads > 1 ? { MQUSER_SENT: { username: 'orders-service', password: STAGED, stagedFor: BROKER_ID } } : {}),
        };
        if (!byStage[stage]) {
          throw new ResourceNotFoundException({ message: `no ${stage}`, $metadata: { httpStatusCode: 400 } });
        }
        return { ARN: SECRET_ARN, SecretString: JSON.stringify(byStage[stage]) };
      });
      mq.on(DescribeUserCommand).resolves(holding({ Groups: ['something-else'] }));
      await run(updateEvent(rotated, rotated));
      const passwords = mq.commandCalls(UpdateUserCommand).map((c) => c.args[0].input.Password);
      expect(passwords).toEqual([PREVIOUS, STAGED]);
      expect(logs.join('\n')).toContain('a rotation sent this user a new password meanwhile');
    });

    test('ignores a staged password sent to another broker and sends the one the previous credentials hold', async () => {
      versions({
        MQUSER_SENT: { username: 'orders-service', password: STAGED, stagedFor: OTHER_BROKER_ID },
        AWSCURRENT: { username: ALTERNATE, password: PASSWORD },
        AWSPREVIOUS: { username: 'orders-service', password: PREVIOUS },
      });
      mq.on(DescribeUserCommand).resolves(holding({ Groups: ['something-else'] }));
      await run(updateEvent(rotated, rotated));
      expect(mq).toHaveReceivedCommandWith(UpdateUserCommand, { ...USER, Password: PREVIOUS });
    });

    test('sends the current password when the current credentials name the user', async () => {
      versions({
        MQUSER_SENT: { username: ALTERNATE, password: STAGED, stagedFor: BROKER_ID },
        AWSCURRENT: { username: 'orders-service', password: PASSWORD },
      });
      mq.on(DescribeUserCommand).resolves(holding({ Groups: ['something-else'] }));
      await run(updateEvent(rotated, rotated));
      expect(mq).toHaveReceivedCommandWith(UpdateUserCommand, { ...USER, Password: PASSWORD });
    });

    test('sends the password both users were created with when no rotation has named the user yet', async () => {
      versions({ AWSCURRENT: { username: ALTERNATE, password: PASSWORD } });
      mq.on(DescribeUserCommand).resolves(holding({ Groups: ['something-else'] }));
      await run(updateEvent(rotated, rotated));
      expect(mq).toHaveReceivedCommandWith(UpdateUserCommand, { ...USER, Password: PASSWORD });
    });

    test('sets the current password when it creates a rotated user again (deleted out of band)', async () => {
      mq.on(DescribeUserCommand).rejects(notFound());
      await run(updateEvent(rotated, rotated));
      expect(mq).toHaveReceivedCommandWith(CreateUserCommand, { ...USER, Password: PASSWORD });
    });

    test('creates a rotated user again with the password a rotation sent it, never another (issue 15, finding 1)', async () => {
      // A rotation promotes the MQUSER_SENT version once the user is applied: created with AWSCURRENT's password,
      // the user would be applied with a password the promoted version does not hold.
      versions({
        MQUSER_SENT: { username: 'orders-service', password: STAGED, stagedFor: BROKER_ID },
        AWSCURRENT: { username: ALTERNATE, password: PASSWORD },
      });
      mq.on(DescribeUserCommand).rejects(notFound());
      await run(updateEvent(rotated, rotated));
      expect(mq).toHaveReceivedCommandWith(CreateUserCommand, { ...USER, Password: STAGED });
      expect(mq).not.toHaveReceivedCommandWith(CreateUserCommand, { Password: PASSWORD });
    });

    test('creates a rotated user (rotation turned back on) with the password a rotation sent it (issue 15, finding 1)', async () => {
      versions({
        MQUSER_SENT: { username: 'orders-service', password: STAGED, stagedFor: BROKER_ID },
        AWSCURRENT: { username: ALTERNATE, password: PASSWORD },
      });
      mq.on(DescribeUserCommand).rejects(notFound());
      await run(createEvent(rotated));
      expect(mq).toHaveReceivedCommandWith(CreateUserCommand, { ...USER, Password: STAGED });
    });

    test('adopts a rotated user with the password the labels say it holds, not the declared one (issue 15, finding 1)', async () => {
      versions({
        MQUSER_SENT: { username: 'orders-service', password: STAGED, stagedFor: BROKER_ID },
        AWSCURRENT: { username: ALTERNATE, password: PASSWORD },
      });
      mq.on(DescribeUserCommand).resolves(holding());
      await run(createEvent({ ...rotated, AdoptExisting: true }));
      expect(mq).toHaveReceivedCommandWith(UpdateUserCommand, { ...USER, Password: STAGED });
      expect(mq).not.toHaveReceivedCommand(CreateUserCommand);
    });

    test('creates a rotated user moved to another broker with the password a REBOOT rotation in flight sent it (issue 15, finding 1)', async () => {
      // A REBOOT rotation labels its pending version MQUSER_SENT (no stagedFor) and promotes it once the broker
      // (the tagged one: now the new broker) has applied the user.
      versions({
        MQUSER_SENT: { username: 'orders-service', password: STAGED },
        AWSCURRENT: { username: ALTERNATE, password: PASSWORD },
      });
      mq.on(DescribeUserCommand).rejects(notFound());
      await run(updateEvent({ ...rotated, BrokerId: OTHER_BROKER_ID }, rotated));
      expect(mq).toHaveReceivedCommandWith(CreateUserCommand, { ...USER, Password: STAGED });
    });

    test('fails turning rotation off while AWSCURRENT names the alternate, before writing anything (issue 15, finding 2)', async () => {
      versions({ AWSCURRENT: { username: ALTERNATE, password: PASSWORD } });
      mq.on(DescribeUserCommand).resolves(holding());
      await expect(run(updateEvent(rotated, { PasswordVersion: '1' }))).rejects.toThrow(
        /cannot turn rotation off for user "orders-service" on broker .*: AWSCURRENT of secret .* names its alternate "orders-service_clone", which this deploy would delete .*Nothing was deleted\. Rotate the secret until AWSCURRENT names "orders-service"/,
      );
      expect(mq).not.toHaveReceivedCommand(UpdateUserCommand);
      expect(mq).not.toHaveReceivedCommand(DeleteUserCommand);
    });

    test('turns rotation off when AWSCURRENT names the user itself', async () => {
      versions({ AWSCURRENT: { username: 'orders-service', password: PASSWORD } });
      mq.on(DescribeUserCommand).resolves(holding());
      const response = await run(updateEvent(rotated, { PasswordVersion: '1' }));
      expect(response.PhysicalResourceId).toBe(physicalId(rotated));
    });

    test('warns, never fails, when a rollback turns rotation off while AWSCURRENT names the alternate', async () => {
      stackStatus('UPDATE_ROLLBACK_IN_PROGRESS');
      versions({ AWSCURRENT: { username: ALTERNATE, password: PASSWORD } });
      mq.on(DescribeUserCommand).resolves(holding());
      await run(updateEvent(rotated, { PasswordVersion: '1' }));
      expect(warnings.join('\n')).toContain('rotation is turned off while AWSCURRENT names the alternate user');
    });

    test('fails a Create whose look at the labels after CreateUser fails, deleting the user it made', async () => {
      // Nothing else would: the Provider framework answers the Delete of a failed Create itself.
      let sentReads = 0;
      secrets.on(GetSecretValueCommand).callsFake(async (input: { VersionStage?: string }) => {
        const stage = input.VersionStage ?? 'AWSCURRENT';
        if (stage === 'MQUSER_SENT' && ++sentReads > 1) {
          throw Object.assign(new Error('the secret is scheduled for deletion'), {
            name: 'InvalidRequestException',
            $metadata: { httpStatusCode: 400 },
          });
        }
        if (stage !== 'AWSCURRENT') {
          throw new ResourceNotFoundException({ message: `no ${stage}`, $metadata: { httpStatusCode: 400 } });
        }
        return { ARN: SECRET_ARN, SecretString: JSON.stringify({ username: 'orders-service', password: PASSWORD }) };
      });
      mq.on(DescribeUserCommand).rejects(notFound());
      await expect(run(createEvent(rotated))).rejects.toThrow(/InvalidRequestException/);
      expect(mq).toHaveReceivedCommandTimes(CreateUserCommand, 1);
      expect(mq).toHaveReceivedCommandWith(DeleteUserCommand, USER);
      expect(warnings.join('\n')).toContain('the Create failed after its own CreateUser may have made the user');
    });

    test('restores the previous user of a rolled-back rename with the password it holds', async () => {
      stackStatus('UPDATE_ROLLBACK_IN_PROGRESS');
      versions({
        AWSCURRENT: { username: 'orders-v1', password: PASSWORD },
        AWSPREVIOUS: { username: 'orders-v1_clone', password: PREVIOUS },
      });
      const old = { Username: 'orders-v1', ...rotated };
      const current = physicalId({ Username: 'orders-service' }, 'created', physicalId(old));
      history(current);
      mq.on(DescribeUserCommand).resolves(holding({ Groups: ['something-else'] }));
      const response = await run(updateEvent(rotated, old, current));
      expect(response.PhysicalResourceId).toBe(physicalId(old));
      expect(mq).toHaveReceivedCommandWith(UpdateUserCommand, { Username: 'orders-v1', Password: PASSWORD });
    });
  });

  describe('writes only where something changes', () => {
    test('sends no UpdateUser when only adoptExisting changed and the user holds the declared state', async () => {
      mq.on(DescribeUserCommand).resolves(holding());
      const response = await run(
        updateEvent({ AdoptExisting: true }, { AdoptExisting: false }, physicalId({}, 'adopted')),
      );
      expectMqCalls({ DescribeUser: 1 });
      expect(secrets).not.toHaveReceivedAnyCommand();
      expect(response.PhysicalResourceId).toBe(physicalId({}, 'adopted'));
      expect(response.Data?.PendingChange).toBe('NONE');
    });

    test('sends UpdateUser to a user with a pending change even when its pending groups and console access match', async () => {
      // Pending carries no replication flag, and the top-level one may be the old value: unknown is written.
      mq.on(DescribeUserCommand).resolves({
        ...holding({ Groups: ['orders-consumers'] }),
        Pending: { PendingChange: 'UPDATE', ConsoleAccess: false, Groups: GROUPS },
      });
      const response = await run(updateEvent(before, after));
      expectMqCalls({ DescribeUser: 1, UpdateUser: 1 });
      expect(response.Data?.PendingChange).toBe('UPDATE');
    });

    test('sends no UpdateUser when the applied values, with no change pending, equal the desired ones', async () => {
      mq.on(DescribeUserCommand).resolves(holding({ ConsoleAccess: true, ReplicationUser: false }));
      const response = await run(updateEvent({}, { ConsoleAccess: true }));
      expectMqCalls({ DescribeUser: 1 });
      expect(response.Data?.PendingChange).toBe('NONE');
    });

    test('sends UpdateUser when the applied values match but the pending ones differ', async () => {
      mq.on(DescribeUserCommand).resolves({
        ...holding(),
        Pending: { PendingChange: 'UPDATE', ConsoleAccess: true, Groups: GROUPS },
      });
      await run(updateEvent({ ConsoleAccess: true }, {}));
      expectMqCalls({ DescribeUser: 1, UpdateUser: 1 });
      expect(mq).toHaveReceivedCommandWith(UpdateUserCommand, { ConsoleAccess: false });
    });

    test('keeps PendingChange CREATE when it writes to a user still pending CREATE', async () => {
      mq.on(DescribeUserCommand).resolves({
        ...USER,
        Pending: { PendingChange: 'CREATE', ConsoleAccess: false, Groups: ['orders-consumers'] },
      });
      const response = await run(updateEvent(before, after));
      expectMqCalls({ DescribeUser: 1, UpdateUser: 1 });
      expect(response.Data?.PendingChange).toBe('CREATE');
    });

    test('returns a StateDigest that follows the resolved state, not adoptExisting', async () => {
      mq.on(DescribeUserCommand).resolves(holding());
      const digestOf = async (next: object) =>
        (await run(updateEvent({ PasswordVersion: '1' }, { PasswordVersion: '1', ...next }))).Data?.StateDigest;
      const base = await digestOf({});
      expect(await digestOf({ AdoptExisting: true })).toBe(base);
      expect(await digestOf({ PasswordVersion: '2' })).not.toBe(base);
      expect(await digestOf({ Groups: ['orders-consumers'] })).not.toBe(base);
    });
  });

  test('creates the user again when it vanished out of band, keeping the physical ID', async () => {
    mq.on(DescribeUserCommand).rejects(notFound());
    const response = await run(updateEvent(before, after));
    expect(mq).toHaveReceivedCommandWith(CreateUserCommand, { ...USER, Password: PASSWORD, Groups: GROUPS });
    expect(mq).not.toHaveReceivedCommand(UpdateUserCommand);
    expect(response.PhysicalResourceId).toBe(physicalId(before));
  });

  test('fails an update to a username made only of dots before any AWS call', async () => {
    await expect(run(updateEvent({}, { Username: '..' }))).rejects.toThrow('and not only dots');
    expect(mq).not.toHaveReceivedAnyCommand();
  });

  describe('replacement (username or broker changed)', () => {
    test('replaces the user when the username changes, recording the previous physical ID', async () => {
      mq.on(DescribeUserCommand).rejects(notFound());
      const response = await run(updateEvent({}, { Username: 'orders-v2' }));
      expect(mq).toHaveReceivedCommandWith(CreateUserCommand, {
        BrokerId: BROKER_ID,
        Username: 'orders-v2',
        Password: PASSWORD,
      });
      expectMqCalls({ DescribeBroker: 1, DescribeUser: 1, CreateUser: 1 });
      expect(response.PhysicalResourceId).toBe(
        `${BROKER_ID}/orders-v2?owner=created&previous=${encodeURIComponent(`${BROKER_ID}/orders-service?owner=created`)}`,
      );
    });

    test('records the previous physical ID one level deep', async () => {
      mq.on(DescribeUserCommand).rejects(notFound());
      const incoming = physicalId({}, 'created', physicalId({ Username: 'orders-v0' }));
      const response = await run(updateEvent({}, { Username: 'orders-v2' }, incoming));
      expect(response.PhysicalResourceId).toBe(physicalId({ Username: 'orders-v2' }, 'created', physicalId()));
    });

    test('replaces the user when the broker changes', async () => {
      mq.on(DescribeUserCommand).rejects(notFound());
      const response = await run(updateEvent({}, { BrokerId: OTHER_BROKER_ID }));
      expect(mq).toHaveReceivedCommandWith(DescribeBrokerCommand, { BrokerId: OTHER_BROKER_ID });
      expect(mq).toHaveReceivedCommandWith(CreateUserCommand, {
        BrokerId: OTHER_BROKER_ID,
        Username: 'orders-service',
      });
      expect(mq).not.toHaveReceivedCommand(DeleteUserCommand);
      expect(response.PhysicalResourceId).toBe(physicalId({ BrokerId: OTHER_BROKER_ID }, 'created', physicalId()));
    });

    test('adopts an existing user in a rename with adoptExisting, recording owner=adopted', async () => {
      mq.on(DescribeUserCommand).resolves(live());
      const response = await run(updateEvent({}, { Username: 'orders-v2', AdoptExisting: true }));
      expect(mq).toHaveReceivedCommandWith(UpdateUserCommand, { Username: 'orders-v2', Password: PASSWORD });
      expect(response.PhysicalResourceId).toBe(physicalId({ Username: 'orders-v2' }, 'adopted', physicalId()));
    });

    test.each([
      ['created', physicalId()],
      ['adopted', physicalId({}, 'adopted')],
      ['a 0.1 ID', legacyPhysicalId()],
    ])(
      'converges the old user in the rollback of a rename that recorded it (%s), returning that physical ID',
      async (_case, previous) => {
        // Forward: orders-service -> orders-v2 succeeded, then the stack failed. The rollback swaps the
        // properties; orders-service still exists, because its cleanup Delete never ran.
        stackStatus('UPDATE_ROLLBACK_IN_PROGRESS');
        mq.on(DescribeUserCommand).resolves(live());
        const incoming = physicalId({ Username: 'orders-v2' }, 'created', previous);
        history(incoming);
        const response = await run(updateEvent({ Username: 'orders-v2' }, {}, incoming));
        expect(mq).toHaveReceivedCommandWith(UpdateUserCommand, { ...USER, Password: PASSWORD });
        expect(mq).not.toHaveReceivedCommand(CreateUserCommand);
        expect(mq).not.toHaveReceivedCommand(DeleteUserCommand);
        expect(response.PhysicalResourceId).toBe(previous);
        expect(logs.join('\n')).toContain('rollback: restoring the user this resource held before');
      },
    );

    test('touches nothing when the recorded previous user is stale: the move completed in an earlier operation', async () => {
      // A rename orders-service -> orders-v2 completed long ago; someone else made orders-service since. Now a
      // forward rename back runs while the status already says rollback (a sibling failed): no proof.
      stackStatus('UPDATE_ROLLBACK_IN_PROGRESS');
      mq.on(DescribeUserCommand).resolves(live());
      const incoming = physicalId({ Username: 'orders-v2' }, 'created', physicalId());
      cloudFormation.on(DescribeStackEventsCommand).resolves({
        StackEvents: [
          stackEvent(LOGICAL_ID, incoming, 'UPDATE_IN_PROGRESS'),
          stackEvent('Orders', STACK_ID, 'UPDATE_IN_PROGRESS', 'AWS::CloudFormation::Stack'),
          stackEvent(LOGICAL_ID, incoming, 'UPDATE_COMPLETE'), // the earlier operation
        ],
      });
      const response = await run(updateEvent({ Username: 'orders-v2' }, {}, incoming));
      expect(response.PhysicalResourceId).toBe(incoming);
      expect(mq).not.toHaveReceivedCommand(UpdateUserCommand);
      expect(mq).not.toHaveReceivedCommand(CreateUserCommand);
      expect(mq).not.toHaveReceivedCommand(DeleteUserCommand);
    });

    test('reads the stack history page by page for the proof', async () => {
      stackStatus('UPDATE_ROLLBACK_IN_PROGRESS');
      mq.on(DescribeUserCommand).resolves(live());
      const incoming = physicalId({ Username: 'orders-v2' }, 'created', physicalId());
      cloudFormation
        .on(DescribeStackEventsCommand)
        .resolvesOnce({ StackEvents: [stackEvent('Sibling', 'x', 'UPDATE_FAILED')], NextToken: 'page-2' })
        .resolves({ StackEvents: [stackEvent(LOGICAL_ID, incoming, 'UPDATE_COMPLETE')] });
      const response = await run(updateEvent({ Username: 'orders-v2' }, {}, incoming));
      expect(response.PhysicalResourceId).toBe(physicalId());
      expect(cloudFormation).toHaveReceivedCommandWith(DescribeStackEventsCommand, { NextToken: 'page-2' });
    });

    test('answers a failed rollback of its own rename with the previous ID, so that the cleanup deletes the new user', async () => {
      stackStatus('UPDATE_ROLLBACK_IN_PROGRESS');
      mq.on(DescribeBrokerCommand).resolves({ EngineType: 'ACTIVEMQ', BrokerState: 'REBOOT_IN_PROGRESS' });
      mq.on(DescribeUserCommand).rejects(badRequest('Broker is rebooting'));
      Object.assign(retryTiming, { brokerWaitMs: 0 });
      const incoming = physicalId({ Username: 'orders-v2' }, 'created', physicalId());
      history(incoming);
      const response = await run(updateEvent({ Username: 'orders-v2' }, {}, incoming));
      expect(response.PhysicalResourceId).toBe(physicalId());
      expect(logs.join('\n')).toContain('rollback: could not restore the user');
      // The proof is read once, though the restore and the answer after its failure both need it.
      expect(cloudFormation).toHaveReceivedCommandTimes(DescribeStackEventsCommand, 1);
    });

    test.each([
      ['records no previous ID', physicalId({ Username: 'orders-v2' })],
      [
        'records another previous user',
        physicalId({ Username: 'orders-v2' }, 'created', physicalId({ Username: 'orders-v1' })),
      ],
      ['is a 0.1 ID', legacyPhysicalId({ Username: 'orders-v2' })],
    ])(
      'touches nothing in a rollback whose incoming ID %s, answering SUCCESS with that ID',
      async (_case, incoming) => {
        stackStatus('UPDATE_ROLLBACK_IN_PROGRESS');
        mq.on(DescribeUserCommand).resolves(live());
        const response = await run(updateEvent({ Username: 'orders-v2' }, {}, incoming));
        expect(mq).not.toHaveReceivedCommand(UpdateUserCommand);
        expect(mq).not.toHaveReceivedCommand(CreateUserCommand);
        expect(mq).not.toHaveReceivedCommand(DeleteUserCommand);
        expect(response.PhysicalResourceId).toBe(incoming);
        expect(warnings.join('\n')).toContain('nothing proves it was ever this resource');
      },
    );

    test('fails a rename onto a user it does not own, leaving that user untouched', async () => {
      mq.on(DescribeUserCommand).resolves(live());
      await expect(run(updateEvent({}, { Username: 'someone-else' }))).rejects.toThrow(
        `user "someone-else" already exists on broker ${BROKER_ID} and MqUser left it untouched`,
      );
      expect(mq).not.toHaveReceivedCommand(UpdateUserCommand);
      expect(mq).not.toHaveReceivedCommand(CreateUserCommand);
      expect(mq).not.toHaveReceivedCommand(DeleteUserCommand);
    });

    test('leaves a foreign user untouched on a forward rename while DescribeStacks already says rollback', async () => {
      // A sibling failed or CancelUpdateStack ran: the status says rollback while this forward update still runs.
      stackStatus('UPDATE_ROLLBACK_IN_PROGRESS');
      mq.on(DescribeUserCommand).resolves(live());
      const response = await run(updateEvent({}, { Username: 'someone-else' }));
      expect(response.PhysicalResourceId).toBe(physicalId());
      expect(mq).not.toHaveReceivedCommand(UpdateUserCommand);
      expect(mq).not.toHaveReceivedCommand(CreateUserCommand);
      expect(mq).not.toHaveReceivedCommand(DeleteUserCommand);
    });

    test('fails a forward rename back onto its previous user: proof needs a rollback', async () => {
      mq.on(DescribeUserCommand).resolves(live());
      const incoming = physicalId({ Username: 'orders-v2' }, 'created', physicalId());
      await expect(run(updateEvent({ Username: 'orders-v2' }, {}, incoming))).rejects.toThrow(
        `user "orders-service" already exists on broker ${BROKER_ID}`,
      );
      expect(mq).not.toHaveReceivedCommand(UpdateUserCommand);
    });
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
    const response = await run(updateEvent({ PasswordSecretArn: OTHER_SECRET_ARN, ...after }, before, physicalId()));
    const input = mq.commandCalls(UpdateUserCommand)[0].args[0].input;
    expect(input).toEqual({ ...USER, ConsoleAccess: false, Groups: ['orders-consumers'], ReplicationUser: false });
    expect(response.PhysicalResourceId).toBe(physicalId());
    const warning = warnings.find((line) => line.includes('could not restore the password'));
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

  describe('rollbacks never wedge', () => {
    function brokerKeepsRebooting() {
      mq.on(DescribeUserCommand).rejects(badRequest('Broker is rebooting'));
      mq.on(DescribeBrokerCommand).resolves(REBOOTING);
    }

    test('answers SUCCESS within the bounded wait in a rollback whose broker keeps refusing calls, with a warning', async () => {
      retryTiming.brokerWaitMs = 0;
      stackStatus('UPDATE_ROLLBACK_IN_PROGRESS');
      brokerKeepsRebooting();
      const started = Date.now();
      const response = await run(updateEvent(after, before), 60_000);
      expect(Date.now() - started).toBeLessThan(2_000);
      expect(response.PhysicalResourceId).toBe(physicalId(after));
      expect(response.Data?.PendingChange).toBe('UNKNOWN');
      expect(mq).not.toHaveReceivedCommand(UpdateUserCommand);
      expect(warnings.join('\n')).toMatch(/rollback: could not restore the user.*still REBOOT_IN_PROGRESS/);
    });

    test('fails a forward update whose broker keeps refusing calls until the deadline', async () => {
      retryTiming.brokerWaitMs = 0;
      brokerKeepsRebooting();
      await expect(run(updateEvent(before, after), 5_600)).rejects.toThrow(
        /Broker is rebooting.*still REBOOT_IN_PROGRESS: retry once it is RUNNING/,
      );
    });

    test('answers SUCCESS with a warning in a rollback whose revival of a user pending DELETE does not hold', async () => {
      stackStatus('UPDATE_ROLLBACK_IN_PROGRESS');
      mq.on(DescribeUserCommand).resolves(live('DELETE'));
      mq.on(CreateUserCommand).rejects(badRequest('User is pending deletion'));
      const response = await run(updateEvent(after, before));
      expect(response.PhysicalResourceId).toBe(physicalId(after));
      expect(warnings.join('\n')).toMatch(/rollback: could not restore the user.*Reboot the broker/);
    });

    test('fails a forward update whose revival of a user pending DELETE does not hold', async () => {
      mq.on(DescribeUserCommand).resolves(live('DELETE'));
      mq.on(CreateUserCommand).rejects(badRequest('User is pending deletion'));
      await expect(run(updateEvent(before, after))).rejects.toThrow(/still pending DELETE.*Reboot the broker/);
    });
  });
});

describe('Delete', () => {
  test('deletes the user named by the physical ID, whatever the properties say, with one MQ call', async () => {
    const response = await run(deleteEvent(physicalId(), { Username: 'something-else' }));
    expect(mq).toHaveReceivedCommandWith(DeleteUserCommand, USER);
    expectMqCalls({ DeleteUser: 1 });
    expect(cloudFormation).toHaveReceivedCommandWith(ListStackResourcesCommand, { StackName: STACK_ID });
    expect(response.PhysicalResourceId).toBe(physicalId());
    expect(secrets).not.toHaveReceivedAnyCommand();
  });

  test.each([
    ['the user is gone', 'username'],
    ['the broker is gone', 'broker-id'],
  ])('succeeds when %s', async (_case, attribute) => {
    mq.on(DeleteUserCommand).rejects(notFound(attribute));
    const response = await run(deleteEvent(physicalId()));
    expectMqCalls({ DeleteUser: 1 });
    expect(response.PhysicalResourceId).toBe(physicalId());
    expect(logs.join('\n')).toContain('nothing to delete: the user or its broker is already gone');
  });

  describe('ownership', () => {
    test.each(['ROLLBACK_IN_PROGRESS', 'UPDATE_ROLLBACK_IN_PROGRESS', 'UPDATE_ROLLBACK_COMPLETE_CLEANUP_IN_PROGRESS'])(
      'keeps an adopted user while the stack is in %s, without a call to Amazon MQ',
      async (status) => {
        stackStatus(status);
        const response = await run(deleteEvent(physicalId({}, 'adopted')));
        expectMqCalls({});
        expect(response.PhysicalResourceId).toBe(physicalId({}, 'adopted'));
        expect(logs.join('\n')).toContain('not deleting the user: the user was adopted');
      },
    );

    test('keeps an adopted user when the stack status cannot be read', async () => {
      cloudFormation.on(DescribeStacksCommand).rejects(validationError('Stack does not exist'));
      await run(deleteEvent(physicalId({}, 'adopted')));
      expectMqCalls({});
    });

    test.each(['ROLLBACK_IN_PROGRESS', 'UPDATE_ROLLBACK_COMPLETE_CLEANUP_IN_PROGRESS'])(
      'deletes, in %s, a user this resource created, even with adoptExisting set',
      async (status) => {
        // The adoptExisting user did not exist before: the reboot may have cleared its pending CREATE since.
        stackStatus(status);
        await run(deleteEvent(physicalId({}, 'created'), { AdoptExisting: true }));
        expectMqCalls({ DeleteUser: 1 });
      },
    );

    test('deletes a user it created when the stack status cannot be read', async () => {
      cloudFormation.on(DescribeStacksCommand).rejects(validationError('Stack does not exist'));
      await run(deleteEvent(physicalId()));
      expectMqCalls({ DeleteUser: 1 });
    });

    test.each(['DELETE_IN_PROGRESS', 'UPDATE_COMPLETE_CLEANUP_IN_PROGRESS', 'UPDATE_IN_PROGRESS'])(
      'deletes an adopted user outside a rollback (%s): the user declared its removal',
      async (status) => {
        stackStatus(status);
        await run(deleteEvent(physicalId({}, 'adopted')));
        expectMqCalls({ DeleteUser: 1 });
      },
    );

    test('reads a 0.1 physical ID with adoptExisting as adopted: a rollback keeps the user', async () => {
      stackStatus('ROLLBACK_IN_PROGRESS');
      await run(deleteEvent(legacyPhysicalId(), { AdoptExisting: true }));
      expectMqCalls({});
    });

    test('reads a 0.1 physical ID without adoptExisting as created: a rollback deletes the user', async () => {
      stackStatus('ROLLBACK_IN_PROGRESS');
      await run(deleteEvent(legacyPhysicalId()));
      expectMqCalls({ DeleteUser: 1 });
      expect(mq).toHaveReceivedCommandWith(DeleteUserCommand, USER);
    });
  });

  describe('a user another resource of the stack holds', () => {
    const swapped = physicalId({}, 'adopted', physicalId({ Username: 'billing-service' }));

    test('keeps the user another MqUser of the stack now holds (a swap)', async () => {
      stackStatus('UPDATE_COMPLETE_CLEANUP_IN_PROGRESS');
      stackResources([
        userResource(LOGICAL_ID, physicalId({ Username: 'billing-service' }, 'adopted', physicalId())),
        userResource('BillingService', swapped),
      ]);
      await run(deleteEvent(physicalId()));
      expectMqCalls({});
      expect(logs.join('\n')).toContain('resource BillingService of this stack now holds the user');
    });

    test('finds the holder on a later page of ListStackResources', async () => {
      stackStatus('UPDATE_COMPLETE_CLEANUP_IN_PROGRESS');
      stackResources(
        [
          {
            LogicalResourceId: 'Broker',
            PhysicalResourceId: BROKER_ID,
            ResourceType: 'AWS::AmazonMQ::Broker',
          } as never,
        ],
        [userResource('BillingService', swapped)],
      );
      await run(deleteEvent(physicalId()));
      expect(cloudFormation).toHaveReceivedCommandWith(ListStackResourcesCommand, { NextToken: 'page-1' });
      expectMqCalls({});
    });

    test('keeps the user that another resource adopted under an identical physical ID (a move within the stack)', async () => {
      // Both the old and the new resource adopted the user in a Create: their physical IDs are the same string.
      stackStatus('UPDATE_COMPLETE_CLEANUP_IN_PROGRESS');
      stackResources([userResource('MovedOrdersService', physicalId({}, 'adopted'), 'CREATE_COMPLETE')]);
      await run(deleteEvent(physicalId({}, 'adopted')));
      expectMqCalls({});
    });

    test('keeps the user a resource holds under a 0.1 ID identical to the one deleted', async () => {
      stackStatus('UPDATE_COMPLETE_CLEANUP_IN_PROGRESS');
      stackResources([userResource('MovedOrdersService', legacyPhysicalId())]);
      await run(deleteEvent(legacyPhysicalId()));
      expectMqCalls({});
    });

    test.each([
      ['on another broker', userResource('Other', physicalId({ BrokerId: OTHER_BROKER_ID }, 'adopted'))],
      ['with another username', userResource('Other', physicalId({ Username: 'orders-v2' }))],
      ['already deleted', userResource('Other', physicalId({}, 'adopted'), 'DELETE_COMPLETE')],
      [
        'with the failed-Create marker',
        userResource('Other', 'AWSCDK::CustomResourceProviderFramework::CREATE_FAILED'),
      ],
      [
        'of another type',
        { ...userResource('Other', physicalId()), ResourceType: 'Custom::SomethingElse' } as StackResourceSummary,
      ],
    ])('deletes the user when the only other resource naming it is %s', async (_case, resource) => {
      stackStatus('UPDATE_COMPLETE_CLEANUP_IN_PROGRESS');
      stackResources([resource]);
      await run(deleteEvent(physicalId()));
      expectMqCalls({ DeleteUser: 1 });
    });

    test('keeps the user when another resource naming it is shown DELETE_IN_PROGRESS in a cleanup phase', async () => {
      // What ListStackResources shows for a resource whose replaced physical resource is being deleted is
      // undocumented: a swap partner may show DELETE_IN_PROGRESS while it still holds the user.
      stackStatus('UPDATE_COMPLETE_CLEANUP_IN_PROGRESS');
      stackResources([userResource('Other', physicalId({}, 'adopted'), 'DELETE_IN_PROGRESS')]);
      await run(deleteEvent(physicalId()));
      expectMqCalls({});
    });

    test('deletes the user when the stack itself is being deleted, whatever another deleting resource shows', async () => {
      stackStatus('DELETE_IN_PROGRESS');
      stackResources([userResource('Other', physicalId({}, 'adopted'), 'DELETE_IN_PROGRESS')]);
      await run(deleteEvent(physicalId()));
      expectMqCalls({ DeleteUser: 1 });
    });

    test('keeps the user when the stack resources cannot be read during a rollback', async () => {
      stackStatus('ROLLBACK_IN_PROGRESS');
      cloudFormation.on(ListStackResourcesCommand).rejects(validationError('Rate of reads exceeded quota'));
      const response = await run(deleteEvent(physicalId()));
      expectMqCalls({});
      expect(response.PhysicalResourceId).toBe(physicalId());
      expect(warnings.join('\n')).toContain("could not read the stack's resources");
    });

    test('in a cleanup phase, reads the stack again through the waiter rather than fail, deleting nothing', async () => {
      stackStatus('UPDATE_COMPLETE_CLEANUP_IN_PROGRESS');
      cloudFormation.on(ListStackResourcesCommand).rejects(validationError('Rate of reads exceeded quota'));
      const handedOff: HandedOff = await run(deleteEvent(physicalId()));
      expect(handedOff[WAITING_FIELD]).toMatchObject({ physicalResourceId: physicalId() });
      expect(handedOff[WAITING_FIELD]?.brokerId).toBeUndefined();
      expectMqCalls({});
    });

    test('in a cleanup phase, says after the wait that the user stays and what to do, never "retry"', async () => {
      retryTiming.brokerWaitMs = 0;
      stackStatus('UPDATE_COMPLETE_CLEANUP_IN_PROGRESS');
      cloudFormation.on(ListStackResourcesCommand).rejects(validationError('Rate of reads exceeded quota'));
      const failure = run(deleteEvent(physicalId()));
      await expect(failure).rejects.toThrow(
        `not deleting user "orders-service" on broker ${BROKER_ID}: the stack's resources cannot be read`,
      );
      await expect(failure).rejects.toThrow(/CloudFormation does not retry a Delete of its cleanup phase/);
      // The stack ends UPDATE_COMPLETE all the same: the marked line sets off the stack's alarm.
      expect(warnings.join('\n')).toMatch(new RegExp(`cleanup: the user was not deleted.*${UNFINISHED_WORK_MARKER}`));
      expectMqCalls({});
    });

    test('fails a stack deletion that cannot read the stack, which can be retried, deleting nothing', async () => {
      stackStatus('DELETE_IN_PROGRESS');
      cloudFormation.on(ListStackResourcesCommand).rejects(validationError('Rate of reads exceeded quota'));
      await expect(run(deleteEvent(physicalId()))).rejects.toThrow(/cannot be read.*; retry the deletion/);
      // DELETE_FAILED says so itself: no alarm.
      expect(warnings.join('\n')).not.toContain(UNFINISHED_WORK_MARKER);
      expectMqCalls({});
    });

    test('a Delete that can read neither the stack status nor its resources keeps the user and sets off the alarm', async () => {
      cloudFormation.on(DescribeStacksCommand).rejects(validationError('Rate of reads exceeded quota'));
      cloudFormation.on(ListStackResourcesCommand).rejects(validationError('Rate of reads exceeded quota'));
      expect(await run(deleteEvent(physicalId()))).toEqual({ PhysicalResourceId: physicalId() });
      expect(warnings.join('\n')).toMatch(
        new RegExp(`not deleting the user: the stack's resources cannot be read.*${UNFINISHED_WORK_MARKER}`),
      );
      expectMqCalls({});
    });

    test('a user another resource holds is kept quietly, even with the stack status unreadable', async () => {
      cloudFormation.on(DescribeStacksCommand).rejects(validationError('Rate of reads exceeded quota'));
      stackResources([
        userResource(LOGICAL_ID, physicalId({ Username: 'billing-service' }, 'adopted', physicalId())),
        userResource('BillingService', swapped),
      ]);
      await run(deleteEvent(physicalId()));
      expect(logs.join('\n')).toContain('resource BillingService of this stack now holds the user');
      expect(warnings.join('\n')).not.toContain(UNFINISHED_WORK_MARKER);
      expectMqCalls({});
    });
  });

  describe('nested stacks', () => {
    test('treats a nested stack deleted while its root rolls back as a rollback: keeps an adopted user', async () => {
      nestedStackDeletedWhileRootIs('UPDATE_ROLLBACK_IN_PROGRESS');
      await run(deleteEvent(physicalId({}, 'adopted')));
      expect(cloudFormation).toHaveReceivedCommandWith(DescribeStacksCommand, { StackName: ROOT_STACK_ID });
      expectMqCalls({});
    });

    test('deletes an adopted user of a nested stack deleted while its root is not rolling back', async () => {
      nestedStackDeletedWhileRootIs('UPDATE_IN_PROGRESS');
      await run(deleteEvent(physicalId({}, 'adopted')));
      expectMqCalls({ DeleteUser: 1 });
    });

    test('keeps an adopted user of a nested stack deleted while its root status cannot be read', async () => {
      nestedStackDeletedWhileRootIs(validationError('Access to the root stack denied'));
      await run(deleteEvent(physicalId({}, 'adopted')));
      expectMqCalls({});
    });

    test('does not look up a root that is the stack itself', async () => {
      stackStatus('DELETE_IN_PROGRESS', STACK_ID);
      await run(deleteEvent(physicalId({}, 'adopted')));
      expect(cloudFormation).toHaveReceivedCommandTimes(DescribeStacksCommand, 1);
      expectMqCalls({ DeleteUser: 1 });
    });
  });

  describe('rollbacks never wedge', () => {
    test('answers SUCCESS within the bounded wait when the broker keeps refusing DeleteUser in a rollback', async () => {
      retryTiming.brokerWaitMs = 0;
      stackStatus('ROLLBACK_IN_PROGRESS');
      mq.on(DeleteUserCommand).rejects(badRequest('Broker is rebooting'));
      mq.on(DescribeBrokerCommand).resolves(REBOOTING);
      const started = Date.now();
      const response = await run(deleteEvent(physicalId()), 60_000);
      expect(Date.now() - started).toBeLessThan(2_000);
      expect(response.PhysicalResourceId).toBe(physicalId());
      expect(warnings.join('\n')).toContain('rollback: could not delete the user');
    });

    test('fails a Delete outside a rollback whose broker keeps refusing DeleteUser', async () => {
      retryTiming.brokerWaitMs = 0;
      stackStatus('DELETE_IN_PROGRESS');
      mq.on(DeleteUserCommand).rejects(badRequest('Broker is rebooting'));
      mq.on(DescribeBrokerCommand).resolves(REBOOTING);
      await expect(run(deleteEvent(physicalId()), 5_600)).rejects.toThrow(/still REBOOT_IN_PROGRESS/);
    });
  });

  test.each([
    ['the Provider framework marker of a failed Create', 'AWSCDK::CustomResourceProviderFramework::CREATE_FAILED'],
    ['an ID CloudFormation made up', 'Orders-OrdersService-1ABCDEFGHIJ'],
    ['a username of dots', `${BROKER_ID}/..`],
    ['a username of dots with an owner', `${BROKER_ID}/...?owner=created`],
    ['an unknown owner', `${BROKER_ID}/orders-service?owner=someone`],
  ])('does nothing for %s', async (_case, id) => {
    const response = await run(deleteEvent(id));
    expect(mq).not.toHaveReceivedAnyCommand();
    expect(response.PhysicalResourceId).toBe(id);
  });
});

describe('serves its own stack only', () => {
  test.each([
    ['Create', createEvent()],
    ['Update', updateEvent({}, { Groups: [] })],
    ['Delete', deleteEvent(physicalId())],
  ])('fails a %s event of another stack without any AWS call', async (_type, event) => {
    process.env.CDK_MQ_USER_STACK_ID = STACK_ID;
    stackStatus('UPDATE_ROLLBACK_IN_PROGRESS'); // a rollback must not turn the refusal into SUCCESS
    await expect(run({ ...event, StackId: OTHER_STACK_ID })).rejects.toThrow(
      `refused an event of stack ${OTHER_STACK_ID}: this function serves only stack ${STACK_ID}`,
    );
    expect(mq).not.toHaveReceivedAnyCommand();
    expect(secrets).not.toHaveReceivedAnyCommand();
    expect(cloudFormation).not.toHaveReceivedAnyCommand();
  });

  test('accepts an event of its own stack', async () => {
    process.env.CDK_MQ_USER_STACK_ID = STACK_ID;
    mq.on(DescribeUserCommand).rejects(notFound());
    await run(createEvent());
    expect(mq).toHaveReceivedCommandTimes(CreateUserCommand, 1);
  });

  test.each([
    ['Create', createEvent()],
    ['Update', updateEvent({}, { Groups: [] })],
    ['Delete', deleteEvent(physicalId())],
  ])('refuses a %s event when the variable is unset (fail closed), without any AWS call', async (_type, event) => {
    delete process.env.CDK_MQ_USER_STACK_ID;
    await expect(run(event)).rejects.toThrow(
      `refused an event of stack ${STACK_ID}: this function has no CDK_MQ_USER_STACK_ID in its environment`,
    );
    expect(mq).not.toHaveReceivedAnyCommand();
    expect(secrets).not.toHaveReceivedAnyCommand();
    expect(cloudFormation).not.toHaveReceivedAnyCommand();
  });
});

describe('acts only on what CloudFormation is doing now (the proof)', () => {
  const ADMIN = { BrokerId: OTHER_BROKER_ID, Username: 'admin' };
  /** The issue's forged Create: adopt `admin` on another team's broker with a secret the attacker chose. */
  const forgedCreate = () => createEvent({ ...ADMIN, AdoptExisting: true, PasswordSecretArn: OTHER_SECRET_ARN });
  /** The issue's forged Delete: any user of any broker, claimed as made by this handler. */
  const forgedDelete = () => deleteEvent(`${OTHER_BROKER_ID}/admin?owner=created`);

  function cloudFormationShows(type: string, status: string, physical?: string, logicalId = LOGICAL_ID) {
    cloudFormation.on(DescribeStackResourceCommand).resolves(resourceDetail(logicalId, type, status, physical));
  }

  function expectNothingWritten() {
    expect(mq).not.toHaveReceivedAnyCommand();
    expect(secrets).not.toHaveReceivedAnyCommand();
  }

  beforeEach(() => {
    mq.on(DescribeUserCommand).resolves(holding());
  });

  test.each([
    ['the forged Create of finding 1, while the resource is idle', forgedCreate(), 'UPDATE_COMPLETE', physicalId()],
    ['the forged Delete of finding 2, while the resource is idle', forgedDelete(), 'UPDATE_COMPLETE', physicalId()],
    ['a forged Update while the resource is idle', updateEvent({}, { Groups: [] }), 'UPDATE_COMPLETE', physicalId()],
    ['a Create while CloudFormation updates the resource', forgedCreate(), 'UPDATE_IN_PROGRESS', physicalId()],
    ['a Delete while CloudFormation creates the resource', forgedDelete(), 'CREATE_IN_PROGRESS', undefined],
    ['a Create while the stack deletes the resource', forgedCreate(), 'DELETE_IN_PROGRESS', physicalId()],
    ['an Update of a physical ID the stack never held', updateEvent(ADMIN, ADMIN), 'UPDATE_IN_PROGRESS', physicalId()],
    ['a Delete that the stack deletes with another ID', forgedDelete(), 'DELETE_IN_PROGRESS', physicalId()],
  ])('refuses %s, writing nothing', async (_case, event, status, physical) => {
    cloudFormationShows('Custom::MqUser', status, physical);
    stackStatus('UPDATE_ROLLBACK_IN_PROGRESS'); // a rollback must not turn the refusal into SUCCESS
    cloudFormation.on(DescribeStackEventsCommand).resolves({
      StackEvents: [stackEvent('Orders', STACK_ID, 'UPDATE_COMPLETE', 'AWS::CloudFormation::Stack')],
    });
    await expect(runUnproven(event)).rejects.toThrow(
      /^refused a (Create|Update|Delete) of OrdersService .*CloudFormation is not working on it now/,
    );
    expectNothingWritten();
  });

  test("refuses forged input to the users' waiter, whatever it claims the first delivery did", async () => {
    // Whoever may start the waiter's state machine chooses its input: a Create "of ours" that CloudFormation
    // finished long ago must not converge a foreign user as its own, nor stretch the wait from a future start.
    cloudFormationShows('Custom::MqUser', 'CREATE_COMPLETE', physicalId());
    const forged = {
      ...forgedCreate(),
      PhysicalResourceId: 'AWSCDK::CustomResourceProviderFramework::CREATE_FAILED', // what onEvent hands a waiting Create
      [WAITING_FIELD]: { since: Date.now() + 3_600_000, ownCreate: true },
    };
    await expect(isComplete(forged, lambdaContext())).rejects.toThrow(
      /^refused a Create of OrdersService .*CloudFormation is not working on it now/,
    );
    expectNothingWritten();
  });

  test.each([
    ['another type of the same stack', 'AWS::SNS::Topic'],
    ['the reboot resource', 'Custom::MqBrokerReboot'],
    ["a nested stack's resource", 'AWS::CloudFormation::Stack'],
  ])('refuses an event that names %s, even while CloudFormation works on it', async (_case, type) => {
    cloudFormationShows(type, 'DELETE_IN_PROGRESS', physicalId());
    await expect(runUnproven(deleteEvent(physicalId()))).rejects.toThrow(`it is a ${type}, not a Custom::MqUser`);
    expectNothingWritten();
  });

  test('refuses an event whose logical ID the stack does not hold (CloudFormation answers ValidationError)', async () => {
    await expect(runUnproven(deleteEvent(physicalId(), {}, 'NoSuchResource'))).rejects.toThrow(
      'CloudFormation answers: DescribeStackResource  failed: Resource NoSuchResource does not exist',
    );
    expectNothingWritten();
  });

  test("refuses an event of a nested stack's ID (or any other stack) before reading anything", async () => {
    await expect(runUnproven({ ...forgedDelete(), StackId: ROOT_STACK_ID })).rejects.toThrow(
      `refused an event of stack ${ROOT_STACK_ID}: this function serves only stack ${STACK_ID}`,
    );
    expect(cloudFormation).not.toHaveReceivedAnyCommand();
    expectNothingWritten();
  });

  test('reads the proof from its own stack, by the logical ID of the event, once per event', async () => {
    await run(updateEvent({}, { Groups: [] }));
    expect(cloudFormation).toHaveReceivedCommandTimes(DescribeStackResourceCommand, 1);
    expect(cloudFormation).toHaveReceivedCommandWith(DescribeStackResourceCommand, {
      StackName: STACK_ID,
      LogicalResourceId: LOGICAL_ID,
    });
    expect(mq).toHaveReceivedCommandTimes(UpdateUserCommand, 1);
  });

  test.each(['UPDATE_ROLLBACK_IN_PROGRESS', 'UPDATE_IN_PROGRESS'])(
    "carries out a rollback's Update while the resource shows %s",
    async (status) => {
      cloudFormationShows('Custom::MqUser', status, physicalId());
      mq.on(DescribeUserCommand).resolves(live());
      await runUnproven(updateEvent({ Groups: [] }, {}));
      expect(mq).toHaveReceivedCommandTimes(UpdateUserCommand, 1);
    },
  );

  describe('the cleanup Delete of a replaced physical ID', () => {
    const old = physicalId({ Username: 'orders-old' });
    const renamed = physicalId();
    const cleanupHistory = (stackStatusNow: string, ...newer: ReturnType<typeof stackEvent>[]) =>
      cloudFormation.on(DescribeStackEventsCommand).resolves({
        StackEvents: [
          ...newer,
          stackEvent('Orders', STACK_ID, stackStatusNow, 'AWS::CloudFormation::Stack'),
          stackEvent(LOGICAL_ID, renamed, 'UPDATE_COMPLETE'),
          stackEvent(LOGICAL_ID, old, 'UPDATE_IN_PROGRESS'),
          stackEvent('Orders', STACK_ID, 'UPDATE_IN_PROGRESS', 'AWS::CloudFormation::Stack'),
        ],
      });

    beforeEach(() => {
      mq.on(DescribeUserCommand).resolves({ ...holding(), Username: 'orders-old' });
      stackStatus('UPDATE_COMPLETE_CLEANUP_IN_PROGRESS');
      stackResources([userResource(LOGICAL_ID, renamed)]);
    });

    test.each([
      ['its new ID, complete', 'UPDATE_COMPLETE'],
      ['its new ID, being deleted', 'DELETE_IN_PROGRESS'],
    ])(
      'deletes the old user when the resource shows %s and the history shows the old ID being deleted now',
      async (_case, status) => {
        cloudFormationShows('Custom::MqUser', status, renamed);
        cleanupHistory('UPDATE_COMPLETE_CLEANUP_IN_PROGRESS', stackEvent(LOGICAL_ID, old, 'DELETE_IN_PROGRESS'));
        await runUnproven(deleteEvent(old, { Username: 'orders-old' }));
        expect(mq).toHaveReceivedCommandWith(DeleteUserCommand, { BrokerId: BROKER_ID, Username: 'orders-old' });
      },
    );

    test('deletes the old user when the resource shows the old ID being deleted (one read)', async () => {
      cloudFormationShows('Custom::MqUser', 'DELETE_IN_PROGRESS', old);
      await runUnproven(deleteEvent(old, { Username: 'orders-old' }));
      expect(mq).toHaveReceivedCommandTimes(DeleteUserCommand, 1);
      expect(cloudFormation).not.toHaveReceivedCommand(DescribeStackEventsCommand);
    });

    test.each([
      ['replayed after the cleanup deleted it', 'UPDATE_COMPLETE', [stackEvent(LOGICAL_ID, old, 'DELETE_COMPLETE')]],
      [
        'replayed within the cleanup, after its deletion completed',
        'UPDATE_COMPLETE_CLEANUP_IN_PROGRESS',
        [stackEvent(LOGICAL_ID, old, 'DELETE_COMPLETE'), stackEvent(LOGICAL_ID, old, 'DELETE_IN_PROGRESS')],
      ],
      ['replayed during a later update', 'UPDATE_IN_PROGRESS', []],
      [
        'of an ID the cleanup does not delete',
        'UPDATE_COMPLETE_CLEANUP_IN_PROGRESS',
        [stackEvent(LOGICAL_ID, physicalId({ Username: 'elsewhere' }), 'DELETE_IN_PROGRESS')],
      ],
      [
        'claimed by another logical ID',
        'UPDATE_COMPLETE_CLEANUP_IN_PROGRESS',
        [stackEvent('Sibling', old, 'DELETE_IN_PROGRESS')],
      ],
    ])('refuses a Delete %s, writing nothing', async (_case, status, newer) => {
      cloudFormationShows('Custom::MqUser', 'UPDATE_COMPLETE', renamed);
      cleanupHistory(status, ...(newer as ReturnType<typeof stackEvent>[]));
      await expect(runUnproven(deleteEvent(old, { Username: 'orders-old' }))).rejects.toThrow(/^refused a Delete/);
      expectNothingWritten();
    });
  });

  describe('when CloudFormation cannot be read, nothing is written', () => {
    const denied = () =>
      Object.assign(new Error('not authorized to perform: cloudformation:DescribeStackResource'), {
        name: 'AccessDenied',
        $metadata: { httpStatusCode: 403 },
      });
    const throttling = () =>
      Object.assign(new Error('Rate exceeded'), { name: 'Throttling', $metadata: { httpStatusCode: 400 } });

    test.each([
      ['denied', denied],
      ['throttled until the deadline', throttling],
    ])('fails a Create when CloudFormation is %s', async (_case, error) => {
      cloudFormation.on(DescribeStackResourceCommand).rejects(error());
      await expect(runUnproven(createEvent(), 6_500)).rejects.toThrow(
        /could not confirm with CloudFormation that it is working on OrdersService now .*nothing is written/,
      );
      expectNothingWritten();
    });

    test.each([
      ['an Update', updateEvent({}, { Groups: [] })],
      ['a Delete', deleteEvent(physicalId())],
    ])(
      'answers %s with SUCCESS, its own physical ID and a warning, so that a rollback cannot wedge',
      async (_case, event) => {
        cloudFormation.on(DescribeStackResourceCommand).rejects(denied());
        const response = await runUnproven(event, 6_500);
        expect(response.PhysicalResourceId).toBe(event.PhysicalResourceId);
        expect(warnings.join('\n')).toContain('could not confirm the');
        expectNothingWritten();
      },
    );
  });

  test.each(['b-../../brokers/b-other', 'B-1234A5B6-78CD-901E-2FAB-3C45D6E178F9', 'b-1234'])(
    "checks the broker ID %j of a proven event against Amazon MQ's format before it reaches a URL",
    async (brokerId) => {
      await expect(run(createEvent({ BrokerId: brokerId }))).rejects.toThrow(
        `${JSON.stringify(brokerId)} is not an Amazon MQ broker ID ("b-" and a lower-case UUID): no call was made`,
      );
      expectNothingWritten();
    },
  );
});

describe('secrets never leave the handler', () => {
  // Characters that URL-encoding and HTML-escaping change, and letters whose case can change.
  const password = 'Sup3r&Secret/Pa$$ w0rd<Z>';
  const echoes: [string, string][] = [
    ['partially', password.slice(2, 14)],
    ['URL-encoded', encodeURIComponent(password)],
    ['HTML-escaped', password.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;')],
    ['upper-cased', password.toUpperCase()],
  ];

  beforeEach(() => {
    secrets.on(GetSecretValueCommand).resolves({ SecretString: JSON.stringify({ password }) });
  });

  test.each(echoes)(
    'withholds the message of a failed CreateUser that echoes the password %s, keeping name, status and attribute',
    async (_case, echo) => {
      mq.on(DescribeUserCommand).rejects(notFound());
      mq.on(CreateUserCommand).rejects(badRequest(`Password ${echo} is not allowed`, 'password'));
      const failure = await run(createEvent()).catch((error: Error) => error);
      expect((failure as Error).message).toBe(
        `CreateUser for user "orders-service" on broker ${BROKER_ID} failed: the service's message is withheld: ` +
          'the request carried a password (BadRequestException, HTTP 400, errorAttribute "password")',
      );
      expect([...logs, ...outcomes].join('\n')).not.toContain(echo);
    },
  );

  test.each(echoes)(
    'withholds the message of a failed UpdateUser with a password that echoes it %s',
    async (_case, echo) => {
      mq.on(DescribeUserCommand).resolves(live());
      mq.on(UpdateUserCommand).rejects(badRequest(`Password ${echo} is not allowed`, 'password'));
      const failure = await run(updateEvent({ PasswordVersion: '1' }, { PasswordVersion: '2' })).catch(
        (error: Error) => error,
      );
      expect((failure as Error).message).toBe(
        `UpdateUser for user "orders-service" on broker ${BROKER_ID} failed: the service's message is withheld: ` +
          'the request carried a password (BadRequestException, HTTP 400, errorAttribute "password")',
      );
      expect([...logs, ...outcomes].join('\n')).not.toContain(echo);
    },
  );

  test('keeps the service message of a failed UpdateUser that carries no password', async () => {
    mq.on(DescribeUserCommand).resolves(live());
    mq.on(UpdateUserCommand).rejects(badRequest('Group names are invalid', 'groups'));
    await expect(run(updateEvent({}, { Groups: ['orders-consumers'] }))).rejects.toThrow(
      `UpdateUser for user "orders-service" on broker ${BROKER_ID} failed: Group names are invalid (BadRequestException, HTTP 400, errorAttribute "groups")`,
    );
  });

  test('scrubs the password from a log line whose error carries it', async () => {
    // The undo's DeleteUser carries no password, so its error text is kept: scrubbed of every secret read.
    mq.on(DescribeUserCommand).rejects(notFound());
    mq.on(CreateUserCommand).rejectsOnce(serverError()).rejects(badRequest('Invalid request'));
    mq.on(DeleteUserCommand).rejects(badRequest(`cannot delete the user whose password is ${password}`));
    await expect(run(createEvent())).rejects.toThrow('CreateUser for user "orders-service"');
    expect(warnings.join('\n')).toContain('cannot delete the user whose password is ***');
    expect([...logs, ...outcomes].join('\n')).not.toContain(password);
  });

  test('failure reasons stay under 1 KB', async () => {
    mq.on(DescribeBrokerCommand).rejects(badRequest('x'.repeat(5_000)));
    const failure = await run(createEvent()).catch((error: Error) => error);
    expect((failure as Error).message.length).toBeLessThan(1_024);
  });
});
