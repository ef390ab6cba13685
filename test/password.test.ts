import { PasswordError, extractPassword } from '../lambda/shared/password';
import { passwordProblem } from '../lib/private/rules';

const ARN = 'arn:aws:secretsmanager:us-east-1:111111111111:secret:pw-AbCdEf';
const GOOD = 'Abcdefgh-1234';

describe('extractPassword', () => {
  test.each([
    ['the password field of a JSON object', JSON.stringify({ username: 'u', password: GOOD }), undefined, GOOD],
    ['the whole string when it is not JSON', GOOD, undefined, GOOD],
    ['the named field', JSON.stringify({ pw: GOOD, password: 'ignored-password' }), 'pw', GOOD],
  ])('takes %s', (_case, secretString, field, expected) => {
    expect(extractPassword(secretString, { PasswordSecretArn: ARN, PasswordField: field })).toBe(expected);
  });

  test('takes the whole string of a JSON object without a password field, which Amazon MQ then refuses', () => {
    expect(() => extractPassword(JSON.stringify({ pw: GOOD }), { PasswordSecretArn: ARN })).toThrow(
      `the password in secret ${ARN} breaks Amazon MQ's password rule: it must not contain a comma, a colon or an equals sign`,
    );
  });

  test.each([
    ['the secret is not JSON', `not json ${GOOD}`],
    ['the field is missing', JSON.stringify({ other: GOOD })],
    ['the field is not a string', JSON.stringify({ pw: 12345678901234 })],
  ])('fails when a field is named but %s, without quoting the secret', (_case, secretString) => {
    const run = () => extractPassword(secretString, { PasswordSecretArn: ARN, PasswordField: 'pw' });
    expect(run).toThrow(PasswordError);
    expect(run).toThrow(`field "pw" of secret ${ARN}: the secret is not a JSON object with a string field "pw"`);
    expect(() => run()).not.toThrow(GOOD);
  });
});

describe('passwordProblem', () => {
  test.each([
    ['Abcdefgh-123', undefined],
    ['a'.repeat(250).replace(/^a{4}/, 'abcd'), undefined],
    ['Abcdefgh-12', 'it must be 12 to 250 characters long'],
    ['abcd'.repeat(63), 'it must be 12 to 250 characters long'],
    ['abcabcabcabcabc', 'it must contain at least 4 distinct characters'],
    ['Abcdefgh-12,', 'it must not contain a comma, a colon or an equals sign'],
    ['Abcdefgh-12:', 'it must not contain a comma, a colon or an equals sign'],
    ['Abcdefgh-12=', 'it must not contain a comma, a colon or an equals sign'],
  ])('%j -> %s', (password, expected) => {
    expect(passwordProblem(password)).toBe(expected);
  });
});
