import {
  CloudFormationClient,
  DescribeStackResourceCommand,
  DescribeStacksCommand,
} from '@aws-sdk/client-cloudformation';
import {
  BadRequestException,
  DescribeBrokerCommand,
  ListUsersCommand,
  MqClient,
  RebootBrokerCommand,
} from '@aws-sdk/client-mq';
import { mockClient } from 'aws-sdk-client-mock';
import 'aws-sdk-client-mock-jest';
import * as reboot from '../lambda/reboot/index';
import { rebootTiming, type RebootEvent } from '../lambda/reboot/index';
import type { HandlerContext } from '../lambda/shared/event';
import { retryTiming } from '../lambda/shared/retry';
import { BROKER_ID, OTHER_STACK_ID, STACK_ID, lambdaContext, rebootEvent } from './fixtures/events';
import { CloudFormationAtWork, resourceDetail } from './fixtures/proof';

const mq = mockClient(MqClient);
/** The previous properties of a deploy that changed orders-service (its resolved state). */
const ORDERS_CHANGED = { UserStates: ['state-of-billing', 'older-state-of-orders'] };
const cloudFormation = mockClient(CloudFormationClient);
const atWork = new CloudFormationAtWork(cloudFormation, 'Custom::MqBrokerReboot');

/** onEvent and isComplete of events CloudFormation is working on: their proof holds unless a test says otherwise. */
function onEvent(event: RebootEvent, context: HandlerContext) {
  atWork.workOn(event);
  return reboot.onEvent(event, context);
}
function isComplete(event: RebootEvent, context: HandlerContext) {
  atWork.workOn(event);
  return reboot.isComplete(event, context);
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
const refusedReboot = () =>
  new BadRequestException({
    message: 'Broker must be in RUNNING state to reboot',
    $metadata: { httpStatusCode: 400 },
  });

/** What onEvent returned `ms` ago. */
const requestedAgo = (ms: number, action = 'REBOOTED', hadPending = true) => ({
  Action: action,
  RequestedAt: String(Date.now() - ms),
  HadPending: String(hadPending),
});

beforeEach(() => {
  mq.reset();
  cloudFormation.reset();
  atWork.install();
  process.env.CDK_MQ_USER_STACK_ID = STACK_ID;
  Object.assign(retryTiming, {
    baseDelayMs: 1,
    maxDelayMs: 5,
    throttleBaseDelayMs: 1,
    throttleMaxDelayMs: 5,
    attemptTimeoutMs: 300,
    accessDeniedWindowMs: 50,
  });
  rebootTiming.settleMs = 60_000;
  stackIs('UPDATE_IN_PROGRESS');
  mq.on(RebootBrokerCommand).resolves({});
  pendingUsers();
  jest.spyOn(console, 'log').mockImplementation(() => undefined);
  jest.spyOn(console, 'warn').mockImplementation(() => undefined);
});

afterEach(() => {
  jest.restoreAllMocks();
  delete process.env.CDK_MQ_USER_STACK_ID;
});

describe('onEvent', () => {
  test('reboots a RUNNING broker once on Create when a covered user is pending', async () => {
    brokerIn('RUNNING');
    pendingUsers('orders-service');
    const response = await onEvent(rebootEvent('Create'), lambdaContext());
    expect(mq).toHaveReceivedCommandTimes(RebootBrokerCommand, 1);
    expect(mq).toHaveReceivedCommandWith(RebootBrokerCommand, { BrokerId: BROKER_ID });
    expect(response).toEqual({
      PhysicalResourceId: `${BROKER_ID}/reboot`,
      Data: { Action: 'REBOOTED', RequestedAt: expect.stringMatching(/^\d+$/), HadPending: 'true' },
    });
  });

  test('does not reboot on Create when no covered user is pending (only users of others are)', async () => {
    brokerIn('RUNNING');
    pendingUsers('someone-else');
    const response = await onEvent(rebootEvent('Create'), lambdaContext());
    expect(mq).toHaveReceivedCommand(ListUsersCommand);
    expect(mq).not.toHaveReceivedCommand(RebootBrokerCommand);
    expect(response.Data.Action).toBe('NONE');
  });

  test('reads every page of ListUsers before deciding', async () => {
    brokerIn('RUNNING');
    mq.on(ListUsersCommand)
      .resolvesOnce({ Users: [{ Username: 'a-user' }], NextToken: 'page-2' })
      .resolves({ Users: [{ Username: 'orders-service', PendingChange: 'UPDATE' }] });
    const response = await onEvent(rebootEvent('Create'), lambdaContext());
    expect(mq).toHaveReceivedCommandWith(ListUsersCommand, { BrokerId: BROKER_ID, NextToken: 'page-2' });
    expect(response.Data.Action).toBe('REBOOTED');
  });

  test.each([
    ['only its own timeout changed', { TimeoutSeconds: 1800 }],
    // adoptExisting never reaches the broker: neither UsersDigest nor any StateDigest changes with it.
    ["only a user's adoptExisting changed (no covered property differs)", {}],
  ])('does not reboot, nor call AWS, when %s', async (_case, old) => {
    brokerIn('RUNNING');
    pendingUsers('orders-service');
    const response = await onEvent(rebootEvent('Update', { old }), lambdaContext());
    expect(mq).not.toHaveReceivedAnyCommand();
    expect(cloudFormation).not.toHaveReceivedAnyCommand();
    expect(response.Data.Action).toBe('NONE');
  });

  /** A deploy that removed billing-service and kept orders-service as it was. */
  const removingBilling = () =>
    rebootEvent('Update', {
      props: { Usernames: ['orders-service'], UserStates: ['state-of-orders'] },
      old: { Usernames: ['billing-service', 'orders-service'], UserStates: ['state-of-billing', 'state-of-orders'] },
    });

  test('does not reboot a deploy that only removed users: nothing covered is pending', async () => {
    brokerIn('RUNNING');
    const response = await onEvent(removingBilling(), lambdaContext());
    expect(mq).toHaveReceivedCommand(ListUsersCommand);
    expect(mq).not.toHaveReceivedCommand(RebootBrokerCommand);
    expect(response.Data.Action).toBe('NONE');
  });

  test.each([
    ['a state resolved at deploy time (UserStates)', { UserStates: ['state-of-billing', 'older-state-of-orders'] }],
    ['the synth-time digest and a state', { UsersDigest: 'older', UserStates: ['state-of-billing', 'older-orders'] }],
    ['a username only known at deploy time', { Usernames: ['billing-service', 'orders-old'] }],
  ])('reboots when %s changed and a covered user is pending', async (_case, old) => {
    brokerIn('RUNNING');
    pendingUsers('orders-service');
    const response = await onEvent(rebootEvent('Update', { old }), lambdaContext());
    expect(mq).toHaveReceivedCommandTimes(RebootBrokerCommand, 1);
    expect(response.Data).toMatchObject({ Action: 'REBOOTED', HadPending: 'true' });
  });

  test('does not reboot a deploy that only removed users while a rotation has a password staged (issue 15, finding 4)', async () => {
    // MAINTENANCE_WINDOW staged a password for orders-service: pending UPDATE, not this deploy's.
    brokerIn('RUNNING');
    pendingUsers('orders-service');
    const response = await onEvent(removingBilling(), lambdaContext());
    expect(mq).not.toHaveReceivedCommand(RebootBrokerCommand);
    expect(response.Data.Action).toBe('NONE');
  });

  test('does not reboot for a pending change of a user this deploy left alone (issue 15, finding 4)', async () => {
    brokerIn('RUNNING');
    pendingUsers('orders-service'); // billing-service changed and is applied already; orders-service is not ours
    const response = await onEvent(
      rebootEvent('Update', { old: { UserStates: ['older-billing', 'state-of-orders'] } }),
      lambdaContext(),
    );
    expect(mq).not.toHaveReceivedCommand(RebootBrokerCommand);
    expect(response.Data.Action).toBe('NONE');
  });

  test('is complete once the users this deploy changed are applied, whatever else stays pending (issue 15, finding 4)', async () => {
    brokerIn('RUNNING');
    pendingUsers('billing-service'); // a rotation's staged password: never waited for, never rebooted again for
    await expect(
      isComplete(rebootEvent('Update', { old: ORDERS_CHANGED, data: requestedAgo(120_000) }), lambdaContext()),
    ).resolves.toEqual({ IsComplete: true });
    expect(mq).not.toHaveReceivedCommand(RebootBrokerCommand);
  });

  test('does not reboot when UserStates changed but the broker shows nothing covered pending', async () => {
    brokerIn('RUNNING');
    const response = await onEvent(rebootEvent('Update', { old: { UserStates: ['x', 'y'] } }), lambdaContext());
    expect(mq).not.toHaveReceivedCommand(RebootBrokerCommand);
    expect(response.Data.Action).toBe('NONE');
  });

  test('reboots when the revision changed, even with nothing pending, recording HadPending false', async () => {
    brokerIn('RUNNING');
    const response = await onEvent(
      rebootEvent('Update', { props: { Revision: '2' }, old: { Revision: '1' } }),
      lambdaContext(),
    );
    expect(mq).toHaveReceivedCommandTimes(RebootBrokerCommand, 1);
    expect(response.Data).toMatchObject({ Action: 'REBOOTED', HadPending: 'false' });
  });

  test('waits for a reboot already in progress instead of starting one', async () => {
    brokerIn('REBOOT_IN_PROGRESS');
    pendingUsers('orders-service');
    const response = await onEvent(rebootEvent('Update', { old: { UsersDigest: 'older' } }), lambdaContext());
    expect(mq).not.toHaveReceivedCommand(RebootBrokerCommand);
    expect(response.Data.Action).toBe('WAITING');
  });

  test('waits when the broker starts rebooting between DescribeBroker and ListUsers', async () => {
    mq.on(DescribeBrokerCommand)
      .resolvesOnce({ BrokerState: 'RUNNING', EngineType: 'ACTIVEMQ' })
      .resolves({ BrokerState: 'REBOOT_IN_PROGRESS', EngineType: 'ACTIVEMQ' });
    mq.on(ListUsersCommand).rejects(refusedReboot());
    const response = await onEvent(rebootEvent('Update', { old: { UsersDigest: 'older' } }), lambdaContext());
    expect(mq).not.toHaveReceivedCommand(RebootBrokerCommand);
    expect(response.Data.Action).toBe('WAITING');
  });

  test('waits, not fails, when a concurrent reboot makes RebootBroker answer 400', async () => {
    // Another stack read RUNNING too and rebooted first.
    mq.on(DescribeBrokerCommand)
      .resolvesOnce({ BrokerState: 'RUNNING', EngineType: 'ACTIVEMQ' })
      .resolves({ BrokerState: 'REBOOT_IN_PROGRESS', EngineType: 'ACTIVEMQ' });
    mq.on(RebootBrokerCommand).rejects(refusedReboot());
    pendingUsers('orders-service');
    const response = await onEvent(rebootEvent('Create'), lambdaContext());
    expect(mq).toHaveReceivedCommandTimes(RebootBrokerCommand, 1);
    expect(response.Data).toMatchObject({ Action: 'WAITING', HadPending: 'true' });
  });

  test('fails when RebootBroker answers 400 and the broker is still RUNNING', async () => {
    brokerIn('RUNNING');
    mq.on(RebootBrokerCommand).rejects(refusedReboot());
    pendingUsers('orders-service');
    await expect(onEvent(rebootEvent('Create'), lambdaContext())).rejects.toThrow(
      `RebootBroker on broker ${BROKER_ID} failed: Broker must be in RUNNING state to reboot (BadRequestException, HTTP 400)`,
    );
  });

  test.each(['UPDATE_ROLLBACK_IN_PROGRESS', 'ROLLBACK_IN_PROGRESS'])(
    'does not reboot while the stack is in %s',
    async (status) => {
      stackIs(status);
      brokerIn('RUNNING');
      pendingUsers('orders-service');
      const response = await onEvent(rebootEvent('Update', { old: { UsersDigest: 'older' } }), lambdaContext());
      expect(mq).not.toHaveReceivedAnyCommand();
      expect(response.Data.Action).toBe('SKIPPED_ROLLBACK');
    },
  );

  test('does not reboot when the stack status cannot be read', async () => {
    cloudFormation
      .on(DescribeStacksCommand)
      .rejects(Object.assign(new Error('denied'), { name: 'ValidationError', $metadata: { httpStatusCode: 400 } }));
    pendingUsers('orders-service');
    const response = await onEvent(rebootEvent('Create'), lambdaContext());
    expect(mq).not.toHaveReceivedAnyCommand();
    expect(response.Data.Action).toBe('SKIPPED_ROLLBACK');
  });

  test('does nothing on Delete', async () => {
    const response = await onEvent(rebootEvent('Delete'), lambdaContext());
    expect(mq).not.toHaveReceivedAnyCommand();
    expect(cloudFormation).not.toHaveReceivedAnyCommand();
    expect(response.Data.Action).toBe('NONE');
  });

  test('fails clearly when the broker is neither RUNNING nor rebooting', async () => {
    brokerIn('CRITICAL_ACTION_REQUIRED');
    pendingUsers('orders-service');
    await expect(onEvent(rebootEvent('Create'), lambdaContext())).rejects.toThrow(
      `broker ${BROKER_ID} is CRITICAL_ACTION_REQUIRED: Amazon MQ reboots a broker only from RUNNING`,
    );
    expect(mq).not.toHaveReceivedCommand(RebootBrokerCommand);
  });
});

describe('isComplete', () => {
  test('keeps waiting while the broker reboots', async () => {
    brokerIn('REBOOT_IN_PROGRESS');
    await expect(
      isComplete(rebootEvent('Update', { old: ORDERS_CHANGED, data: requestedAgo(10_000) }), lambdaContext()),
    ).resolves.toEqual({
      IsComplete: false,
    });
    expect(mq).not.toHaveReceivedCommand(ListUsersCommand);
  });

  test('keeps waiting when the broker starts rebooting between DescribeBroker and ListUsers', async () => {
    mq.on(DescribeBrokerCommand)
      .resolvesOnce({ BrokerState: 'RUNNING', EngineType: 'ACTIVEMQ' })
      .resolves({ BrokerState: 'REBOOT_IN_PROGRESS', EngineType: 'ACTIVEMQ' });
    mq.on(ListUsersCommand).rejects(refusedReboot());
    await expect(
      isComplete(rebootEvent('Update', { old: ORDERS_CHANGED, data: requestedAgo(10_000) }), lambdaContext()),
    ).resolves.toEqual({
      IsComplete: false,
    });
  });

  test('fails when ListUsers is refused while the broker stays RUNNING', async () => {
    brokerIn('RUNNING');
    mq.on(ListUsersCommand).rejects(refusedReboot());
    await expect(
      isComplete(rebootEvent('Update', { old: ORDERS_CHANGED, data: requestedAgo(10_000) }), lambdaContext()),
    ).rejects.toThrow(/ListUsers on broker/);
  });

  test('is complete when the broker is RUNNING and the covered users that were pending are applied', async () => {
    brokerIn('RUNNING');
    // Another user's change (not covered by this stack) does not hold the deploy.
    pendingUsers('someone-else');
    await expect(
      isComplete(rebootEvent('Update', { old: ORDERS_CHANGED, data: requestedAgo(30_000) }), lambdaContext()),
    ).resolves.toEqual({
      IsComplete: true,
    });
    expect(mq).not.toHaveReceivedCommand(RebootBrokerCommand);
  });

  test('is not complete right after RebootBroker while the broker still says RUNNING with users pending', async () => {
    brokerIn('RUNNING');
    pendingUsers('orders-service');
    await expect(
      isComplete(rebootEvent('Update', { old: ORDERS_CHANGED, data: requestedAgo(2_000) }), lambdaContext()),
    ).resolves.toEqual({
      IsComplete: false,
    });
    expect(mq).not.toHaveReceivedCommand(RebootBrokerCommand);
  });

  test('is not complete before the settle period after a revision reboot (HadPending false)', async () => {
    // RebootBroker returned, the broker still says RUNNING and nothing was pending to prove the reboot happened.
    brokerIn('RUNNING');
    await expect(
      isComplete(
        rebootEvent('Update', { old: ORDERS_CHANGED, data: requestedAgo(5_000, 'REBOOTED', false) }),
        lambdaContext(),
      ),
    ).resolves.toEqual({ IsComplete: false });
  });

  test('is complete after the settle period after a revision reboot (HadPending false)', async () => {
    rebootTiming.settleMs = 1_000;
    brokerIn('RUNNING');
    await expect(
      isComplete(
        rebootEvent('Update', { old: ORDERS_CHANGED, data: requestedAgo(1_500, 'REBOOTED', false) }),
        lambdaContext(),
      ),
    ).resolves.toEqual({ IsComplete: true });
  });

  test('reboots again when a reboot it waited for left a covered user pending', async () => {
    brokerIn('RUNNING');
    pendingUsers('orders-service');
    await expect(
      isComplete(
        rebootEvent('Update', { old: ORDERS_CHANGED, data: requestedAgo(120_000, 'WAITING') }),
        lambdaContext(),
      ),
    ).resolves.toEqual({ IsComplete: false });
    expect(mq).toHaveReceivedCommandTimes(RebootBrokerCommand, 1);
  });

  test('reboots again at most once per minute, not at every poll', async () => {
    brokerIn('RUNNING');
    pendingUsers('orders-service');
    // 140 s after the request: outside the first 15 s of a minute, so this poll only waits.
    await expect(
      isComplete(
        rebootEvent('Update', { old: ORDERS_CHANGED, data: requestedAgo(140_000, 'WAITING') }),
        lambdaContext(),
      ),
    ).resolves.toEqual({ IsComplete: false });
    expect(mq).not.toHaveReceivedCommand(RebootBrokerCommand);
  });

  test('reads every page of ListUsers', async () => {
    brokerIn('RUNNING');
    mq.on(ListUsersCommand)
      .resolvesOnce({ Users: [{ Username: 'a-user' }], NextToken: 'page-2' })
      .resolves({ Users: [{ Username: 'orders-service', PendingChange: 'UPDATE' }] });
    await expect(
      isComplete(rebootEvent('Update', { old: ORDERS_CHANGED, data: requestedAgo(5_000) }), lambdaContext()),
    ).resolves.toEqual({
      IsComplete: false,
    });
    expect(mq).toHaveReceivedCommandWith(ListUsersCommand, { NextToken: 'page-2' });
  });

  test('treats a refused second reboot (the broker left RUNNING meanwhile) as a reboot in progress', async () => {
    mq.on(DescribeBrokerCommand)
      .resolvesOnce({ BrokerState: 'RUNNING', EngineType: 'ACTIVEMQ' })
      .resolves({ BrokerState: 'REBOOT_IN_PROGRESS', EngineType: 'ACTIVEMQ' });
    pendingUsers('orders-service');
    mq.on(RebootBrokerCommand).rejects(refusedReboot());
    await expect(
      isComplete(rebootEvent('Update', { old: ORDERS_CHANGED, data: requestedAgo(120_000) }), lambdaContext()),
    ).resolves.toEqual({
      IsComplete: false,
    });
    expect(mq).toHaveReceivedCommandTimes(RebootBrokerCommand, 1);
  });

  test('fails clearly when the broker does not come back within the timeout', async () => {
    brokerIn('REBOOT_IN_PROGRESS');
    await expect(
      isComplete(rebootEvent('Update', { old: ORDERS_CHANGED, data: requestedAgo(901_000) }), lambdaContext()),
    ).rejects.toThrow(
      `broker ${BROKER_ID} did not return to RUNNING with its users' changes applied within 15 minutes (state REBOOT_IN_PROGRESS)`,
    );
  });

  test('fails when the broker goes to an unexpected state', async () => {
    brokerIn('CRITICAL_ACTION_REQUIRED');
    await expect(
      isComplete(rebootEvent('Update', { old: ORDERS_CHANGED, data: requestedAgo(60_000) }), lambdaContext()),
    ).rejects.toThrow(`broker ${BROKER_ID} went to state CRITICAL_ACTION_REQUIRED while rebooting`);
  });

  test.each(['SKIPPED_ROLLBACK', 'NONE'])('is complete at once after %s', async (action) => {
    await expect(
      isComplete(rebootEvent('Update', { old: ORDERS_CHANGED, data: requestedAgo(0, action) }), lambdaContext()),
    ).resolves.toEqual({ IsComplete: true });
    expect(mq).not.toHaveReceivedAnyCommand();
  });
});

describe('serves its own stack only', () => {
  test.each(['Create', 'Update', 'Delete'] as const)(
    'onEvent fails a %s event of another stack without any AWS call',
    async (type) => {
      process.env.CDK_MQ_USER_STACK_ID = STACK_ID;
      brokerIn('RUNNING');
      pendingUsers('orders-service');
      await expect(
        onEvent(rebootEvent(type, { stackId: OTHER_STACK_ID, old: { Revision: 'old' } }), lambdaContext()),
      ).rejects.toThrow(`refused an event of stack ${OTHER_STACK_ID}: this function serves only stack ${STACK_ID}`);
      expect(mq).not.toHaveReceivedAnyCommand();
      expect(cloudFormation).not.toHaveReceivedAnyCommand();
    },
  );

  test('isComplete fails an event of another stack without any AWS call', async () => {
    process.env.CDK_MQ_USER_STACK_ID = STACK_ID;
    brokerIn('RUNNING');
    pendingUsers('orders-service');
    await expect(
      isComplete(
        rebootEvent('Update', { old: ORDERS_CHANGED, stackId: OTHER_STACK_ID, data: requestedAgo(120_000, 'WAITING') }),
        lambdaContext(),
      ),
    ).rejects.toThrow(`refused an event of stack ${OTHER_STACK_ID}`);
    expect(mq).not.toHaveReceivedAnyCommand();
  });

  test('accepts events of its own stack', async () => {
    process.env.CDK_MQ_USER_STACK_ID = STACK_ID;
    brokerIn('RUNNING');
    pendingUsers('orders-service');
    const response = await onEvent(rebootEvent('Create'), lambdaContext());
    expect(response.Data.Action).toBe('REBOOTED');
    await expect(isComplete(rebootEvent('Create', { data: response.Data }), lambdaContext())).resolves.toEqual({
      IsComplete: false,
    });
  });

  test('refuses every event when the variable is unset (fail closed), without any AWS call', async () => {
    delete process.env.CDK_MQ_USER_STACK_ID;
    brokerIn('RUNNING');
    pendingUsers('orders-service');
    await expect(onEvent(rebootEvent('Create'), lambdaContext())).rejects.toThrow(
      'this function has no CDK_MQ_USER_STACK_ID in its environment',
    );
    await expect(
      isComplete(rebootEvent('Update', { data: requestedAgo(120_000, 'WAITING') }), lambdaContext()),
    ).rejects.toThrow('this function has no CDK_MQ_USER_STACK_ID in its environment');
    expect(mq).not.toHaveReceivedAnyCommand();
    expect(cloudFormation).not.toHaveReceivedAnyCommand();
  });
});

describe('acts only on what CloudFormation is doing now (the proof)', () => {
  const shows = (status: string, type = 'Custom::MqBrokerReboot') =>
    cloudFormation
      .on(DescribeStackResourceCommand)
      .resolves(resourceDetail('BrokerReboot', type, status, `${BROKER_ID}/reboot`));
  const denied = () =>
    Object.assign(new Error('not authorized'), { name: 'AccessDenied', $metadata: { httpStatusCode: 403 } });

  // The deploy changed orders-service: its pending change is this deploy's, so a wait may reboot again for it.
  const ORDERS_CHANGED = { UserStates: ['state-of-billing', 'state-of-orders-before'] };

  beforeEach(() => {
    brokerIn('RUNNING');
    pendingUsers('orders-service');
  });

  test.each([
    ['idle', 'UPDATE_COMPLETE', 'Custom::MqBrokerReboot'],
    ['being deleted', 'DELETE_IN_PROGRESS', 'Custom::MqBrokerReboot'],
    ['a user resource', 'UPDATE_IN_PROGRESS', 'Custom::MqUser'],
  ])('onEvent refuses an Update of a resource that is %s, without touching the broker', async (_case, status, type) => {
    shows(status, type);
    await expect(reboot.onEvent(rebootEvent('Update', { old: { Revision: 'old' } }), lambdaContext())).rejects.toThrow(
      /^refused a Update of BrokerReboot .*CloudFormation is not working on it now/,
    );
    expect(mq).not.toHaveReceivedAnyCommand();
  });

  test('finding 3: forged waiter input never reboots the broker while the resource is idle', async () => {
    shows('UPDATE_COMPLETE');
    await expect(
      reboot.isComplete(
        rebootEvent('Update', { old: ORDERS_CHANGED, data: requestedAgo(120_000, 'WAITING') }),
        lambdaContext(),
      ),
    ).rejects.toThrow(/^refused a Update of BrokerReboot/);
    expect(mq).not.toHaveReceivedCommand(RebootBrokerCommand);
  });

  test('isComplete reboots again only after CloudFormation confirms the wait, once per poll', async () => {
    await expect(
      isComplete(
        rebootEvent('Update', { old: ORDERS_CHANGED, data: requestedAgo(120_000, 'WAITING') }),
        lambdaContext(),
      ),
    ).resolves.toEqual({ IsComplete: false });
    expect(mq).toHaveReceivedCommandTimes(RebootBrokerCommand, 1);
    expect(cloudFormation).toHaveReceivedCommandTimes(DescribeStackResourceCommand, 1);
  });

  test('isComplete reads no proof on a poll that reboots nothing', async () => {
    pendingUsers();
    await expect(
      reboot.isComplete(rebootEvent('Update', { data: requestedAgo(120_000, 'REBOOTED') }), lambdaContext()),
    ).resolves.toEqual({ IsComplete: true });
    expect(cloudFormation).not.toHaveReceivedAnyCommand();
  });

  test('onEvent skips the reboot without touching the broker when CloudFormation cannot be read', async () => {
    cloudFormation.on(DescribeStackResourceCommand).rejects(denied());
    const response = await reboot.onEvent(rebootEvent('Create'), lambdaContext());
    expect(response.Data.Action).toBe('SKIPPED_UNPROVEN');
    expect(mq).not.toHaveReceivedAnyCommand();
  });

  test('isComplete does not reboot again when CloudFormation cannot be read, and keeps waiting', async () => {
    cloudFormation.on(DescribeStackResourceCommand).rejects(denied());
    await expect(
      reboot.isComplete(
        rebootEvent('Update', { old: ORDERS_CHANGED, data: requestedAgo(120_000, 'WAITING') }),
        lambdaContext(),
      ),
    ).resolves.toEqual({ IsComplete: false });
    expect(mq).not.toHaveReceivedCommand(RebootBrokerCommand);
  });

  test("checks the broker ID against Amazon MQ's format before it reaches a URL", async () => {
    await expect(onEvent(rebootEvent('Create', { props: { BrokerId: 'b-../../x' } }), lambdaContext())).rejects.toThrow(
      '"b-../../x" is not an Amazon MQ broker ID',
    );
    expect(mq).not.toHaveReceivedAnyCommand();
  });
});
