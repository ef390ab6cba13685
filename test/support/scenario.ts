/**
 * Bookkeeping every lifecycle scenario shares: the passwords the broker holds join the secrets that no log line may
 * contain, and the user nobody declared (`bystander`) must end exactly as it was seeded.
 */
import type { FakeMq, UserValues } from './mq-endpoint';

/** Adds every password a user of `brokerIds` holds, applied or pending, to `secrets`. */
export function collectPasswords(mq: FakeMq, brokerIds: string[], secrets: Set<string>): void {
  for (const user of brokerIds.flatMap((id) => mq.users(id)))
    for (const v of [user.applied, user.pending]) if (v && 'password' in v) secrets.add(v.password);
}

/**
 * The user nobody declared is exactly as it was, whatever the scenario did; counts a change in
 * `figures.usersChangedUnexpectedly` before failing the scenario.
 */
export function expectBystanderUntouched(
  mq: FakeMq,
  brokerId: string,
  seeded: Partial<UserValues>,
  figures: { usersChangedUnexpectedly: number },
): void {
  try {
    expect(mq.user(brokerId, 'bystander')).toEqual({
      username: 'bystander',
      applied: { replicationUser: false, ...seeded },
    });
  } catch (error) {
    figures.usersChangedUnexpectedly++;
    throw error;
  }
}
