import {
  CallError,
  Deadline,
  backoffMs,
  classify,
  retryTiming,
  throttleBackoffMs,
  withRetry,
} from '../lambda/shared/retry';

const error = (name: string, status?: number, extra: object = {}) =>
  Object.assign(new Error(name), { name, ...(status ? { $metadata: { httpStatusCode: status } } : {}), ...extra });

describe('classify', () => {
  test.each([
    ['429', error('TooManyRequestsException', 429), 'retry'],
    ['500', error('InternalServerErrorException', 500), 'retry'],
    ['503', error('ServiceUnavailable', 503), 'retry'],
    ['409', error('ConflictException', 409), 'retry'],
    ['a dropped connection', error('Error', undefined, { code: 'ECONNRESET' }), 'retry'],
    ['a timeout', error('TimeoutError'), 'retry'],
    ['403', error('ForbiddenException', 403), 'access-denied'],
    ['AccessDeniedException', error('AccessDeniedException', 400), 'access-denied'],
    ['Secrets Manager throttling, sent as 400', error('ThrottlingException', 400), 'retry'],
    ['CloudFormation throttling, sent as 400', error('Throttling', 400), 'retry'],
    ['400', error('BadRequestException', 400), 'fail'],
    ['404', error('NotFoundException', 404), 'fail'],
    ['an unknown error without status', error('TypeError'), 'fail'],
  ])('%s -> %s', (_case, e, expected) => {
    expect(classify(e, { retryConflict: true })).toBe(expected);
  });

  test('does not retry a 409 when the caller handles conflicts itself', () => {
    expect(classify(error('ConflictException', 409), { retryConflict: false })).toBe('fail');
  });
});

describe('throttleBackoffMs (decorrelated jitter after a 429)', () => {
  beforeEach(() =>
    Object.assign(retryTiming, {
      throttleBaseDelayMs: 1_000,
      throttleFirstMaxDelayMs: 4_000,
      throttleMaxDelayMs: 20_000,
    }),
  );
  afterEach(() => jest.spyOn(Math, 'random').mockRestore());

  test.each([
    // previous delay, Math.random(), expected delay
    [undefined, 0, 1_000],
    [undefined, 0.5, 2_500], // the first delay: up to throttleFirstMaxDelayMs
    [undefined, 0.999999, 3_999.997],
    [1_000, 0.5, 2_000],
    [2_000, 1, 6_000],
    [6_000, 0.5, 9_500],
    [10_000, 1, 20_000], // capped
    [20_000, 0, 1_000], // may fall back to the base: the retries of many events spread out
  ])('after %p with random %p: %p ms', (previous, random, expected) => {
    jest.spyOn(Math, 'random').mockReturnValue(random);
    expect(throttleBackoffMs(previous)).toBeCloseTo(expected, 3);
  });

  test('the first delay is capped too: tests that shorten the cap shorten the first window', () => {
    Object.assign(retryTiming, { throttleBaseDelayMs: 20, throttleFirstMaxDelayMs: 10_000, throttleMaxDelayMs: 200 });
    jest.spyOn(Math, 'random').mockReturnValue(0.999999);
    expect(throttleBackoffMs(undefined)).toBe(200);
  });
});

describe('backoffMs', () => {
  beforeEach(() => Object.assign(retryTiming, { baseDelayMs: 100, maxDelayMs: 1_000 }));
  afterEach(() => jest.restoreAllMocks());

  test.each([
    [1, 100],
    [2, 200],
    [3, 400],
    [4, 800],
    [5, 1_000],
    [10, 1_000],
  ])('waits at most the doubled base delay, capped, before attempt %i + 1 (%i ms)', (attempt, ceiling) => {
    jest.spyOn(Math, 'random').mockReturnValue(0.999_999);
    expect(backoffMs(attempt)).toBeCloseTo(ceiling, 0);
    jest.spyOn(Math, 'random').mockReturnValue(0);
    expect(backoffMs(attempt)).toBe(0);
  });
});

describe('withRetry', () => {
  beforeEach(() =>
    Object.assign(retryTiming, {
      baseDelayMs: 1,
      maxDelayMs: 2,
      throttleBaseDelayMs: 1,
      throttleMaxDelayMs: 2,
      attemptTimeoutMs: 50,
      accessDeniedWindowMs: 30,
    }),
  );

  test('abandons an attempt that never answers and retries it', async () => {
    let calls = 0;
    const result = await withRetry({ operation: 'Op' }, Deadline.fromRemaining(10_000), () =>
      ++calls === 1 ? new Promise<string>(() => undefined) : Promise.resolve('ok'),
    );
    expect(result).toBe('ok');
    expect(calls).toBe(2);
  });

  test('fails with the call, the target, the service message, the HTTP status and the attribute', async () => {
    const failure = withRetry(
      { operation: 'UpdateUser', brokerId: 'b-1', username: 'u1' },
      Deadline.fromRemaining(10_000),
      () =>
        Promise.reject(
          Object.assign(error('BadRequestException', 400), { message: 'bad groups', ErrorAttribute: 'groups' }),
        ),
    );
    await expect(failure).rejects.toThrow(CallError);
    await expect(failure).rejects.toThrow(
      'UpdateUser for user "u1" on broker b-1 failed: bad groups (BadRequestException, HTTP 400, errorAttribute "groups")',
    );
  });

  test("withholds the service's message of a call that carries a password, keeping name, status and attribute", async () => {
    const failure = await withRetry(
      { operation: 'CreateUser', brokerId: 'b-1', username: 'u1', carriesPassword: true },
      Deadline.fromRemaining(10_000),
      () =>
        Promise.reject(
          Object.assign(error('BadRequestException', 400), {
            message: 'Password SUP3R-SECRET is invalid',
            ErrorAttribute: 'password',
          }),
        ),
    ).catch((e: CallError) => e);
    expect(failure.message).toBe(
      'CreateUser for user "u1" on broker b-1 failed: the service\'s message is withheld: the request carried a ' +
        'password (BadRequestException, HTTP 400, errorAttribute "password")',
    );
    expect(failure).toMatchObject({ errorName: 'BadRequestException', httpStatus: 400, errorAttribute: 'password' });
  });

  test.each([
    ['a 5xx', error('InternalServerErrorException', 500), true],
    ['a dropped connection', error('Error', undefined, { code: 'ECONNRESET' }), true],
    ['an attempt that never answered', undefined, true],
    ['throttling', error('TooManyRequestsException', 429), false],
    ['a passing conflict', error('ConflictException', 409), false],
  ])('records whether an earlier attempt may have succeeded: after %s -> %s', async (_case, first, expected) => {
    let calls = 0;
    const failure = await withRetry({ operation: 'CreateUser' }, Deadline.fromRemaining(10_000), () => {
      calls++;
      if (calls === 1) return first ? Promise.reject(first) : new Promise<never>(() => undefined);
      return Promise.reject(error('BadRequestException', 400));
    }).catch((e: CallError) => e);
    expect(failure).toBeInstanceOf(CallError);
    expect(failure.httpStatus).toBe(400);
    expect(failure.earlierAttemptMayHaveSucceeded).toBe(expected);
  });

  test('gives up before the deadline, saying so, and keeps what earlier attempts may have done', async () => {
    const started = Date.now();
    // 5.3 s of Lambda time: 5 s are kept to answer, so the deadline is 1 s away (the minimum).
    const failure = await withRetry({ operation: 'Op' }, Deadline.fromRemaining(5_300), () =>
      Promise.reject(error('InternalServerErrorException', 500)),
    ).catch((e: CallError) => e);
    expect(Date.now() - started).toBeLessThan(1_100);
    expect(failure.message).toMatch(
      /Op {2}failed after \d+ attempts: .*(gave up to answer before the Lambda deadline|no time left)/,
    );
    expect(failure.earlierAttemptMayHaveSucceeded).toBe(true);
  });
});

describe('Deadline', () => {
  test('keeps a margin to answer, but never less than one second of work', () => {
    expect(Deadline.fromRemaining(60_000).remainingMs()).toBeGreaterThan(54_900);
    expect(Deadline.fromRemaining(60_000).remainingMs()).toBeLessThanOrEqual(55_000);
    expect(Deadline.fromRemaining(2_000).remainingMs()).toBeGreaterThan(900);
  });

  test('earlier() ends sooner, but never before now', () => {
    const deadline = Deadline.fromRemaining(60_000);
    expect(deadline.earlier(20_000).remainingMs()).toBeLessThanOrEqual(35_000);
    expect(deadline.earlier(20_000).remainingMs()).toBeGreaterThan(34_900);
    expect(deadline.earlier(600_000).remainingMs()).toBeGreaterThanOrEqual(-5);
    expect(deadline.earlier(600_000).remainingMs()).toBeLessThanOrEqual(0);
  });
});
