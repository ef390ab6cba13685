import { Duration, RemovalPolicy, Token } from 'aws-cdk-lib';
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
