import type { MqUserResourceProperties } from '../../lib/private/handler-props';
import { passwordProblem } from '../../lib/private/rules';
import { registerSensitive } from './log';

/** The password could not be taken from the secret; the message names the secret, never its contents. */
export class PasswordError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'PasswordError';
  }
}

/**
 * Takes the password out of a secret string: the named JSON field when `field` is set; otherwise the
 * `password` field of a JSON object, or else the whole string. Checks it against Amazon MQ's rules, so a bad
 * password fails before anything is created. Errors never quote the secret (JSON.parse's messages would).
 */
export function extractPassword(
  secretString: string,
  props: Pick<MqUserResourceProperties, 'PasswordSecretArn' | 'PasswordField'>,
): string {
  registerSensitive(secretString);
  const where = props.PasswordField
    ? `field "${props.PasswordField}" of secret ${props.PasswordSecretArn}`
    : `secret ${props.PasswordSecretArn}`;
  const json = parseJsonObject(secretString);
  let password: string;
  if (props.PasswordField) {
    const value = json?.[props.PasswordField];
    if (typeof value !== 'string') {
      throw new PasswordError(`${where}: the secret is not a JSON object with a string field "${props.PasswordField}"`);
    }
    password = value;
  } else {
    const value = json?.password;
    password = typeof value === 'string' ? value : secretString;
  }
  registerSensitive(password);
  const problem = passwordProblem(password);
  if (problem) throw new PasswordError(`the password in ${where} breaks Amazon MQ's password rule: ${problem}`);
  return password;
}

/**
 * The JSON object in `text`, or `undefined` for anything else. JSON.parse's own message would quote the text (a
 * secret string), so it never surfaces.
 */
export function parseJsonObject(text: string): Record<string, unknown> | undefined {
  try {
    const value: unknown = JSON.parse(text);
    return value !== null && typeof value === 'object' && !Array.isArray(value)
      ? (value as Record<string, unknown>)
      : undefined;
  } catch {
    return undefined;
  }
}
