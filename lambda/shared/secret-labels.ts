/**
 * The staging labels of a rotated secret: Secrets Manager's own and the rotation function's. Shared by the
 * rotation function (which moves them) and the user handler (which reads the password a rotated user holds).
 */
export const LABELS = {
  current: 'AWSCURRENT',
  pending: 'AWSPENDING',
  previous: 'AWSPREVIOUS',
  /** A version holding a new password for the other user, not yet promoted. */
  staged: 'MQUSER_STAGED',
  /** The version whose password UpdateUser has sent to the broker. */
  sent: 'MQUSER_SENT',
  /** The version whose rotation is about to call RebootBroker (set before the call: see `rebootOnce`). */
  rebootRequested: 'MQUSER_REBOOT_REQUESTED',
  /** The version whose rotation already called RebootBroker. */
  rebooted: 'MQUSER_REBOOTED',
} as const;
