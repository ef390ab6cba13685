import { judge, judgeCleanup, type HistoryEvent, type ProvableEvent } from '../lambda/shared/proof';

const STACK = 'arn:aws:cloudformation:us-east-1:111111111111:stack/Orders/1';
const TYPE = 'Custom::MqUser';
const ID = 'b-1/orders?owner=created';
const NEW_ID = 'b-1/orders-v2?owner=created';

const event = (RequestType: ProvableEvent['RequestType'], PhysicalResourceId?: string): ProvableEvent => ({
  RequestType,
  StackId: STACK,
  LogicalResourceId: 'Orders',
  PhysicalResourceId,
});

describe('judge: what DescribeStackResource shows decides', () => {
  test.each<[string, ProvableEvent, string, string, string | undefined, string]>([
    ['a Create while the resource is created', event('Create'), TYPE, 'CREATE_IN_PROGRESS', undefined, 'proven'],
    ['an Update of the ID it holds, in progress', event('Update', ID), TYPE, 'UPDATE_IN_PROGRESS', ID, 'proven'],
    ["a rollback's Update", event('Update', ID), TYPE, 'UPDATE_ROLLBACK_IN_PROGRESS', ID, 'proven'],
    ['a Delete of the ID it holds, in progress', event('Delete', ID), TYPE, 'DELETE_IN_PROGRESS', ID, 'proven'],
    ["a creation's rollback Delete", event('Delete', ID), TYPE, 'ROLLBACK_IN_PROGRESS', ID, 'proven'],
    ['a Delete of another ID (a cleanup?)', event('Delete', ID), TYPE, 'UPDATE_COMPLETE', NEW_ID, 'history'],
    ['a Delete of another ID, being deleted', event('Delete', ID), TYPE, 'DELETE_IN_PROGRESS', NEW_ID, 'history'],
    ['a Create of an idle resource', event('Create'), TYPE, 'CREATE_COMPLETE', ID, 'refused'],
    ['a Create while the resource is updated', event('Create'), TYPE, 'UPDATE_IN_PROGRESS', ID, 'refused'],
    ['a Create while the resource is deleted', event('Create'), TYPE, 'DELETE_IN_PROGRESS', ID, 'refused'],
    ['an Update of an idle resource', event('Update', ID), TYPE, 'UPDATE_COMPLETE', ID, 'refused'],
    ['an Update while the resource is deleted', event('Update', ID), TYPE, 'DELETE_IN_PROGRESS', ID, 'refused'],
    ['an Update of an ID it does not hold', event('Update', ID), TYPE, 'UPDATE_IN_PROGRESS', NEW_ID, 'refused'],
    ['a Delete of an idle resource', event('Delete', ID), TYPE, 'UPDATE_COMPLETE', ID, 'refused'],
    ['a Delete while the resource is updated', event('Delete', ID), TYPE, 'UPDATE_IN_PROGRESS', ID, 'refused'],
    ['a resource of another type', event('Delete', ID), 'AWS::SNS::Topic', 'DELETE_IN_PROGRESS', ID, 'refused'],
    ['a nested stack', event('Delete', ID), 'AWS::CloudFormation::Stack', 'DELETE_IN_PROGRESS', ID, 'refused'],
    ['the reboot resource', event('Update', ID), 'Custom::MqBrokerReboot', 'UPDATE_IN_PROGRESS', ID, 'refused'],
  ])('%s: %s', (_case, e, type, status, physicalId, verdict) => {
    expect(judge(e, TYPE, { type, status, physicalId }).verdict).toBe(verdict);
  });
});

describe('judgeCleanup: the history of the current cleanup phase decides', () => {
  const stackEvent = (status: string): HistoryEvent => ({
    logicalId: 'Orders-stack',
    physicalId: STACK,
    type: 'AWS::CloudFormation::Stack',
    status,
  });
  const resource = (status: string, physicalId = ID, logicalId = 'Orders'): HistoryEvent => ({
    logicalId,
    physicalId,
    type: TYPE,
    status,
  });
  const forward = [
    resource('UPDATE_COMPLETE', NEW_ID),
    resource('UPDATE_IN_PROGRESS'),
    stackEvent('UPDATE_IN_PROGRESS'),
  ];

  test.each<[string, HistoryEvent[], boolean]>([
    [
      'the old ID being deleted in the cleanup',
      [resource('DELETE_IN_PROGRESS'), stackEvent('UPDATE_COMPLETE_CLEANUP_IN_PROGRESS'), ...forward],
      true,
    ],
    [
      "the old ID being deleted in a rollback's cleanup",
      [resource('DELETE_IN_PROGRESS'), stackEvent('UPDATE_ROLLBACK_COMPLETE_CLEANUP_IN_PROGRESS'), ...forward],
      true,
    ],
    [
      'its deletion already complete',
      [
        resource('DELETE_COMPLETE'),
        resource('DELETE_IN_PROGRESS'),
        stackEvent('UPDATE_COMPLETE_CLEANUP_IN_PROGRESS'),
        ...forward,
      ],
      false,
    ],
    [
      'an earlier cleanup, the stack idle',
      [
        stackEvent('UPDATE_COMPLETE'),
        resource('DELETE_IN_PROGRESS'),
        stackEvent('UPDATE_COMPLETE_CLEANUP_IN_PROGRESS'),
      ],
      false,
    ],
    [
      'the stack in an update, not a cleanup',
      [resource('DELETE_IN_PROGRESS'), stackEvent('UPDATE_IN_PROGRESS')],
      false,
    ],
    [
      'a cleanup that deletes another ID',
      [resource('DELETE_IN_PROGRESS', 'b-1/x?owner=created'), stackEvent('UPDATE_COMPLETE_CLEANUP_IN_PROGRESS')],
      false,
    ],
    [
      'a cleanup that deletes that ID of another resource',
      [resource('DELETE_IN_PROGRESS', ID, 'Other'), stackEvent('UPDATE_COMPLETE_CLEANUP_IN_PROGRESS')],
      false,
    ],
    ['a history without the stack', [resource('DELETE_IN_PROGRESS')], false],
    [
      "another stack's cleanup (a nested stack's events)",
      [
        resource('DELETE_IN_PROGRESS'),
        { ...stackEvent('UPDATE_COMPLETE_CLEANUP_IN_PROGRESS'), physicalId: `${STACK}-nested` },
        stackEvent('UPDATE_IN_PROGRESS'),
      ],
      false,
    ],
  ])('%s', (_case, history, proven) => {
    expect(judgeCleanup(history, STACK, 'Orders', ID).proven).toBe(proven);
  });
});
