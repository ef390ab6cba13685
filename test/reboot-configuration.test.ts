/**
 * MqBrokerReboot applies the configuration revision of the broker's MqAuthorizationMap, and only when the
 * revision this deploy set is the one DescribeBroker shows pending.
 */
import { CloudFormationClient, DescribeStacksCommand } from '@aws-sdk/client-cloudformation';
import { DescribeBrokerCommand, ListUsersCommand, MqClient, RebootBrokerCommand } from '@aws-sdk/client-mq';
import { App, Stack } from 'aws-cdk-lib';
import { Annotations, Match, Template } from 'aws-cdk-lib/assertions';
import { mockClient } from 'aws-sdk-client-mock';
import 'aws-sdk-client-mock-jest';
import { MqAuthorizationMap, MqBroker, MqBrokerReboot, MqDestination, MqUser } from '../lib';
import { configurationState } from '../lambda/reboot/configuration';
import * as reboot from '../lambda/reboot/index';
import { rebootTiming, type RebootEvent } from '../lambda/reboot/index';
import type { HandlerContext } from '../lambda/shared/event';
import { parseRebootProperties } from '../lambda/shared/properties';
import { retryTiming } from '../lambda/shared/retry';
import { STACK_ID, lambdaContext, rebootEvent } from './fixtures/events';
import { CloudFormationAtWork } from './fixtures/proof';
import { activeMq } from './fixtures/brokers';

const OURS = { ConfigurationId: 'c-1234', ConfigurationRevision: '4' };
const rev = (id: string, revision: number) => ({ Id: id, Revision: revision });

describe('configurationState', () => {
  const wanted = { id: 'c-1234', revision: 4 };
  test.each<[string, Parameters<typeof configurationState>[0], string]>([
    ['ours pending', { current: { id: 'c-1234', revision: 3 }, pending: wanted }, 'PENDING'],
    ['ours current, nothing pending', { current: wanted }, 'APPLIED'],
    ['ours current, a later one pending', { current: wanted, pending: { id: 'c-1234', revision: 5 } }, 'APPLIED'],
    [
      'a later revision pending',
      { current: { id: 'c-1234', revision: 3 }, pending: { id: 'c-1234', revision: 5 } },
      'OTHER',
    ],
    ['another configuration pending', { pending: { id: 'c-9999', revision: 4 } }, 'OTHER'],
    ['an older one current, nothing pending (not shown yet)', { current: { id: 'c-1234', revision: 3 } }, 'OTHER'],
    ['DescribeBroker shows none', {}, 'OTHER'],
  ])('%s: %s', (_name, broker, state) => {
    expect(configurationState(broker, wanted)).toBe(state);
  });
});

describe('the reboot properties', () => {
  const base = { BrokerId: 'b-1', Usernames: [], UsersDigest: 'd', TimeoutSeconds: '900' };
  test('carry the configuration revision as CloudFormation passes it (a string)', () => {
    expect(parseRebootProperties({ ...base, ...OURS })).toMatchObject(OURS);
    expect(parseRebootProperties(base)).not.toHaveProperty('ConfigurationId');
  });
  test.each([
    [{ ConfigurationId: 'c-1234' }],
    [{ ConfigurationRevision: '4' }],
    [{ ConfigurationId: 'c-1234', ConfigurationRevision: 'latest' }],
  ])('refuse half a configuration or a revision that is not a number: %j', (fields) => {
    expect(() => parseRebootProperties({ ...base, ...fields })).toThrow(
      /ConfigurationId and ConfigurationRevision must come together/,
    );
  });
});

describe('the handler', () => {
  const mq = mockClient(MqClient);
  const cloudFormation = mockClient(CloudFormationClient);
  // CloudFormation confirms that it is working on each event handed to the handler (lambda/shared/proof.ts).
  const atWork = new CloudFormationAtWork(cloudFormation, 'Custom::MqBrokerReboot');
  const onEvent = (event: RebootEvent, context: HandlerContext) => {
    atWork.workOn(event);
    return reboot.onEvent(event, context);
  };
  const isComplete = (event: RebootEvent, context: HandlerContext) => {
    atWork.workOn(event);
    return reboot.isComplete(event, context);
  };
  const brokerWith = (configurations: object, state = 'RUNNING') =>
    mq
      .on(DescribeBrokerCommand)
      .resolves({ BrokerState: state as never, EngineType: 'ACTIVEMQ', Configurations: configurations });

  beforeEach(() => {
    mq.reset();
    cloudFormation.reset();
    atWork.install();
    process.env.CDK_MQ_USER_STACK_ID = STACK_ID;
    Object.assign(retryTiming, { baseDelayMs: 1, maxDelayMs: 5, attemptTimeoutMs: 300, accessDeniedWindowMs: 50 });
    rebootTiming.settleMs = 60_000;
    cloudFormation
      .on(DescribeStacksCommand)
      .resolves({ Stacks: [{ StackName: 's', StackStatus: 'UPDATE_IN_PROGRESS', CreationTime: new Date() }] });
    mq.on(RebootBrokerCommand).resolves({});
    mq.on(ListUsersCommand).resolves({ Users: [] });
    jest.spyOn(console, 'log').mockImplementation(() => undefined);
    jest.spyOn(console, 'warn').mockImplementation(() => undefined);
  });
  afterEach(() => {
    jest.restoreAllMocks();
    delete process.env.CDK_MQ_USER_STACK_ID;
  });

  // Old code: no user changed, so the update was "only the reboot settings": no reboot, the map stayed pending.
  test('an update that only made a new revision reboots when that revision is pending', async () => {
    brokerWith({ Current: rev('c-1234', 3), Pending: rev('c-1234', 4) });
    const response = await onEvent(
      rebootEvent('Update', { props: OURS, old: { ConfigurationRevision: '3' } }),
      lambdaContext(),
    );
    expect(mq).toHaveReceivedCommandTimes(RebootBrokerCommand, 1);
    expect(response.Data).toMatchObject({ Action: 'REBOOTED', HadPending: 'true', ConfigurationPending: 'true' });
  });

  test('a revision set by someone else (a later one pending) is never rebooted for, and is logged', async () => {
    brokerWith({ Current: rev('c-1234', 3), Pending: rev('c-1234', 5) });
    const response = await onEvent(
      rebootEvent('Update', { props: OURS, old: { ConfigurationRevision: '3' } }),
      lambdaContext(),
    );
    expect(mq).not.toHaveReceivedCommand(RebootBrokerCommand);
    expect(response.Data.Action).toBe('NONE');
    expect(JSON.stringify((console.warn as jest.Mock).mock.calls)).toContain(
      'configuration c-1234 revision 4 of this deploy is neither pending nor current on the broker (current c-1234 revision 3, pending c-1234 revision 5)',
    );
  });

  test('a revision the broker already runs (a new broker created with it) needs no reboot', async () => {
    brokerWith({ Current: rev('c-1234', 4) });
    const response = await onEvent(rebootEvent('Create', { props: OURS }), lambdaContext());
    expect(mq).not.toHaveReceivedCommand(RebootBrokerCommand);
    expect(response.Data.Action).toBe('NONE');
  });

  test('without a map, configurations are not looked at', async () => {
    brokerWith({ Current: rev('c-1234', 3), Pending: rev('c-1234', 4) });
    const response = await onEvent(rebootEvent('Create'), lambdaContext());
    expect(mq).not.toHaveReceivedCommand(RebootBrokerCommand);
    expect(response.Data.Action).toBe('NONE');
  });

  const after = (ms: number) => ({
    Action: 'REBOOTED',
    RequestedAt: String(Date.now() - ms),
    HadPending: 'true',
    ConfigurationPending: 'true',
  });

  // Old code: no covered user pending and HadPending true meant "applied": the deploy ended with the map pending.
  test('isComplete waits while the revision is still pending, although no user is', async () => {
    brokerWith({ Current: rev('c-1234', 3), Pending: rev('c-1234', 4) });
    expect(await isComplete(rebootEvent('Update', { props: OURS, data: after(5_000) }), lambdaContext())).toEqual({
      IsComplete: false,
    });
    expect(mq).not.toHaveReceivedCommand(RebootBrokerCommand);
  });

  test('isComplete ends once the broker runs the revision', async () => {
    brokerWith({ Current: rev('c-1234', 4) });
    expect(await isComplete(rebootEvent('Update', { props: OURS, data: after(5_000) }), lambdaContext())).toEqual({
      IsComplete: true,
    });
  });

  test('isComplete reboots again when the revision is still pending after the settle period', async () => {
    brokerWith({ Current: rev('c-1234', 3), Pending: rev('c-1234', 4) });
    expect(await isComplete(rebootEvent('Update', { props: OURS, data: after(60_000) }), lambdaContext())).toEqual({
      IsComplete: false,
    });
    expect(mq).toHaveReceivedCommandTimes(RebootBrokerCommand, 1);
  });

  test('a reboot already in progress at onEvent: isComplete waits for the revision too', async () => {
    brokerWith({ Current: rev('c-1234', 3), Pending: rev('c-1234', 4) }, 'REBOOT_IN_PROGRESS');
    const response = await onEvent(
      rebootEvent('Update', { props: OURS, old: { ConfigurationRevision: '3' } }),
      lambdaContext(),
    );
    expect(response.Data).toMatchObject({ Action: 'WAITING', ConfigurationPending: 'true' });
  });
});

describe('MqBrokerReboot with an MqAuthorizationMap', () => {
  test("carries the map's configuration revision, so a changed map updates the reboot", () => {
    const stack = new Stack(new App(), 'Stack');
    const broker = activeMq(stack);
    const access = new MqAuthorizationMap(stack, 'Access', { broker });
    access.allow(MqDestination.queue('A'), { admin: ['ops'] });
    new MqBrokerReboot(stack, 'Apply', { broker });
    const id = stack.getLogicalId(access.configuration);
    Template.fromStack(stack).hasResourceProperties('Custom::MqBrokerReboot', {
      ConfigurationId: { 'Fn::GetAtt': [id, 'Id'] },
      ConfigurationRevision: { 'Fn::GetAtt': [id, 'Revision'] },
    });
    // A reboot with a map but no MqUser is not pointless: no rebootWithoutUsers warning.
    expect(Annotations.fromStack(stack).findWarning('*', Match.stringLikeRegexp('rebootWithoutUsers'))).toEqual([]);
  });

  test('without a map in its stack it carries none', () => {
    const app = new App();
    const stack = new Stack(app, 'Stack');
    const broker = activeMq(stack);
    new MqAuthorizationMap(stack, 'Access', { broker }).allow(MqDestination.queue('A'), { admin: ['ops'] });
    const other = new Stack(app, 'Other', { env: { account: '111111111111', region: 'us-east-1' } });
    const imported = MqBroker.fromBrokerArn(
      other,
      'Broker',
      'arn:aws:mq:us-east-1:111111111111:broker:b:b-1234a5b6-78cd-901e-2fgh-3i45j6k178l9',
    );
    new MqUser(other, 'User', { broker: imported, username: 'someone', groups: ['ops'] });
    new MqBrokerReboot(other, 'Apply', { broker: imported });
    const [reboot] = Object.values(Template.fromStack(other).findResources('Custom::MqBrokerReboot')) as Array<{
      Properties: Record<string, unknown>;
    }>;
    expect(reboot.Properties).not.toHaveProperty('ConfigurationId');
    expect(reboot.Properties).not.toHaveProperty('ConfigurationRevision');
  });
});
