import { PropertyError, parsePhysicalResourceId, parseProperties, passwordSourceChanged } from '../lambda/properties';
import { DEFAULT_PROPERTIES, wire } from './fixtures/events';

describe('parseProperties', () => {
  test("parses the wire format back into the construct's properties", () => {
    expect(parseProperties(wire({ ConsoleAccess: true, PasswordVersion: '3' }))).toEqual({
      ...DEFAULT_PROPERTIES,
      ConsoleAccess: true,
      PasswordVersion: '3',
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
  test.each([
    ['b-1234/orders-service', { brokerId: 'b-1234', username: 'orders-service' }],
    ['b-1234/a.b_c~d', { brokerId: 'b-1234', username: 'a.b_c~d' }],
    ['AWSCDK::CustomResourceProviderFramework::CREATE_FAILED', undefined],
    ['Orders-OrdersService-1ABCDEFGHIJ', undefined],
    ['b-1234/x', undefined],
    ['', undefined],
  ])('parses %j', (id, expected) => {
    expect(parsePhysicalResourceId(id)).toEqual(expected);
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
