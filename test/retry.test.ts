import { CallError, Deadline, classify, retryTiming, withRetry } from '../lambda/retry';

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

describe('withRetry', () => {
  beforeEach(() =>
    Object.assign(retryTiming, { baseDelayMs: 1, maxDelayMs: 2, attemptTimeoutMs: 50, accessDeniedWindowMs: 30 }),
  );

  test('abandons an attempt that never answers and retries it', async () => {
    let calls = 0;
    const result = await withRetry({ operation: 'Op' }, Deadline.fromRemaining(10_000), () =>
      ++calls === 1 ? new Promise<string>(() => undefined) : Promise.resolve('ok'),
    );
    expect(result).toBe('ok');
    expect(calls).toBe(2);
  });

  test('fails with the call, the target and the service message', async () => {
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
      'UpdateUser for user "u1" on broker b-1 failed: bad groups (BadRequestException, errorAttribute "groups")',
    );
  });
});
