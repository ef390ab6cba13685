/**
 * The DynamoDB double answers the real SDK v3 client as DynamoDB would: what the users' handler relies on (a failed
 * condition, a strongly consistent read) and what it must survive (stale reads, throttling, 5xx), each checked here.
 */
import { DynamoDBClient, GetItemCommand, UpdateItemCommand } from '@aws-sdk/client-dynamodb';
import { FakeDynamoDb } from './dynamodb-endpoint';

const TABLE = 'Orders-Deliveries-ABC';
let fake: FakeDynamoDb;
let client: DynamoDBClient;

beforeAll(async () => {
  fake = await FakeDynamoDb.start();
  client = new DynamoDBClient({
    endpoint: fake.url,
    region: 'us-east-1',
    credentials: { accessKeyId: 'AKIDEXAMPLE', secretAccessKey: 'dummy-secret-for-tests' },
    maxAttempts: 1,
  });
});

afterAll(async () => {
  client.destroy();
  await fake.stop();
});

beforeEach(() => {
  fake.deleteTable(TABLE);
  fake.createTable(TABLE, 'delivery');
  fake.clearInjections();
  fake.staleReads = true;
});

const key = { delivery: { S: 'k-1' } };

/** An UpdateItem that sets `made` on the test's item, with `extra` fields of the request on top. */
const updateMade = (extra: object) =>
  client.send(
    new UpdateItemCommand({
      TableName: TABLE,
      Key: key,
      UpdateExpression: 'SET #made = :made',
      ExpressionAttributeNames: { '#made': 'made' },
      ExpressionAttributeValues: { ':made': { S: 'x' } },
      ...extra,
    }),
  );
const setAnswer = (value: string, condition = true) =>
  client.send(
    new UpdateItemCommand({
      TableName: TABLE,
      Key: key,
      UpdateExpression: 'SET #answer = :answer',
      ExpressionAttributeNames: { '#answer': 'answer' },
      ExpressionAttributeValues: { ':answer': { S: value } },
      ...(condition
        ? {
            ConditionExpression: 'attribute_not_exists(#answer)',
            ReturnValuesOnConditionCheckFailure: 'ALL_OLD' as const,
          }
        : {}),
    }),
  );
const get = (consistent: boolean) =>
  client.send(new GetItemCommand({ TableName: TABLE, Key: key, ConsistentRead: consistent }));

test('a failed condition is 400 ConditionalCheckFailedException with the item as it was, and writes nothing', async () => {
  await setAnswer('first');
  const error = await setAnswer('second').catch((e: unknown) => e);
  expect(error).toMatchObject({
    name: 'ConditionalCheckFailedException',
    $metadata: { httpStatusCode: 400 },
    Item: { delivery: { S: 'k-1' }, answer: { S: 'first' } },
  });
  expect((await get(true)).Item?.answer).toEqual({ S: 'first' });
});

test('an eventually consistent read may miss the latest write; a strongly consistent one never does', async () => {
  await setAnswer('first', false);
  expect((await get(false)).Item).toBeUndefined();
  expect((await get(true)).Item?.answer).toEqual({ S: 'first' });
  await setAnswer('second', false);
  expect((await get(false)).Item?.answer).toEqual({ S: 'first' });
  fake.staleReads = false;
  expect((await get(false)).Item?.answer).toEqual({ S: 'second' });
  expect(fake.calls.filter((c) => c.stale).length).toBe(2);
});

test.each([
  ['provisionedThroughput', 'ProvisionedThroughputExceededException', 400],
  ['throttling', 'ThrottlingException', 400],
  ['internal', 'InternalServerError', 500],
  ['unavailable', 'ServiceUnavailable', 503],
] as const)('injects %s as DynamoDB answers it (%s, HTTP %d)', async (fault, name, status) => {
  fake.inject({ operation: 'GetItem', fault });
  await expect(get(true)).rejects.toMatchObject({ name, $metadata: { httpStatusCode: status } });
  expect((await get(true)).Item).toBeUndefined(); // one call only
});

test('a 500 after the write: the write is made', async () => {
  fake.inject({ operation: 'UpdateItem', fault: 'internalAfterWrite' });
  await expect(setAnswer('made')).rejects.toMatchObject({ $metadata: { httpStatusCode: 500 } });
  expect((await get(true)).Item?.answer).toEqual({ S: 'made' });
});

test('an unknown table is 400 ResourceNotFoundException; an expression it does not model is a loud 400', async () => {
  fake.deleteTable(TABLE);
  await expect(get(true)).rejects.toMatchObject({ name: 'ResourceNotFoundException' });
  fake.createTable(TABLE, 'delivery');
  await expect(
    client.send(
      new UpdateItemCommand({
        TableName: TABLE,
        Key: key,
        UpdateExpression: 'ADD tries :one',
        ExpressionAttributeValues: { ':one': { N: '1' } },
      }),
    ),
  ).rejects.toMatchObject({ name: 'ValidationException', message: expect.stringMatching(/does not model/) });
});

describe('what DynamoDB refuses as malformed, the double refuses too (400 ValidationException, nothing written)', () => {
  test.each<[string, object, RegExp]>([
    [
      'a name no expression uses',
      { ExpressionAttributeNames: { '#made': 'made', '#answer': 'answer' } },
      /^Value provided in ExpressionAttributeNames unused in expressions: keys: \{#answer\}$/,
    ],
    [
      'a value no expression uses',
      { ExpressionAttributeValues: { ':made': { S: 'x' }, ':ttl': { N: '1' } } },
      /^Value provided in ExpressionAttributeValues unused in expressions: keys: \{:ttl\}$/,
    ],
    [
      'a condition joined by OR (not modelled)',
      { ConditionExpression: 'attribute_not_exists(#made) OR attribute_exists(#made)' },
      /does not model/,
    ],
  ])('%s', async (_case, extra, message) => {
    await expect(updateMade(extra)).rejects.toMatchObject({
      name: 'ValidationException',
      message: expect.stringMatching(message),
    });
    expect(fake.items(TABLE)).toEqual([]);
  });
});

test('a condition of attribute_(not_)exists terms joined by AND, and SET ... REMOVE: as DynamoDB does', async () => {
  const names = { '#made': 'made', '#answer': 'answer' };
  const write = (extra: object) => updateMade({ ReturnValuesOnConditionCheckFailure: 'ALL_OLD', ...extra });
  await write({ UpdateExpression: 'SET #made = :made, #answer = :made', ExpressionAttributeNames: names });
  await write({ UpdateExpression: 'SET #made = :made REMOVE #answer', ExpressionAttributeNames: names });
  expect(fake.items(TABLE)).toEqual([{ ...key, made: { S: 'x' } }]);
  // Both terms must hold: the second fails here, and the failure carries the item as it was.
  await expect(
    write({
      ConditionExpression: 'attribute_not_exists(#answer) AND attribute_not_exists(#made)',
      ExpressionAttributeNames: names,
    }),
  ).rejects.toMatchObject({ name: 'ConditionalCheckFailedException', Item: { ...key, made: { S: 'x' } } });
  await write({
    ConditionExpression: 'attribute_not_exists(#answer) AND attribute_exists(#made)',
    ExpressionAttributeNames: names,
  });
});
