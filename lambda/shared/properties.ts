import { createHash } from 'node:crypto';
import type { MqBrokerRebootResourceProperties, MqUserResourceProperties, Raw } from '../../lib/private/handler-props';
import { MAX_GROUPS, NAME_PATTERN, NAME_RULE, USERNAME_PATTERN, USERNAME_RULE } from '../../lib/private/rules';

/** A property did not parse: the message names the key, the value and the rule. */
export class PropertyError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'PropertyError';
  }
}

/** The properties after parsing: every flag decided (absent flags are false). */
export type UserProperties = MqUserResourceProperties &
  Required<Pick<MqUserResourceProperties, 'ConsoleAccess' | 'ReplicationUser' | 'AdoptExisting' | 'RotationEnabled'>>;

/**
 * Parses `ResourceProperties` as CloudFormation delivers them (every scalar a string, `true` as "true")
 * into typed properties, rejecting what does not parse. Unknown keys (`ServiceToken`, `ServiceTimeout`,
 * keys of later versions) are ignored, so old and new formats both parse.
 */
export function parseProperties(raw: Raw<MqUserResourceProperties> | undefined): UserProperties {
  if (!raw || typeof raw !== 'object') throw new PropertyError('the resource has no properties');
  const username = requiredString(raw, 'Username');
  if (!USERNAME_PATTERN.test(username)) {
    throw new PropertyError(`Username "${username}" must be ${USERNAME_RULE}`);
  }
  return {
    BrokerId: requiredString(raw, 'BrokerId'),
    Username: username,
    Groups: parseGroups(raw.Groups),
    ConsoleAccess: parseBoolean(raw, 'ConsoleAccess'),
    ReplicationUser: parseBoolean(raw, 'ReplicationUser'),
    PasswordSecretArn: requiredString(raw, 'PasswordSecretArn'),
    PasswordField: optionalString(raw, 'PasswordField'),
    PasswordVersion: optionalString(raw, 'PasswordVersion'),
    GeneratedPasswordSettings: optionalString(raw, 'GeneratedPasswordSettings'),
    AdoptExisting: parseBoolean(raw, 'AdoptExisting'),
    RotationEnabled: parseBoolean(raw, 'RotationEnabled'),
  };
}

/** Parses the properties of a `Custom::MqBrokerReboot`. */
export function parseRebootProperties(
  raw: Raw<MqBrokerRebootResourceProperties> | undefined,
): MqBrokerRebootResourceProperties {
  if (!raw || typeof raw !== 'object') throw new PropertyError('the resource has no properties');
  const usernames = raw.Usernames ?? [];
  if (!Array.isArray(usernames) || usernames.some((name) => typeof name !== 'string')) {
    throw new PropertyError(`Usernames must be a list of strings, got ${describe(usernames)}`);
  }
  const states = raw.UserStates;
  if (states !== undefined && (!Array.isArray(states) || states.some((state) => typeof state !== 'string'))) {
    throw new PropertyError(`UserStates must be a list of strings, got ${describe(states)}`);
  }
  const timeout = Number(raw.TimeoutSeconds);
  if (!Number.isInteger(timeout) || timeout <= 0) {
    throw new PropertyError(`TimeoutSeconds must be a positive whole number, got ${describe(raw.TimeoutSeconds)}`);
  }
  return {
    BrokerId: requiredString(raw, 'BrokerId'),
    Usernames: usernames as string[],
    UsersDigest: optionalString(raw, 'UsersDigest') ?? '',
    UserStates: states as string[] | undefined,
    Revision: optionalString(raw, 'Revision'),
    TimeoutSeconds: timeout,
    ...rebootConfiguration(raw),
  };
}

/** The configuration revision of a reboot's properties: both fields or neither, the revision a whole number. */
function rebootConfiguration(
  raw: Raw<MqBrokerRebootResourceProperties>,
): Pick<MqBrokerRebootResourceProperties, 'ConfigurationId' | 'ConfigurationRevision'> {
  const id = optionalString(raw, 'ConfigurationId');
  const revision = raw.ConfigurationRevision === undefined ? undefined : String(raw.ConfigurationRevision);
  if (id === undefined && revision === undefined) return {};
  if (id === undefined || revision === undefined || !/^\d+$/.test(revision)) {
    throw new PropertyError(
      `ConfigurationId and ConfigurationRevision must come together, the revision a whole number, got ` +
        `${describe(raw.ConfigurationId)} and ${describe(raw.ConfigurationRevision)}`,
    );
  }
  return { ConfigurationId: id, ConfigurationRevision: revision };
}

/** Whether an update must set the password again: any change to where it comes from, or its version. */
export function passwordSourceChanged(previous: MqUserResourceProperties, next: MqUserResourceProperties): boolean {
  return (
    previous.PasswordSecretArn !== next.PasswordSecretArn ||
    previous.PasswordField !== next.PasswordField ||
    previous.PasswordVersion !== next.PasswordVersion ||
    previous.GeneratedPasswordSettings !== next.GeneratedPasswordSettings
  );
}

/** A user's identity: the broker and the username. Everything else is updated in place. */
export interface UserIdentity {
  readonly brokerId: string;
  readonly username: string;
}

/**
 * Who made the user a resource holds: `created` by this resource's own CreateUser, or `adopted` (it existed,
 * and `adoptExisting` converged it). Recorded in the physical ID when the resource takes the user, because the
 * physical ID is the one thing every later event of the resource carries; pending CREATE proves nothing.
 */
export type Owner = 'created' | 'adopted';

/** What a physical ID of a `Custom::MqUser` records. */
export interface UserRecord extends UserIdentity {
  readonly owner: Owner;
  /** The physical ID the resource held before its last rename or broker move, for that move's rollback. */
  readonly previous?: string;
  /**
   * An adopted user's settings as the adopting event found them, for the rollback of that event: it keeps the
   * user (it existed before) and puts these back. Absent when unknown or too long to record.
   */
  readonly prior?: PriorSettings;
}

/** Console access, replication flag and groups: what a rollback can restore (a password cannot be read back). */
export interface PriorSettings {
  readonly consoleAccess: boolean;
  readonly replicationUser: boolean;
  readonly groups: string[];
}

/** The longest physical ID that records `prior`: CloudFormation allows 1 KB; without it, the ID stays short. */
const MAX_ID_WITH_PRIOR = 900;

/**
 * `<brokerId>/<username>?owner=created|adopted[&previous=<physical ID before the move>][&prior=<settings found>]`. The previous ID is
 * kept one level deep (its own previous is dropped), so IDs stay far below CloudFormation's 1 KB.
 */
export function physicalResourceId(record: UserRecord): string {
  const query = new URLSearchParams({ owner: record.owner });
  if (record.previous) query.set('previous', withoutPrevious(record.previous));
  const id = `${record.brokerId}/${record.username}?${query}`;
  if (!record.prior) return id;
  const { consoleAccess, replicationUser, groups } = record.prior;
  query.set('prior', `${consoleAccess ? 1 : 0}${replicationUser ? 1 : 0}${groups.join(',')}`);
  const withPrior = `${record.brokerId}/${record.username}?${query}`;
  return withPrior.length <= MAX_ID_WITH_PRIOR ? withPrior : id;
}

// Broker IDs are `b-` and a UUID; usernames follow USERNAME_PATTERN. Anything else (the Provider framework's
// CREATE_FAILED marker, an ID CloudFormation made up) was not made by this handler.
/** Amazon MQ's broker IDs: `b-` and a UUID, lower case. Nothing else may reach a URL path. */
export const BROKER_ID_PATTERN = /^b-[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;

/** Throws unless `brokerId` has Amazon MQ's format; called by the AWS doors before any call that names a broker. */
export function checkBrokerId(brokerId: string): string {
  if (!BROKER_ID_PATTERN.test(brokerId)) {
    throw new Error(
      `${JSON.stringify(brokerId)} is not an Amazon MQ broker ID ("b-" and a lower-case UUID): no call was made`,
    );
  }
  return brokerId;
}

const PHYSICAL_ID = /^([A-Za-z0-9-]{1,100})\/([A-Za-z0-9._~-]{2,100})(?:\?(.*))?$/;

/**
 * Reads a physical ID this handler made; `undefined` for any other. IDs of 0.1 (`<brokerId>/<username>`)
 * recorded no owner: `adoptExisting` in the resource's properties is the best evidence left for them.
 */
export function parsePhysicalResourceId(
  id: string | undefined,
  legacyAdopted = false,
): (UserRecord & { readonly legacy: boolean }) | undefined {
  const match = id ? PHYSICAL_ID.exec(id) : null;
  if (!match || !USERNAME_PATTERN.test(match[2])) return undefined;
  const [, brokerId, username, rawQuery] = match;
  if (rawQuery === undefined) {
    return { brokerId, username, owner: legacyAdopted ? 'adopted' : 'created', legacy: true };
  }
  const query = new URLSearchParams(rawQuery);
  const owner = query.get('owner');
  if (owner !== 'created' && owner !== 'adopted') return undefined;
  return {
    brokerId,
    username,
    owner,
    previous: query.get('previous') ?? undefined,
    prior: parsePrior(query.get('prior')),
    legacy: false,
  };
}

function parsePrior(raw: string | null): PriorSettings | undefined {
  const match = raw === null ? null : /^([01])([01])(.*)$/.exec(raw);
  if (!match) return undefined;
  return {
    consoleAccess: match[1] === '1',
    replicationUser: match[2] === '1',
    groups: match[3] ? match[3].split(',') : [],
  };
}

function withoutPrevious(id: string): string {
  const [base, rawQuery] = id.split('?', 2);
  if (rawQuery === undefined) return id;
  const query = new URLSearchParams(rawQuery);
  query.delete('previous');
  query.delete('prior');
  return `${base}?${query}`;
}

export function sameIdentity(a: UserIdentity | undefined, b: UserIdentity): boolean {
  return a !== undefined && a.brokerId === b.brokerId && a.username === b.username;
}

function requiredString(raw: Record<string, unknown>, key: string): string {
  const value = raw[key];
  if (typeof value !== 'string' || value === '') {
    throw new PropertyError(`${key} must be a non-empty string, got ${describe(value)}`);
  }
  return value;
}

function optionalString(raw: Record<string, unknown>, key: string): string | undefined {
  const value = raw[key];
  if (value === undefined || value === '') return undefined;
  if (typeof value !== 'string') throw new PropertyError(`${key} must be a string, got ${describe(value)}`);
  return value;
}

function parseBoolean(raw: Record<string, unknown>, key: string): boolean {
  const value = raw[key];
  if (value === undefined || value === false || value === 'false') return false;
  if (value === true || value === 'true') return true;
  throw new PropertyError(`${key} must be "true" or "false", got ${describe(value)}`);
}

function parseGroups(value: unknown): string[] {
  // CloudFormation may drop an empty list altogether: absent means no groups.
  if (value === undefined || value === '') return [];
  if (!Array.isArray(value) || value.some((group) => typeof group !== 'string')) {
    throw new PropertyError(`Groups must be a list of strings, got ${describe(value)}`);
  }
  if (value.length > MAX_GROUPS) {
    throw new PropertyError(`Groups has ${value.length} entries; Amazon MQ allows at most ${MAX_GROUPS}`);
  }
  for (const group of value) {
    if (!NAME_PATTERN.test(group)) throw new PropertyError(`group "${group}" must be ${NAME_RULE}`);
  }
  return [...new Set(value as string[])].sort();
}

function describe(value: unknown): string {
  const text = JSON.stringify(value) ?? String(value);
  return text.length > 80 ? `${text.slice(0, 77)}...` : text;
}

/**
 * Digest of what the broker should hold for this user, as resolved at deploy time: it changes exactly when a
 * deploy changes the user's broker state or password source, parameters and replaced secrets included. Never
 * the password itself (only where it comes from).
 */
export function stateDigest(props: MqUserResourceProperties): string {
  const state = [
    props.BrokerId,
    props.Username,
    props.Groups,
    props.ConsoleAccess ?? false,
    props.ReplicationUser ?? false,
    props.PasswordSecretArn,
    props.PasswordField ?? null,
    props.PasswordVersion ?? null,
    props.GeneratedPasswordSettings ?? null,
  ];
  return createHash('sha256').update(JSON.stringify(state)).digest('hex').slice(0, 32);
}
