/**
 * Issue 14, "the same event twice gets the same answer", when the second delivery lands in ANOTHER Lambda
 * environment: the Provider framework invokes the handler again with the same event when its invoke throws (after the
 * handler ran, or while it still runs), and nothing of the first delivery's module state is there. What the first
 * delivery recorded in the stack's table of deliveries (the DynamoDB double) is its only proof of its own work.
 * Hostile scenarios first: a foreign user is still refused, and a table that fails leaves the safe answer.
 */
import * as path from 'node:path';
import { Stack, aws_secretsmanager as secretsmanager } from 'aws-cdk-lib';
import { Construct } from 'constructs';
import { MqBroker, MqUser, MqUserProps } from '../lib';
import { parsePhysicalResourceId } from '../lambda/shared/properties';
import { CloudFormation, DeployOptions, Invocation } from './support/cloudformation';
import { FakeMq } from './support/mq-endpoint';
import { startDoubles, synthApp } from './support/lifecycle';

process.env.CDK_VALIDATION = 'false';
jest.setTimeout(60_000);

const OUT = path.join(__dirname, '..', '.test-out');
const BROKER = 'b-7d6c5b4a-3e2f-4a1b-8c9d-0e1f2a3b4c5d';
const PASSWORD = 'Orders-Passw0rd-2026';
const FOREIGN = { groups: ['theirs'], password: 'Foreign-Passw0rd-77' };
const BYSTANDER = { consoleAccess: true, groups: ['admins'], password: 'Bystander-Passw0rd-1' };
const TIMINGS = {
  retryTiming: {
    baseDelayMs: 5,
    maxDelayMs: 50,
    throttleBaseDelayMs: 5,
    throttleMaxDelayMs: 50,
    attemptTimeoutMs: 1_000,
  },
  deliveryTiming: { budgetMs: 1_000 },
};
const OPTIONS: DeployOptions = { timings: TIMINGS };

let mq: FakeMq;
let cfn: CloudFormation;
const secrets = new Set<string>([BYSTANDER.password, PASSWORD, FOREIGN.password]);
const figures = { usersChangedUnexpectedly: 0 };

startDoubles({
  out: OUT,
  emulator: { queryIntervalMs: 20, timings: TIMINGS },
  started: (doubles) => ({ mq, cfn } = doubles),
  eachScenario: {
    brokers: [{ brokerId: BROKER, brokerName: 'deliveries', engineType: 'ACTIVEMQ' }],
    bystander: { brokerId: BROKER, seeded: BYSTANDER },
    passwordsOn: [BROKER],
    secrets,
    figures,
  },
});

beforeEach(() => {
  cfn.dynamodb.clearInjections();
  cfn.dynamodb.staleReads = true;
});

afterEach(() => {
  // The table holds physical IDs, attributes and identities: never a password.
  for (const table of cfn.dynamodb.tableNames()) {
    const stored = JSON.stringify(cfn.dynamodb.items(table));
    for (const secret of secrets) expect(stored).not.toContain(secret);
  }
});

const synth = (build: (stack: Stack) => void) => synthApp(OUT, build);

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

const elsewhere =
  (requestType: string, how: 'answerLostElsewhere' | 'whileRunningElsewhere'): DeployOptions['redeliver'] =>
  (event) =>
    event.RequestType === requestType ? how : false;

function since(from: number): Invocation[] {
  return cfn.invocations.slice(from);
}

function eventually(username: string) {
  const state = mq.user(BROKER, username);
  if (!state || state.pending?.change === 'DELETE') return undefined;
  return state.pending ?? state.applied;
}

const transcript = () => cfn.transcript.join('\n');

describe('hostile: what a second delivery in another environment must still refuse', () => {
  test.each(['answerLostElsewhere', 'whileRunningElsewhere'] as const)(
    'a foreign user pending CREATE, refused "already exists" on the first delivery, is refused again (%s)',
    async (how) => {
      mq.seedPendingCreate(BROKER, 'taken-user', FOREIGN);
      const calls = mq.calls.length;
      const result = await cfn.stack('Orders').deploy(
        synth((s) => user(s, 'Taken', 'taken-user')),
        { ...OPTIONS, redeliver: elsewhere('Create', how) },
      );
      expect(result.status).toBe('ROLLBACK_COMPLETE');
      expect(result.reason).toMatch(/user "taken-user" already exists/);
      expect(mq.user(BROKER, 'taken-user')?.pending).toMatchObject({ change: 'CREATE', ...FOREIGN });
      expect(mq.mqCalls(calls, 'UpdateUser')).toEqual([]);
      expect(mq.mqCalls(calls, 'DeleteUser')).toEqual([]);
      expect(cfn.lostDeliveries).toBeGreaterThan(0);
    },
  );

  test('the table failing (500 on every call): the user made by the lost delivery is never taken over; loud', async () => {
    cfn.dynamodb.inject({ fault: 'internal', times: Infinity });
    const result = await cfn.stack('Orders').deploy(
      synth((s) => user(s, 'Lost', 'lost-user')),
      { ...OPTIONS, redeliver: elsewhere('Create', 'answerLostElsewhere') },
    );
    // Without the record, the second delivery cannot tell the first's user from someone else's: it refuses.
    expect(result.status).toBe('ROLLBACK_COMPLETE');
    expect(result.reason).toMatch(/user "lost-user" already exists/);
    expect(transcript()).toMatch(/could not record that this event may have made the user/);
    expect(transcript()).toMatch(/could not read the record of earlier deliveries of this event/);
    expect(cfn.dynamodb.calls.filter((c) => c.status === 500).length).toBeGreaterThan(0);
  });

  test('a Create that undid its own CreateUser: a foreign user created next is refused by the second delivery', async () => {
    // The first delivery's CreateUser makes the user but answers 500, the retry answers 400: the Create fails, the
    // handler deletes what it may have made. Right after that DeleteUser, another stack creates the same username.
    mq.inject({ operation: 'CreateUser', username: 'undone-user', fault: 'internalAfterWrite' });
    mq.inject({ operation: 'CreateUser', username: 'undone-user', fault: 'badRequest' });
    mq.inject({
      operation: 'DeleteUser',
      username: 'undone-user',
      fault: 'slow',
      then: () => mq.seedPendingCreate(BROKER, 'undone-user', FOREIGN),
    });
    const calls = mq.calls.length;
    const result = await cfn.stack('Orders').deploy(
      synth((s) => user(s, 'Undone', 'undone-user')),
      { ...OPTIONS, redeliver: elsewhere('Create', 'answerLostElsewhere') },
    );
    // The second delivery (another environment) finds the first's `made` withdrawn: a withdrawal is final, so it fails
    // as the first did, before any call; the foreign user is not its own.
    expect(result.status).toBe('ROLLBACK_COMPLETE');
    expect(result.reason).toMatch(/undid its CreateUser and deleted the user again/);
    expect(mq.user(BROKER, 'undone-user')?.pending).toMatchObject({ change: 'CREATE', ...FOREIGN });
    expect(mq.mqCalls(calls, 'UpdateUser')).toEqual([]);
    expect(mq.mqCalls(calls, 'DeleteUser')).toHaveLength(1);
  });

  test('the table failing for reads only: treated as no record, the foreign user still refused', async () => {
    mq.seedPendingCreate(BROKER, 'taken-user', FOREIGN);
    cfn.dynamodb.inject({ operation: 'GetItem', fault: 'unavailable', times: Infinity });
    const result = await cfn.stack('Orders').deploy(
      synth((s) => user(s, 'Taken', 'taken-user')),
      { ...OPTIONS, redeliver: elsewhere('Create', 'answerLostElsewhere') },
    );
    expect(result.status).toBe('ROLLBACK_COMPLETE');
    expect(result.reason).toMatch(/already exists/);
    expect(mq.user(BROKER, 'taken-user')?.pending).toMatchObject({ change: 'CREATE', ...FOREIGN });
  });
});

describe('the same event twice, the second in another Lambda environment, gets the same answer', () => {
  test('a Create whose answer was lost: SUCCESS with the same physical ID, one CreateUser, the user ours', async () => {
    const from = cfn.invocations.length;
    const calls = mq.calls.length;
    const tableCalls = cfn.dynamodb.calls.length;
    const stack = cfn.stack('Orders');
    const result = await stack.deploy(
      synth((s) => user(s, 'Twice', 'twice-user')),
      { ...OPTIONS, redeliver: elsewhere('Create', 'answerLostElsewhere') },
    );
    expect(result).toEqual({ status: 'CREATE_COMPLETE' });
    expect(since(from).map((i) => [i.outcome, i.returnedPhysicalId])).toEqual([
      ['SUCCESS', `${BROKER}/twice-user?owner=created`],
    ]);
    expect(mq.mqCalls(calls, 'CreateUser')).toHaveLength(1);
    expect(eventually('twice-user')).toMatchObject({ password: PASSWORD });
    expect(transcript()).toMatch(/answering as the first delivery did/);
    // Every read of the record is strongly consistent: the double's stale reads never reach the handler.
    const reads = cfn.dynamodb.calls.slice(tableCalls).filter((c) => c.operation === 'GetItem');
    expect(reads.length).toBeGreaterThan(0);
    expect(reads.every((c) => c.consistentRead === true)).toBe(true);
    // It is this resource's: the stack's destroy deletes it.
    expect(await stack.destroy(OPTIONS)).toMatchObject({ status: 'DELETE_COMPLETE' });
    expect(eventually('twice-user')).toBeUndefined();
  });

  test('a Create delivered again while the first still runs: one user, ours, both answers the same', async () => {
    const from = cfn.invocations.length;
    const stack = cfn.stack('Orders');
    const result = await stack.deploy(
      synth((s) => user(s, 'Racing', 'racing-user')),
      { ...OPTIONS, redeliver: elsewhere('Create', 'whileRunningElsewhere') },
    );
    expect(result).toEqual({ status: 'CREATE_COMPLETE' });
    expect(since(from)[0].returnedPhysicalId).toBe(`${BROKER}/racing-user?owner=created`);
    expect(eventually('racing-user')).toMatchObject({ password: PASSWORD });
    expect(await stack.destroy(OPTIONS)).toMatchObject({ status: 'DELETE_COMPLETE' });
    expect(eventually('racing-user')).toBeUndefined();
  });

  test('a Create whose record of the user it made was throttled twice: retried, the second delivery converges', async () => {
    cfn.dynamodb.inject({ operation: 'UpdateItem', fault: 'provisionedThroughput', times: 1 });
    cfn.dynamodb.inject({ operation: 'UpdateItem', fault: 'throttling', times: 1 });
    const result = await cfn.stack('Orders').deploy(
      synth((s) => user(s, 'Throttled', 'throttled-user')),
      { ...OPTIONS, redeliver: elsewhere('Create', 'answerLostElsewhere') },
    );
    expect(result).toEqual({ status: 'CREATE_COMPLETE' });
    expect(cfn.dynamodb.calls.filter((c) => c.status === 400).length).toBe(2);
    expect(eventually('throttled-user')).toBeDefined();
  });

  test('a rename whose answer was lost: the same new physical ID; the old user deleted in the cleanup', async () => {
    const stack = cfn.stack('Orders');
    expect(
      await stack.deploy(
        synth((s) => user(s, 'Renamed', 'old-name')),
        OPTIONS,
      ),
    ).toEqual({
      status: 'CREATE_COMPLETE',
    });
    const from = cfn.invocations.length;
    const result = await stack.deploy(
      synth((s) => user(s, 'Renamed', 'new-name')),
      { ...OPTIONS, redeliver: elsewhere('Update', 'answerLostElsewhere') },
    );
    expect(result).toEqual({ status: 'UPDATE_COMPLETE' });
    const update = since(from).find((i) => i.requestType === 'Update');
    expect(update?.outcome).toBe('SUCCESS');
    expect(update?.returnedPhysicalId).toMatch(new RegExp(`^${BROKER}/new-name\\?owner=created&previous=`));
    expect(eventually('new-name')).toMatchObject({ password: PASSWORD });
    expect(eventually('old-name')).toBeUndefined();
  });

  test('a rename delivered again while the first still runs: the new user is ours, the old one deleted', async () => {
    const stack = cfn.stack('Orders');
    await stack.deploy(
      synth((s) => user(s, 'Renamed', 'old-name')),
      OPTIONS,
    );
    const from = cfn.invocations.length;
    const result = await stack.deploy(
      synth((s) => user(s, 'Renamed', 'new-name')),
      { ...OPTIONS, redeliver: elsewhere('Update', 'whileRunningElsewhere') },
    );
    expect(result).toEqual({ status: 'UPDATE_COMPLETE' });
    expect(since(from).find((i) => i.requestType === 'Update')?.returnedPhysicalId).toMatch(/new-name\?owner=created/);
    expect(eventually('old-name')).toBeUndefined();
    expect(await stack.destroy(OPTIONS)).toMatchObject({ status: 'DELETE_COMPLETE' });
    expect(eventually('new-name')).toBeUndefined();
  });

  test("an adoption whose answer was lost: the first delivery's answer, with the settings it found (prior)", async () => {
    mq.seedUser(BROKER, 'adopted-user', { consoleAccess: true, groups: ['before'], password: 'Before-Passw0rd-12' });
    secrets.add('Before-Passw0rd-12');
    const from = cfn.invocations.length;
    const result = await cfn.stack('Orders').deploy(
      synth((s) => user(s, 'Adopted', 'adopted-user', { adoptExisting: true, groups: ['after'] })),
      { ...OPTIONS, redeliver: elsewhere('Create', 'answerLostElsewhere') },
    );
    expect(result).toEqual({ status: 'CREATE_COMPLETE' });
    const answer = since(from)[0].returnedPhysicalId!;
    // The second delivery found the user already converged by the first: only the first's answer knows what it was.
    expect(parsePhysicalResourceId(answer)).toMatchObject({
      owner: 'adopted',
      prior: { consoleAccess: true, groups: ['before'], replicationUser: false },
    });
    expect(eventually('adopted-user')).toMatchObject({ groups: ['after'], consoleAccess: false });
  });
});
