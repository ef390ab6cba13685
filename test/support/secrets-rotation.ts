/**
 * Secrets Manager's part in a rotation, for lifecycle tests: `RotationDriver.rotate()` does what RotateSecret and
 * the service's scheduler do with a rotation function (from the Secrets Manager documentation and AWS's rotation
 * templates):
 *
 * - it refuses to start while AWSPENDING is on a version other than AWSCURRENT's, unless the rotation resumes that
 *   very token ("a previous rotation isn't complete"), then leaves an empty version `token` labelled AWSPENDING
 *   (`FakeMq.startRotation`, switch `pendingVersionAtStart`);
 * - it invokes the function once per step, `createSecret`, `setSecret`, `testSecret`, `finishSecret`, as separate
 *   invocations with `{ SecretId: <ARN>, ClientRequestToken, Step }` and a Lambda context whose deadline is the
 *   function's Timeout (or `timeoutMs`, shortened in tests); Lambda's kill at the deadline is a failure;
 * - a failed step (or a crash) fails the attempt; the rotation is retried "multiple times" from `createSecret` with
 *   the same token, a bounded number of attempts (how often AWS retries is undocumented: `attempts`, default 3);
 * - the rotation counts as done when `finishSecret` succeeded and AWSCURRENT is on the token (LastRotatedDate).
 *
 * The function is the bundle the deployed template names (`EmulatedStack.lambdaFunction`): its own module instance
 * per stack, its environment from the template, the timing knobs from the emulator's `timings`.
 *
 * `ClientChecker` plays the clients: after every step, every simulated minute and every deploy it asserts
 * guarantee 1 of issue 10 against the broker's applied passwords (see its doc).
 */
import { randomUUID } from 'node:crypto';
import { CloudFormation, EmulatedStack, contextFor, withTimeout } from './cloudformation';
import type { CallRecord, FakeMq } from './mq-endpoint';

export type RotationStep = 'createSecret' | 'setSecret' | 'testSecret' | 'finishSecret';
export const STEPS: readonly RotationStep[] = ['createSecret', 'setSecret', 'testSecret', 'finishSecret'];

export interface RotateOptions {
  /** The rotation's token (the new version's ID); default a new UUID. Give the pending one to resume it. */
  readonly token?: string;
  /**
   * The function dies right after this step did its work, before Secrets Manager saw the answer (the steps after it
   * are not run in this attempt): the attempt fails and the retry starts again from createSecret, same token.
   * Only the first attempt crashes.
   */
  readonly crashAfter?: RotationStep;
  /** Attempts in all (1 = no retry); default the driver's `attempts`. */
  readonly attempts?: number;
  /** Runs before each retry (e.g. to let a rebooting broker come back, or to move the clock). */
  readonly beforeRetry?: (attempt: number) => Promise<void> | void;
  /** The function's deadline for this rotation's invocations (ms); default the driver's `timeoutMs`. */
  readonly timeoutMs?: number;
}

export interface StepRecord {
  readonly secretArn: string;
  readonly token: string;
  readonly attempt: number;
  readonly step: RotationStep;
  readonly outcome: 'ok' | 'failed' | 'crashed';
  readonly reason?: string;
  readonly ms: number;
  /** The AWS calls (Amazon MQ and Secrets Manager) made while the step ran. */
  readonly calls: CallRecord[];
}

export interface RotationResult {
  readonly secretArn: string;
  readonly token: string;
  readonly completed: boolean;
  readonly attempts: number;
  readonly steps: StepRecord[];
  /** RebootBroker calls the broker accepted during this rotation. */
  readonly reboots: number;
  /** Why the last attempt failed (scrubbed by the function), or why RotateSecret refused. */
  readonly error?: string;
  readonly refused?: boolean;
}

export interface DriverOptions {
  /** The Lambda deadline of every invocation (ms); default the function's Timeout. */
  readonly timeoutMs?: number;
  /** Attempts per rotation (default 3). */
  readonly attempts?: number;
  /** Runs after every step (e.g. `checker.check`). */
  readonly afterStep?: (record: StepRecord) => void;
  /** Runs when a rotation starts (after RotateSecret accepted it) and when it ends. */
  readonly onRotation?: (event: 'start' | 'end', result?: RotationResult) => void;
}

export class RotationDriver {
  readonly steps: StepRecord[] = [];
  readonly rotations: RotationResult[] = [];
  crashes = 0;

  constructor(
    private readonly cfn: CloudFormation,
    private readonly stack: EmulatedStack,
    private readonly options: DriverOptions = {},
  ) {}

  private get mq(): FakeMq {
    return this.cfn.mq;
  }

  /** Runs the immediate rotations the stack's RotationSchedules asked for (in order); returns their results. */
  async runRequested(): Promise<RotationResult[]> {
    const results: RotationResult[] = [];
    for (;;) {
      const index = this.cfn.rotationRequests.findIndex((r) => r.stack === this.stack);
      if (index < 0) return results;
      const [request] = this.cfn.rotationRequests.splice(index, 1);
      results.push(await this.rotate(request.secretArn));
    }
  }

  /** One rotation, as Secrets Manager runs it: RotateSecret's checks, the four steps, bounded retries. */
  async rotate(secretId: string, options: RotateOptions = {}): Promise<RotationResult> {
    const token = options.token ?? randomUUID();
    const rotation = this.mq.rotationOf(secretId);
    const secretArn = this.secretArn(secretId);
    if (!rotation) throw new Error(`rotation is not configured for ${secretId}`);
    const attempts = options.attempts ?? this.options.attempts ?? 3;
    const fn = this.stack.lambdaFunction(rotation.lambdaArn);
    const timeoutMs = options.timeoutMs ?? this.options.timeoutMs ?? fn.timeoutMs;
    const firstCall = this.mq.calls.length;
    const steps: StepRecord[] = [];
    let error: string | undefined;
    let attempt = 0;
    let completed = false;
    let started = false;
    const finish = (extra: Partial<RotationResult> = {}): RotationResult => {
      const result: RotationResult = {
        secretArn,
        token,
        completed,
        attempts: attempt,
        steps,
        reboots: this.mq.mqCalls(firstCall, 'RebootBroker').filter((c) => c.status === 200).length,
        error,
        ...extra,
      };
      this.rotations.push(result);
      if (started) this.options.onRotation?.('end', result);
      return result;
    };
    while (attempt < attempts && !completed) {
      attempt++;
      if (attempt > 1) await options.beforeRetry?.(attempt);
      try {
        this.mq.startRotation(secretArn, token);
      } catch (refusal) {
        error = (refusal as Error).message;
        return finish({ refused: true });
      }
      if (!started) {
        started = true;
        this.options.onRotation?.('start');
      }
      error = undefined;
      for (const step of STEPS) {
        const record = await this.invoke(fn, secretArn, token, step, attempt, timeoutMs);
        const crashed = record.outcome === 'ok' && attempt === 1 && options.crashAfter === step;
        const final: StepRecord = crashed ? { ...record, outcome: 'crashed', reason: 'crashed (test)' } : record;
        if (crashed) this.crashes++;
        steps.push(final);
        this.steps.push(final);
        this.options.afterStep?.(final);
        if (final.outcome !== 'ok') {
          error = final.reason;
          break;
        }
        if (step === 'finishSecret') {
          const current = this.mq.secretVersionWith(secretArn, 'AWSCURRENT');
          if (current?.versionId === token) completed = true;
          else error = 'finishSecret answered, but AWSCURRENT is not on the rotation token';
        }
      }
    }
    if (completed) this.mq.rotationCompleted(secretArn);
    return finish();
  }

  private async invoke(
    fn: ReturnType<EmulatedStack['lambdaFunction']>,
    secretArn: string,
    token: string,
    step: RotationStep,
    attempt: number,
    timeoutMs: number,
  ): Promise<StepRecord> {
    const event = { SecretId: secretArn, ClientRequestToken: token, Step: step };
    const context = {
      ...contextFor(timeoutMs),
      functionName: fn.arn.split(':').pop(),
      invokedFunctionArn: fn.arn,
      awsRequestId: randomUUID(),
    };
    const from = this.mq.calls.length;
    const started = Date.now();
    const base = { secretArn, token, attempt, step };
    try {
      const response = await this.cfn.runAs(fn.env, () => withTimeout(fn.handler(event, context), timeoutMs));
      this.cfn.transcript.push(JSON.stringify(response ?? null));
      return { ...base, outcome: 'ok', ms: Date.now() - started, calls: this.mq.calls.slice(from) };
    } catch (err) {
      const reason = err instanceof Error ? err.message : String(err);
      this.cfn.transcript.push(reason);
      return { ...base, outcome: 'failed', reason, ms: Date.now() - started, calls: this.mq.calls.slice(from) };
    }
  }

  private secretArn(secretId: string): string {
    const arn = this.mq.secretArnOf(secretId);
    if (!arn) throw new Error(`no secret ${secretId}`);
    return arn;
  }
}

export interface Credentials {
  readonly username: string;
  readonly password: string;
}

/**
 * The clients of one rotated secret. Guarantee 1 of issue 10, checked against the broker's APPLIED passwords
 * (`FakeMq.authenticates`):
 *
 * - the credentials labelled AWSCURRENT authenticate, at every check once armed (armed the first time they do:
 *   before that the users of the first deploy are still pending, as every MqUser is until a reboot or window);
 * - the credentials a rotation took AWSCURRENT away from (the content before it, not the AWSPREVIOUS label, which
 *   a rotation that holds points at identical content) keep authenticating until the broker first applies pending
 *   changes (a window, or a reboot) after the NEXT rotation started: with MAINTENANCE_WINDOW "until the window after
 *   the next rotation", with REBOOT "until the next rotation's reboot";
 * - the versions labelled AWSCURRENT and AWSPENDING carry the client's keys only (never `stagedFor`), and
 *   AWSCURRENT names one of the two users of the pair.
 *
 * Violations are collected (with where and when), not thrown, so that a scenario runs to its end and reports all.
 */
export class ClientChecker {
  assertions = 0;
  readonly violations: string[] = [];
  armedAt?: number;
  rotationsStarted = 0;
  rotationsCompleted = 0;
  /** Credentials superseded by a rotation, still owed to clients. */
  private readonly owed: Array<{ credentials: Credentials; rotation: number }> = [];
  /** Owed credentials whose protection ended (after the next rotation started, a window or reboot applied). */
  released = 0;
  private currentAtStart?: Credentials;
  private lastViolation?: string;
  private repeats = 0;
  private readonly disposers: Array<() => void> = [];

  constructor(
    private readonly mq: FakeMq,
    readonly secretArn: string,
    readonly brokerId: string,
    private readonly pair: readonly [string, string],
  ) {
    this.disposers.push(
      mq.onMinute(() => this.check('minute')),
      mq.onApply((brokerId) => {
        if (brokerId !== this.brokerId) return;
        for (const owed of [...this.owed]) {
          if (this.rotationsStarted > owed.rotation) {
            this.owed.splice(this.owed.indexOf(owed), 1);
            this.released++;
          }
        }
      }),
    );
  }

  /** Stops listening to the clock and the broker. */
  dispose(): void {
    for (const dispose of this.disposers.splice(0)) dispose();
  }

  /** The driver's `onRotation`. */
  onRotation = (event: 'start' | 'end', result?: RotationResult): void => {
    if (result && result.secretArn !== this.secretArn) return;
    if (event === 'start') {
      this.rotationsStarted++;
      this.currentAtStart = this.current();
      return;
    }
    if (!result?.completed) return;
    this.rotationsCompleted++;
    const before = this.currentAtStart;
    const after = this.current();
    if (before && after && (before.username !== after.username || before.password !== after.password)) {
      this.owed.push({ credentials: before, rotation: this.rotationsStarted });
    }
  };

  /** The credentials clients read now (GetSecretValue, AWSCURRENT). */
  current(): Credentials | undefined {
    const value = this.mq.secretValue(this.secretArn);
    if (value === undefined) return undefined;
    const parsed = JSON.parse(value);
    return { username: parsed.username, password: parsed.password };
  }

  /**
   * Every client has read the secret again (as README asks, within one interval): nothing superseded is owed any
   * more. For a scenario that ends rotation (no next rotation would ever release them); AWSCURRENT is still checked.
   */
  clientsRefreshed(): void {
    this.released += this.owed.splice(0).length;
  }

  /** Credentials still owed to clients that have not refreshed (for assertions). */
  owedCredentials(): Credentials[] {
    return this.owed.map((o) => o.credentials);
  }

  check(where: string): void {
    const at = new Date(this.mq.now()).toISOString();
    const fail = (what: string) => {
      // The same violation minute after minute is one entry, with its first time and a count.
      const last = this.violations[this.violations.length - 1];
      const repeated = last !== undefined && this.lastViolation === what;
      this.lastViolation = what;
      if (!repeated) this.violations.push(`${at} ${where}: ${what}`);
      else
        this.violations[this.violations.length - 1] = last.replace(
          /( \(\d+ checks\))?$/,
          ` (${++this.repeats + 1} checks)`,
        );
      if (!repeated) this.repeats = 0;
    };
    const versions = this.mq.secretVersions(this.secretArn);
    if (versions.length === 0) return; // destroyed
    this.assertions++;
    for (const stage of ['AWSCURRENT', 'AWSPENDING']) {
      const version = versions.find((v) => v.stages.includes(stage));
      if (version?.value === undefined) continue;
      const keys = Object.keys(JSON.parse(version.value));
      if (keys.includes('stagedFor')) fail(`${stage} carries stagedFor`);
    }
    const current = this.current();
    if (!current || !this.pair.includes(current.username)) {
      fail(`AWSCURRENT names ${current?.username}, not one of ${this.pair.join(', ')}`);
      return;
    }
    const ok = this.mq.authenticates(this.brokerId, current.username, current.password);
    if (this.armedAt === undefined) {
      if (ok) this.armedAt = this.mq.now();
      return;
    }
    if (!ok) fail(`AWSCURRENT (${current.username}) is refused by the broker`);
    for (const owed of this.owed) {
      const { username, password } = owed.credentials;
      if (!this.mq.authenticates(this.brokerId, username, password))
        fail(`the credentials of ${username} that rotation ${owed.rotation} replaced are refused before they may be`);
    }
  }
}
