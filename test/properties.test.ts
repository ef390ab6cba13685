import {
  PropertyError,
  parsePhysicalResourceId,
  parseProperties,
  parseRebootProperties,
  passwordSourceChanged,
  physicalResourceId,
  stateDigest,
} from '../lambda/shared/properties';
import { BROKER_ID, DEFAULT_PROPERTIES, REBOOT_PROPERTIES, physicalId, wire, wireReboot } from './fixtures/events';

describe('parseProperties', () => {
  test("parses the wire format back into the construct's properties", () => {
    expect(parseProperties(wire({ ConsoleAccess: true, PasswordVersion: '3' }))).toEqual({
      ...DEFAULT_PROPERTIES,
      ConsoleAccess: true,
      PasswordVersion: '3',
      RotationEnabled: false,
    });
  });

  test.each([
    ['"true"', 'true', true],
    ['"false"', 'false', false],
    ['a real boolean', true, true],
    ['an absent value', undefined, false],
  ])('reads %s as a boolean', (_case, value, expected) => {
    expect(parseProperties({ ...wire(), ConsoleAccess: value }).ConsoleAccess).toBe(expected);
  });

  test('takes absent groups as none, and sorts and de-duplicates the others', () => {
    expect(parseProperties({ ...wire(), Groups: undefined }).Groups).toEqual([]);
    expect(parseProperties({ ...wire(), Groups: ['b-group', 'a-group', 'b-group'] }).Groups).toEqual([
      'a-group',
      'b-group',
    ]);
  });

  test('ignores keys it does not know, such as ServiceToken and ServiceTimeout', () => {
    expect(() => parseProperties({ ...wire(), ServiceTimeout: '300', FutureKey: 'x' } as never)).not.toThrow();
  });

  test.each([
    ['ConsoleAccess', { ConsoleAccess: 'yes' }, 'ConsoleAccess must be "true" or "false", got "yes"'],
    ['Username', { Username: 'a' }, 'Username "a" must be 2 to 100 characters of A-Z a-z 0-9 - . _ ~'],
    ['BrokerId', { BrokerId: '' }, 'BrokerId must be a non-empty string, got ""'],
    ['Groups', { Groups: 'admins' }, 'Groups must be a list of strings, got "admins"'],
    ['a group', { Groups: ['ok-group', 'bad group'] }, 'group "bad group" must be 2 to 100 characters'],
    [
      '21 groups',
      { Groups: Array.from({ length: 21 }, (_, i) => `group-${i}`) },
      'Groups has 21 entries; Amazon MQ allows at most 20',
    ],
    [
      'PasswordSecretArn',
      { PasswordSecretArn: undefined },
      'PasswordSecretArn must be a non-empty string, got undefined',
    ],
  ])('fails when %s does not parse, naming the value and the rule', (_case, change, message) => {
    expect(() => parseProperties({ ...wire(), ...change })).toThrow(PropertyError);
    expect(() => parseProperties({ ...wire(), ...change })).toThrow(message);
  });
});

describe('physical IDs', () => {
  const user = { brokerId: BROKER_ID, username: 'orders-service' };

  test.each([
    ['created', { ...user, owner: 'created' as const }, `${BROKER_ID}/orders-service?owner=created`],
    ['adopted', { ...user, owner: 'adopted' as const }, `${BROKER_ID}/orders-service?owner=adopted`],
    [
      'with the physical ID before a rename',
      { ...user, owner: 'created' as const, previous: `${BROKER_ID}/orders-v1?owner=adopted` },
      `${BROKER_ID}/orders-service?owner=created&previous=${encodeURIComponent(`${BROKER_ID}/orders-v1?owner=adopted`)}`,
    ],
  ])('writes an ID that records ownership: %s', (_case, record, expected) => {
    expect(physicalResourceId(record)).toBe(expected);
  });

  test('keeps the previous ID one level deep: its own previous is dropped', () => {
    const previous = physicalId({ Username: 'orders-v1' }, 'adopted', physicalId({ Username: 'orders-v0' }));
    const id = physicalResourceId({ ...user, owner: 'created', previous });
    expect(parsePhysicalResourceId(id)?.previous).toBe(physicalId({ Username: 'orders-v1' }, 'adopted'));
  });

  test.each([
    [
      'console access, no replication, two groups',
      { consoleAccess: true, replicationUser: false, groups: ['a', 'b-c'] },
    ],
    ['no console access, replication, no group', { consoleAccess: false, replicationUser: true, groups: [] }],
  ])('records and reads back the settings an adoption found: %s', (_case, prior) => {
    const record = { ...user, owner: 'adopted' as const, prior };
    const id = physicalResourceId(record);
    expect(id).toContain('&prior=');
    expect(parsePhysicalResourceId(id)).toEqual({ ...record, legacy: false });
    // A later rename records this ID as its previous one, without the settings (they serve that event's rollback).
    const renamed = physicalResourceId({ ...user, username: 'orders-v2', owner: 'created', previous: id });
    expect(parsePhysicalResourceId(parsePhysicalResourceId(renamed)!.previous)?.prior).toBeUndefined();
  });

  test('leaves out settings that would make the ID longer than 900 characters', () => {
    const groups = Array.from({ length: 20 }, (_, i) => `group-${i}-${'x'.repeat(60)}`);
    const id = physicalResourceId({
      ...user,
      owner: 'adopted',
      prior: { consoleAccess: true, replicationUser: false, groups },
    });
    expect(id).toBe(`${BROKER_ID}/orders-service?owner=adopted`);
  });

  test('reads back what it writes, previous ID included', () => {
    const record = { ...user, owner: 'adopted' as const, previous: physicalId({ Username: 'orders-v1' }) };
    expect(parsePhysicalResourceId(physicalResourceId(record))).toEqual({ ...record, legacy: false });
  });

  test.each([
    [
      'a created ID',
      `b-1234/orders-service?owner=created`,
      { brokerId: 'b-1234', username: 'orders-service', owner: 'created', previous: undefined, legacy: false },
    ],
    [
      'an adopted ID',
      `b-1234/a.b_c~d?owner=adopted`,
      { brokerId: 'b-1234', username: 'a.b_c~d', owner: 'adopted', previous: undefined, legacy: false },
    ],
    [
      'a 0.1 ID',
      'b-1234/orders-service',
      { brokerId: 'b-1234', username: 'orders-service', owner: 'created', legacy: true },
    ],
    ['an unknown owner', 'b-1234/orders-service?owner=someone', undefined],
    ['no owner', 'b-1234/orders-service?previous=x', undefined],
    ['the Provider framework marker', 'AWSCDK::CustomResourceProviderFramework::CREATE_FAILED', undefined],
    ['an ID CloudFormation made up', 'Orders-OrdersService-1ABCDEFGHIJ', undefined],
    ['a one-character username', 'b-1234/x', undefined],
    ['a username of dots', 'b-1234/..', undefined],
    ['a username of dots with an owner', 'b-1234/...?owner=created', undefined],
    ['a username with a slash', 'b-1234/a/b?owner=created', undefined],
    ['an empty ID', '', undefined],
    ['no ID', undefined, undefined],
  ])('parses %s', (_case, id, expected) => {
    expect(parsePhysicalResourceId(id)).toEqual(expected);
  });

  test.each([
    [false, 'created'],
    [true, 'adopted'],
  ])('reads a 0.1 ID with adoptExisting %s as %s', (adoptExisting, owner) => {
    expect(parsePhysicalResourceId('b-1234/orders-service', adoptExisting)?.owner).toBe(owner);
  });

  test('never lets adoptExisting override the owner a 0.2 ID recorded', () => {
    expect(parsePhysicalResourceId('b-1234/orders-service?owner=created', true)?.owner).toBe('created');
    expect(parsePhysicalResourceId('b-1234/orders-service?owner=adopted', false)?.owner).toBe('adopted');
  });

  test('stays far below the 1 KB CloudFormation allows, with the longest names and a previous ID', () => {
    const longest = { brokerId: BROKER_ID, username: 'u'.repeat(100) };
    const previous = physicalResourceId({ ...longest, owner: 'adopted' });
    expect(physicalResourceId({ ...longest, owner: 'created', previous }).length).toBeLessThan(600);
  });
});

describe('usernames of dots', () => {
  test.each(['..', '...', '.'.repeat(100)])('rejects the username %j', (username) => {
    expect(() => parseProperties(wire({ Username: username }))).toThrow(PropertyError);
    expect(() => parseProperties(wire({ Username: username }))).toThrow('and not only dots');
  });

  test.each(['.hidden', 'a.b', '..x'])('accepts the username %j', (username) => {
    expect(parseProperties(wire({ Username: username })).Username).toBe(username);
  });
});

describe('stateDigest', () => {
  const digest = (change: object = {}) => stateDigest(parseProperties(wire({ PasswordVersion: '1', ...change })));

  test('is 32 hexadecimal characters and stable', () => {
    expect(digest()).toMatch(/^[0-9a-f]{32}$/);
    expect(digest()).toBe(digest());
  });

  test.each([
    ['the broker', { BrokerId: 'b-other' }],
    ['the username', { Username: 'orders-v2' }],
    ['the groups', { Groups: ['orders-consumers'] }],
    ['console access', { ConsoleAccess: true }],
    ['the replication flag', { ReplicationUser: true }],
    ['the secret', { PasswordSecretArn: 'arn:other' }],
    ['the secret field', { PasswordField: 'pw' }],
    ['the password version', { PasswordVersion: '2' }],
    ['the generation settings', { GeneratedPasswordSettings: 'abc' }],
  ])('changes with %s', (_case, change) => {
    expect(digest(change)).not.toBe(digest());
  });

  test.each([
    ['adoptExisting', { AdoptExisting: true }],
    ['the order of the groups', { Groups: ['orders-producers', 'orders-consumers'] }],
  ])('does not change with %s', (_case, change) => {
    expect(digest(change)).toBe(digest());
  });
});

describe('parseRebootProperties', () => {
  test('parses the wire format, TimeoutSeconds as a number', () => {
    expect(parseRebootProperties(wireReboot({ Revision: '3' }))).toEqual({ ...REBOOT_PROPERTIES, Revision: '3' });
  });

  test('accepts properties written before UserStates existed', () => {
    expect(parseRebootProperties({ ...wireReboot(), UserStates: undefined }).UserStates).toBeUndefined();
  });

  test.each([
    ['Usernames', { Usernames: 'orders-service' }, 'Usernames must be a list of strings, got "orders-service"'],
    ['UserStates', { UserStates: 'abc' }, 'UserStates must be a list of strings, got "abc"'],
    ['a user state', { UserStates: ['abc', 1] }, 'UserStates must be a list of strings, got ["abc",1]'],
    ['TimeoutSeconds', { TimeoutSeconds: '0' }, 'TimeoutSeconds must be a positive whole number, got "0"'],
    ['BrokerId', { BrokerId: '' }, 'BrokerId must be a non-empty string, got ""'],
  ])('fails when %s does not parse', (_case, change, message) => {
    expect(() => parseRebootProperties({ ...wireReboot(), ...change })).toThrow(message);
  });
});

describe('passwordSourceChanged', () => {
  const base = { ...DEFAULT_PROPERTIES, PasswordVersion: '1' };
  test.each([
    ['nothing about the password changed', { Groups: [] }, false],
    ['the secret changed', { PasswordSecretArn: 'arn:other' }, true],
    ['the field changed', { PasswordField: 'pw' }, true],
    ['the version changed', { PasswordVersion: '2' }, true],
    ['the generation settings changed', { GeneratedPasswordSettings: 'abc' }, true],
  ])('is %s -> %s', (_case, change, expected) => {
    expect(passwordSourceChanged(base, { ...base, ...change })).toBe(expected);
  });
});
