import type { DesiredUser, UserState } from '../lambda/shared/aws';
import type { StackResource } from '../lambda/shared/stack';
import {
  type DeleteDecision,
  type Holder,
  type Takeover,
  type DeliveryRecord,
  type Repeat,
  decideDelete,
  decideRepeat,
  decideUndo,
  fitsEvent,
  decideTakeover,
  findHolder,
  isLive,
  madeByEarlierDelivery,
  needsWrite,
  pendingAfterWrite,
} from '../lambda/user/decide';
import type { Owner } from '../lambda/shared/properties';
import { BROKER_ID, OTHER_BROKER_ID, legacyPhysicalId, physicalId } from './fixtures/events';

describe('isLive', () => {
  test.each<[string, UserState | undefined, boolean]>([
    ['absent (404)', undefined, false],
    ['pending DELETE', { pendingChange: 'DELETE' }, false],
    ['applied, nothing pending', {}, true],
    ['pending CREATE', { pendingChange: 'CREATE' }, true],
    ['pending UPDATE', { pendingChange: 'UPDATE' }, true],
  ])('a user %s -> %s', (_case, state, expected) => {
    expect(isLive(state)).toBe(expected);
  });
});

describe('needsWrite', () => {
  const desired: DesiredUser = { consoleAccess: false, groups: ['a-group', 'b-group'], replicationUser: false };
  const holds: UserState = { consoleAccess: false, groups: ['a-group', 'b-group'], replicationUser: false };

  test.each<[string, DesiredUser, UserState, boolean]>([
    ['the user holds the desired state', desired, holds, false],
    ['the groups differ only in order', desired, { ...holds, groups: ['b-group', 'a-group'] }, false],
    ['a password must be set', { ...desired, password: 'Passw0rd-1234' }, holds, true],
    ['console access differs', desired, { ...holds, consoleAccess: true }, true],
    ['the replication flag differs', desired, { ...holds, replicationUser: true }, true],
    ['a group is missing', desired, { ...holds, groups: ['a-group'] }, true],
    ['a group is extra', desired, { ...holds, groups: ['a-group', 'b-group', 'c-group'] }, true],
    ['the groups are cleared', { ...desired, groups: [] }, holds, true],
    ['no groups, none held', { ...desired, groups: [] }, { ...holds, groups: [] }, false],
    ['console access was not reported', desired, { ...holds, consoleAccess: undefined }, true],
    ['the groups were not reported', desired, { ...holds, groups: undefined }, true],
    ['the replication flag was not reported', desired, { ...holds, replicationUser: undefined }, true],
  ])('%s -> %s', (_case, want, state, expected) => {
    expect(needsWrite(want, state)).toBe(expected);
  });
});

describe('pendingAfterWrite', () => {
  test.each<[UserState | undefined, boolean, string]>([
    [{ pendingChange: 'CREATE' }, true, 'CREATE'],
    [{ pendingChange: 'CREATE' }, false, 'CREATE'],
    [{ pendingChange: 'UPDATE' }, true, 'UPDATE'],
    [{ pendingChange: 'UPDATE' }, false, 'UPDATE'],
    [{}, true, 'UPDATE'],
    [{}, false, 'NONE'],
    [undefined, true, 'UPDATE'],
    [undefined, false, 'NONE'],
  ])('before %j, wrote %s -> %s', (before, wrote, expected) => {
    expect(pendingAfterWrite(before, wrote)).toBe(expected);
  });
});

describe('decideTakeover', () => {
  // Every combination: the stack status alone never proves ownership, adoptExisting never overrides a restore.
  test.each<[boolean, boolean | undefined, boolean, Takeover]>([
    [false, false, false, 'fail'],
    [false, false, true, 'fail'],
    [false, undefined, false, 'fail'],
    [false, undefined, true, 'fail'],
    [false, true, false, 'leave'],
    [false, true, true, 'restore'],
    [true, false, false, 'adopt'],
    [true, false, true, 'adopt'],
    [true, undefined, false, 'adopt'],
    [true, undefined, true, 'adopt'],
    [true, true, false, 'adopt'],
    [true, true, true, 'restore'],
  ])(
    'adoptExisting %s, rolling back %s, target is the previous ID %s -> %s',
    (adopt, rollingBack, previous, expected) => {
      expect(decideTakeover({ adoptExisting: adopt, rollingBack, targetIsPrevious: previous })).toBe(expected);
    },
  );
});

describe('findHolder', () => {
  const user = { brokerId: BROKER_ID, username: 'orders-service' };
  const deleting = physicalId();
  const self = { logicalId: 'Self', physicalId: deleting };
  const resource = (logicalId: string, id: string | undefined, status = 'UPDATE_COMPLETE', type = 'Custom::MqUser') =>
    ({ logicalId, physicalId: id, type, status }) satisfies StackResource;

  test.each<[string, StackResource[], Holder]>([
    ['no resources', [], 'none'],
    ['only the resource being deleted', [resource('Self', deleting, 'DELETE_IN_PROGRESS')], 'none'],
    ['only the entry of the resource being deleted, not yet marked', [resource('Self', deleting)], 'none'],
    [
      'the same resource holding the user under a new physical ID',
      [resource('Self', physicalId({}, 'adopted', physicalId({ Username: 'billing-service' })))],
      { logicalId: 'Self' },
    ],
    [
      'another MqUser holding the user (adopted)',
      [resource('Other', physicalId({}, 'adopted'))],
      { logicalId: 'Other' },
    ],
    [
      'another MqUser holding it after a swap (with a previous ID)',
      [resource('Other', physicalId({}, 'adopted', physicalId({ Username: 'billing-service' })))],
      { logicalId: 'Other' },
    ],
    ['another MqUser holding it under a 0.1 ID', [resource('Other', legacyPhysicalId())], { logicalId: 'Other' }],
    [
      'an MqUser just created (CREATE_COMPLETE)',
      [resource('Other', physicalId({}, 'adopted'), 'CREATE_COMPLETE')],
      { logicalId: 'Other' },
    ],
    [
      'an MqUser whose update is in progress',
      [resource('Other', physicalId({}, 'adopted'), 'UPDATE_IN_PROGRESS')],
      { logicalId: 'Other' },
    ],
    [
      'an MqUser shown DELETE_IN_PROGRESS while the stack is not being deleted (a cleanup phase)',
      [resource('Other', physicalId({}, 'adopted'), 'DELETE_IN_PROGRESS')],
      { logicalId: 'Other' },
    ],
    ['an MqUser already deleted', [resource('Other', physicalId({}, 'adopted'), 'DELETE_COMPLETE')], 'none'],
    [
      'an MqUser of the same name on another broker',
      [resource('Other', physicalId({ BrokerId: OTHER_BROKER_ID }))],
      'none',
    ],
    ['an MqUser of another name', [resource('Other', physicalId({ Username: 'orders-v2' }))], 'none'],
    [
      'an MqUser whose Create failed',
      [resource('Other', 'AWSCDK::CustomResourceProviderFramework::CREATE_FAILED')],
      'none',
    ],
    ['an MqUser without a physical ID yet', [resource('Other', undefined, 'CREATE_IN_PROGRESS')], 'none'],
    [
      'another type naming the user',
      [resource('Other', physicalId(), 'UPDATE_COMPLETE', 'Custom::MqBrokerReboot')],
      'none',
    ],
    [
      'the holder after unrelated resources',
      [
        resource('Broker', BROKER_ID, 'CREATE_COMPLETE', 'AWS::AmazonMQ::Broker'),
        resource('Billing', physicalId({ Username: 'billing-service' })),
        resource('Other', physicalId({}, 'adopted')),
      ],
      { logicalId: 'Other' },
    ],
  ])('%s -> %j', (_case, resources, expected) => {
    expect(findHolder(resources, self, user)).toEqual(expected);
  });

  test('ignores resources being deleted when the whole stack is being deleted', () => {
    const deleting = [resource('Other', physicalId({}, 'adopted'), 'DELETE_IN_PROGRESS')];
    expect(findHolder(deleting, self, user, true)).toBe('none');
    expect(findHolder(deleting, self, user, false)).toEqual({ logicalId: 'Other' });
  });

  test('counts another resource whose physical ID is the very one being deleted (a move within the stack)', () => {
    // Both resources adopted the user in a Create, so both recorded `?owner=adopted`: the same string.
    const id = physicalId({}, 'adopted');
    expect(
      findHolder([resource('MovedOrdersService', id, 'CREATE_COMPLETE')], { logicalId: 'Self', physicalId: id }, user),
    ).toEqual({
      logicalId: 'MovedOrdersService',
    });
  });
});

describe('decideDelete', () => {
  const other: Holder = { logicalId: 'Other' };
  // The reasons are checked below; here only the action.
  const keep = 'keep';
  const fail = 'fail';
  const remove = 'delete';

  test.each<[Owner, boolean | undefined, Holder, DeleteDecision['action']]>([
    // An adopted user: kept by a rollback or an unknown status, whoever holds it.
    ['adopted', true, 'none', keep],
    ['adopted', true, 'unknown', keep],
    ['adopted', true, other, keep],
    ['adopted', undefined, 'none', keep],
    ['adopted', undefined, 'unknown', keep],
    ['adopted', undefined, other, keep],
    // Outside a rollback the user declared its removal, unless another resource holds the user now.
    ['adopted', false, 'none', remove],
    ['adopted', false, 'unknown', fail],
    ['adopted', false, other, keep],
    // A created user: deleted by its rollback, never when another resource holds it.
    ['created', true, 'none', remove],
    ['created', true, 'unknown', keep],
    ['created', true, other, keep],
    ['created', undefined, 'none', remove],
    ['created', undefined, 'unknown', keep],
    ['created', undefined, other, keep],
    ['created', false, 'none', remove],
    ['created', false, 'unknown', fail],
    ['created', false, other, keep],
  ])('owner %s, rolling back %s, holder %j -> %s', (owner, rollingBack, holder, expected) => {
    const decision = decideDelete({ owner, rollingBack, holder });
    expect(decision.action).toBe(expected);
    if (decision.action !== 'delete') expect(decision.why).not.toHaveLength(0);
  });

  test.each<[Owner, boolean | undefined, Holder, boolean]>([
    // Kept for want of knowing: the unfinished-work alarm is told.
    ['adopted', undefined, 'none', true],
    ['created', true, 'unknown', true],
    ['created', undefined, 'unknown', true],
    // Kept on purpose: nothing is left undone.
    ['adopted', true, 'none', false],
    ['created', true, other, false],
    ['created', undefined, other, false],
    ['created', false, other, false],
  ])('owner %s, rolling back %s, holder %j: kept, unsure %s', (owner, rollingBack, holder, unsure) => {
    expect(decideDelete({ owner, rollingBack, holder })).toMatchObject({ action: 'keep', unsure });
  });

  test.each<[string, Owner, boolean | undefined, Holder, RegExp]>([
    ['an adopted user in a rollback', 'adopted', true, 'none', /adopted.*this is a rollback/],
    [
      'an adopted user under an unknown status',
      'adopted',
      undefined,
      'none',
      /adopted and the stack status cannot be read/,
    ],
    ['a user another resource holds', 'created', false, other, /resource Other of this stack now holds the user/],
    ['unreadable resources', 'created', false, 'unknown', /the stack's resources cannot be read/],
  ])('says why it keeps or fails for %s', (_case, owner, rollingBack, holder, why) => {
    const decision = decideDelete({ owner, rollingBack, holder });
    expect(decision.action).not.toBe('delete');
    expect(decision.action !== 'delete' && decision.why).toMatch(why);
  });
});

describe('decideRepeat: what a record of the same delivery proves', () => {
  const ours = { brokerId: BROKER_ID, username: 'orders-service' };
  const answer = {
    PhysicalResourceId: physicalId(),
    Data: { Username: 'orders-service', BrokerId: BROKER_ID, PendingChange: 'CREATE', StateDigest: 'abc' },
  };
  test.each<[string, string, DeliveryRecord | undefined, Repeat]>([
    ['no record', 'Create', undefined, {}],
    ['an empty record', 'Create', {}, {}],
    ['an answer', 'Create', { answer }, { answer }],
    ['an answer to an Update', 'Update', { answer }, { answer }],
    [
      'an answer without Data',
      'Update',
      { answer: { PhysicalResourceId: physicalId() } },
      { answer: { PhysicalResourceId: physicalId() } },
    ],
    ['an answer and the user made', 'Create', { answer, made: ours }, { answer, made: ours }],
    ['only the user made', 'Create', { made: ours }, { made: ours }],
    ['a record for a Delete: never answered from', 'Delete', { answer, made: ours }, {}],
    ['an answer with an empty physical ID', 'Create', { answer: { PhysicalResourceId: '' } }, {}],
    [
      "the framework's CREATE_FAILED marker",
      'Create',
      { answer: { PhysicalResourceId: 'AWSCDK::CustomResourceProviderFramework::CREATE_FAILED' } },
      {},
    ],
    [
      'Data that is not a map of strings',
      'Create',
      {
        answer: { PhysicalResourceId: physicalId(), Data: { PendingChange: 1 } as unknown as Record<string, string> },
      },
      {},
    ],
    ['a made user without a username', 'Create', { made: { brokerId: BROKER_ID, username: '' } }, {}],
    ['a made user without a broker', 'Update', { made: { brokerId: '', username: 'orders-service' } }, {}],
    [
      'a made user withdrawn (undone): proves nothing, and the event fails',
      'Create',
      { made: ours, undone: true },
      { undone: true },
    ],
    ['a withdrawal alone: the event fails before any call', 'Update', { undone: true }, { undone: true }],
    [
      'an answer beside a withdrawal (only a forged item has both): the withdrawal is final',
      'Create',
      { answer, made: ours, undone: true },
      { undone: true },
    ],
    [
      'a forged answer naming another user (its Delete would delete that user): no answer',
      'Create',
      { answer: { PhysicalResourceId: `${BROKER_ID}/victim?owner=created` }, made: ours },
      { made: ours },
    ],
    [
      'an answer naming the user on another broker: no answer',
      'Create',
      { answer: { PhysicalResourceId: physicalId({ BrokerId: OTHER_BROKER_ID }) } },
      {},
    ],
    [
      'an answer whose Data names another user: no answer',
      'Create',
      { answer: { ...answer, Data: { ...answer.Data, Username: 'victim' } } },
      {},
    ],
    [
      'an answer whose Data names another broker: no answer',
      'Create',
      { answer: { ...answer, Data: { ...answer.Data, BrokerId: OTHER_BROKER_ID } } },
      {},
    ],
    ['an answer that is not a physical ID of a user at all', 'Create', { answer: { PhysicalResourceId: 'x' } }, {}],
  ])('%s (%s)', (_case, requestType, record, expected) => {
    expect(decideRepeat(requestType, record, { user: ours })).toEqual(expected);
  });
});

describe('fitsEvent: a stored answer is only one this handler could have given to this event', () => {
  const ours = { brokerId: BROKER_ID, username: 'orders-service' };
  const renamed = physicalId({ Username: 'orders-service-2' }, 'created', physicalId());
  test.each<[string, { PhysicalResourceId: string; Data?: Record<string, string> }, object, boolean]>([
    ['our own user, created: fits', { PhysicalResourceId: physicalId() }, { user: ours }, true],
    ['our own user, adopted: fits', { PhysicalResourceId: physicalId({}, 'adopted') }, { user: ours }, true],
    [
      'our own user, recording the ID before a rename: fits',
      { PhysicalResourceId: renamed },
      {
        user: { ...ours, username: 'orders-service-2' },
      },
      true,
    ],
    [
      "the Update's own physical ID (a rollback that leaves the user): fits",
      { PhysicalResourceId: 'kept-as-is' },
      {
        user: ours,
        physicalResourceId: 'kept-as-is',
      },
      true,
    ],
    [
      'another user on our broker: does not fit',
      { PhysicalResourceId: `${BROKER_ID}/victim?owner=created` },
      { user: ours },
      false,
    ],
    [
      'our own ID with Data of another user: does not fit',
      {
        PhysicalResourceId: physicalId(),
        Data: { Username: 'victim', BrokerId: BROKER_ID },
      },
      { user: ours },
      false,
    ],
    [
      "the event's own ID with Data of another broker: does not fit",
      {
        PhysicalResourceId: 'kept-as-is',
        Data: { Username: 'orders-service', BrokerId: OTHER_BROKER_ID },
      },
      { user: ours, physicalResourceId: 'kept-as-is' },
      false,
    ],
    [
      "properties that do not parse: only the event's own ID: does not fit",
      { PhysicalResourceId: physicalId() },
      {},
      false,
    ],
    [
      "properties that do not parse, the event's own ID: fits",
      { PhysicalResourceId: physicalId() },
      {
        physicalResourceId: physicalId(),
      },
      true,
    ],
  ])('%s', (_case, answer, event, expected) => {
    expect(fitsEvent(answer, event)).toBe(expected);
  });
});

describe('decideUndo: a failing Create deletes its user only once no record can take it over', () => {
  test.each<[string, Parameters<typeof decideUndo>[0], ReturnType<typeof decideUndo>]>([
    ['withdrawn: the withdrawal is final, nothing can take the name over', 'withdrawn', 'undo'],
    ['no table: nothing was ever recorded', 'untracked', 'undo'],
    // A made write that answered an error may have been applied all the same: it may stand.
    ['the table failing: leave the user (loud), a made may stand', 'failed', 'leave'],
    ["refused: a twin's answer stands", 'answered', 'answered'],
  ])('%s (%s) -> %s', (_case, withdrawal, expected) => {
    expect(decideUndo(withdrawal)).toBe(expected);
  });
});

describe('madeByEarlierDelivery: only the very user the record names', () => {
  const user = { brokerId: BROKER_ID, username: 'orders-service' };
  test.each<[string, Repeat, boolean]>([
    ['nothing recorded', {}, false],
    ['an answer only', { answer: { PhysicalResourceId: physicalId() } }, false],
    ['this user', { made: user }, true],
    ['another username', { made: { ...user, username: 'orders-service-2' } }, false],
    ['the same username on another broker', { made: { ...user, brokerId: OTHER_BROKER_ID } }, false],
  ])('%s -> %s', (_case, repeat, expected) => {
    expect(madeByEarlierDelivery(repeat, user)).toBe(expected);
  });
});
