/**
 * Whether the configuration revision a deploy gave the broker (an `MqAuthorizationMap`'s) still waits for a
 * reboot. Amazon MQ keeps a new revision pending until the broker's next reboot or maintenance window, and
 * DescribeBroker shows both: `Configurations.Current` and `Configurations.Pending`.
 */

/** A configuration revision as DescribeBroker and the resource properties name it. */
export interface ConfigurationRevision {
  readonly id: string;
  readonly revision: number;
}

/**
 * - `PENDING`: the revision is the broker's pending one: a reboot applies it.
 * - `APPLIED`: the revision is the broker's current one.
 * - `OTHER`: neither (another revision is pending or current: a later deploy, a change by hand, or DescribeBroker
 *   not showing it yet). Rebooting would apply what someone else set, so this deploy does not reboot for it.
 */
export type ConfigurationState = 'PENDING' | 'APPLIED' | 'OTHER';

export function configurationState(
  broker: { readonly current?: ConfigurationRevision; readonly pending?: ConfigurationRevision },
  wanted: ConfigurationRevision,
): ConfigurationState {
  const same = (revision?: ConfigurationRevision) =>
    revision !== undefined && revision.id === wanted.id && revision.revision === wanted.revision;
  if (same(broker.pending)) return 'PENDING';
  if (same(broker.current)) return 'APPLIED';
  return 'OTHER';
}

/** `c-1234 revision 3`, for log lines. */
export function describeRevision(revision: ConfigurationRevision | undefined): string {
  return revision ? `${revision.id} revision ${revision.revision}` : 'none';
}
