import { Duration } from 'aws-cdk-lib';

/** How a rotated password reaches the broker, which applies it only at its next reboot or maintenance window. */
export enum MqUserRotationApply {
  /**
   * The broker's weekly maintenance window applies it; the rotation never reboots the broker.
   *
   * A rotation stages a new password on the user that clients are not using; a later rotation makes it
   * `AWSCURRENT` once a window has applied it. So the credentials clients read change every second rotation,
   * and `automaticallyAfter` must be at least 9 days (a window must fall between two rotations).
   */
  MAINTENANCE_WINDOW = 'MAINTENANCE_WINDOW',

  /**
   * The rotation reboots the broker, at most once per rotation, and waits until it is RUNNING with the password applied.
   *
   * A reboot applies every pending change of the broker; a single-instance broker is offline for about five
   * minutes. The credentials clients read change at every rotation.
   */
  REBOOT = 'REBOOT',
}

/** Options of `MqUser.addRotation`. */
export interface MqUserRotationOptions {
  /**
   * How often Secrets Manager rotates the password.
   *
   * 4 hours to 1000 days, in whole hours below one day and in whole days from one day (Secrets Manager's
   * `rate()` schedules). With `MAINTENANCE_WINDOW` at least 9 days: the broker's weekly maintenance window (up
   * to two hours) must fall between two rotations, which Secrets Manager may run up to a day closer than the
   * interval. With `MAINTENANCE_WINDOW` the credentials in `AWSCURRENT`
   * change every second rotation: choose half the interval your policy requires.
   *
   * @default Duration.days(30)
   */
  readonly automaticallyAfter?: Duration;

  /**
   * How a new password reaches the broker.
   *
   * @default MqUserRotationApply.MAINTENANCE_WINDOW
   */
  readonly applyBy?: MqUserRotationApply;

  /**
   * Sign in to the broker with the new credentials before promoting them.
   *
   * The rotation function then opens one STOMP connection over TLS to the broker's `stomp+ssl://` endpoint (port
   * 61614, as DescribeBroker reports it) with the new username and password, and makes them `AWSCURRENT` only
   * once the broker answers `CONNECTED`: a proof against every state-tracking mistake (a user re-created or
   * changed out of band, for example). With `MAINTENANCE_WINDOW`, a staged password the broker refuses is
   * replaced by a new one; an unreachable broker makes the rotation hold. With `REBOOT`, the rotation fails and
   * Secrets Manager retries it; `AWSCURRENT` is unchanged.
   *
   * What it costs: the function needs network reach to the broker (for a private broker, give `MqUserProvider`
   * the broker's VPC, subnets and a security group the broker admits on port 61614; a public broker needs a
   * function with Internet access, that is no VPC or one with a NAT), `mq:DescribeBroker` on the broker, and
   * one sign-in per rotation, seen by the broker (and its logs) as a client connection of the alternating user.
   *
   * @default false
   */
  readonly verifySignIn?: boolean;
}
