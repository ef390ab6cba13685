/**
 * An MqAuthorizationMap's configuration revisions through real deploys: the emulator (test/support/cloudformation.ts)
 * makes the `AWS::AmazonMQ::Configuration` (a new revision at every change of its data) and gives the broker the
 * revision its `Configuration` names (pending until a reboot, as UpdateBroker does); the bundled MqBrokerReboot
 * handler decides from the broker's `Configurations` what to reboot for. See docs/RELIABILITY.md.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { App, Stack, aws_amazonmq as amazonmq, aws_secretsmanager as secretsmanager } from 'aws-cdk-lib';
import { MqAuthorizationMap, MqBroker, MqBrokerReboot, MqDestination, MqUser } from '../lib';
import { activeMq } from './fixtures/brokers';
import { CloudFormation, EmulatedStack } from './support/cloudformation';
import { BrokerSpec, FakeMq } from './support/mq-endpoint';
import { startDoubles } from './support/lifecycle';
import { collectPasswords, expectBystanderUntouched } from './support/scenario';

process.env.CDK_VALIDATION = 'false';
jest.setTimeout(30_000);

const OUT = path.join(__dirname, '..', '.test-out', 'authorization-map');
/** A broker outside the stack, for a resource that fails after the reboot (no MqBrokerReboot covers it). */
const OTHER = 'b-0f0e0d0c-0b0a-0908-0706-050403020100';
const BYSTANDER = { consoleAccess: false, groups: ['theirs'], password: 'Bystander-Passw0rd-1' };
/** Someone else's configuration revision, set on the broker by hand (the console, another tool). */
const FOREIGN = { id: 'c-9d8c7b6a-5f4e-4d3c-8b2a-1f0e9d8c7b6a', revision: 7 };
const TIMINGS = {
  retryTiming: { baseDelayMs: 20, maxDelayMs: 200, throttleBaseDelayMs: 20, throttleMaxDelayMs: 200 },
  rebootTiming: { settleMs: 1_500 },
};

let mq: FakeMq;
let cfn: CloudFormation;
const secrets = new Set<string>([BYSTANDER.password]);
const figures = { scenarios: 0, usersChangedUnexpectedly: 0 };
/** The brokers the emulator made in this scenario: each gets the bystander as it is created. */
let brokers: string[] = [];

beforeAll(() => fs.rmSync(OUT, { recursive: true, force: true }));

startDoubles({
  out: OUT,
  emulator: { queryIntervalMs: 10, timings: TIMINGS },
  started: (doubles) => ({ mq, cfn } = doubles),
});

beforeAll(() => {
  // A user nobody declared on every broker the stacks create, from its first moment.
  const addBroker = mq.addBroker.bind(mq);
  mq.addBroker = (spec: BrokerSpec) => {
    const arn = addBroker(spec);
    if (spec.brokerId !== OTHER) {
      mq.seedUser(spec.brokerId, 'bystander', BYSTANDER);
      brokers.push(spec.brokerId);
    }
    return arn;
  };
});

afterAll(() => fs.rmSync(OUT, { recursive: true, force: true }));

beforeEach(() => {
  figures.scenarios++;
  mq.reset();
  cfn.clearInjections();
  brokers = [];
  mq.addBroker({ brokerId: OTHER, brokerName: 'other', engineType: 'ACTIVEMQ' });
});

afterEach(() => {
  collectPasswords(mq, brokers, secrets);
  for (const id of brokers) expectBystanderUntouched(mq, id, BYSTANDER, figures);
});

interface AppOptions {
  /** The groups that may write to `ORDERS.>` (the rule a deploy changes). */
  writers?: string[];
  /** Users' groups (a change of them is a user change, not a rule change). */
  groups?: string[];
  /** A user on another broker whose secret does not exist, made to run after the reboot: the deploy fails. */
  failAfterReboot?: boolean;
  /** Leave the MqUsers out (the reboot then covers no user). */
  withoutUsers?: boolean;
  /** Leave the MqAuthorizationMap out (the broker has no configuration of ours). */
  withoutMap?: boolean;
}

/** The stack: a CfnBroker, its MqUsers, its MqAuthorizationMap and MqBrokerReboot. */
function app(options: AppOptions = {}): string {
  fs.mkdirSync(OUT, { recursive: true });
  const outdir = fs.mkdtempSync(path.join(OUT, 'assembly-'));
  const root = new App({ outdir });
  const s = new Stack(root, 'Orders');
  const broker: amazonmq.CfnBroker = activeMq(s);
  const groups = options.groups ?? ['orders-producers'];
  if (!options.withoutUsers) {
    new MqUser(s, 'Producer', { broker, username: 'producer', groups });
    new MqUser(s, 'Consumer', { broker, username: 'consumer', groups: ['orders-consumers'] });
  }
  if (!options.withoutMap) {
    const access = new MqAuthorizationMap(s, 'Access', { broker });
    access.allow(MqDestination.queue('ORDERS.>'), {
      write: options.writers ?? ['orders-producers'],
      read: ['orders-consumers'],
      admin: ['orders-producers'],
    });
  }
  const reboot = new MqBrokerReboot(s, 'ApplyUsers', { broker });
  if (options.failAfterReboot) {
    const missing = secretsmanager.Secret.fromSecretCompleteArn(
      s,
      'Missing',
      'arn:aws:secretsmanager:us-east-1:123456789012:secret:missing-AbCdEf',
    );
    const other = MqBroker.fromBrokerArn(s, 'OtherBroker', mq.brokerArn(OTHER));
    const late = new MqUser(s, 'Late', { broker: other, username: 'late-user', passwordSecret: missing });
    late.node.addDependency(reboot);
  }
  root.synth();
  return outdir;
}

function brokerOf(stack: EmulatedStack): string {
  return stack.physicalId('Broker')!;
}

/** The configuration's ID and the revision `Fn::GetAtt` gives now. */
function configurationOf(stack: EmulatedStack): string {
  return Object.values(stack.physicalIdsOf('AWS::AmazonMQ::Configuration'))[0];
}

function rebootEvents(stackName = 'Orders') {
  return cfn.invocations.filter((i) => i.stackName === stackName && i.resourceType === 'Custom::MqBrokerReboot');
}

describe('first deploy', () => {
  test.each(['current', 'pending'] as const)(
    'a broker created with the map and its users: one reboot, the broker ends running revision 1 (configurationAtCreate %s)',
    async (atCreate) => {
      mq.configurationAtCreate = atCreate;
      const stack = cfn.stack('Orders');
      expect(await stack.deploy(app())).toEqual({ status: 'CREATE_COMPLETE' });
      const id = brokerOf(stack);
      expect(configurationOf(stack)).toMatch(/^c-[0-9a-f-]{36}$/);
      expect(mq.reboots(id)).toBe(1);
      expect(mq.configurations(id)).toMatchObject({
        current: { id: configurationOf(stack), revision: 1 },
        pending: undefined,
      });
      for (const username of ['producer', 'consumer']) expect(mq.user(id, username)?.pending).toBeUndefined();
    },
  );

  test.each([
    ['current', 0],
    ['pending', 1],
  ] as const)('a broker created with the map and no users: %s at creation, %i reboots', async (atCreate, reboots) => {
    mq.configurationAtCreate = atCreate;
    // The broker still says RUNNING, the revision pending, for a while after RebootBroker: only the revision
    // tells the waiter that the reboot has not happened yet.
    mq.rebootStartsAfterMs = 300;
    const stack = cfn.stack('Orders');
    expect(await stack.deploy(app({ withoutUsers: true }))).toEqual({ status: 'CREATE_COMPLETE' });
    const id = brokerOf(stack);
    expect(mq.reboots(id)).toBe(reboots);
    expect(mq.configurations(id)).toMatchObject({ current: { revision: 1 }, pending: undefined });
  });
});

describe('later deploys', () => {
  test('hostile: a revision someone else set pending during the deploy is never rebooted for', async () => {
    const stack = cfn.stack('Orders');
    await stack.deploy(app());
    const id = brokerOf(stack);
    // CloudFormation's broker update sets revision 2 pending; while the reboot handler's DescribeBroker gets a
    // transient 503, someone points the broker at their own revision.
    mq.inject({
      operation: 'DescribeBroker',
      brokerId: id,
      fault: 'unavailable',
      then: () => mq.setPendingConfiguration(id, FOREIGN),
    });
    const transcriptBefore = cfn.transcript.length;
    expect(await stack.deploy(app({ writers: ['orders-producers', 'audit'] }))).toEqual({
      status: 'UPDATE_COMPLETE',
    });
    expect(mq.reboots(id)).toBe(1);
    expect(mq.configurations(id)).toMatchObject({ current: { revision: 1 }, pending: FOREIGN });
    expect(cfn.transcript.slice(transcriptBefore).join('\n')).toMatch(
      /configuration c-[0-9a-f-]+ revision 2 of this deploy is neither pending nor current on the broker \(current c-[0-9a-f-]+ revision 1, pending c-9d8c7b6a-[0-9a-f-]+ revision 7\): not rebooting for it/,
    );
  });

  test("hostile: with someone else's revision pending, a deploy that changes nothing reboots nothing", async () => {
    const stack = cfn.stack('Orders');
    await stack.deploy(app());
    const id = brokerOf(stack);
    mq.setPendingConfiguration(id, FOREIGN);
    const events = rebootEvents().length;
    expect(await stack.deploy(app())).toEqual({ status: 'UPDATE_COMPLETE' });
    expect(rebootEvents()).toHaveLength(events);
    expect(mq.reboots(id)).toBe(1);
    expect(mq.configurations(id)).toMatchObject({ current: { revision: 1 }, pending: FOREIGN });
  });

  test('a deploy that only changes a rule reboots once, the broker slow to start rebooting, and ends running revision 2', async () => {
    const stack = cfn.stack('Orders');
    await stack.deploy(app());
    const id = brokerOf(stack);
    // RebootBroker answers while the broker still says RUNNING with the revision pending for a while.
    mq.rebootStartsAfterMs = 300;
    expect(await stack.deploy(app({ writers: ['orders-producers', 'audit'] }))).toEqual({
      status: 'UPDATE_COMPLETE',
    });
    expect(mq.reboots(id)).toBe(2);
    expect(mq.completedReboots(id)).toBe(2);
    expect(mq.configurations(id)).toMatchObject({
      current: { id: configurationOf(stack), revision: 2 },
      pending: undefined,
    });

    // Nothing changed: no event, no reboot, the revision stays.
    expect(await stack.deploy(app({ writers: ['orders-producers', 'audit'] }))).toEqual({
      status: 'UPDATE_COMPLETE',
    });
    expect(mq.reboots(id)).toBe(2);
    expect(mq.configurations(id)).toMatchObject({ current: { revision: 2 }, pending: undefined });
  });

  test('a maintenance window that applied the revision before the reboot handler looked: no reboot', async () => {
    const stack = cfn.stack('Orders');
    await stack.deploy(app());
    const id = brokerOf(stack);
    // The broker's update set revision 2 pending; the window passes during a transient 503 of DescribeBroker.
    mq.inject({
      operation: 'DescribeBroker',
      brokerId: id,
      fault: 'unavailable',
      then: () => mq.advanceTo(mq.nextWindowStart(id) + 60_000),
    });
    expect(await stack.deploy(app({ writers: ['orders-producers', 'audit'] }))).toEqual({
      status: 'UPDATE_COMPLETE',
    });
    expect(mq.windowsApplied(id)).toBe(1);
    expect(mq.reboots(id)).toBe(1);
    expect(mq.configurations(id)).toMatchObject({ current: { revision: 2 }, pending: undefined });
  });

  test('adding the map to a deployed broker: its first revision is pending after the update, one reboot applies it', async () => {
    const stack = cfn.stack('Orders');
    await stack.deploy(app({ withoutMap: true }));
    const id = brokerOf(stack);
    expect(mq.configurations(id)).toEqual({ history: [] });
    expect(await stack.deploy(app())).toEqual({ status: 'UPDATE_COMPLETE' });
    expect(mq.reboots(id)).toBe(2);
    expect(mq.configurations(id)).toMatchObject({
      current: { id: configurationOf(stack), revision: 1 },
      pending: undefined,
    });
  });

  test('a deploy that changes a rule and users reboots once for both', async () => {
    const stack = cfn.stack('Orders');
    await stack.deploy(app());
    const id = brokerOf(stack);
    expect(
      await stack.deploy(app({ writers: ['orders-producers', 'audit'], groups: ['orders-producers', 'audit'] })),
    ).toEqual({ status: 'UPDATE_COMPLETE' });
    expect(mq.reboots(id)).toBe(2);
    expect(mq.configurations(id)).toMatchObject({ current: { revision: 2 }, pending: undefined });
    expect(mq.user(id, 'producer')).toMatchObject({
      applied: { groups: ['audit', 'orders-producers'] },
      pending: undefined,
    });
  });
});

describe('rollback', () => {
  test.each([
    ['newRevision', 3],
    ['previousRevision', 1],
  ] as const)(
    'a deploy that fails after its reboot rolls back without rebooting; the old rules wait pending (configurationRollback %s)',
    async (configurationRollback, restored) => {
      const stack = cfn.stack('Orders');
      await stack.deploy(app());
      const id = brokerOf(stack);
      const result = await stack.deploy(app({ writers: ['orders-producers', 'audit'], failAfterReboot: true }), {
        configurationRollback,
      });
      expect(result.status).toBe('UPDATE_ROLLBACK_COMPLETE');
      expect(mq.reboots(id)).toBe(2); // the first deploy's and the forward deploy's, none in the rollback
      expect(mq.configurations(id)).toMatchObject({
        current: { revision: 2 },
        pending: { id: configurationOf(stack), revision: restored },
      });
      const rollback = rebootEvents().at(-1)!;
      expect(rollback).toMatchObject({ requestType: 'Update', outcome: 'SUCCESS' });
      expect(rollback.mqCalls.filter((c) => c.operation === 'RebootBroker')).toHaveLength(0);
      expect(stack.data(Object.keys(stack.customResources('Custom::MqBrokerReboot'))[0])).toMatchObject({
        Action: 'SKIPPED_ROLLBACK',
      });
    },
  );
});

describe('nothing leaks', () => {
  test('no log line, response or failure reason holds a password', () => {
    for (const generated of cfn.generatedSecrets) secrets.add(generated);
    const transcript = cfn.transcript.join('\n');
    expect(cfn.transcript.length).toBeGreaterThan(20);
    expect(secrets.size).toBeGreaterThan(2);
    for (const secret of secrets) expect(transcript).not.toContain(secret);
    expect(figures.usersChangedUnexpectedly).toBe(0);
    process.stdout.write(
      `authorization-map lifecycle figures: ${JSON.stringify({ ...figures, invocations: cfn.invocations.length })}\n`,
    );
  });
});
