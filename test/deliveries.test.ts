/**
 * The users' handler and its table of deliveries (lambda/user/deliveries.ts), unit by unit: Amazon MQ, Secrets
 * Manager and CloudFormation are stubs (aws-sdk-client-mock, as in handler.test.ts); DynamoDB is the HTTP double
 * (test/support/dynamodb-endpoint.ts) behind the real SDK client, stale reads on. A record proves the work of an
 * earlier delivery of the very same event only: another RequestId, another logical ID or another user proves nothing.
 */
import { CloudFormationClient, DescribeStacksCommand } from '@aws-sdk/client-cloudformation';
import {
  BadRequestException,
  ConflictException,
  CreateUserCommand,
  DeleteUserCommand,
  DescribeBrokerCommand,
  DescribeUserCommand,
  InternalServerErrorException,
  MqClient,
  NotFoundException,
  UpdateUserCommand,
} from '@aws-sdk/client-mq';
import { GetSecretValueCommand, SecretsManagerClient } from '@aws-sdk/client-secrets-manager';
import { mockClient } from 'aws-sdk-client-mock';
import 'aws-sdk-client-mock-jest';
import { DELIVERIES_TABLE_ENV, DELIVERY_KEY_ATTRIBUTE } from '../lib/private/env';
import { retryTiming } from '../lambda/shared/retry';
import { deliveryKey, deliveryTiming } from '../lambda/user/deliveries';
import { WAITING_FIELD, handler, isComplete, type UserEvent } from '../lambda/user/index';
import {
  BROKER_ID,
  PASSWORD,
  SECRET_ARN,
  SECRET_STRING,
  STACK_ID,
  createEvent,
  lambdaContext,
  physicalId,
} from './fixtures/events';
import { CloudFormationAtWork } from './fixtures/proof';
import { FakeDynamoDb } from './support/dynamodb-endpoint';

const mq = mockClient(MqClient);
const secrets = mockClient(SecretsManagerClient);
const cloudFormation = mockClient(CloudFormationClient);
const atWork = new CloudFormationAtWork(cloudFormation, 'Custom::MqUser');
/**
 * A table of its own per test: a request a test abandoned (its deadline passed) may still land later, and must not
 * land in the next test's table.
 */
let tables = 0;
let TABLE = 'Orders-CdkMqUserProviderDeliveries-ABC123';
const REQUEST = 'b7f3c1de-0000-4000-8000-000000000001';
const OTHER_REQUEST = 'b7f3c1de-0000-4000-8000-000000000002';
const RUNNING = {
  EngineType: 'ACTIVEMQ' as const,
  AuthenticationStrategy: 'SIMPLE' as const,
  BrokerState: 'RUNNING' as const,
};
const notFound = () =>
  new NotFoundException({
    message: "Can't find requested user",
    $metadata: { httpStatusCode: 404 },
    ErrorAttribute: 'username',
  });
const conflict = () =>
  new ConflictException({ message: 'Conflict', $metadata: { httpStatusCode: 409 }, ErrorAttribute: 'username' });
/** A user pending CREATE whose settings are not the declared ones: someone else's, unless proven ours. */
const pendingCreate = {
  BrokerId: BROKER_ID,
  Username: 'orders-service',
  Pending: { PendingChange: 'CREATE' as const, Groups: ['theirs'], ConsoleAccess: false },
};

let dynamodb: FakeDynamoDb;
let warnings: string[];
let logs: string[];

beforeAll(async () => {
  dynamodb = await FakeDynamoDb.start();
  Object.assign(process.env, dynamodb.env(), {
    AWS_REGION: 'us-east-1',
    AWS_ACCESS_KEY_ID: 'AKIDEXAMPLE',
    AWS_SECRET_ACCESS_KEY: 'dummy-secret-for-tests',
  });
});

afterAll(async () => {
  await dynamodb.stop();
});

beforeEach(() => {
  mq.reset();
  secrets.reset();
  cloudFormation.reset();
  atWork.install();
  TABLE = `Orders-CdkMqUserProviderDeliveries-ABC${++tables}`;
  dynamodb.createTable(TABLE, DELIVERY_KEY_ATTRIBUTE);
  dynamodb.clearInjections();
  dynamodb.staleReads = true;
  process.env.CDK_MQ_USER_STACK_ID = STACK_ID;
  process.env[DELIVERIES_TABLE_ENV] = TABLE;
  deliveryTiming.budgetMs = 300;
  Object.assign(retryTiming, {
    baseDelayMs: 1,
    maxDelayMs: 5,
    throttleBaseDelayMs: 1,
    throttleMaxDelayMs: 5,
    attemptTimeoutMs: 1_000,
  });
  mq.on(DescribeBrokerCommand).resolves(RUNNING);
  mq.on(CreateUserCommand).resolves({});
  mq.on(UpdateUserCommand).resolves({});
  secrets.on(GetSecretValueCommand).resolves({ ARN: SECRET_ARN, SecretString: SECRET_STRING });
  cloudFormation.on(DescribeStacksCommand).resolves({
    Stacks: [{ StackName: 'Orders', StackStatus: 'CREATE_IN_PROGRESS', CreationTime: new Date() }],
  });
  warnings = [];
  logs = [];
  jest.spyOn(console, 'log').mockImplementation((line: string) => void logs.push(String(line)));
  jest.spyOn(console, 'warn').mockImplementation((line: string) => void warnings.push(String(line)));
});

afterEach(() => {
  jest.restoreAllMocks();
  delete process.env.CDK_MQ_USER_STACK_ID;
  delete process.env[DELIVERIES_TABLE_ENV];
  const stored = JSON.stringify(dynamodb.items(TABLE));
  expect(stored).not.toContain(PASSWORD);
  expect(stored).not.toContain(SECRET_STRING);
  // The handler swallows a failing write as a warning: a request the double refuses as malformed must not hide there.
  expect(warnings.join('\n')).not.toMatch(/unused in expressions|not defined|does not model/);
});

const create = (requestId = REQUEST): UserEvent => ({ ...createEvent(), RequestId: requestId });

async function run(event: UserEvent) {
  atWork.workOn(event);
  return handler(event, lambdaContext());
}

/** What a twin delivery of `event` leaves when it withdrew its claim before deleting the user it made. */
function withdrawn(event: UserEvent) {
  dynamodb.putItem(TABLE, { [DELIVERY_KEY_ATTRIBUTE]: { S: deliveryKey(event)! }, undone: { BOOL: true } });
}

/** What an earlier delivery of `event` would have recorded: its CreateUser may have made `username`. */
function recordMade(event: UserEvent, username = 'orders-service', brokerId = BROKER_ID) {
  dynamodb.putItem(TABLE, {
    [DELIVERY_KEY_ATTRIBUTE]: { S: deliveryKey(event)! },
    made: { M: { brokerId: { S: brokerId }, username: { S: username } } },
  });
}

describe('a second delivery of the same event', () => {
  test('gets the first answer unchanged, asking Amazon MQ nothing; another RequestId runs', async () => {
    mq.on(DescribeUserCommand).rejects(notFound());
    const first = await run(create());
    expect(first.PhysicalResourceId).toBe(physicalId());
    // What the first delivery left: the user its CreateUser made, then its answer.
    expect(dynamodb.items(TABLE)).toEqual([
      expect.objectContaining({
        made: { M: { brokerId: { S: BROKER_ID }, username: { S: 'orders-service' } } },
        answer: { S: JSON.stringify(first) },
      }),
    ]);
    mq.resetHistory();
    expect(await run(create())).toEqual(first);
    expect(mq.calls()).toHaveLength(0);
    // Read strongly consistent: an eventually consistent read here would miss the answer just written.
    expect(dynamodb.calls.filter((c) => c.operation === 'GetItem').every((c) => c.consistentRead)).toBe(true);
    await run(create(OTHER_REQUEST));
    expect(mq).toHaveReceivedCommandTimes(CreateUserCommand, 1);
  });

  test('that finds the user its first delivery recorded as made: converges it as its own, no CreateUser', async () => {
    mq.on(DescribeUserCommand).resolves(pendingCreate);
    recordMade(create());
    expect(await run(create())).toMatchObject({ PhysicalResourceId: physicalId() });
    expect(mq).toHaveReceivedCommandTimes(CreateUserCommand, 0);
    expect(mq).toHaveReceivedCommandTimes(UpdateUserCommand, 1);
  });

  test.each<[string, () => void]>([
    ['of another RequestId', () => recordMade(create(OTHER_REQUEST))],
    ['of another logical ID', () => recordMade({ ...create(), LogicalResourceId: 'SomeoneElse' })],
    ['of another stack', () => recordMade({ ...create(), StackId: STACK_ID.replace('Orders', 'Other') })],
    [
      'of the same event with other properties',
      () => recordMade({ ...create(), ResourceProperties: { ...create().ResourceProperties, Groups: ['theirs'] } }),
    ],
    ['naming another user', () => recordMade(create(), 'orders-service-2')],
    [
      'naming the user on another broker',
      () => recordMade(create(), 'orders-service', 'b-9999a5b6-78cd-901e-2fab-3c45d6e17800'),
    ],
  ])('a record %s proves nothing: the foreign user pending CREATE is refused, untouched', async (_case, seed) => {
    mq.on(DescribeUserCommand).resolves(pendingCreate);
    seed();
    await expect(run(create())).rejects.toThrow(/user "orders-service" already exists/);
    expect(mq).toHaveReceivedCommandTimes(UpdateUserCommand, 0);
    expect(mq).toHaveReceivedCommandTimes(CreateUserCommand, 0);
  });

  test('running at the same time: a 409 whose user the other delivery recorded meanwhile is ours', async () => {
    mq.on(DescribeUserCommand).rejectsOnce(notFound()).resolves(pendingCreate);
    // The other delivery's CreateUser won the race and recorded its user just before ours was refused.
    mq.on(CreateUserCommand).callsFake(async () => {
      recordMade(create());
      throw conflict();
    });
    expect(await run(create())).toMatchObject({ PhysicalResourceId: physicalId() });
    expect(mq).toHaveReceivedCommandTimes(UpdateUserCommand, 1);
  });

  test("running at the same time, nothing recorded: the 409 is someone else's user, refused", async () => {
    mq.on(DescribeUserCommand).rejectsOnce(notFound()).resolves(pendingCreate);
    mq.on(CreateUserCommand).rejects(conflict());
    await expect(run(create())).rejects.toThrow(/already exists/);
    expect(mq).toHaveReceivedCommandTimes(UpdateUserCommand, 0);
  });

  test('two deliveries that both answer: the first recorded answer stands (a conditional write)', async () => {
    mq.on(DescribeUserCommand).rejects(notFound());
    const earlier = {
      PhysicalResourceId: physicalId(),
      Data: { Username: 'orders-service', BrokerId: BROKER_ID, PendingChange: 'CREATE', StateDigest: 'earlier' },
    };
    // The other delivery records its answer while this one runs (after this one's read).
    mq.on(CreateUserCommand).callsFake(async () => {
      dynamodb.putItem(TABLE, {
        [DELIVERY_KEY_ATTRIBUTE]: { S: deliveryKey(create())! },
        answer: { S: JSON.stringify(earlier) },
      });
      return {};
    });
    expect(await run(create())).toEqual(earlier);
    const conditional = dynamodb.calls.filter((c) => c.operation === 'UpdateItem' && c.status === 400);
    expect(conditional).toHaveLength(1);
  });
});

const internal = () =>
  new InternalServerErrorException({ message: 'Internal error', $metadata: { httpStatusCode: 500 } });
const badRequest = () =>
  new BadRequestException({ message: 'Invalid request', $metadata: { httpStatusCode: 400 }, ErrorAttribute: 'groups' });
/** A user pending CREATE with the declared settings: the one our own CreateUser made. */
const ourPendingCreate = {
  BrokerId: BROKER_ID,
  Username: 'orders-service',
  Pending: { PendingChange: 'CREATE' as const, Groups: [], ConsoleAccess: false },
};
const item = () => dynamodb.items(TABLE).find((i) => i[DELIVERY_KEY_ATTRIBUTE]?.S === deliveryKey(create()));

describe('hostile: a Create that undoes its own CreateUser withdraws its record first', () => {
  test('a stale made never takes over a foreign user pending CREATE after the first delivery undid its own', async () => {
    // First delivery: CreateUser answers 500 (it may have made the user), then 400: the Create fails and undoes.
    mq.on(DescribeUserCommand).rejects(notFound());
    mq.on(CreateUserCommand).rejectsOnce(internal()).rejects(badRequest());
    mq.on(DeleteUserCommand).rejects(notFound());
    await expect(run(create())).rejects.toThrow(/BadRequestException, HTTP 400/);
    expect(mq).toHaveReceivedCommandTimes(DeleteUserCommand, 1);
    expect(item()).toMatchObject({ made: expect.anything(), undone: { BOOL: true } });
    // Another stack then creates the same username; the second delivery of the same event arrives.
    mq.reset();
    mq.on(DescribeBrokerCommand).resolves(RUNNING);
    mq.on(DescribeUserCommand).resolves(pendingCreate);
    // The withdrawal is final: the second delivery fails as the first did, before any call.
    await expect(run(create())).rejects.toThrow(/undid its CreateUser and deleted the user again/);
    expect(mq).toHaveReceivedCommandTimes(DescribeUserCommand, 0);
    expect(mq).toHaveReceivedCommandTimes(UpdateUserCommand, 0);
    expect(mq).toHaveReceivedCommandTimes(CreateUserCommand, 0);
    expect(mq).toHaveReceivedCommandTimes(DeleteUserCommand, 0);
  });

  test('the withdrawal failing (500 until the budget) after a made was recorded: the user is left, loud', async () => {
    // An earlier delivery recorded that its CreateUser may have made the user; this one gets 500 then 400 again.
    recordMade(create());
    mq.on(DescribeUserCommand).rejects(notFound());
    mq.on(CreateUserCommand).rejectsOnce(internal()).rejects(badRequest());
    mq.on(DeleteUserCommand).resolves({});
    dynamodb.inject({ operation: 'UpdateItem', fault: 'internal', times: Infinity });
    await expect(run(create())).rejects.toThrow(/BadRequestException, HTTP 400/);
    expect(mq).toHaveReceivedCommandTimes(DeleteUserCommand, 0);
    const unfinishedLine = warnings.find((line) => line.includes('its record could not be withdrawn'));
    expect(unfinishedLine).toMatch(/"alarm":/);
    expect(unfinishedLine).toMatch(/delete it by hand/);
  });

  test('this delivery recorded made, then the table fails before the withdrawal: the user is left, loud', async () => {
    const pendingDelete = {
      BrokerId: BROKER_ID,
      Username: 'orders-service',
      Pending: { PendingChange: 'DELETE' as const },
    };
    // CreateUser answers 500 then 400 on a user pending deletion: `made` is recorded (the table still works), then
    // the table starts failing, and the revival's UpdateUser is refused: the Create fails and would undo.
    mq.on(DescribeUserCommand)
      .resolvesOnce(pendingDelete)
      .callsFake(async () => {
        dynamodb.inject({ operation: 'UpdateItem', fault: 'internal', times: Infinity });
        return pendingDelete;
      });
    mq.on(CreateUserCommand).rejectsOnce(internal()).rejects(badRequest());
    mq.on(UpdateUserCommand).rejects(badRequest());
    mq.on(DeleteUserCommand).resolves({});
    await expect(run(create())).rejects.toThrow(/pending deletion and Amazon MQ refused to create it again/);
    expect(item()).toMatchObject({ made: expect.anything() });
    expect(item()).not.toHaveProperty('undone');
    expect(mq).toHaveReceivedCommandTimes(DeleteUserCommand, 0);
    expect(warnings.join('\n')).toMatch(/its record could not be withdrawn: delete it by hand/);
  });

  test('the table failing from the start: a made write that answered 500 may stand, so the user is left, loud', async () => {
    mq.on(DescribeUserCommand).rejects(notFound());
    mq.on(CreateUserCommand).rejectsOnce(internal()).rejects(badRequest());
    mq.on(DeleteUserCommand).resolves({});
    // The double's own word: a write answered 500 after it was applied (DynamoDB's 500s may have done the work).
    dynamodb.inject({ operation: 'UpdateItem', fault: 'internalAfterWrite', times: Infinity });
    await expect(run(create())).rejects.toThrow(/BadRequestException, HTTP 400/);
    // Both writes were applied, though each answered 500: the handler cannot know, so it deletes nothing.
    expect(item()).toMatchObject({ made: expect.anything(), undone: { BOOL: true } });
    expect(mq).toHaveReceivedCommandTimes(DeleteUserCommand, 0);
    expect(warnings.join('\n')).toMatch(/its record could not be withdrawn: delete it by hand.*"alarm":/);
  });

  test('no table (a template before it): the undo deletes as it always did', async () => {
    delete process.env[DELIVERIES_TABLE_ENV];
    mq.on(DescribeUserCommand).rejects(notFound());
    mq.on(CreateUserCommand).rejectsOnce(internal()).rejects(badRequest());
    mq.on(DeleteUserCommand).resolves({});
    await expect(run(create())).rejects.toThrow(/BadRequestException, HTTP 400/);
    expect(mq).toHaveReceivedCommandTimes(DeleteUserCommand, 1);
  });

  test("the waiter's next attempt after a twin withdrew: fails before any call, even knowing it may have made the user", async () => {
    // The first attempt's CreateUser got no answer, then the broker rebooted: the event waits, knowing the user may be
    // its own. Meanwhile a twin delivery withdrew its claim and deleted the user, and another stack creates the name.
    withdrawn(create());
    mq.on(DescribeUserCommand).resolves(pendingCreate);
    const waiting = {
      ...create(),
      PhysicalResourceId: 'AWSCDK::CustomResourceProviderFramework::CREATE_FAILED', // what onEvent hands a waiting Create
      [WAITING_FIELD]: { since: Date.now(), ownCreate: true },
    };
    atWork.workOn(create());
    await expect(isComplete(waiting, lambdaContext())).rejects.toThrow(/undid its CreateUser/);
    expect(mq).toHaveReceivedCommandTimes(DescribeUserCommand, 0);
    expect(mq).toHaveReceivedCommandTimes(UpdateUserCommand, 0);
    expect(mq).toHaveReceivedCommandTimes(CreateUserCommand, 0);
  });

  test('a late made write never revives a claim a twin withdrew: it undoes what it made instead', async () => {
    // The twin withdrew (and deleted the user) before this delivery's CreateUser answered: its made is refused.
    mq.on(DescribeUserCommand).rejects(notFound());
    mq.on(CreateUserCommand).callsFake(async () => {
      withdrawn(create());
      return {};
    });
    mq.on(DeleteUserCommand).resolves({});
    await expect(run(create())).rejects.toThrow(/undid its CreateUser and deleted the user again/);
    expect(item()).not.toHaveProperty('made');
    expect(item()).toMatchObject({ undone: { BOOL: true } });
    expect(mq).toHaveReceivedCommandTimes(DeleteUserCommand, 1);
  });
});

describe('hostile: two deliveries of one event running at the same time never disagree', () => {
  test("the twin answered SUCCESS with the user: the failing delivery's undo is skipped, the user kept", async () => {
    mq.on(DescribeUserCommand).rejectsOnce(notFound()).resolves(ourPendingCreate);
    mq.on(DeleteUserCommand).resolves({});
    let twin: unknown;
    mq.on(CreateUserCommand)
      .rejectsOnce(internal())
      .callsFake(async () => {
        // This delivery's CreateUser may have made the user and it says so; the framework's invoke of it threw, and
        // the second delivery (another environment) reads that record, converges the user and answers SUCCESS.
        recordMade(create());
        twin = await run(create());
        throw badRequest();
      });
    // Whichever delivery CloudFormation hears, the answer is the same: the twin's SUCCESS, with the user kept.
    const own = await run(create());
    expect(twin).toMatchObject({ PhysicalResourceId: physicalId() });
    expect(own).toEqual(twin);
    expect(mq).toHaveReceivedCommandTimes(DeleteUserCommand, 0);
    expect(logs.join('\n')).toMatch(/answered SUCCESS with the user meanwhile: answering as it did/);
    expect(item()).not.toHaveProperty('undone');
  });

  test('the twin withdrew its made and deletes the user: this delivery does not answer SUCCESS', async () => {
    recordMade(create());
    mq.on(DescribeUserCommand).resolves(ourPendingCreate);
    // While this delivery converges the user its twin may have made, the twin gives up and withdraws its record.
    mq.on(UpdateUserCommand).callsFake(async () => {
      dynamodb.putItem(TABLE, { ...item()!, undone: { BOOL: true } });
      return {};
    });
    await expect(run(create())).rejects.toThrow(/a delivery of this same event undid its CreateUser/);
    expect(item()).not.toHaveProperty('answer');
  });
});

describe('hostile: a stored answer that is not about this event is never returned', () => {
  const forged = { PhysicalResourceId: `${BROKER_ID}/victim?owner=created`, Data: { Username: 'victim' } };

  test('a forged answer read back: ignored, the event runs and answers with its own user', async () => {
    dynamodb.putItem(TABLE, {
      [DELIVERY_KEY_ATTRIBUTE]: { S: deliveryKey(create())! },
      answer: { S: JSON.stringify(forged) },
    });
    mq.on(DescribeUserCommand).rejects(notFound());
    // The forged answer stands in the table (the conditional write keeps it): the answer is still our own.
    expect(await run(create())).toMatchObject({ PhysicalResourceId: physicalId() });
    expect(mq).toHaveReceivedCommandTimes(CreateUserCommand, 1);
  });

  test('a forged answer met by the conditional write (ALL_OLD): ours is answered, not the forged one', async () => {
    mq.on(DescribeUserCommand).rejects(notFound());
    mq.on(CreateUserCommand).callsFake(async () => {
      dynamodb.putItem(TABLE, {
        [DELIVERY_KEY_ATTRIBUTE]: { S: deliveryKey(create())! },
        answer: { S: JSON.stringify(forged) },
      });
      return {};
    });
    expect(await run(create())).toMatchObject({ PhysicalResourceId: physicalId() });
  });
});

describe('a table that fails never breaks a safety rule', () => {
  test('writes failing (500, retried until the budget): the Create still answers, with a warning', async () => {
    mq.on(DescribeUserCommand).rejects(notFound());
    dynamodb.inject({ operation: 'UpdateItem', fault: 'internal', times: Infinity });
    expect(await run(create())).toMatchObject({ PhysicalResourceId: physicalId() });
    expect(warnings.join('\n')).toMatch(/could not record that this event may have made the user/);
    expect(warnings.join('\n')).toMatch(/answered without recording the answer.*"alarm":/);
    expect(dynamodb.calls.filter((c) => c.operation === 'UpdateItem').length).toBeGreaterThan(2);
  });

  test('reads failing: no record; a user made by the first delivery is then refused "already exists"', async () => {
    mq.on(DescribeUserCommand).resolves(pendingCreate);
    recordMade(create());
    dynamodb.inject({ operation: 'GetItem', fault: 'unavailable', times: Infinity });
    await expect(run(create())).rejects.toThrow(/already exists/);
    expect(warnings.join('\n')).toMatch(/could not read the record of earlier deliveries/);
    expect(mq).toHaveReceivedCommandTimes(UpdateUserCommand, 0);
  });

  test('throttled reads (ProvisionedThroughputExceeded, Throttling) are retried: the record is found', async () => {
    mq.on(DescribeUserCommand).resolves(pendingCreate);
    recordMade(create());
    dynamodb.inject({ operation: 'GetItem', fault: 'provisionedThroughput', times: 1 });
    dynamodb.inject({ operation: 'GetItem', fault: 'throttling', times: 1 });
    expect(await run(create())).toMatchObject({ PhysicalResourceId: physicalId() });
  });

  test('without a table (an older template): nothing is read or written', async () => {
    delete process.env[DELIVERIES_TABLE_ENV];
    mq.on(DescribeUserCommand).rejects(notFound());
    const calls = dynamodb.calls.length;
    await run(create());
    expect(dynamodb.calls.length).toBe(calls);
  });
});
