/**
 * Amazon MQ's own limits for ActiveMQ users, shared by the construct (checked at synth time) and the
 * handler (checked at deploy time, for values that tokens hid from synth). The SDK checks none of them.
 */

/** Group names (and the characters of usernames): Amazon MQ accepts 2 to 100 characters of A-Z a-z 0-9 - . _ ~ */
export const NAME_PATTERN = /^[A-Za-z0-9._~-]{2,100}$/;
export const NAME_RULE = '2 to 100 characters of A-Z a-z 0-9 - . _ ~';

/**
 * Usernames: NAME_PATTERN, and not only dots. The user API puts the username into the request path
 * (`/v1/brokers/{id}/users/{username}`): `..` would be normalized by a signer or router to the broker's own path.
 */
export const USERNAME_PATTERN = /^(?!\.+$)[A-Za-z0-9._~-]{2,100}$/;
export const USERNAME_RULE = `${NAME_RULE}, and not only dots`;

/** Amazon MQ accepts at most 20 groups per user. */
export const MAX_GROUPS = 20;

/** Amazon MQ accepts at most 250 users per broker. */
export const MAX_USERS_PER_BROKER = 250;

/** Membership in this group together with console access administers every destination. */
export const WEB_CONSOLE_GROUP = 'activemq-webconsole';

/**
 * Says which of Amazon MQ's password rules `password` breaks, or `undefined` when it keeps them all.
 * The answer never contains the password or any part of it.
 */
export function passwordProblem(password: string): string | undefined {
  // Amazon MQ: 12 to 250 characters, at least 4 distinct ones, and none of , : = (they delimit its config).
  if (password.length < 12 || password.length > 250) {
    return 'it must be 12 to 250 characters long'; // never say how long it is
  }
  if (new Set(password).size < 4) {
    return 'it must contain at least 4 distinct characters';
  }
  if (/[,:=]/.test(password)) {
    return 'it must not contain a comma, a colon or an equals sign';
  }
  return undefined;
}

/** The suffix of a rotated user's alternate (AWS's alternating-users convention): `<username>_clone`. */
export const ALTERNATE_SUFFIX = '_clone';

/**
 * Tags that `addRotation` puts on a generated secret, read by the rotation function (DescribeSecret). Shared by the
 * construct and the rotation bundle: this file has no imports.
 */
/**
 * The key of the `Metadata` that `addRotation` puts on a rotated generated secret: what the rotation function may do
 * with it, bound at synth. Only a deploy of the stack changes a resource's metadata (tags and the secret's value can
 * be changed by anyone allowed to, so neither decides anything).
 */
export const ROTATION_BINDING_KEY = 'cdk-mq-user:rotation';

/** The value under `ROTATION_BINDING_KEY`. */
export interface RotationBinding {
  /** The logical ID of the user's `Custom::MqUser` in the secret's stack. */
  readonly User: string;
  /** The logical ID of the alternate's `Custom::MqUser` (`<username>_clone`) in the same stack. */
  readonly Alternate: string;
  /** `MAINTENANCE_WINDOW` or `REBOOT`. */
  readonly ApplyBy: string;
  /** The rotation interval the schedule was declared with: a REBOOT rotation never starts much sooner. */
  readonly IntervalSeconds: number;
  /** `verifySignIn`: sign in to the broker with new credentials before promoting them. Absent means false. */
  readonly VerifySignIn?: boolean;
}

export const ROTATION_TAGS = {
  /** Informational: the ID of the broker the users live on (the function takes it from the users' physical IDs). */
  brokerId: 'cdk-mq-user:broker-id',
  /** Informational: `MAINTENANCE_WINDOW` or `REBOOT` (the function takes the mode from the rotation metadata). */
  mode: 'cdk-mq-user:rotation',
  /** The stack whose rotation function may rotate the secret: the function's only grant on secrets. */
  stackId: 'cdk-mq-user:rotation-stack-id',
} as const;
