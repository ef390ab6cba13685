/**
 * What `Custom::MqBrokerReboot` decides, as pure functions of its properties and what the broker reports: tested
 * as tables (test/reboot-decide.test.ts). The handler gathers the inputs and carries the decisions out.
 */
import type { MqBrokerRebootResourceProperties } from '../../lib/private/handler-props';

/**
 * The covered users whose pending change can be this deploy's: those it created or changed.
 *
 * - Create (the opt-in is new), an old-format or unreadable previous version, or another broker: every covered
 *   user (nothing tells this deploy's users from the others).
 * - Update: a username that was not covered before (created, or newly covered), or whose digest of its resolved
 *   state changed. A user whose state this deploy left alone is not this deploy's, whatever it has pending: a
 *   rotation's staged password (MAINTENANCE_WINDOW never reboots), another deploy's change.
 * - Removed users are never among them: CloudFormation deletes them in the cleanup phase, after this resource, so
 *   no reboot of this deploy can apply their removal (what such a user has pending is an earlier change).
 */
export function usersOfThisDeploy(
  next: MqBrokerRebootResourceProperties,
  previous: MqBrokerRebootResourceProperties | undefined,
): string[] {
  const states = next.UserStates;
  const before = previous?.UserStates;
  if (
    previous === undefined ||
    previous.BrokerId !== next.BrokerId ||
    states === undefined ||
    before === undefined ||
    states.length !== next.Usernames.length ||
    before.length !== previous.Usernames.length
  ) {
    return [...next.Usernames];
  }
  const digestBefore = new Map(previous.Usernames.map((username, i) => [username, before[i]]));
  return next.Usernames.filter((username, i) => digestBefore.get(username) !== states[i]);
}

export interface RebootInputs {
  /** The covered users this deploy created or changed (`usersOfThisDeploy`). */
  readonly users: readonly string[];
  /** Each user's pending change, as ListUsers reports it. */
  readonly pending: ReadonlyMap<string, string>;
  /** Whether `revision` changed in this Update (it asks for a reboot whatever is pending). */
  readonly revisionChanged: boolean;
  /**
   * Whether the configuration revision the stack declares (`MqAuthorizationMap`) is pending on the broker: this
   * deploy's, or one an earlier deploy of the stack set and did not reboot for. Never another's revision.
   */
  readonly configurationPending?: boolean;
}

export type RebootDecision =
  { readonly action: 'NONE'; readonly why: string } | { readonly action: 'REBOOT'; readonly users: string[] };

/** Reboot only for this deploy's own pending changes (users, configuration revision), or a changed `revision`. */
export function decideReboot(input: RebootInputs): RebootDecision {
  const users = input.users.filter((username) => input.pending.has(username));
  if (users.length > 0 || input.revisionChanged || input.configurationPending) return { action: 'REBOOT', users };
  const others = [...input.pending.keys()].filter((username) => !input.users.includes(username));
  return {
    action: 'NONE',
    why:
      others.length > 0
        ? 'no user this deploy created or changed has a pending change (other pending changes are not this ' +
          "deploy's: a rotation's staged password, another deploy's change)"
        : 'no covered user has a pending change',
  };
}
