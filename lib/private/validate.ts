import { Duration, RemovalPolicy, Token, aws_secretsmanager as secretsmanager } from 'aws-cdk-lib';
import { IConstruct } from 'constructs';
import { ALTERNATE_SUFFIX, MAX_GROUPS, NAME_PATTERN, NAME_RULE, USERNAME_PATTERN, USERNAME_RULE } from './rules';

/**
 * Synth-time checks of MqUser's own props. Each returns the messages of the rules broken; values that are
 * unresolved tokens are skipped (the handler checks them at deploy time). No message ever holds a secret.
 */
export function validateUserProps(props: {
  username: string;
  groups: string[];
  consoleAccess: boolean;
  replicationUser: boolean;
  passwordField?: string;
  hasPasswordSecret: boolean;
  removalPolicy: RemovalPolicy;
}): string[] {
  const errors: string[] = [];
  if (!Token.isUnresolved(props.username) && !USERNAME_PATTERN.test(props.username)) {
    errors.push(`username "${props.username}" must be ${USERNAME_RULE}`);
  }
  if (props.groups.length > MAX_GROUPS) {
    errors.push(`groups has ${props.groups.length} entries; Amazon MQ allows at most ${MAX_GROUPS} groups per user`);
  }
  for (const group of props.groups) {
    if (!Token.isUnresolved(group) && !NAME_PATTERN.test(group)) {
      errors.push(`group "${group}" must be ${NAME_RULE}`);
    }
  }
  if (props.consoleAccess && props.replicationUser) {
    errors.push(
      'consoleAccess and replicationUser cannot both be true: Amazon MQ refuses console access to a replication user',
    );
  }
  if (props.passwordField !== undefined && !Token.isUnresolved(props.passwordField)) {
    if (!props.hasPasswordSecret) {
      errors.push(
        `passwordField "${props.passwordField}" needs passwordSecret: a generated secret keeps its password in "password"`,
      );
    } else if (props.passwordField.length === 0) {
      errors.push('passwordField must not be empty: omit it to use the "password" field or the whole secret string');
    }
  }
  if (props.removalPolicy === RemovalPolicy.SNAPSHOT) {
    errors.push('removalPolicy SNAPSHOT does not apply to a user: use DESTROY, RETAIN_ON_UPDATE_OR_DELETE or RETAIN');
  }
  return errors;
}

/** Sorted and without duplicates, so that reordering groups changes nothing in the template. */
export function normalizeGroups(groups: string[] = []): string[] {
  return [...new Set(groups)].sort();
}

/** Amazon MQ's longest username, less the alternate's suffix (`_clone`). */
export const MAX_ROTATED_USERNAME = 100 - ALTERNATE_SUFFIX.length;

// Secrets Manager rotates at most every 4 hours and at least every 1000 days, with rate() in hours or days.
const HOUR_MS = 3_600_000;
const DAY_MS = 24 * HOUR_MS;
// A weekly maintenance window of up to two hours must fall between two rotations.
// A rate(N days) rotation runs at any time of its UTC day: two rotations may be only N - 1 days apart, and only
// 8 days (7 days and a 2-hour window, rounded up) surely contain a whole weekly maintenance window.
export const MIN_WINDOW_INTERVAL_DAYS = 9;

/**
 * Synth-time checks of `MqUser.addRotation`. Values that are unresolved tokens are skipped. Each message names the
 * value, the rule and the fix.
 */
export function validateRotation(props: {
  username: string;
  hasPasswordSecret: boolean;
  passwordVersion?: string;
  automaticallyAfter: Duration;
  maintenanceWindow: boolean;
  brokerUsernames: string[];
  brokerLabel: string;
}): string[] {
  const errors: string[] = [];
  if (props.hasPasswordSecret) {
    errors.push(
      'addRotation needs a generated secret, but this MqUser has passwordSecret: the rotation writes new passwords ' +
        'into a secret it owns (JSON {"username", "password"}, tagged for the rotation function). Remove passwordSecret ' +
        'to let MqUser generate the secret, or keep your secret and roll it with passwordVersion',
    );
  }
  if (props.passwordVersion !== undefined) {
    errors.push(
      `passwordVersion "${props.passwordVersion}" cannot be combined with addRotation: the rotation owns the password ` +
        'after the user is created and a deploy never sets it. Remove passwordVersion; to rotate now, run ' +
        '`aws secretsmanager rotate-secret --secret-id <the secret>`',
    );
  }
  if (!Token.isUnresolved(props.username)) {
    const alternate = `${props.username}${ALTERNATE_SUFFIX}`;
    if (props.username.length > MAX_ROTATED_USERNAME) {
      errors.push(
        `username "${props.username}" has ${props.username.length} characters: a rotated user has at most ` +
          `${MAX_ROTATED_USERNAME}, so that its alternate "<username>_clone" fits Amazon MQ's 100. Shorten the username`,
      );
    }
    if (props.username.endsWith(ALTERNATE_SUFFIX)) {
      errors.push(
        `username "${props.username}" ends in "_clone", the suffix of rotation's alternate users: the rotation ` +
          `would take "${props.username.slice(0, -ALTERNATE_SUFFIX.length)}" for its primary user. Rename the user`,
      );
    }
    if (props.brokerUsernames.includes(alternate)) {
      errors.push(
        `the alternate user "${alternate}" of the rotation is already in the users list of broker ${props.brokerLabel}: ` +
          'a user is managed either by the broker or by MqUser; remove it from that list, or rename this user',
      );
    }
  }
  if (!props.automaticallyAfter.isUnresolved()) {
    const interval = props.automaticallyAfter;
    const ms = interval.toMilliseconds();
    const human = interval.toHumanString();
    if (ms < 4 * HOUR_MS || ms > 1000 * DAY_MS) {
      errors.push(
        `automaticallyAfter ${human} must be 4 hours to 1000 days (Secrets Manager's rotation limits): pass a ` +
          'duration in that range',
      );
    } else if (ms < DAY_MS ? ms % HOUR_MS !== 0 : ms % DAY_MS !== 0) {
      errors.push(
        `automaticallyAfter ${human} must be whole hours below one day, or whole days (Secrets Manager's rate() ` +
          'schedules count hours or days): round it',
      );
    }
    if (props.maintenanceWindow && ms < MIN_WINDOW_INTERVAL_DAYS * DAY_MS) {
      errors.push(
        `automaticallyAfter ${human} is too short for MqUserRotationApply.MAINTENANCE_WINDOW: the broker's weekly ` +
          `maintenance window (up to 2 hours) must fall between two rotations, which Secrets Manager may run a day closer ` +
          `than the interval, so at least ${MIN_WINDOW_INTERVAL_DAYS} ` +
          `days. Pass Duration.days(${MIN_WINDOW_INTERVAL_DAYS}) or more, or applyBy: MqUserRotationApply.REBOOT`,
      );
    }
  }
  return errors;
}

/** The generation settings of a secret that Secrets Manager generates (CloudFormation's `GenerateSecretString`). */
export interface GenerationSettings {
  readonly passwordLength?: number;
  readonly excludeCharacters?: string;
  readonly excludePunctuation?: boolean;
}

// Secrets Manager's GetRandomPassword: 32 characters unless told, punctuation from this set unless excluded.
const DEFAULT_GENERATED_LENGTH = 32;
const SECRETS_MANAGER_PUNCTUATION = '!"#$%&\'()*+,-./:;<=>?@[\\]^_`{|}~';
// Amazon MQ refuses passwords shorter than 12, longer than 250, or with any of , : = (they delimit its config).
const MQ_FORBIDDEN = [',', ':', '='];

/**
 * Synth-time check of a supplied secret whose password Secrets Manager generates with `settings`: could the
 * generated password break Amazon MQ's rules? Unresolved values are skipped. Each message names the setting,
 * the rule and the fix; none holds a secret (the settings are in the template anyway).
 */
export function validateGeneratedPassword(settings: GenerationSettings, secretPath: string): string[] {
  const errors: string[] = [];
  const length = settings.passwordLength;
  if (length !== undefined && !Token.isUnresolved(length) && (length < 12 || length > 250)) {
    errors.push(
      `passwordSecret ${secretPath} generates passwords of ${length} characters (generateSecretString.passwordLength), ` +
        'but Amazon MQ accepts 12 to 250: set passwordLength between 12 and 250',
    );
  }
  const excluded = settings.excludeCharacters;
  if (settings.excludePunctuation !== true && !(excluded !== undefined && Token.isUnresolved(excluded))) {
    const allowed = MQ_FORBIDDEN.filter((c) => SECRETS_MANAGER_PUNCTUATION.includes(c) && !excluded?.includes(c));
    if (allowed.length > 0) {
      errors.push(
        `passwordSecret ${secretPath} may generate passwords with ${allowed.map((c) => `"${c}"`).join(' ')}, ` +
          'which Amazon MQ refuses in a password (none of , : =): add them to generateSecretString.excludeCharacters ' +
          '(for example excludeCharacters: ",:="), or set excludePunctuation: true',
      );
    }
  }
  return errors;
}

/**
 * The generation settings of `secret` if it is a secret of this app that Secrets Manager generates and they
 * are known at synth time; `undefined` for an imported secret, a given value, or settings behind a token.
 */
export function generationSettingsOf(secret: IConstruct): GenerationSettings | undefined {
  const resource = secret.node.defaultChild;
  if (!(resource instanceof secretsmanager.CfnSecret)) return undefined;
  const settings = resource.generateSecretString;
  if (settings === undefined || Token.isUnresolved(settings)) return undefined;
  const known = settings as secretsmanager.CfnSecret.GenerateSecretStringProperty;
  return {
    passwordLength: known.passwordLength ?? DEFAULT_GENERATED_LENGTH,
    excludeCharacters: known.excludeCharacters,
    excludePunctuation: Token.isUnresolved(known.excludePunctuation)
      ? true // unknown at synth: give the benefit of the doubt
      : (known.excludePunctuation as boolean | undefined),
  };
}

/** `validateGeneratedPassword` for `passwordSecret` when its generation settings are visible in the app. */
export function validateSuppliedSecret(secret: IConstruct | undefined): string[] {
  const settings = secret && generationSettingsOf(secret);
  return settings ? validateGeneratedPassword(settings, secret.node.path) : [];
}
