import { CloudFormationClient, DescribeStacksCommand } from '@aws-sdk/client-cloudformation';
import {
  BadRequestException,
  DescribeBrokerCommand,
  ListUsersCommand,
  MqClient,
  RebootBrokerCommand,
} from '@aws-sdk/client-mq';
import { mockClient } from 'aws-sdk-client-mock';
import 'aws-sdk-client-mock-jest';
import type { MqBrokerRebootResourceProperties } from '../lib/private/handler-props';
import { RebootEvent, isComplete, onEvent, rebootTiming } from '../lambda/reboot';
import { retryTiming } from '../lambda/retry';
import { BROKER_ID, STACK_ID, lambdaContext } from './fixtures/events';

const mq = mockClient(MqClient);
const cloudFormation = mockClient(CloudFormationClient);

const PROPS: MqBrokerRebootResourceProperties = {
  BrokerId: BROKER_ID,
  Usernames: ['billing-service', 'orders-service'],
  UsersDigest: 'abc',
  TimeoutSeconds: 900,
};

function event(requestType: RebootEvent['RequestType'], data?: RebootEvent['Data']): RebootEvent {
  return {
    RequestType: requestType,
    // As CloudFormation delivers them: numbers become strings.
    ResourceProperties: { ...PROPS, TimeoutSeconds: String(PROPS.TimeoutSeconds) },
    PhysicalResourceId: requestType === 'Create' ? undefined : `${BROKER_ID}/reboot`,
    StackId: STACK_ID,
    Data: data,
  };
}

const brokerIn = (state: string) =>
  mq.on(DescribeBrokerCommand).resolves({ BrokerState: state as never, EngineType: 'ACTIVEMQ' });
const pendingUsers = (...names: string[]) =>
  mq
    .on(ListUsersCommand)
    .resolves({ Users: names.map((Username) => ({ Username, PendingChange: 'CREATE' as const })) });
const stackIs = (status: string) =>
  cloudFormation
    .on(DescribeStacksCommand)
    .resolves({ Stacks: [{ StackName: 's', StackStatus: status as never, CreationTime: new Date() }] });
const requestedAgo = (ms: number, action = 'REBOOTED') => ({ Action: action, RequestedAt: String(Date.now() - ms) });

beforeEach(() => {
  mq.reset();
  cloudFormation.reset();
  Object.assign(retryTiming, { baseDelayMs: 1, maxDelayMs: 5, attemptTimeoutMs: 300, accessDeniedWindowMs: 50 });
  rebootTiming.settleMs = 60_000;
  stackIs('UPDATE_IN_PROGRESS');
  mq.on(RebootBrokerCommand).resolves({});
  jest.spyOn(console, 'log').mockImplementation(() => undefined);
  jest.spyOn(console, 'warn').mockImplementation(() => undefined);
});

afterEach(() => jest.restoreAllMocks());

describe('onEvent', () => {
  test.each(['Create', 'Update'] as const)('reboots a RUNNING broker once on %s', async (type) => {
    brokerIn('RUNNING');
    const response = await onEvent(event(type), lambdaContext());
    expect(mq).toHaveReceivedCommandTimes(RebootBrokerCommand, 1);
    expect(mq).toHaveReceivedCommandWith(RebootBrokerCommand, { BrokerId: BROKER_ID });
    expect(response).toEqual({
      PhysicalResourceId: `${BROKER_ID}/reboot`,
      Data: { Action: 'REBOOTED', RequestedAt: expect.stringMatching(/^\d+$/) },
    });
  });

  test('does not reboot when only its own settings changed (timeout), no covered user', async () => {
    brokerIn('RUNNING');
    const update = { ...event('Update'), OldResourceProperties: { ...PROPS, TimeoutSeconds: '1800' } };
    const response = await onEvent(update, lambdaContext());
    expect(mq).not.toHaveReceivedCommand(RebootBrokerCommand);
    expect(response.Data.Action).toBe('NONE');
  });

  test.each([
    ['a covered user', { UsersDigest: 'older' }],
    ['the revision', { Revision: '0' }],
    ['a username only known at deploy time', { Usernames: ['billing-service', 'orders-old'] }],
  ])('reboots when %s changed', async (_case, old) => {
    brokerIn('RUNNING');
    await onEvent({ ...event('Update'), OldResourceProperties: { ...PROPS, ...old } }, lambdaContext());
    expect(mq).toHaveReceivedCommandTimes(RebootBrokerCommand, 1);
  });

  test('waits for a reboot already in progress instead of starting one', async () => {
    brokerIn('REBOOT_IN_PROGRESS');
    const response = await onEvent(event('Update'), lambdaContext());
    expect(mq).not.toHaveReceivedCommand(RebootBrokerCommand);
    expect(response.Data.Action).toBe('WAITING');
  });

  test('does not reboot during a stack rollback', async () => {
    stackIs('UPDATE_ROLLBACK_IN_PROGRESS');
    brokerIn('RUNNING');
    const response = await onEvent(event('Update'), lambdaContext());
    expect(mq).not.toHaveReceivedAnyCommand();
    expect(response.Data.Action).toBe('SKIPPED_ROLLBACK');
  });

  test('does nothing on Delete', async () => {
    const response = await onEvent(event('Delete'), lambdaContext());
    expect(mq).not.toHaveReceivedAnyCommand();
    expect(cloudFormation).not.toHaveReceivedAnyCommand();
    expect(response.Data.Action).toBe('NONE');
  });

  test('fails clearly when the broker is neither RUNNING nor rebooting', async () => {
    brokerIn('CRITICAL_ACTION_REQUIRED');
    await expect(onEvent(event('Update'), lambdaContext())).rejects.toThrow(
      `broker ${BROKER_ID} is CRITICAL_ACTION_REQUIRED: Amazon MQ reboots a broker only from RUNNING`,
    );
    expect(mq).not.toHaveReceivedCommand(RebootBrokerCommand);
  });
});

describe('isComplete', () => {
  test('keeps waiting while the broker reboots', async () => {
    brokerIn('REBOOT_IN_PROGRESS');
    await expect(isComplete(event('Update', requestedAgo(10_000)), lambdaContext())).resolves.toEqual({
      IsComplete: false,
    });
    expect(mq).not.toHaveReceivedCommand(ListUsersCommand);
  });

  test('is complete when the broker is RUNNING and no covered user is pending', async () => {
    brokerIn('RUNNING');
    // Another user's change (not covered by this stack) does not hold the deploy.
    pendingUsers('someone-else');
    await expect(isComplete(event('Update', requestedAgo(300_000)), lambdaContext())).resolves.toEqual({
      IsComplete: true,
    });
    expect(mq).not.toHaveReceivedCommand(RebootBrokerCommand);
  });

  test('waits, without rebooting again, when the reboot just requested has not started yet', async () => {
    brokerIn('RUNNING');
    pendingUsers('orders-service');
    await expect(isComplete(event('Update', requestedAgo(2_000)), lambdaContext())).resolves.toEqual({
      IsComplete: false,
    });
    expect(mq).not.toHaveReceivedCommand(RebootBrokerCommand);
  });

  test('reboots again when a reboot it waited for left a covered user pending', async () => {
    brokerIn('RUNNING');
    pendingUsers('orders-service');
    await expect(isComplete(event('Update', requestedAgo(120_000, 'WAITING')), lambdaContext())).resolves.toEqual({
      IsComplete: false,
    });
    expect(mq).toHaveReceivedCommandTimes(RebootBrokerCommand, 1);
  });

  test('reboots again at most once per minute, not at every poll', async () => {
    brokerIn('RUNNING');
    pendingUsers('orders-service');
    // 140 s after the request: outside the first 15 s of a minute, so this poll only waits.
    await expect(isComplete(event('Update', requestedAgo(140_000, 'WAITING')), lambdaContext())).resolves.toEqual({
      IsComplete: false,
    });
    expect(mq).not.toHaveReceivedCommand(RebootBrokerCommand);
  });

  test('reads every page of ListUsers', async () => {
    brokerIn('RUNNING');
    mq.on(ListUsersCommand)
      .resolvesOnce({ Users: [{ Username: 'a-user' }], NextToken: 'page-2' })
      .resolves({ Users: [{ Username: 'orders-service', PendingChange: 'UPDATE' }] });
    await expect(isComplete(event('Update', requestedAgo(5_000)), lambdaContext())).resolves.toEqual({
      IsComplete: false,
    });
    expect(mq).toHaveReceivedCommandWith(ListUsersCommand, { NextToken: 'page-2' });
  });

  test('treats a refused second reboot (the broker left RUNNING meanwhile) as a reboot in progress', async () => {
    brokerIn('RUNNING');
    pendingUsers('orders-service');
    mq.on(RebootBrokerCommand).rejects(
      new BadRequestException({ message: 'Broker is not RUNNING', $metadata: { httpStatusCode: 400 } }),
    );
    await expect(isComplete(event('Update', requestedAgo(120_000)), lambdaContext())).resolves.toEqual({
      IsComplete: false,
    });
  });

  test('fails clearly when the broker does not come back within the timeout', async () => {
    brokerIn('REBOOT_IN_PROGRESS');
    await expect(isComplete(event('Update', requestedAgo(901_000)), lambdaContext())).rejects.toThrow(
      `broker ${BROKER_ID} did not return to RUNNING with its users' changes applied within 15 minutes (state REBOOT_IN_PROGRESS)`,
    );
  });

  test('fails when the broker goes to an unexpected state', async () => {
    brokerIn('CRITICAL_ACTION_REQUIRED');
    await expect(isComplete(event('Update', requestedAgo(60_000)), lambdaContext())).rejects.toThrow(
      `broker ${BROKER_ID} went to state CRITICAL_ACTION_REQUIRED while rebooting`,
    );
  });

  test.each(['SKIPPED_ROLLBACK', 'NONE'])('is complete at once after %s', async (action) => {
    await expect(isComplete(event('Update', requestedAgo(0, action)), lambdaContext())).resolves.toEqual({
      IsComplete: true,
    });
    expect(mq).not.toHaveReceivedAnyCommand();
  });
});
