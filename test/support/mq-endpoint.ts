/**
 * An in-process fake of the Amazon MQ user API and of Secrets Manager's GetSecretValue, for jest tests
 * that drive the real AWS SDK v3 clients over HTTP (endpoint override, dummy credentials).
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
export type Operation = MqOperation | 'GetSecretValue';
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
  | 'slow';

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
  /**
   * 409s under concurrency (documented as "retrying might resolve it"): a write (CreateUser, UpdateUser,
   * DeleteUser) that reaches a broker within this many ms of another accepted write to the same broker is
   * refused with 409 ConflictException, doing nothing. 0: writes never conflict.
   */
  writeConflictWindowMs?: number;
  /** The account-wide MQ token bucket (documented: 100 requests, refilling 15/s); none when absent. */
  throttle?: { capacity: number; refillPerSecond: number };
}

export interface Injection {
  /** Without it the fault hits any MQ operation; GetSecretValue is hit only when named. */
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

const DEFAULTS: Required<Omit<FakeMqOptions, 'throttle'>> & Pick<FakeMqOptions, 'throttle'> = {
  region: 'us-east-1',
  accountId: '123456789012',
  createOnExisting: 'conflict',
  createOnPendingDelete: 'error',
  callsOutsideRunning: 'reject',
  rebootDelayMs: 50,
  accessDeniedAs: 'ForbiddenException',
  latencyMs: 0,
  rebootStartsAfterMs: 0,
  updateOnPendingDelete: 'conflict',
  writeConflictWindowMs: 0,
  throttle: undefined,
};

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
  rebootDelayMs!: number | 'never';
  accessDeniedAs!: 'ForbiddenException' | 'AccessDeniedException';
  latencyMs!: number;
  rebootStartsAfterMs!: number;
  updateOnPendingDelete!: 'conflict' | 'revive' | 'keepDelete';
  writeConflictWindowMs!: number;
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
  private readonly secrets = new Map<string, { arn: string; name: string; value: string; created: number }>();
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
    const o = { ...DEFAULTS, ...this.options };
    Object.assign(this, {
      region: o.region,
      accountId: o.accountId,
      createOnExisting: o.createOnExisting,
      createOnPendingDelete: o.createOnPendingDelete,
      callsOutsideRunning: o.callsOutsideRunning,
      rebootDelayMs: o.rebootDelayMs,
      accessDeniedAs: o.accessDeniedAs,
      latencyMs: o.latencyMs,
      rebootStartsAfterMs: o.rebootStartsAfterMs,
      updateOnPendingDelete: o.updateOnPendingDelete,
      writeConflictWindowMs: o.writeConflictWindowMs,
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

  /** What a reboot or the maintenance window does to users. */
  applyPendingChanges(brokerId: string): void {
    const broker = this.broker(brokerId);
    for (const [name, user] of broker.users) {
      const pending = user.pending;
      if (pending?.change === 'DELETE') broker.users.delete(name);
      else if (pending) user.applied = values(pending);
      user.pending = undefined;
    }
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

  /** The MQ calls (not GetSecretValue) recorded from position `from` on, optionally of one operation. */
  mqCalls(from = 0, operation?: MqOperation): CallRecord[] {
    return this.calls
      .slice(from)
      .filter((c) => c.operation !== 'GetSecretValue' && (operation === undefined || c.operation === operation));
  }

  // ---- secrets ----

  /** Creates or replaces a secret; returns its ARN (generated, with the 6-character suffix, from a name). */
  putSecret(arnOrName: string, secretString: string): string {
    const existing = this.findSecret(arnOrName);
    if (existing) {
      existing.value = secretString;
      return existing.arn;
    }
    const arn = arnOrName.startsWith('arn:')
      ? arnOrName
      : `arn:aws:secretsmanager:${this.region}:${this.accountId}:secret:${arnOrName}-${randomBytes(3).toString('hex')}`;
    const name = arnOrName.startsWith('arn:') ? arn.split(':secret:')[1].replace(/-[A-Za-z0-9]{6}$/, '') : arnOrName;
    this.secrets.set(arn, { arn, name, value: secretString, created: Math.floor(Date.now() / 1000) });
    return arn;
  }

  /** The secret string, for assertions (what the handler would read). */
  secretValue(arnOrName: string): string | undefined {
    return this.findSecret(arnOrName)?.value;
  }

  deleteSecret(arnOrName: string): void {
    const secret = this.findSecret(arnOrName);
    if (secret) this.secrets.delete(secret.arn);
  }

  /** GetSecretValue on it answers AccessDeniedException, whether or not it exists (IAM is checked first). */
  denySecret(arnOrName: string, denied = true): void {
    if (denied) this.denied.add(arnOrName);
    else this.denied.delete(arnOrName);
  }

  // ---- faults ----

  inject(injection: Injection): void {
    if (injection.operation === 'GetSecretValue' && injection.fault === 'conflict') {
      throw new Error('Secrets Manager GetSecretValue has no conflict error');
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
      const operation = target === 'secretsmanager.GetSecretValue' ? 'GetSecretValue' : 'Unknown';
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
        (j.operation ? j.operation === call.operation : call.operation !== 'GetSecretValue') &&
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
      if (route.operation === 'GetSecretValue') return this.getSecretValue(route.secretId);
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
      users: summaries(b),
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
        // Omitted fields keep their value: undocumented, which is why the handler must always send them all.
        const next: UserValues = {
          consoleAccess: (input.consoleAccess as boolean | undefined) ?? current.consoleAccess,
          groups: (input.groups as string[] | undefined) ?? current.groups,
          replicationUser: (input.replicationUser as boolean | undefined) ?? current.replicationUser,
          password: (input.password as string | undefined) ?? current.password,
        };
        validate(next);
        user.pending = { change: user.applied ? 'UPDATE' : 'CREATE', ...next };
        return {};
      }
      case 'DeleteUser':
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

  private getSecretValue(secretId: string | undefined): object {
    if (!secretId) throw new ApiError(400, 'InvalidParameterException', 'SecretId is required.');
    const secret = this.findSecret(secretId);
    if (this.denied.has(secretId) || (secret && (this.denied.has(secret.arn) || this.denied.has(secret.name)))) {
      throw this.secretDenied(secretId);
    }
    if (!secret)
      throw new ApiError(400, 'ResourceNotFoundException', "Secrets Manager can't find the specified secret.");
    return {
      ARN: secret.arn,
      Name: secret.name,
      VersionId: randomUUID(),
      SecretString: secret.value,
      VersionStages: ['AWSCURRENT'],
      CreatedDate: secret.created,
    };
  }

  private secretDenied(resource: string): ApiError {
    return new ApiError(
      400,
      'AccessDeniedException',
      `User: arn:aws:sts::${this.accountId}:assumed-role/handler/fake is not authorized to perform: ` +
        `secretsmanager:GetSecretValue on resource: ${resource} because no identity-based policy allows the secretsmanager:GetSecretValue action`,
    );
  }

  /** By full ARN, by name, or by ARN without the random suffix, as Secrets Manager accepts. */
  private findSecret(id: string) {
    return (
      this.secrets.get(id) ??
      [...this.secrets.values()].find((s) => s.name === id || (id.startsWith('arn:') && s.arn.startsWith(`${id}-`)))
    );
  }

  private broker(brokerId: string): Broker {
    const broker = this.brokers.get(brokerId);
    if (!broker) throw new Error(`FakeMq: no broker ${brokerId}`);
    return broker;
  }
}

function values(v: UserValues): UserValues {
  return {
    consoleAccess: v.consoleAccess,
    groups: [...v.groups],
    replicationUser: v.replicationUser,
    password: v.password,
  };
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
