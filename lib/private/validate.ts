import { RemovalPolicy, Token } from 'aws-cdk-lib';
import { MAX_GROUPS, NAME_PATTERN, NAME_RULE, USERNAME_PATTERN, USERNAME_RULE } from './rules';

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
