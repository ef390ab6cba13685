/**
 * An in-process fake of the Amazon MQ user API and of the Secrets Manager calls our functions make
 * (GetSecretValue, PutSecretValue, UpdateSecretVersionStage, DescribeSecret, ListSecretVersionIds), for jest
 * tests that drive the real AWS SDK v3 clients over HTTP (endpoint override, dummy credentials).
 *
 * Amazon MQ has a simulated clock (`now()`, `advance()`) and a weekly maintenance window per broker: pending
 * changes are applied when the simulated time passes a window (or by a reboot), and `authenticates()` checks
 * credentials against the applied state only. Secrets have versions and staging labels as Secrets Manager
 * documents them; `startRotation()` is what RotateSecret does before it invokes the rotation function.
 *
 * It models ../shared/reference/amazon-mq-users.md: changes stay pending until a reboot, passwords never
 * come back, and the service (not the SDK) validates fields. What AWS leaves undocumented is an option,
 * so one test can run the handler against each plausible answer. Wire format follows the SDK's own
 * schemas (node_modules/@aws-sdk/client-mq/dist-cjs/schemas): REST JSON with lowerCamelCase names for MQ,
 * awsJson1_1 for Secrets Manager. Signatures are not checked.
 */
import { randomBytes, randomUUID } from 'node:crypto';
import * as http from 'node:http';
import type { AddressInfo } from 'node:net';

export type MqOperation =
  'CreateUser' | 'UpdateUser' | 'DeleteUser' | 'DescribeUser' | 'ListUsers' | 'DescribeBroker' | 'RebootBroker';
export type SecretsOperation =
  'GetSecretValue' | 'PutSecretValue' | 'UpdateSecretVersionStage' | 'DescribeSecret' | 'ListSecretVersionIds';
export type Operation = MqOperation | SecretsOperation;
const SECRETS_OPERATIONS: ReadonlySet<string> = new Set<SecretsOperation>([
  'GetSecretValue',
  'PutSecretValue',
  'UpdateSecretVersionStage',
  'DescribeSecret',
  'ListSecretVersionIds',
]);
/** Whether a recorded call went to Secrets Manager (not Amazon MQ). */
export function isSecretsOperation(operation: string): operation is SecretsOperation {
  return SECRETS_OPERATIONS.has(operation);
}
/**
 * `internalAfterWrite`: the call is performed, then answered 500 (a 5xx after the change was made). `slow`: the
 * call is performed normally after `delayMs` (to order two callers).
 */
export type Fault =
  | 'throttle'
  | 'conflict'
  | 'internal'
  | 'internalAfterWrite'
  | 'unavailable'
  | 'accessDenied'
  | 'drop'
  | 'lostResponse'
  | 'hang'
  | 'slow'
  /** A client error that is never retried: MQ 400 BadRequestException, Secrets Manager InvalidRequestException. */
  | 'badRequest';

export interface UserValues {
  consoleAccess: boolean;
  groups: string[];
  replicationUser: boolean;
  password: string;
}

/** What the broker runs (`applied`) and what waits for its next reboot (`pending`). Passwords included, for assertions. */
export interface UserState {
  username: string;
  applied?: UserValues;
  pending?: { change: 'DELETE' } | ({ change: 'CREATE' | 'UPDATE' } & UserValues);
}

export interface BrokerSpec {
  brokerId: string;
  brokerName?: string;
  /** Stored and returned as given: DescribeBroker has been seen answering `ActiveMQ` as well as `ACTIVEMQ`. */
  engineType: string;
  authenticationStrategy?: string;
  state?: string;
  /**
   * The configuration revision the broker is created with (CreateBroker's `Configuration`): it runs it at once, or
   * has it pending until its first reboot, as `configurationAtCreate` says.
   */
  configuration?: ConfigurationRevision;
}

/** An Amazon MQ configuration revision, as the broker points at it (`Configuration { Id, Revision }`). */
export interface ConfigurationRevision {
  id: string;
  revision: number;
}

/**
 * A broker's configurations as DescribeBroker shows them: the revision it runs, the one waiting for its next reboot
 * or maintenance window, and every revision it ran, oldest first (the current one included).
 */
export interface BrokerConfigurations {
  current?: ConfigurationRevision;
  pending?: ConfigurationRevision;
  history: ConfigurationRevision[];
}

export interface FakeMqOptions {
  region?: string;
  accountId?: string;
  /** CreateUser on a username that exists (unverified): 409 ConflictException, or a silent pending UPDATE. */
  createOnExisting?: 'conflict' | 'overwrite';
  /** CreateUser on a username pending DELETE (unverified): 409 ConflictException, or the user comes back. */
  createOnPendingDelete?: 'error' | 'revive';
  /** User calls while the broker is not RUNNING (unverified): all rejected (400), only writes rejected, or all accepted. */
  callsOutsideRunning?: 'reject' | 'rejectWrites' | 'accept';
  /** How long a reboot takes (really about five minutes); 'never' leaves it to `finishReboot()`. */
  rebootDelayMs?: number | 'never';
  /** IAM denials reach the SDK as either name: the handler must treat both as "permission denied". */
  accessDeniedAs?: 'ForbiddenException' | 'AccessDeniedException';
  /** Added before every answer. */
  latencyMs?: number;
  /**
   * RebootBroker is asynchronous (unverified how fast the state changes): 0 starts the reboot at once
   * (REBOOT_IN_PROGRESS in the answer's wake); a positive value leaves the broker saying RUNNING, pending changes
   * unapplied, for that long after RebootBroker answered, then REBOOT_IN_PROGRESS, then RUNNING with them applied.
   */
  rebootStartsAfterMs?: number;
  /**
   * UpdateUser on a user pending DELETE (undocumented): 409 ConflictException, accepted and the user revived
   * (pending UPDATE, or CREATE if it was never applied), or accepted (200) while the pending DELETE stays.
   */
  updateOnPendingDelete?: 'conflict' | 'revive' | 'keepDelete';
  /** DeleteUser on a user already pending DELETE (undocumented): accepted (200, default) or 409 ConflictException. */
  deleteOnPendingDelete?: 'accept' | 'conflict';
  /**
   * 409s under concurrency (documented as "retrying might resolve it"): a write (CreateUser, UpdateUser,
   * DeleteUser) that reaches a broker within this many ms of another accepted write to the same broker is
   * refused with 409 ConflictException, doing nothing. 0: writes never conflict.
   */
  writeConflictWindowMs?: number;
  /** The account-wide MQ token bucket (documented: 100 requests, refilling 15/s); none when absent. */
  throttle?: { capacity: number; refillPerSecond: number };
  /** The simulated clock's start (ms since the epoch); default Monday 2026-01-05T00:00Z. */
  startTime?: number;
  /**
   * When, inside a maintenance window, the broker applies the pending changes (undocumented: "can take up to two
   * hours"): `start` (default: the old password stops working as early as possible) or `end`.
   */
  windowAppliesAt?: 'start' | 'end';
  /**
   * UpdateUser without a Password on a user with a pending password change (undocumented): `pending` keeps the
   * pending password (default), `applied` replaces the pending change with one that carries the applied password
   * (the password change sent earlier is lost).
   */
  updateOmittedPassword?: 'pending' | 'applied';
  /**
   * UpdateSecretVersionStage with a RemoveFromVersionId that does not hold the label (undocumented when the label
   * is already where MoveToVersionId asks, or attached nowhere): `error` (InvalidParameterException, default) or
   * `ignore`.
   */
  staleRemoveFrom?: 'error' | 'ignore';
  /**
   * A broker created with a configuration (undocumented whether DescribeBroker shows it current at once): `current`
   * (default: the broker boots with it) or `pending` (it waits for the first reboot, like a later revision).
   */
  configurationAtCreate?: 'current' | 'pending';
  /**
   * What RotateSecret leaves for the rotation function's createSecret: `empty` (default) a version with the token
   * as VersionId, labelled AWSPENDING and without a value (what AWS's rotation templates expect: they refuse a token
   * that is not in VersionIdsToStages, and "AWSPENDING might be attached to an empty secret version"); `none`: no
   * version until createSecret puts one.
   */
  pendingVersionAtStart?: 'empty' | 'none';
}

/** A broker's weekly maintenance window (`MaintenanceWindowStartTime` in UTC) and how long it lasts (at most 2 h). */
export interface MaintenanceWindow {
  /** MONDAY … SUNDAY. */
  dayOfWeek: string;
  /** `HH:MM`, UTC. */
  timeOfDay: string;
  /** At most 120 (the documented "up to two hours"). */
  durationMinutes?: number;
}

/** One version of a secret as stored (for assertions). */
export interface SecretVersionView {
  versionId: string;
  stages: string[];
  /** Absent for the empty version RotateSecret makes before createSecret has put a value. */
  value?: string;
}

const DAYS = ['SUNDAY', 'MONDAY', 'TUESDAY', 'WEDNESDAY', 'THURSDAY', 'FRIDAY', 'SATURDAY'];
const WEEK_MS = 7 * 24 * 3_600_000;
const MINUTE_MS = 60_000;

export interface Injection {
  /** Without it the fault hits any MQ operation; Secrets Manager operations are hit only when named. */
  operation?: Operation;
  brokerId?: string;
  username?: string;
  secretId?: string;
  /** How many matching calls fail (default 1; Infinity for all). */
  times?: number;
  /**
   * 'hang' never answers: the caller needs its own timeout, since the SDK's requestTimeout only logs a
   * warning unless the request handler is given throwOnRequestTimeout: true.
   */
  fault: Fault;
  /** Wait this long before failing, e.g. to let a client-side timeout win. */
  delayMs?: number;
  /** Runs once the fault has been applied (e.g. to start a reboot right after a call). */
  then?: () => void;
}

export interface CallRecord {
  operation: Operation | 'Unknown';
  brokerId?: string;
  username?: string;
  secretId?: string;
  /** The request body (and ListUsers query) as sent. */
  input: Record<string, unknown>;
  /** Position in `calls` and arrival time (ms since the epoch): to count the calls of one handler invocation. */
  index: number;
  at: number;
  /** Absent when no answer was sent (drop, lostResponse, hang). */
  status?: number;
  errorType?: string;
  fault?: Fault;
}

interface Broker {
  id: string;
  name: string;
  engineType: string;
  authenticationStrategy: string;
  state: string;
  users: Map<string, UserState>;
  reboots: number;
  completedReboots: number;
  rebootTimer?: NodeJS.Timeout;
  /** RebootBroker answered, the broker still says RUNNING (rebootStartsAfterMs). */
  rebootRequested?: boolean;
  lastWriteAt?: number;
  window: Required<MaintenanceWindow>;
  /** The next windows' fate, consumed one per window: 'skip' (postponed a week) or a delay in ms. */
  windowDelays: Array<'skip' | number>;
  /** Late windows waiting to apply, as simulated times. */
  lateApplications: number[];
  windowsApplied: number;
  configurations: BrokerConfigurations;
}

interface SecretVersion {
  id: string;
  value?: string;
  stages: Set<string>;
  created: number;
}

interface Secret {
  arn: string;
  name: string;
  versions: Map<string, SecretVersion>;
  tags: Map<string, string>;
  created: number;
  rotation?: { lambdaArn: string; automaticallyAfterDays?: number; scheduleExpression?: string };
  lastRotated?: number;
}

interface Route {
  protocol: 'mq' | 'secrets';
  operation: Operation | 'Unknown';
  brokerId?: string;
  username?: string;
  secretId?: string;
  input: Record<string, unknown>;
}

class ApiError extends Error {
  constructor(
    readonly status: number,
    readonly type: string,
    message: string,
    readonly attribute?: string,
  ) {
    super(message);
  }
}

const badRequest = (message: string, attribute?: string) =>
  new ApiError(400, 'BadRequestException', message, attribute);
const conflict = (message: string, attribute?: string) => new ApiError(409, 'ConflictException', message, attribute);

const NAME = /^[A-Za-z0-9\-._~]{2,100}$/;
const MAX_USERS = 250;
const WRITES: ReadonlySet<string> = new Set(['CreateUser', 'UpdateUser', 'DeleteUser']);

const DEFAULTS: Required<Omit<FakeMqOptions, 'throttle' | 'startTime'>> & Pick<FakeMqOptions, 'throttle'> = {
  region: 'us-east-1',
  accountId: '123456789012',
  createOnExisting: 'conflict',
  createOnPendingDelete: 'error',
  callsOutsideRunning: 'reject',
  deleteOnPendingDelete: 'accept',
  rebootDelayMs: 50,
  accessDeniedAs: 'ForbiddenException',
  latencyMs: 0,
  rebootStartsAfterMs: 0,
  updateOnPendingDelete: 'conflict',
  writeConflictWindowMs: 0,
  throttle: undefined,
  windowAppliesAt: 'start',
  updateOmittedPassword: 'pending',
  staleRemoveFrom: 'error',
  pendingVersionAtStart: 'empty',
  configurationAtCreate: 'current',
};
/** Monday 2026-01-05T00:00:00Z. */
const DEFAULT_START = Date.UTC(2026, 0, 5);
const DEFAULT_WINDOW: Required<MaintenanceWindow> = { dayOfWeek: 'SUNDAY', timeOfDay: '02:00', durationMinutes: 120 };

export class FakeMq {
  static async start(options: FakeMqOptions = {}): Promise<FakeMq> {
    const fake = new FakeMq(options);
    await new Promise<void>((resolve, reject) => {
      fake.server.once('error', reject);
      fake.server.listen(0, '127.0.0.1', resolve);
    });
    fake.url = `http://127.0.0.1:${(fake.server.address() as AddressInfo).port}`;
    return fake;
  }

  url = '';
  region!: string;
  accountId!: string;
  createOnExisting!: 'conflict' | 'overwrite';
  createOnPendingDelete!: 'error' | 'revive';
  callsOutsideRunning!: 'reject' | 'rejectWrites' | 'accept';
  deleteOnPendingDelete!: 'accept' | 'conflict';
  rebootDelayMs!: number | 'never';
  accessDeniedAs!: 'ForbiddenException' | 'AccessDeniedException';
  latencyMs!: number;
  rebootStartsAfterMs!: number;
  updateOnPendingDelete!: 'conflict' | 'revive' | 'keepDelete';
  writeConflictWindowMs!: number;
  windowAppliesAt!: 'start' | 'end';
  updateOmittedPassword!: 'pending' | 'applied';
  staleRemoveFrom!: 'error' | 'ignore';
  pendingVersionAtStart!: 'empty' | 'none';
  configurationAtCreate!: 'current' | 'pending';
  readonly calls: CallRecord[] = [];
  /** Writes refused with 409 by `writeConflictWindowMs` (not counted in faultsInjected). */
  concurrencyConflicts = 0;
  faultsInjected = 0;
  /** Calls refused by the token bucket (not counted in faultsInjected). */
  rateLimited = 0;

  private readonly server = http.createServer((req, res) => {
    this.handle(req, res).catch((err) => {
      if (!res.headersSent && !this.stopped) res.writeHead(500).end(JSON.stringify({ message: String(err) }));
    });
  });
  private readonly brokers = new Map<string, Broker>();
  private readonly secrets = new Map<string, Secret>();
  private clock = DEFAULT_START;
  private readonly clockListeners = new Set<(now: number) => void>();
  private readonly windowListeners = new Set<(brokerId: string, at: number, applied: boolean) => void>();
  private readonly applyListeners = new Set<(brokerId: string) => void>();
  private readonly denied = new Set<string>();
  /** What a user held before its pending DELETE, for a revival that sends no password. */
  private readonly beforeDelete = new WeakMap<UserState, UserValues>();
  private injections: Injection[] = [];
  private readonly timers = new Set<NodeJS.Timeout>();
  private bucket?: { capacity: number; refillPerSecond: number; tokens: number; at: number };
  private stopped = false;

  private constructor(private readonly options: FakeMqOptions) {
    this.reset();
  }

  get throttle(): FakeMqOptions['throttle'] {
    return this.bucket && { capacity: this.bucket.capacity, refillPerSecond: this.bucket.refillPerSecond };
  }

  /** Setting it starts a full bucket. */
  set throttle(value: FakeMqOptions['throttle']) {
    this.bucket = value && { ...value, tokens: value.capacity, at: Date.now() };
  }

  /** Client settings for the real SDK clients: `new MqClient({ ...fake.clientConfig(), maxAttempts: 1 })`. */
  clientConfig() {
    return { region: this.region, endpoint: this.url, credentials: { accessKeyId: 'test', secretAccessKey: 'test' } };
  }

  /** Environment for code that builds its own clients (the handler). */
  env(): Record<string, string> {
    return {
      AWS_ENDPOINT_URL_MQ: this.url,
      AWS_ENDPOINT_URL_SECRETS_MANAGER: this.url,
      AWS_REGION: this.region,
      AWS_ACCESS_KEY_ID: 'test',
      AWS_SECRET_ACCESS_KEY: 'test',
    };
  }

  /** Forgets all state and restores the options given to start(). */
  reset(): void {
    for (const broker of this.brokers.values()) clearTimeout(broker.rebootTimer);
    this.brokers.clear();
    this.secrets.clear();
    this.denied.clear();
    this.injections = [];
    this.calls.length = 0;
    this.faultsInjected = 0;
    this.rateLimited = 0;
    this.concurrencyConflicts = 0;
    this.clockListeners.clear();
    this.windowListeners.clear();
    this.applyListeners.clear();
    this.clock = this.options.startTime ?? DEFAULT_START;
    const o = { ...DEFAULTS, ...this.options };
    Object.assign(this, {
      region: o.region,
      accountId: o.accountId,
      createOnExisting: o.createOnExisting,
      createOnPendingDelete: o.createOnPendingDelete,
      callsOutsideRunning: o.callsOutsideRunning,
      deleteOnPendingDelete: o.deleteOnPendingDelete,
      rebootDelayMs: o.rebootDelayMs,
      accessDeniedAs: o.accessDeniedAs,
      latencyMs: o.latencyMs,
      rebootStartsAfterMs: o.rebootStartsAfterMs,
      updateOnPendingDelete: o.updateOnPendingDelete,
      writeConflictWindowMs: o.writeConflictWindowMs,
      windowAppliesAt: o.windowAppliesAt,
      updateOmittedPassword: o.updateOmittedPassword,
      staleRemoveFrom: o.staleRemoveFrom,
      pendingVersionAtStart: o.pendingVersionAtStart,
      configurationAtCreate: o.configurationAtCreate,
    });
    this.throttle = o.throttle;
  }

  /** Closes every connection, hung ones included, so jest can exit. */
  async stop(): Promise<void> {
    this.stopped = true;
    for (const timer of this.timers) clearTimeout(timer);
    this.timers.clear();
    for (const broker of this.brokers.values()) clearTimeout(broker.rebootTimer);
    this.server.closeAllConnections();
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
  }

  // ---- brokers ----

  addBroker(spec: BrokerSpec): string {
    this.removeBroker(spec.brokerId);
    this.brokers.set(spec.brokerId, {
      id: spec.brokerId,
      name: spec.brokerName ?? `broker-${spec.brokerId}`,
      engineType: spec.engineType,
      authenticationStrategy: spec.authenticationStrategy ?? 'SIMPLE',
      state: spec.state ?? 'RUNNING',
      users: new Map(),
      reboots: 0,
      completedReboots: 0,
      window: { ...DEFAULT_WINDOW },
      windowDelays: [],
      lateApplications: [],
      windowsApplied: 0,
      configurations: initialConfigurations(spec.configuration, this.configurationAtCreate),
    });
    return this.brokerArn(spec.brokerId);
  }

  removeBroker(brokerId: string): void {
    clearTimeout(this.brokers.get(brokerId)?.rebootTimer);
    this.brokers.delete(brokerId);
  }

  brokerArn(brokerId: string): string {
    const name = this.brokers.get(brokerId)?.name ?? `broker-${brokerId}`;
    return `arn:aws:mq:${this.region}:${this.accountId}:broker:${name}:${brokerId}`;
  }

  brokerState(brokerId: string): string | undefined {
    return this.brokers.get(brokerId)?.state;
  }

  /** Sets the state outright; an ongoing (or requested) reboot is abandoned without applying anything. */
  setBrokerState(brokerId: string, state: string): void {
    const broker = this.broker(brokerId);
    clearTimeout(broker.rebootTimer);
    broker.rebootRequested = false;
    broker.state = state;
  }

  reboots(brokerId: string): number {
    return this.brokers.get(brokerId)?.reboots ?? 0;
  }

  /** Reboots that went through REBOOT_IN_PROGRESS back to RUNNING with the pending changes applied. */
  completedReboots(brokerId: string): number {
    return this.brokers.get(brokerId)?.completedReboots ?? 0;
  }

  /** Ends a reboot now (the only way out with rebootDelayMs 'never'). */
  finishReboot(brokerId: string): void {
    const broker = this.broker(brokerId);
    clearTimeout(broker.rebootTimer);
    broker.rebootRequested = false;
    this.applyPendingChanges(brokerId);
    if (broker.state === 'REBOOT_IN_PROGRESS') broker.completedReboots++;
    broker.state = 'RUNNING';
  }

  /** What a reboot or the maintenance window does to users. Listeners (`onApply`) run right after. */
  applyPendingChanges(brokerId: string): void {
    const broker = this.broker(brokerId);
    for (const [name, user] of broker.users) {
      const pending = user.pending;
      if (pending?.change === 'DELETE') broker.users.delete(name);
      else if (pending) user.applied = values(pending);
      user.pending = undefined;
    }
    const configurations = broker.configurations;
    if (configurations.pending) {
      configurations.current = configurations.pending;
      configurations.history.push(configurations.pending);
      configurations.pending = undefined;
    }
    for (const listener of this.applyListeners) listener(brokerId);
  }

  /** The broker's configurations (a copy), as DescribeBroker reports them. */
  configurations(brokerId: string): BrokerConfigurations {
    const { current, pending, history } = this.broker(brokerId).configurations;
    return { current, pending, history: [...history] };
  }

  /**
   * What UpdateBroker with a `Configuration` does (CloudFormation's update of the broker, someone in the console):
   * the revision waits for the next reboot or maintenance window, replacing any other pending one. Pointing the
   * broker back at the revision it runs leaves nothing pending (undocumented; the natural reading).
   */
  setPendingConfiguration(brokerId: string, revision: ConfigurationRevision): void {
    const configurations = this.broker(brokerId).configurations;
    const same = configurations.current?.id === revision.id && configurations.current.revision === revision.revision;
    configurations.pending = same ? undefined : { ...revision };
  }

  /** Runs whenever a broker applies its pending changes (a reboot, a window, or a test's `applyPendingChanges`). */
  onApply(listener: (brokerId: string) => void): () => void {
    this.applyListeners.add(listener);
    return () => this.applyListeners.delete(listener);
  }

  // ---- the clock and maintenance windows ----

  /** The simulated time (ms since the epoch): maintenance windows follow it, not the wall clock. */
  now(): number {
    return this.clock;
  }

  /**
   * Moves the simulated time forward one minute at a time (the last step may be shorter). At each step the
   * windows that started (or late windows that came due) apply their broker's pending changes, then every
   * `onMinute` listener runs (e.g. a client checker). Returns the number of windows that applied changes.
   */
  advance(ms: number): number {
    const end = this.clock + ms;
    let applied = 0;
    while (this.clock < end) {
      const from = this.clock;
      const to = Math.min(end, from + MINUTE_MS);
      for (const broker of [...this.brokers.values()]) applied += this.runWindows(broker, from, to);
      this.clock = to;
      for (const listener of this.clockListeners) listener(to);
    }
    return applied;
  }

  /** Advances to the given simulated time (no-op if already past it). */
  advanceTo(time: number): number {
    return this.advance(Math.max(0, time - this.clock));
  }

  /** Runs after every simulated minute `advance()` moves; returns a function that removes it. */
  onMinute(listener: (now: number) => void): () => void {
    this.clockListeners.add(listener);
    return () => this.clockListeners.delete(listener);
  }

  /** Runs whenever a broker's window comes (`applied` false when it was skipped or postponed). */
  onWindow(listener: (brokerId: string, at: number, applied: boolean) => void): () => void {
    this.windowListeners.add(listener);
    return () => this.windowListeners.delete(listener);
  }

  /** Sets a broker's weekly window (Amazon MQ's MaintenanceWindowStartTime, UTC); at most two hours long. */
  setMaintenanceWindow(brokerId: string, window: MaintenanceWindow): void {
    const day = window.dayOfWeek.toUpperCase();
    const duration = window.durationMinutes ?? 120;
    if (!DAYS.includes(day)) throw new Error(`FakeMq: no day ${window.dayOfWeek}`);
    if (!/^([01]\d|2[0-3]):[0-5]\d$/.test(window.timeOfDay)) throw new Error(`FakeMq: bad time ${window.timeOfDay}`);
    if (duration <= 0 || duration > 120) throw new Error('FakeMq: a maintenance window lasts up to two hours');
    this.broker(brokerId).window = { dayOfWeek: day, timeOfDay: window.timeOfDay, durationMinutes: duration };
  }

  maintenanceWindow(brokerId: string): Required<MaintenanceWindow> {
    return { ...this.broker(brokerId).window };
  }

  /** The start of the broker's first window at or after `from` (simulated ms). */
  nextWindowStart(brokerId: string, from = this.clock): number {
    const w = this.broker(brokerId).window;
    const [h, m] = w.timeOfDay.split(':').map(Number);
    const d = new Date(from);
    const midnight = Date.UTC(d.getUTCFullYear(), d.getUTCMonth(), d.getUTCDate());
    const offsetDays = (DAYS.indexOf(w.dayOfWeek) - d.getUTCDay() + 7) % 7;
    let start = midnight + offsetDays * 86_400_000 + (h * 60 + m) * MINUTE_MS;
    if (start < from) start += WEEK_MS;
    return start;
  }

  /**
   * The next `times` windows of the broker come late: `byMs` after their start, or (without `byMs`) not at all
   * (postponed to the following week's window).
   */
  postponeWindows(brokerId: string, times = 1, byMs?: number): void {
    for (let i = 0; i < times; i++) this.broker(brokerId).windowDelays.push(byMs ?? 'skip');
  }

  /** Windows (late ones included) that applied the broker's pending changes. */
  windowsApplied(brokerId: string): number {
    return this.brokers.get(brokerId)?.windowsApplied ?? 0;
  }

  private runWindows(broker: Broker, from: number, to: number): number {
    let applied = 0;
    // A window "applies" at its start or its end (windowAppliesAt); times in (from, to] are due in this step.
    const offset = this.windowAppliesAt === 'end' ? broker.window.durationMinutes * MINUTE_MS : 0;
    for (let start = this.nextWindowStart(broker.id, from - offset + 1); start + offset <= to; start += WEEK_MS) {
      const at = start + offset;
      const delay = broker.windowDelays.shift();
      if (delay === undefined) {
        applied += this.windowApplies(broker, at);
      } else {
        if (delay !== 'skip') broker.lateApplications.push(at + delay);
        for (const listener of this.windowListeners) listener(broker.id, at, false);
      }
    }
    for (const at of broker.lateApplications.filter((t) => t > from && t <= to)) {
      broker.lateApplications = broker.lateApplications.filter((t) => t !== at);
      applied += this.windowApplies(broker, at);
    }
    return applied;
  }

  private windowApplies(broker: Broker, at: number): number {
    if (this.brokers.get(broker.id) !== broker) return 0;
    this.applyPendingChanges(broker.id);
    broker.windowsApplied++;
    for (const listener of this.windowListeners) listener(broker.id, at, true);
    return 1;
  }

  /**
   * Whether a client signing in with these credentials is accepted by what the broker runs now: the APPLIED state
   * (a pending password is refused, a pending deletion still signs in). Only credentials: whether the broker is
   * reachable (not rebooting) is `brokerState()`.
   */
  authenticates(brokerId: string, username: string, password: string): boolean {
    const applied = this.brokers.get(brokerId)?.users.get(username)?.applied;
    return applied !== undefined && applied.password === password;
  }

  // ---- inspection ----

  user(brokerId: string, username: string): UserState | undefined {
    const user = this.brokers.get(brokerId)?.users.get(username);
    return user && structuredClone(user);
  }

  users(brokerId: string): UserState[] {
    return [...(this.brokers.get(brokerId)?.users.values() ?? [])].map((u) => structuredClone(u));
  }

  /** Puts a user straight into the broker's running state, as if created long ago. */
  seedUser(brokerId: string, username: string, v: Partial<UserValues> = {}): void {
    this.broker(brokerId).users.set(username, {
      username,
      applied: { consoleAccess: false, groups: [], replicationUser: false, password: 'seeded-password-1', ...v },
    });
  }

  /**
   * A user someone else created through the API, with no reboot since: pending CREATE, nothing applied. Pending
   * CREATE says nothing about who made it.
   */
  seedPendingCreate(brokerId: string, username: string, v: Partial<UserValues> = {}): void {
    this.broker(brokerId).users.set(username, {
      username,
      pending: {
        change: 'CREATE',
        consoleAccess: false,
        groups: [],
        replicationUser: false,
        password: 'seeded-password-1',
        ...v,
      },
    });
  }

  /** The MQ calls (no Secrets Manager call) recorded from position `from` on, optionally of one operation. */
  mqCalls(from = 0, operation?: MqOperation): CallRecord[] {
    return this.calls
      .slice(from)
      .filter((c) => !isSecretsOperation(c.operation) && (operation === undefined || c.operation === operation));
  }

  /** The Secrets Manager calls recorded from position `from` on, optionally of one operation. */
  secretsCalls(from = 0, operation?: SecretsOperation): CallRecord[] {
    return this.calls
      .slice(from)
      .filter((c) => isSecretsOperation(c.operation) && (operation === undefined || c.operation === operation));
  }

  // ---- secrets ----

  /**
   * Creates a secret (its first version, AWSCURRENT), or gives an existing one a new AWSCURRENT version (the old one
   * becomes AWSPREVIOUS), as CloudFormation does when it regenerates a generated secret. Returns its ARN (generated,
   * with the 6-character suffix, from a name). `tags` replace the secret's tags when given.
   */
  putSecret(arnOrName: string, secretString: string, options: { tags?: Record<string, string> } = {}): string {
    const existing = this.findSecret(arnOrName);
    if (existing) {
      this.addVersion(existing, randomUUID(), secretString, ['AWSCURRENT']);
      if (options.tags) existing.tags = new Map(Object.entries(options.tags));
      return existing.arn;
    }
    const arn = arnOrName.startsWith('arn:')
      ? arnOrName
      : `arn:aws:secretsmanager:${this.region}:${this.accountId}:secret:${arnOrName}-${randomBytes(3).toString('hex')}`;
    const name = arnOrName.startsWith('arn:') ? arn.split(':secret:')[1].replace(/-[A-Za-z0-9]{6}$/, '') : arnOrName;
    const secret: Secret = {
      arn,
      name,
      versions: new Map(),
      tags: new Map(Object.entries(options.tags ?? {})),
      created: Math.floor(Date.now() / 1000),
    };
    this.secrets.set(arn, secret);
    this.addVersion(secret, randomUUID(), secretString, ['AWSCURRENT']);
    return arn;
  }

  /** The full ARN of a secret found by ARN, name or partial ARN (undefined when there is none). */
  secretArnOf(arnOrName: string): string | undefined {
    return this.findSecret(arnOrName)?.arn;
  }

  /** The secret string of the version holding `stage` (default AWSCURRENT), for assertions. */
  secretValue(arnOrName: string, stage = 'AWSCURRENT'): string | undefined {
    const secret = this.findSecret(arnOrName);
    return secret && this.versionWith(secret, stage)?.value;
  }

  /** Every version of a secret, oldest first, with its labels and value (deprecated ones included). */
  secretVersions(arnOrName: string): SecretVersionView[] {
    const secret = this.findSecret(arnOrName);
    return [...(secret?.versions.values() ?? [])].map((v) => ({
      versionId: v.id,
      stages: [...v.stages].sort(),
      ...(v.value !== undefined && { value: v.value }),
    }));
  }

  /** The version holding a label, if any. */
  secretVersionWith(arnOrName: string, stage: string): SecretVersionView | undefined {
    return this.secretVersions(arnOrName).find((v) => v.stages.includes(stage));
  }

  /** DescribeSecret's VersionIdsToStages. */
  secretStages(arnOrName: string): Record<string, string[]> {
    return Object.fromEntries(
      this.secretVersions(arnOrName)
        .filter((v) => v.stages.length > 0)
        .map((v) => [v.versionId, v.stages]),
    );
  }

  secretTags(arnOrName: string): Record<string, string> {
    return Object.fromEntries(this.findSecret(arnOrName)?.tags ?? []);
  }

  /** Replaces the secret's tags (CloudFormation's update of the Tags property: no new version). */
  tagSecret(arnOrName: string, tags: Record<string, string>): void {
    this.secretOrThrow(arnOrName).tags = new Map(Object.entries(tags));
  }

  /** Turns rotation on (with the function's ARN and rules) or off (`undefined`), as a RotationSchedule does. */
  setRotation(
    arnOrName: string,
    rotation: { lambdaArn: string; automaticallyAfterDays?: number; scheduleExpression?: string } | undefined,
  ): void {
    this.secretOrThrow(arnOrName).rotation = rotation && { ...rotation };
  }

  rotationOf(arnOrName: string): Secret['rotation'] {
    const rotation = this.findSecret(arnOrName)?.rotation;
    return rotation && { ...rotation };
  }

  /**
   * What RotateSecret does before it invokes createSecret: refuses when AWSPENDING is on a version other than
   * AWSCURRENT's, unless that version is `token` (a retry of the same rotation); then, with
   * `pendingVersionAtStart: 'empty'`, makes the version `token` labelled AWSPENDING without a value. Throws the
   * service's error (InvalidRequestException) when refused.
   */
  startRotation(arnOrName: string, token: string): void {
    const secret = this.secretOrThrow(arnOrName);
    if (!secret.rotation) throw new Error(`InvalidRequestException: rotation is not configured for ${secret.name}`);
    const pending = this.versionWith(secret, 'AWSPENDING');
    if (pending && pending.id !== token && !pending.stages.has('AWSCURRENT')) {
      throw new Error(
        "InvalidRequestException: A previous rotation isn't complete. That rotation will be reattempted.",
      );
    }
    checkToken(token);
    if (this.pendingVersionAtStart === 'empty' && !secret.versions.has(token)) {
      secret.versions.set(token, { id: token, stages: new Set(), created: Math.floor(Date.now() / 1000) });
      this.attach(secret, secret.versions.get(token)!, 'AWSPENDING');
    }
  }

  /** Records a completed rotation (DescribeSecret's LastRotatedDate), as Secrets Manager does after finishSecret. */
  rotationCompleted(arnOrName: string): void {
    this.secretOrThrow(arnOrName).lastRotated = Math.floor(this.clock / 1000);
  }

  deleteSecret(arnOrName: string): void {
    const secret = this.findSecret(arnOrName);
    if (secret) this.secrets.delete(secret.arn);
  }

  /** Every Secrets Manager call on it answers AccessDeniedException, whether or not it exists (IAM is checked first). */
  denySecret(arnOrName: string, denied = true): void {
    if (denied) this.denied.add(arnOrName);
    else this.denied.delete(arnOrName);
  }

  // ---- faults ----

  inject(injection: Injection): void {
    if (injection.operation && isSecretsOperation(injection.operation) && injection.fault === 'conflict') {
      throw new Error('Secrets Manager has no conflict error');
    }
    this.injections.push({ times: 1, ...injection });
  }

  clearInjections(): void {
    this.injections = [];
  }

  // ---- HTTP ----

  private async handle(req: http.IncomingMessage, res: http.ServerResponse): Promise<void> {
    const body = await new Promise<string>((resolve, reject) => {
      const chunks: Buffer[] = [];
      req.on('data', (c: Buffer) => chunks.push(c)).on('end', () => resolve(Buffer.concat(chunks).toString('utf8')));
      req.on('error', reject);
    });
    let route: Route;
    try {
      route = this.route(req, body);
    } catch {
      route = { protocol: 'mq', operation: 'Unknown', input: {} };
      return this.send(res, this.record(route), route, badRequest('The request body is not valid JSON'));
    }
    const call = this.record(route);
    if (this.latencyMs > 0) await this.sleep(this.latencyMs);
    if (route.operation === 'Unknown') {
      return this.send(
        res,
        call,
        route,
        new ApiError(404, 'UnknownOperationException', `No operation at ${req.method} ${req.url}`),
      );
    }
    if (route.protocol === 'mq' && !this.takeToken()) {
      this.rateLimited++;
      return this.send(res, call, route, new ApiError(429, 'TooManyRequestsException', 'Rate exceeded'));
    }
    const injection = this.takeInjection(call);
    if (injection) {
      this.faultsInjected++;
      call.fault = injection.fault;
      if (injection.delayMs) await this.sleep(injection.delayMs);
      try {
        switch (injection.fault) {
          case 'hang':
            return; // stop() closes the socket
          case 'drop':
            req.socket.destroy();
            return;
          case 'lostResponse':
            await this.execute(route).catch(() => undefined);
            req.socket.destroy();
            return;
          case 'slow':
            return this.send(res, call, route, await this.execute(route));
          case 'internalAfterWrite':
            await this.execute(route).catch(() => undefined);
            return this.send(res, call, route, this.faultError(route.protocol, 'internal'));
          default:
            return this.send(res, call, route, this.faultError(route.protocol, injection.fault));
        }
      } finally {
        injection.then?.();
      }
    }
    this.send(res, call, route, await this.execute(route));
  }

  private route(req: http.IncomingMessage, body: string): Route {
    const raw = req.url ?? '/';
    const q = raw.indexOf('?');
    // Split the raw path ourselves: URL parsing would resolve a username such as ".." as a dot segment.
    const parts = (q < 0 ? raw : raw.slice(0, q)).split('/').filter(Boolean).map(decodeURIComponent);
    const input = body.trim() ? (JSON.parse(body) as Record<string, unknown>) : {};
    const target = req.headers['x-amz-target'];
    if (typeof target === 'string' && target.startsWith('secretsmanager.')) {
      const name = target.slice('secretsmanager.'.length);
      const operation = isSecretsOperation(name) ? name : 'Unknown';
      return { protocol: 'secrets', operation, secretId: input.SecretId as string | undefined, input };
    }
    const m = req.method;
    let operation: Operation | 'Unknown' = 'Unknown';
    if (parts[0] === 'v1' && parts[1] === 'brokers' && parts.length >= 3) {
      if (parts.length === 3 && m === 'GET') operation = 'DescribeBroker';
      else if (parts.length === 4 && parts[3] === 'reboot' && m === 'POST') operation = 'RebootBroker';
      else if (parts.length === 4 && parts[3] === 'users' && m === 'GET') operation = 'ListUsers';
      else if (parts.length === 5 && parts[3] === 'users') {
        operation =
          ({ POST: 'CreateUser', PUT: 'UpdateUser', DELETE: 'DeleteUser', GET: 'DescribeUser' } as const)[
            m as 'POST' | 'PUT' | 'DELETE' | 'GET'
          ] ?? 'Unknown';
      }
    }
    if (operation === 'ListUsers')
      Object.assign(input, Object.fromEntries(new URLSearchParams(q < 0 ? '' : raw.slice(q + 1))));
    return { protocol: 'mq', operation, brokerId: parts[2], username: parts[4], input };
  }

  private record({ operation, brokerId, username, secretId, input }: Route): CallRecord {
    const call: CallRecord = {
      operation,
      brokerId,
      username,
      secretId,
      input,
      index: this.calls.length,
      at: Date.now(),
    };
    this.calls.push(call);
    return call;
  }

  private takeToken(): boolean {
    const b = this.bucket;
    if (!b) return true;
    const now = Date.now();
    b.tokens = Math.min(b.capacity, b.tokens + ((now - b.at) / 1000) * b.refillPerSecond);
    b.at = now;
    if (b.tokens < 1) return false;
    b.tokens -= 1;
    return true;
  }

  private takeInjection(call: CallRecord): Injection | undefined {
    const i = this.injections.find(
      (j) =>
        (j.operation ? j.operation === call.operation : !isSecretsOperation(call.operation)) &&
        (j.brokerId === undefined || j.brokerId === call.brokerId) &&
        (j.username === undefined || j.username === call.username) &&
        (j.secretId === undefined || j.secretId === call.secretId),
    );
    if (!i) return undefined;
    i.times = (i.times ?? 1) - 1;
    if (i.times <= 0) this.injections = this.injections.filter((j) => j !== i);
    return i;
  }

  private faultError(protocol: Route['protocol'], fault: Fault): ApiError {
    if (protocol === 'secrets') {
      switch (fault) {
        case 'throttle':
          return new ApiError(400, 'ThrottlingException', 'Rate exceeded');
        case 'accessDenied':
          return this.secretDenied('(injected)');
        case 'unavailable':
          return new ApiError(503, 'ServiceUnavailableException', 'Service Unavailable');
        case 'badRequest':
          return new ApiError(
            400,
            'InvalidRequestException',
            'A parameter value is not valid for the current state (injected).',
          );
        default:
          return new ApiError(500, 'InternalServiceError', 'An error occurred on the server side.');
      }
    }
    switch (fault) {
      case 'throttle':
        return new ApiError(429, 'TooManyRequestsException', 'Rate exceeded');
      case 'conflict':
        return conflict('The request conflicts with another request in progress. Retrying might resolve it.');
      case 'accessDenied':
        return new ApiError(
          403,
          this.accessDeniedAs,
          `User: arn:aws:sts::${this.accountId}:assumed-role/handler/fake is not authorized to perform this mq action`,
        );
      case 'unavailable':
        return new ApiError(503, 'ServiceUnavailableException', 'Service Unavailable');
      case 'badRequest':
        return badRequest('The request is not valid (injected).');
      default:
        return new ApiError(500, 'InternalServerErrorException', 'We encountered an internal error. Please try again.');
    }
  }

  private send(res: http.ServerResponse, call: CallRecord, route: Route, result: ApiError | object): void {
    if (this.stopped || res.headersSent || res.destroyed) return;
    const headers: Record<string, string> = {
      'content-type': route.protocol === 'secrets' ? 'application/x-amz-json-1.1' : 'application/json',
      'x-amzn-requestid': randomUUID(),
    };
    let status = 200;
    let body: object = result;
    if (result instanceof ApiError) {
      status = result.status;
      call.errorType = headers['x-amzn-ErrorType'] = result.type;
      body =
        route.protocol === 'secrets'
          ? { __type: result.type, Message: result.message }
          : { errorAttribute: result.attribute, message: result.message };
    }
    call.status = status;
    res.writeHead(status, headers).end(JSON.stringify(body));
  }

  private sleep(ms: number): Promise<void> {
    return new Promise((resolve) => {
      const timer = setTimeout(() => {
        this.timers.delete(timer);
        resolve();
      }, ms);
      this.timers.add(timer);
    });
  }

  // ---- the service ----

  private async execute(route: Route): Promise<object | ApiError> {
    try {
      if (isSecretsOperation(route.operation)) return this.secretsCall(route.operation, route.input);
      const broker = this.brokers.get(route.brokerId ?? '');
      if (!broker) {
        throw new ApiError(
          404,
          'NotFoundException',
          `Can't find requested broker [${route.brokerId}]. Make sure your broker exists.`,
          'broker-id',
        );
      }
      if (route.operation === 'DescribeBroker') return this.describeBroker(broker);
      if (route.operation === 'RebootBroker') return this.rebootBroker(broker);
      return this.userCall(route.operation as MqOperation, broker, route.username ?? '', route.input);
    } catch (err) {
      if (err instanceof ApiError) return err;
      throw err;
    }
  }

  private describeBroker(b: Broker): object {
    return {
      brokerId: b.id,
      brokerArn: this.brokerArn(b.id),
      brokerName: b.name,
      brokerState: b.state,
      engineType: b.engineType,
      authenticationStrategy: b.authenticationStrategy,
      deploymentMode: 'SINGLE_INSTANCE',
      maintenanceWindowStartTime: { dayOfWeek: b.window.dayOfWeek, timeOfDay: b.window.timeOfDay, timeZone: 'UTC' },
      users: summaries(b),
      configurations: {
        ...(b.configurations.current && { current: b.configurations.current }),
        ...(b.configurations.pending && { pending: b.configurations.pending }),
        history: b.configurations.history,
      },
    };
  }

  private rebootBroker(b: Broker): object {
    if (b.state !== 'RUNNING') {
      throw badRequest(`Broker [${b.id}] can only be rebooted when RUNNING; it is ${b.state}.`, 'broker-id');
    }
    b.reboots++;
    // Asked again while it still says RUNNING: accepted, and still one reboot.
    if (b.rebootRequested) return {};
    const start = () => {
      if (this.brokers.get(b.id) !== b) return;
      b.rebootRequested = false;
      b.state = 'REBOOT_IN_PROGRESS';
      if (this.rebootDelayMs !== 'never') {
        b.rebootTimer = setTimeout(() => this.brokers.get(b.id) === b && this.finishReboot(b.id), this.rebootDelayMs);
      }
    };
    if (this.rebootStartsAfterMs > 0) {
      b.rebootRequested = true;
      b.rebootTimer = setTimeout(start, this.rebootStartsAfterMs);
    } else {
      start();
    }
    return {};
  }

  private userCall(op: MqOperation, b: Broker, username: string, input: Record<string, unknown>): object {
    if (/^rabbitmq$/i.test(b.engineType)) {
      throw badRequest('To manage broker users, please use the RabbitMQ web console, or the management API');
    }
    if (/^ldap$/i.test(b.authenticationStrategy)) {
      // The real wording is unknown; what matters is a 400 the handler must not retry.
      throw badRequest(
        `Broker [${b.id}] uses LDAP authentication: its users are managed in the LDAP directory, not through this API.`,
      );
    }
    if (
      b.state !== 'RUNNING' &&
      (this.callsOutsideRunning === 'reject' || (this.callsOutsideRunning === 'rejectWrites' && WRITES.has(op)))
    ) {
      throw badRequest(`Broker [${b.id}] is ${b.state}; users can only be managed while it is RUNNING.`, 'broker-id');
    }
    if (op === 'ListUsers') return this.listUsers(b, input);
    if (WRITES.has(op) && this.writeConflictWindowMs > 0) {
      const now = Date.now();
      if (b.lastWriteAt !== undefined && now - b.lastWriteAt < this.writeConflictWindowMs) {
        this.concurrencyConflicts++;
        throw conflict('The request conflicts with another request in progress. Retrying might resolve it.');
      }
      b.lastWriteAt = now;
    }
    const user = b.users.get(username);
    if (op === 'CreateUser') return this.createUser(b, username, user, input);
    if (!user)
      throw new ApiError(
        404,
        'NotFoundException',
        `Can't find requested user [${username}]. Make sure your user exists.`,
        'username',
      );
    const pending = user.pending;
    switch (op) {
      case 'DescribeUser':
        return {
          brokerId: b.id,
          username,
          // A pending CREATE has nothing applied yet, so the top-level fields are absent.
          ...(user.applied && {
            consoleAccess: user.applied.consoleAccess,
            groups: user.applied.groups,
            replicationUser: user.applied.replicationUser,
          }),
          ...(pending && {
            pending:
              pending.change === 'DELETE'
                ? { pendingChange: 'DELETE' }
                : { pendingChange: pending.change, consoleAccess: pending.consoleAccess, groups: pending.groups },
          }),
        };
      case 'UpdateUser': {
        if (pending?.change === 'DELETE') return this.updatePendingDelete(user, input);
        const current = pending ?? user.applied!;
        // Omitted fields keep their value: undocumented, which is why the handler must always send them all. An
        // omitted password keeps the pending one, or (updateOmittedPassword 'applied') falls back to the applied one.
        const keptPassword =
          this.updateOmittedPassword === 'applied' && user.applied ? user.applied.password : current.password;
        const next: UserValues = {
          consoleAccess: (input.consoleAccess as boolean | undefined) ?? current.consoleAccess,
          groups: (input.groups as string[] | undefined) ?? current.groups,
          replicationUser: (input.replicationUser as boolean | undefined) ?? current.replicationUser,
          password: (input.password as string | undefined) ?? keptPassword,
        };
        validate(next);
        user.pending = { change: user.applied ? 'UPDATE' : 'CREATE', ...next };
        return {};
      }
      case 'DeleteUser':
        if (pending?.change === 'DELETE' && this.deleteOnPendingDelete === 'conflict') {
          throw conflict(`User [${username}] is already pending deletion.`, 'username');
        }
        // Even a pending CREATE stays listed, as pending DELETE, until the reboot.
        if (pending?.change !== 'DELETE') {
          const held = pending ?? user.applied;
          if (held) this.beforeDelete.set(user, values(held));
        }
        user.pending = { change: 'DELETE' };
        return {};
      default:
        throw new Error(`unhandled ${op}`);
    }
  }

  /** UpdateUser on a user pending DELETE: undocumented, so `updateOnPendingDelete` decides. */
  private updatePendingDelete(user: UserState, input: Record<string, unknown>): object {
    if (this.updateOnPendingDelete === 'conflict') {
      throw conflict(`User [${user.username}] is pending deletion.`, 'username');
    }
    const current = user.applied ?? this.beforeDelete.get(user);
    const next: UserValues = {
      consoleAccess: (input.consoleAccess as boolean | undefined) ?? current?.consoleAccess ?? false,
      groups: (input.groups as string[] | undefined) ?? current?.groups ?? [],
      replicationUser: (input.replicationUser as boolean | undefined) ?? current?.replicationUser ?? false,
      password: (input.password as string | undefined) ?? current?.password ?? '',
    };
    validate(next);
    // 'keepDelete': accepted, and the deletion still happens at the next reboot.
    if (this.updateOnPendingDelete === 'revive') user.pending = { change: user.applied ? 'UPDATE' : 'CREATE', ...next };
    return {};
  }

  private createUser(b: Broker, username: string, user: UserState | undefined, input: Record<string, unknown>): object {
    if (!NAME.test(username)) {
      throw badRequest(
        'Username must be 2-100 characters long and contain only letters, digits and - . _ ~',
        'username',
      );
    }
    if (typeof input.password !== 'string') throw badRequest('Password is required.', 'password');
    const next: UserValues = {
      consoleAccess: input.consoleAccess === true,
      groups: (input.groups as string[] | undefined) ?? [],
      replicationUser: input.replicationUser === true,
      password: input.password,
    };
    validate(next);
    if (!user) {
      if (b.users.size >= MAX_USERS)
        throw badRequest(`Broker [${b.id}] already has the maximum of ${MAX_USERS} users.`, 'username');
      b.users.set(username, { username, pending: { change: 'CREATE', ...next } });
      return {};
    }
    if (user.pending?.change === 'DELETE') {
      if (this.createOnPendingDelete === 'error') throw conflict(`User [${username}] is pending deletion.`, 'username');
    } else if (this.createOnExisting === 'conflict') {
      throw conflict(`User [${username}] already exists.`, 'username');
    }
    user.pending = { change: user.applied ? 'UPDATE' : 'CREATE', ...next };
    return {};
  }

  private listUsers(b: Broker, input: Record<string, unknown>): object {
    const max = input.maxResults === undefined ? 20 : Number(input.maxResults);
    if (!Number.isInteger(max) || max < 5 || max > 100)
      throw badRequest('maxResults must be an integer from 5 to 100.', 'maxResults');
    let start = 0;
    if (input.nextToken !== undefined) {
      const token = String(input.nextToken);
      const decoded = /^[A-Za-z0-9+/=]+$/.test(token) ? Buffer.from(token, 'base64').toString('utf8') : '';
      const [id, offset] = decoded.split('|');
      start = Number(offset);
      if (id !== b.id || !Number.isInteger(start) || start < 0)
        throw badRequest('The nextToken is not valid.', 'nextToken');
    }
    const all = summaries(b);
    const end = start + max;
    return {
      brokerId: b.id,
      maxResults: max,
      users: all.slice(start, end),
      ...(end < all.length && { nextToken: Buffer.from(`${b.id}|${end}`).toString('base64') }),
    };
  }

  /** Secrets Manager, awsJson1_1: what our functions call. Errors are the documented exception names. */
  private secretsCall(op: SecretsOperation, input: Record<string, unknown>): object {
    const secretId = input.SecretId as string | undefined;
    if (!secretId) throw invalidParameter('SecretId is required.');
    const secret = this.findSecret(secretId);
    if (this.denied.has(secretId) || (secret && (this.denied.has(secret.arn) || this.denied.has(secret.name)))) {
      throw this.secretDenied(secretId, op);
    }
    if (!secret) throw notFound("Secrets Manager can't find the specified secret.");
    switch (op) {
      case 'GetSecretValue':
        return this.getSecretValue(secret, input);
      case 'PutSecretValue':
        return this.putSecretValue(secret, input);
      case 'UpdateSecretVersionStage':
        return this.updateSecretVersionStage(secret, input);
      case 'DescribeSecret':
        return {
          ARN: secret.arn,
          Name: secret.name,
          RotationEnabled: secret.rotation !== undefined,
          ...(secret.rotation && {
            RotationLambdaARN: secret.rotation.lambdaArn,
            RotationRules: {
              ...(secret.rotation.automaticallyAfterDays !== undefined && {
                AutomaticallyAfterDays: secret.rotation.automaticallyAfterDays,
              }),
              ...(secret.rotation.scheduleExpression !== undefined && {
                ScheduleExpression: secret.rotation.scheduleExpression,
              }),
            },
          }),
          ...(secret.lastRotated !== undefined && { LastRotatedDate: secret.lastRotated }),
          Tags: [...secret.tags].map(([Key, Value]) => ({ Key, Value })),
          // Versions without a label are deprecated: DescribeSecret leaves them out.
          VersionIdsToStages: this.secretStages(secret.arn),
          CreatedDate: secret.created,
        };
      case 'ListSecretVersionIds':
        return {
          ARN: secret.arn,
          Name: secret.name,
          Versions: [...secret.versions.values()]
            .filter((v) => input.IncludeDeprecated === true || v.stages.size > 0)
            .map((v) => ({ VersionId: v.id, VersionStages: [...v.stages].sort(), CreatedDate: v.created })),
        };
    }
  }

  private getSecretValue(secret: Secret, input: Record<string, unknown>): object {
    const versionId = input.VersionId as string | undefined;
    const stage = (input.VersionStage as string | undefined) ?? (versionId ? undefined : 'AWSCURRENT');
    const version = versionId ? secret.versions.get(versionId) : this.versionWith(secret, stage!);
    if (!version || (stage !== undefined && !version.stages.has(stage))) {
      throw notFound(
        `Secrets Manager can't find the specified secret value for ${versionId ? `VersionId: ${versionId}` : ''}${
          versionId && stage ? ' and ' : ''
        }${stage ? `staging label: ${stage}` : ''}`,
      );
    }
    if (version.value === undefined) {
      throw notFound(`Secrets Manager can't find the specified secret value for VersionId: ${version.id}`);
    }
    return {
      ARN: secret.arn,
      Name: secret.name,
      VersionId: version.id,
      SecretString: version.value,
      VersionStages: [...version.stages].sort(),
      CreatedDate: version.created,
    };
  }

  /**
   * PutSecretValue: ClientRequestToken is the VersionId; the same token with the same value is a no-op, with another
   * value ResourceExistsException; a version RotateSecret made without a value takes this one. VersionStages default
   * to AWSCURRENT (and the first version always gets AWSCURRENT); moving AWSCURRENT moves AWSPREVIOUS along.
   */
  private putSecretValue(secret: Secret, input: Record<string, unknown>): object {
    const token = (input.ClientRequestToken as string | undefined) ?? randomUUID();
    checkToken(token);
    const value = input.SecretString as string | undefined;
    if (value === undefined) {
      if (input.SecretBinary !== undefined) throw invalidParameter('This fake stores SecretString only.');
      throw invalidParameter('You must provide either SecretString or SecretBinary.');
    }
    const stages = (input.VersionStages as string[] | undefined) ?? ['AWSCURRENT'];
    if (!Array.isArray(stages) || stages.length === 0 || stages.length > 20)
      throw invalidParameter('VersionStages must list 1 to 20 staging labels.');
    for (const stage of stages)
      if (typeof stage !== 'string' || stage.length < 1 || stage.length > 256)
        throw invalidParameter('A staging label is 1 to 256 characters.');
    const existing = secret.versions.get(token);
    if (existing?.value !== undefined) {
      if (existing.value !== value) {
        throw new ApiError(
          400,
          'ResourceExistsException',
          "You can't modify an existing version, you can only create a new version.",
        );
      }
      return { ARN: secret.arn, Name: secret.name, VersionId: token, VersionStages: [...existing.stages].sort() };
    }
    const version = this.addVersion(secret, token, value, stages);
    return { ARN: secret.arn, Name: secret.name, VersionId: token, VersionStages: [...version.stages].sort() };
  }

  /**
   * UpdateSecretVersionStage: a label is on one version at most. Moving it off a version needs RemoveFromVersionId
   * naming that version; removing it needs RemoveFromVersionId holding it; AWSCURRENT can only be moved, never just
   * removed; moving AWSCURRENT moves AWSPREVIOUS to the version it left.
   */
  private updateSecretVersionStage(secret: Secret, input: Record<string, unknown>): object {
    const stage = input.VersionStage as string | undefined;
    const moveTo = input.MoveToVersionId as string | undefined;
    const removeFrom = input.RemoveFromVersionId as string | undefined;
    if (!stage) throw invalidParameter('VersionStage is required.');
    for (const id of [moveTo, removeFrom])
      if (id !== undefined && !secret.versions.has(id))
        throw notFound(`Secrets Manager can't find the specified secret version: ${id}`);
    const holder = this.versionWith(secret, stage);
    if (moveTo === undefined) {
      if (removeFrom === undefined) throw invalidParameter('Specify MoveToVersionId, RemoveFromVersionId or both.');
      if (stage === 'AWSCURRENT')
        throw invalidParameter(
          'You can only move the staging label AWSCURRENT, not remove it: specify MoveToVersionId.',
        );
      if (holder?.id !== removeFrom) {
        if (this.staleRemoveFrom === 'error')
          throw invalidParameter(`The staging label ${stage} is not attached to version ${removeFrom}.`);
      } else {
        holder.stages.delete(stage);
      }
      return { ARN: secret.arn, Name: secret.name, VersionId: removeFrom };
    }
    if (holder && holder.id !== moveTo && removeFrom !== holder.id) {
      throw invalidParameter(
        `The staging label ${stage} is currently attached to version ${holder.id}: specify it as RemoveFromVersionId.`,
      );
    }
    if (removeFrom !== undefined && holder?.id !== removeFrom && this.staleRemoveFrom === 'error') {
      throw invalidParameter(`The staging label ${stage} is not attached to version ${removeFrom}.`);
    }
    const target = secret.versions.get(moveTo)!;
    if (!target.stages.has(stage) && target.stages.size >= 20)
      throw new ApiError(400, 'LimitExceededException', 'A version can have at most 20 staging labels.');
    this.attach(secret, target, stage);
    return { ARN: secret.arn, Name: secret.name, VersionId: moveTo };
  }

  private addVersion(secret: Secret, id: string, value: string, stages: string[]): SecretVersion {
    let version = secret.versions.get(id);
    const first = [...secret.versions.values()].every((v) => v.value === undefined && v.stages.size === 0);
    if (!version) {
      version = { id, value, stages: new Set(), created: Math.floor(Date.now() / 1000) };
      secret.versions.set(id, version);
    } else {
      version.value = value;
    }
    for (const stage of new Set([...stages, ...(first ? ['AWSCURRENT'] : [])])) this.attach(secret, version, stage);
    return version;
  }

  /** Puts a label on a version, taking it off any other; AWSCURRENT drags AWSPREVIOUS to the version it left. */
  private attach(secret: Secret, version: SecretVersion, stage: string): void {
    const holder = this.versionWith(secret, stage);
    if (holder === version) return;
    holder?.stages.delete(stage);
    version.stages.add(stage);
    if (stage === 'AWSCURRENT' && holder) {
      this.versionWith(secret, 'AWSPREVIOUS')?.stages.delete('AWSPREVIOUS');
      holder.stages.add('AWSPREVIOUS');
    }
  }

  private versionWith(secret: Secret, stage: string): SecretVersion | undefined {
    return [...secret.versions.values()].find((v) => v.stages.has(stage));
  }

  private secretDenied(resource: string, op: string = 'GetSecretValue'): ApiError {
    return new ApiError(
      400,
      'AccessDeniedException',
      `User: arn:aws:sts::${this.accountId}:assumed-role/handler/fake is not authorized to perform: ` +
        `secretsmanager:${op} on resource: ${resource} because no identity-based policy allows the secretsmanager:${op} action`,
    );
  }

  /** By full ARN, by name, or by ARN without the random suffix, as Secrets Manager accepts. */
  private findSecret(id: string): Secret | undefined {
    return (
      this.secrets.get(id) ??
      [...this.secrets.values()].find((s) => s.name === id || (id.startsWith('arn:') && s.arn.startsWith(`${id}-`)))
    );
  }

  private secretOrThrow(arnOrName: string): Secret {
    const secret = this.findSecret(arnOrName);
    if (!secret) throw new Error(`FakeMq: no secret ${arnOrName}`);
    return secret;
  }

  private broker(brokerId: string): Broker {
    const broker = this.brokers.get(brokerId);
    if (!broker) throw new Error(`FakeMq: no broker ${brokerId}`);
    return broker;
  }
}

const invalidParameter = (message: string) => new ApiError(400, 'InvalidParameterException', message);
const notFound = (message: string) => new ApiError(400, 'ResourceNotFoundException', message);

/** ClientRequestToken: 32 to 64 characters (the API's documented length). */
function checkToken(token: string): void {
  if (typeof token !== 'string' || token.length < 32 || token.length > 64)
    throw invalidParameter('ClientRequestToken must be 32 to 64 characters long.');
}

function values(v: UserValues): UserValues {
  return {
    consoleAccess: v.consoleAccess,
    groups: [...v.groups],
    replicationUser: v.replicationUser,
    password: v.password,
  };
}

function initialConfigurations(
  revision: ConfigurationRevision | undefined,
  atCreate: 'current' | 'pending',
): BrokerConfigurations {
  if (!revision) return { history: [] };
  return atCreate === 'current'
    ? { current: { ...revision }, history: [{ ...revision }] }
    : { pending: { ...revision }, history: [] };
}

function summaries(b: Broker): Array<{ username: string; pendingChange?: string }> {
  return [...b.users.values()]
    .sort((x, y) => (x.username < y.username ? -1 : 1))
    .map((u) => ({ username: u.username, ...(u.pending && { pendingChange: u.pending.change }) }));
}

function validate(v: UserValues): void {
  const p = v.password;
  if (p.length < 12 || p.length > 250 || new Set(p).size < 4 || /[,:=]/.test(p)) {
    throw badRequest(
      'Password must be 12-250 characters long, contain at least 4 unique characters, and must not contain commas, colons, or equal signs (,:=).',
      'password',
    );
  }
  if (v.groups.length > 20 || !v.groups.every((g) => NAME.test(g))) {
    throw badRequest(
      'A user can be in at most 20 groups, each 2-100 characters of letters, digits and - . _ ~',
      'groups',
    );
  }
  if (v.replicationUser && v.consoleAccess) {
    throw badRequest('[replicationUser] and [consoleAccess] are mutually exclusive', 'replicationUser');
  }
}
