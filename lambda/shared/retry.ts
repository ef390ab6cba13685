/**
 * Every AWS call of the handler goes through `withRetry`: it retries what the service documents as
 * transient, gives IAM time to propagate, and gives up with a clear reason before Lambda kills us.
 */

/** Timings, exported so tests can shorten them; production code never changes them. */
export const retryTiming = {
  /** First backoff; doubles per attempt, with full jitter. */
  baseDelayMs: 250,
  /** Backoff never exceeds this. */
  maxDelayMs: 8_000,
  /**
   * Least backoff after throttling (429): Amazon MQ's bucket (100 requests, refilling 15 per second) is shared by
   * the whole account, and every concurrent event retries into it. Decorrelated jitter (the first delay drawn
   * between this and `throttleFirstMaxDelayMs`, each later one between this and three times the last) spreads the
   * retries of many events over the refill rather than hammering the empty bucket. Measured with 250 concurrent
   * events (docs/BENCHMARKS.md, `npm run bench:deploy` and `npm run bench:pacing`): at most one refused call per
   * answered one.
   */
  throttleBaseDelayMs: 4_000,
  /**
   * Most of the first backoff after throttling: the 150 events that 250 concurrent one-call events leave waiting need
   * 10 s of refill. A narrower first window refuses more of them a second time, and those wait up to
   * `throttleMaxDelayMs` while the bucket fills up unused (`npm run bench:pacing` shows both).
   */
  throttleFirstMaxDelayMs: 10_000,
  /**
   * Backoff after throttling never exceeds this: a longer one mostly sleeps while the bucket refills unused (at
   * 20 s, 100 concurrent creates took 30 s against a floor of 13 s; `npm run bench:pacing`).
   */
  throttleMaxDelayMs: 12_000,
  /** One attempt that has not answered by then is abandoned and retried (a hung connection). */
  attemptTimeoutMs: 15_000,
  /** New IAM grants take seconds to propagate: AccessDenied is retried for this long after start. */
  accessDeniedWindowMs: 30_000,
  /**
   * How long one event waits for a broker that refuses user calls while it reboots, counted from the first refusal.
   * The wait is not spent inside one invocation: the event is handed to the Provider framework's isComplete waiter,
   * which polls the broker (lambda/user/index.ts). Sized to Amazon MQ's documented maintenance window ("can last up to
   * two hours") less five minutes, so that the handler answers with its own reason before the waiter's two-hour
   * total timeout answers "Operation timed out".
   */
  brokerWaitMs: 115 * 60_000,
  /** Time kept back from a Create's retries to undo what its own CreateUser may have made. */
  undoReserveMs: 20_000,
};

/** The point in time by which the handler must have answered. */
export class Deadline {
  /** Leave this much of Lambda's remaining time to report a failure. */
  static readonly MARGIN_MS = 5_000;

  static fromRemaining(remainingMs: number): Deadline {
    return new Deadline(Date.now(), Date.now() + Math.max(remainingMs - Deadline.MARGIN_MS, 1_000));
  }

  private constructor(
    readonly startedAt: number,
    readonly at: number,
    /**
     * The last delay throttling imposed on a call of this invocation, shared with narrower deadlines: the next call
     * that is throttled backs off from it rather than from the base, since the account's bucket was that busy a
     * moment ago.
     */
    readonly pace: { throttledMs?: number } = {},
  ) {}

  /** The same start, ending `ms` earlier (but not before now): leaves room for work after a loop gives up. */
  earlier(ms: number): Deadline {
    return new Deadline(this.startedAt, Math.max(Date.now(), this.at - ms), this.pace);
  }

  remainingMs(): number {
    return this.at - Date.now();
  }

  elapsedMs(): number {
    return Date.now() - this.startedAt;
  }
}

/** What a failed call was about: goes into the error message, never a password. */
export interface CallContext {
  readonly operation: string;
  readonly brokerId?: string;
  readonly username?: string;
  readonly secretArn?: string;
  /**
   * The request carried a password: the service's free text is dropped from the error, because a partial,
   * encoded or case-changed echo of the password would pass any scrubbing. Name, status and attribute stay.
   */
  readonly carriesPassword?: boolean;
}

/** An AWS call failed for good; its message names the call, the user, the broker and the service's words. */
export class CallError extends Error {
  readonly errorName: string;
  readonly httpStatus?: number;
  readonly errorAttribute?: string;

  constructor(
    readonly context: CallContext,
    cause: unknown,
    readonly attempts: number,
    gaveUp?: string,
    /** An earlier attempt got no answer or a 5xx: it may have done what it asked. Callers that retry add theirs. */
    public earlierAttemptMayHaveSucceeded = false,
  ) {
    const info = errorInfo(cause);
    // Our own timeouts and dropped connections echo nothing: only the service's words are withheld.
    const fromService = info.httpStatus !== undefined || !isTransient(info);
    const text =
      context.carriesPassword && fromService
        ? "the service's message is withheld: the request carried a password"
        : info.message;
    const attribute = info.errorAttribute ? `, errorAttribute "${info.errorAttribute}"` : '';
    const status = info.httpStatus !== undefined ? `, HTTP ${info.httpStatus}` : '';
    const tries = attempts > 1 ? ` after ${attempts} attempts` : '';
    super(
      `${context.operation} ${describeTarget(context)} failed${tries}: ${text} (${info.name}${status}${attribute})` +
        (gaveUp ? `; ${gaveUp}` : ''),
    );
    this.name = 'CallError';
    this.errorName = info.name;
    this.httpStatus = info.httpStatus;
    this.errorAttribute = info.errorAttribute;
  }
}

/** Amazon MQ's 404: the user, or its broker, is gone (NotFoundException; an IAM layer may say only 404). */
export function isNotFound(error: unknown): boolean {
  return error instanceof CallError && (error.errorName === 'NotFoundException' || error.httpStatus === 404);
}

export function describeTarget(context: CallContext): string {
  const parts: string[] = [];
  if (context.username) parts.push(`for user "${context.username}"`);
  if (context.brokerId) parts.push(`on broker ${context.brokerId}`);
  if (context.secretArn) parts.push(`of secret ${context.secretArn}`);
  return parts.join(' ');
}

interface ErrorInfo {
  readonly name: string;
  readonly message: string;
  readonly httpStatus?: number;
  readonly errorAttribute?: string;
  readonly code?: string;
}

function errorInfo(error: unknown): ErrorInfo {
  if (!(error instanceof Error)) return { name: 'Error', message: String(error) };
  const e = error as Error & {
    $metadata?: { httpStatusCode?: number };
    $response?: { statusCode?: number };
    ErrorAttribute?: string;
    code?: string;
  };
  return {
    name: e.name,
    message: e.message || '(no message)',
    httpStatus: e.$metadata?.httpStatusCode ?? e.$response?.statusCode,
    errorAttribute: e.ErrorAttribute,
    code: e.code,
  };
}

const NETWORK_CODES = new Set(['ECONNRESET', 'ECONNREFUSED', 'EPIPE', 'ETIMEDOUT', 'ECONNABORTED', 'EAI_AGAIN']);
const ACCESS_DENIED = new Set(['AccessDeniedException', 'ForbiddenException', 'AccessDenied']);

export type Verdict = 'retry' | 'access-denied' | 'fail';

// Throttling arrives as 429 from Amazon MQ but as 400 from CloudFormation (Throttling) and Secrets Manager
// (ThrottlingException), DynamoDB (400 ProvisionedThroughputExceededException, ThrottlingException): the name decides.
const THROTTLING = /Throttl|TooManyRequests|RequestLimitExceeded|ProvisionedThroughputExceeded/;

function isThrottling(error: unknown): boolean {
  const info = errorInfo(error);
  return THROTTLING.test(info.name) || info.httpStatus === 429;
}

/** Retry throttling, conflicts, 5xx and dropped connections; never other 4xx (they will not change). */
export function classify(error: unknown, options: { retryConflict: boolean }): Verdict {
  const info = errorInfo(error);
  if (THROTTLING.test(info.name) || info.httpStatus === 429) return 'retry';
  if (ACCESS_DENIED.has(info.name) || info.httpStatus === 403) return 'access-denied';
  if (info.name === 'ConflictException' || info.httpStatus === 409) return options.retryConflict ? 'retry' : 'fail';
  if ((info.httpStatus ?? 0) >= 500) return 'retry';
  // A dropped connection or an abandoned attempt has no HTTP status at all.
  if (info.httpStatus === undefined && isTransient(info)) return 'retry';
  return 'fail';
}

function isTransient(info: ErrorInfo): boolean {
  return (
    /ServiceUnavailable|InternalServerError|TimeoutError|AbortError/.test(info.name) ||
    (info.code !== undefined && NETWORK_CODES.has(info.code)) ||
    /socket hang up|ECONNRESET|EPIPE/.test(info.message)
  );
}

export const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));

/** Full-jitter exponential backoff: the delay before attempt `attempt + 1`. */
export function backoffMs(attempt: number): number {
  return Math.random() * Math.min(retryTiming.maxDelayMs, retryTiming.baseDelayMs * 2 ** (attempt - 1));
}

/**
 * The delay after a throttled attempt: decorrelated jitter (AWS Architecture Blog, "Exponential Backoff And
 * Jitter"): uniform between the base and three times the previous delay (the first: up to
 * `throttleFirstMaxDelayMs`), capped.
 */
export function throttleBackoffMs(previousMs: number | undefined): number {
  const base = retryTiming.throttleBaseDelayMs;
  const upper = Math.max(base, previousMs === undefined ? retryTiming.throttleFirstMaxDelayMs : 3 * previousMs);
  return Math.min(retryTiming.throttleMaxDelayMs, base + Math.random() * (upper - base));
}

/**
 * Runs `call` until it succeeds, fails for good, or the deadline draws near. Each attempt gets an
 * AbortSignal that fires after `attemptTimeoutMs` (or at the deadline), so a hung connection is abandoned.
 */
export async function withRetry<T>(
  context: CallContext,
  deadline: Deadline,
  call: (signal: AbortSignal) => Promise<T>,
  options: { retryConflict?: boolean } = {},
): Promise<T> {
  const retryConflict = options.retryConflict ?? true;
  let uncertain = false;
  const paced = deadline.pace.throttledMs;
  let throttledDelay = paced;
  for (let attempt = 1; ; attempt++) {
    const budget = Math.min(retryTiming.attemptTimeoutMs, deadline.remainingMs());
    if (budget <= 0) {
      throw new CallError(
        context,
        new Error('no time left before the Lambda deadline'),
        attempt - 1,
        undefined,
        uncertain,
      );
    }
    const abort = new AbortController();
    // The SDK drops the request on abort; the race also frees us from a call that ignores the signal.
    const abandoned = new Promise<never>((_, reject) => {
      abort.signal.addEventListener('abort', () => reject(timeoutError(budget)));
    });
    const timer = setTimeout(() => abort.abort(), budget);
    try {
      const pending = call(abort.signal);
      pending.catch(() => undefined); // an abandoned attempt may still fail later: nobody waits for it
      return await Promise.race([pending, abandoned]);
    } catch (raw) {
      const error = abort.signal.aborted ? timeoutError(budget) : raw;
      const verdict = classify(error, { retryConflict });
      const retryable =
        verdict === 'retry' || (verdict === 'access-denied' && deadline.elapsedMs() < retryTiming.accessDeniedWindowMs);
      if (!retryable) throw new CallError(context, error, attempt, undefined, uncertain);
      // Throttling, a conflict or a denial did nothing; no answer or a 5xx may have done it all.
      const status = errorInfo(error).httpStatus;
      uncertain ||= verdict === 'retry' && (status === undefined || status >= 500);
      // Throttling paces itself on its own, larger delays; anything else backs off as before.
      const throttled = isThrottling(error);
      if (throttled) deadline.pace.throttledMs = throttledDelay = throttleBackoffMs(throttledDelay);
      // A throttled call sleeps at most half the time left, so that it still gets attempts before the deadline.
      const delay = throttled ? Math.min(throttledDelay!, deadline.remainingMs() / 2) : backoffMs(attempt);
      if (delay >= deadline.remainingMs()) {
        throw new CallError(context, error, attempt, 'gave up to answer before the Lambda deadline', uncertain);
      }
      await sleep(delay);
    } finally {
      clearTimeout(timer);
    }
  }
}

function timeoutError(ms: number): Error {
  const e = new Error(`no answer within ${ms} ms`);
  e.name = 'TimeoutError';
  return e;
}
