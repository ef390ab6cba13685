import { decideReboot, usersOfThisDeploy } from '../lambda/reboot/decide';
import type { MqBrokerRebootResourceProperties } from '../lib/private/handler-props';

const props = (users: Record<string, string>, extra: Partial<MqBrokerRebootResourceProperties> = {}) => ({
  BrokerId: 'b-1',
  Usernames: Object.keys(users),
  UserStates: Object.values(users),
  UsersDigest: 'digest',
  TimeoutSeconds: 900,
  ...extra,
});

describe("usersOfThisDeploy: the covered users whose pending change can be this deploy's", () => {
  const before = props({ orders: 's1', orders_clone: 's1c', billing: 's2' });
  test.each<[string, MqBrokerRebootResourceProperties, MqBrokerRebootResourceProperties | undefined, string[]]>([
    ['Create: every covered user', props({ orders: 's1', billing: 's2' }), undefined, ['orders', 'billing']],
    ['nothing changed: none', before, before, []],
    ['a changed state: that user', props({ orders: 's1', orders_clone: 's1c', billing: 'S2' }), before, ['billing']],
    [
      'an added user: that user',
      props({ orders: 's1', orders_clone: 's1c', billing: 's2', new: 's3' }),
      before,
      ['new'],
    ],
    ['a removed user only: none (deleted after the reboot)', props({ orders: 's1', orders_clone: 's1c' }), before, []],
    [
      'a renamed user: the new name',
      props({ orders: 's1', orders_clone: 's1c', billing2: 's2' }),
      before,
      ['billing2'],
    ],
    [
      'another broker: every covered user',
      props({ orders: 's1', orders_clone: 's1c', billing: 's2' }, { BrokerId: 'b-2' }),
      before,
      ['orders', 'orders_clone', 'billing'],
    ],
    [
      'previous properties of 0.1 (no UserStates): every covered user',
      props({ orders: 's1', billing: 's2' }),
      { ...before, UserStates: undefined },
      ['orders', 'billing'],
    ],
    [
      'UserStates not aligned with Usernames: every covered user',
      props({ orders: 's1', billing: 's2' }),
      { ...before, UserStates: ['s1'] },
      ['orders', 'billing'],
    ],
  ])('%s', (_case, next, previous, expected) => {
    expect(usersOfThisDeploy(next, previous)).toEqual(expected);
  });
});

describe("decideReboot: only this deploy's pending changes, or a new revision", () => {
  const pending = (entries: Record<string, string>) => new Map(Object.entries(entries));
  test.each<[string, Parameters<typeof decideReboot>[0], ReturnType<typeof decideReboot>['action'], string[]]>([
    [
      "this deploy's user pending",
      { users: ['orders'], pending: pending({ orders: 'UPDATE' }), revisionChanged: false },
      'REBOOT',
      ['orders'],
    ],
    ['nothing pending', { users: ['orders'], pending: pending({}), revisionChanged: false }, 'NONE', []],
    [
      "a rotation's staged password on a user this deploy left alone",
      { users: ['billing'], pending: pending({ orders_clone: 'UPDATE' }), revisionChanged: false },
      'NONE',
      [],
    ],
    [
      'no user of this deploy, revision changed',
      { users: [], pending: pending({}), revisionChanged: true },
      'REBOOT',
      [],
    ],
    [
      'the configuration revision this deploy set is pending, no user of this deploy',
      { users: [], pending: pending({ orders_clone: 'UPDATE' }), revisionChanged: false, configurationPending: true },
      'REBOOT',
      [],
    ],
    [
      "the configuration is not pending (another deploy's revision, or applied): only users decide",
      { users: ['orders'], pending: pending({}), revisionChanged: false, configurationPending: false },
      'NONE',
      [],
    ],
    [
      "this deploy's user and another's pending: reboots, naming only this deploy's",
      { users: ['orders'], pending: pending({ orders: 'CREATE', billing: 'UPDATE' }), revisionChanged: false },
      'REBOOT',
      ['orders'],
    ],
  ])('%s', (_case, input, action, users) => {
    const decision = decideReboot(input);
    expect(decision.action).toBe(action);
    expect(decision.action === 'REBOOT' ? decision.users : []).toEqual(users);
  });

  test("says why when only others' changes are pending", () => {
    const decision = decideReboot({
      users: ['billing'],
      pending: pending({ orders_clone: 'UPDATE' }),
      revisionChanged: false,
    });
    expect(decision).toEqual({ action: 'NONE', why: expect.stringContaining("a rotation's staged password") });
  });
});
