/**
 * The Secrets Manager rotation function of MqUser: alternating users (`<username>` and `<username>_clone`), and
 * `AWSCURRENT` only ever on credentials the broker has applied. Amazon MQ applies a new password only at the
 * broker's next reboot or maintenance window, so:
 *
 * - `MAINTENANCE_WINDOW` (never reboots): a rotation stages a new password for the user clients are not using
 *   (`MQUSER_STAGED`, sent to the broker in setSecret: `MQUSER_SENT`) and holds `AWSCURRENT`'s value; a later
 *   rotation that finds the staged password applied (a window passed) promotes it.
 * - `REBOOT`: one rotation sets the other user's password, reboots the broker at most once (`MQUSER_REBOOTED`),
 *   and promotes it once the broker is RUNNING with it applied.
 *
 * Each of the four steps is a separate invocation, idempotent and safe to resume after a crash between any two
 * calls. No secret value ever reaches a log line or an error.
 */
import { createHash, randomInt } from 'node:crypto';
import { STACK_ID_ENV } from '../../lib/private/env';
import {
  ALTERNATE_SUFFIX,
  ROTATION_BINDING_KEY,
  ROTATION_TAGS,
  USERNAME_PATTERN,
  passwordProblem,
  type RotationBinding,
} from '../../lib/private/rules';
import type { HandlerContext } from '../shared/event';
import { failure, log, registerSensitive, resetSensitive, warn } from '../shared/log';
import { CallError, Deadline, sleep } from '../shared/retry';
import { RotationAws, errorNamed, type SecretDescription } from './aws';
import { parseJsonObject } from '../shared/password';
import { parsePhysicalResourceId } from '../shared/properties';
import { LABELS } from '../shared/secret-labels';
import { stompEndpoints, stompSignIn } from './sign-in';

/** The sign-in options of `verifySignIn`, exported so that tests can trust their broker and shorten the wait. */
export { signInOptions } from './sign-in';

/** The timings of every call's retries: exported so that tests can shorten them in the bundle. */
export { retryTiming } from '../shared/retry';

/** Timings, exported so tests and the simulator can shorten them; production code never changes them. */
export const rotationTiming = {
  /** How often testSecret looks at a rebooting broker. */
  pollMs: 15_000,
  /**
   * RebootBroker is asynchronous: right after it the broker may still say RUNNING with the change pending. Only
   * after this long is "RUNNING, rebooted by us, and still pending" a failure (never a reason to reboot again).
   */
  settleMs: 60_000,
};

export interface RotationEvent {
  readonly SecretId: string;
  readonly ClientRequestToken: string;
  readonly Step: string;
}

/** The tags `addRotation` puts on the secret (one definition, shared with the construct). */
export { ROTATION_TAGS };

/** Secrets Manager's staging labels and our own. */
export { LABELS };

/** The suffix of the alternate user (AWS's alternating-users convention), shared with the construct. */
export { ALTERNATE_SUFFIX };

export type RotationMode = 'MAINTENANCE_WINDOW' | 'REBOOT';
const MODES: readonly string[] = ['MAINTENANCE_WINDOW', 'REBOOT'];
const STEPS = ['createSecret', 'setSecret', 'testSecret', 'finishSecret'] as const;
type Step = (typeof STEPS)[number];

export async function handler(event: RotationEvent, context: HandlerContext): Promise<void> {
  resetSensitive();
  try {
    const { secretId, token, step } = parseEvent(event);
    const aws = new RotationAws(Deadline.fromRemaining(context.getRemainingTimeInMillis()));
    const secret = await aws.describeSecret(secretId);
    const config = await boundRotation(aws, secret);
    const rotation = new Rotation(aws, secret, token, config);
    if (!rotation.validate(step)) return;
    log(`${step}: started`, rotation.fields());
    await STEP_HANDLERS[rotation.mode][step](rotation);
  } catch (error) {
    throw failure(error);
  }
}

function parseEvent(event: RotationEvent): { secretId: string; token: string; step: Step } {
  const { SecretId: secretId, ClientRequestToken: token, Step: step } = event ?? ({} as RotationEvent);
  if (typeof secretId !== 'string' || secretId === '') throw new Error('the rotation event has no SecretId');
  if (typeof token !== 'string' || token === '') throw new Error('the rotation event has no ClientRequestToken');
  if (!(STEPS as readonly string[]).includes(step)) {
    throw new Error(`unknown rotation Step ${JSON.stringify(step)}: expected one of ${STEPS.join(', ')}`);
  }
  return { secretId, token, step: step as Step };
}

/**
 * What the function may do with `secret`, as its own stack declares it; anything else is refused before any user,
 * broker or secret value is touched. The function serves its stack only, and one without its stack ID serves none
 * (fail closed). The secret must be a resource of that stack (ListStackResources), and its resource's `Metadata`
 * (DescribeStackResource; only a deploy changes it) names the user and alternate `Custom::MqUser` resources and the
 * mode, bound at synth by `addRotation`. The broker and the usernames come from those resources' physical IDs: never
 * from tags (anyone allowed to tag the secret could set them) nor from the secret's value (anyone allowed to write
 * it could name another user): the value's username must be one of the pair.
 */
async function boundRotation(aws: RotationAws, secret: SecretDescription): Promise<RotationConfig> {
  const own = process.env[STACK_ID_ENV];
  const refuse = (why: string) => new Error(`refused to rotate secret ${secret.arn}: ${why}`);
  if (!own) throw refuse(`this function has no ${STACK_ID_ENV} in its environment, so it serves no stack`);
  // The tag can only refuse, never redirect: it mirrors the condition of the function's grant on secrets.
  const tagged = secret.tags.get(ROTATION_TAGS.stackId);
  if (tagged !== own) {
    throw refuse(
      `its tag ${ROTATION_TAGS.stackId} is ${tagged === undefined ? 'missing' : JSON.stringify(tagged)}; ` +
        `this function serves only stack ${own}`,
    );
  }
  const resources = await aws.stackResources(own);
  const resource = resources.find((r) => r.type === 'AWS::SecretsManager::Secret' && r.physicalId === secret.arn);
  if (!resource) throw refuse(`it is not a secret of stack ${own}`);
  const binding = parseBinding((await aws.stackResource(own, resource.logicalId)).metadata);
  if (!binding) {
    throw refuse(
      `its resource ${resource.logicalId} in stack ${own} declares no rotation (Metadata "${ROTATION_BINDING_KEY}" ` +
        'with the users, the mode and the interval): deploy the stack with this version of cdk-mq-user',
    );
  }
  const userOf = (logicalId: string) => {
    const r = resources.find((candidate) => candidate.logicalId === logicalId && candidate.type === 'Custom::MqUser');
    return r ? parsePhysicalResourceId(r.physicalId) : undefined;
  };
  const user = userOf(binding.User);
  const alternate = userOf(binding.Alternate);
  if (
    !user ||
    !alternate ||
    alternate.brokerId !== user.brokerId ||
    alternate.username !== `${user.username}${ALTERNATE_SUFFIX}`
  ) {
    throw refuse(
      `its declared users ${binding.User} and ${binding.Alternate} are not a user and its alternate ` +
        `(<username>${ALTERNATE_SUFFIX}) on one broker in stack ${own}`,
    );
  }
  const current = await aws.secretString(secret.arn, { versionStage: LABELS.current });
  const username = current === undefined ? undefined : parseJsonObject(current)?.username;
  // A secret string without a username fails later, with a message that names the key.
  if (typeof username === 'string' && username !== user.username && username !== alternate.username) {
    throw refuse(
      `its current credentials name user ${JSON.stringify(username)}, which is neither ${user.username} nor ` +
        `${alternate.username}, the pair declared with it`,
    );
  }
  return {
    brokerId: user.brokerId,
    mode: binding.ApplyBy as RotationMode,
    intervalMs: binding.IntervalSeconds * 1000,
    verifySignIn: binding.VerifySignIn === true,
    lastRotatedAt: secret.lastRotatedAt,
  };
}

/** The binding in a resource's metadata, or `undefined` when there is none or it does not hold one. */
export function parseBinding(metadata: string | undefined): RotationBinding | undefined {
  const json = metadata === undefined ? undefined : parseJsonObject(metadata);
  const binding = json?.[ROTATION_BINDING_KEY] as Partial<RotationBinding> | undefined;
  if (
    typeof binding !== 'object' ||
    binding === null ||
    typeof binding.User !== 'string' ||
    typeof binding.Alternate !== 'string' ||
    !MODES.includes(String(binding.ApplyBy)) ||
    !(Number(binding.IntervalSeconds) > 0)
  ) {
    return undefined;
  }
  return {
    User: binding.User,
    Alternate: binding.Alternate,
    ApplyBy: String(binding.ApplyBy),
    IntervalSeconds: Number(binding.IntervalSeconds),
    // Metadata keeps JSON types, but a hand-written template may say "true".
    VerifySignIn: binding.VerifySignIn === true || String(binding.VerifySignIn) === 'true',
  };
}

interface RotationConfig {
  readonly brokerId: string;
  readonly mode: RotationMode;
  /** The interval declared with the secret. */
  readonly intervalMs: number;
  /** `verifySignIn`, as declared with the secret. */
  readonly verifySignIn: boolean;
  /** When Secrets Manager last completed a rotation of the secret (ms since the epoch), if ever. */
  readonly lastRotatedAt?: number;
}

/**
 * How soon after the last completed rotation a REBOOT rotation may start: the declared interval, less the day
 * Secrets Manager's rotation window may start early (at most half the interval). Sooner, it is refused: RotateSecret
 * must not become a reboot button.
 */
export function earliestRebootRotation(lastRotatedAt: number | undefined, intervalMs: number): number | undefined {
  if (lastRotatedAt === undefined) return undefined;
  return lastRotatedAt + intervalMs - Math.min(24 * 3_600_000, intervalMs / 2);
}

type SignInVerdict = { verdict: 'accepted' } | { verdict: 'refused' | 'unreachable'; reason: string };

/** A version's secret JSON, parsed; its password is registered as sensitive. */
interface SecretJson {
  readonly versionId: string;
  readonly text: string;
  readonly value: Record<string, unknown>;
  readonly username: string;
  readonly password: string;
  readonly stagedFor?: string;
}

/** The JSON object without our own key: what clients see. */
function clientKeys(secret: SecretJson): Record<string, unknown> {
  const { stagedFor: _stagedFor, ...rest } = secret.value;
  return rest;
}

/** "The other user": the one of the pair that is not `username`. */
export function otherUser(username: string): string {
  return username.endsWith(ALTERNATE_SUFFIX)
    ? username.slice(0, -ALTERNATE_SUFFIX.length)
    : `${username}${ALTERNATE_SUFFIX}`;
}

const ALPHABET = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789';

/** 32 letters and digits (Amazon MQ refuses `, : =`), registered as sensitive before anything else sees it. */
export function newPassword(): string {
  for (;;) {
    let password = '';
    for (let i = 0; i < 32; i++) password += ALPHABET[randomInt(ALPHABET.length)];
    registerSensitive(password);
    if (passwordProblem(password) === undefined) return password;
  }
}

/** The version ID of the version a rotation stages (deterministic: a repeated createSecret reuses it). */
export function stagedVersionId(token: string): string {
  const hex = createHash('sha256').update(`mquser-staged:${token}`).digest('hex');
  return [hex.slice(0, 8), hex.slice(8, 12), hex.slice(12, 16), hex.slice(16, 20), hex.slice(20, 32)].join('-');
}

class Rotation {
  readonly arn: string;
  readonly brokerId: string;
  readonly mode: RotationMode;
  readonly config: RotationConfig;
  private readonly rotationEnabled: boolean;
  /** `verifySignIn`: new credentials are promoted only after the broker accepted them in a STOMP sign-in. */
  readonly verifySignIn: boolean;
  /** The secret's labelled versions, kept in step with our own writes during this invocation. */
  private readonly versions: Map<string, Set<string>>;

  constructor(
    readonly aws: RotationAws,
    secret: SecretDescription,
    readonly token: string,
    config: RotationConfig,
  ) {
    this.arn = secret.arn;
    this.brokerId = config.brokerId;
    this.mode = config.mode;
    this.config = config;
    this.versions = secret.versions;
    this.rotationEnabled = secret.rotationEnabled;
    this.verifySignIn = config.verifySignIn;
  }

  /**
   * Signs in to the broker as `username` (STOMP over TLS, each `stomp+ssl://` endpoint DescribeBroker reports, until
   * one answers). `unreachable`: no endpoint answered; nothing is known about the credentials.
   */
  async signIn(username: string, password: string): Promise<SignInVerdict> {
    const endpoints = stompEndpoints(await this.aws.brokerEndpoints(this.brokerId));
    if (endpoints.length === 0) {
      return { verdict: 'unreachable', reason: `broker ${this.brokerId} reports no stomp+ssl:// endpoint` };
    }
    const problems: string[] = [];
    for (const endpoint of endpoints) {
      try {
        const answer = await stompSignIn(endpoint, username, password);
        const verdict: SignInVerdict = answer.accepted
          ? { verdict: 'accepted' }
          : { verdict: 'refused', reason: answer.reason || 'ERROR frame without a message' };
        log(`signed in to the broker as the other user: ${verdict.verdict}`, this.fields({ username }));
        return verdict;
      } catch (error) {
        problems.push((error as Error).message);
      }
    }
    return { verdict: 'unreachable', reason: problems.join('; ') };
  }

  /** `verifySignIn`: fails unless the broker accepts the credentials (nothing is promoted then). */
  async requireSignIn(username: string, password: string): Promise<void> {
    if (!this.verifySignIn) return;
    const result = await this.signIn(username, password);
    if (result.verdict === 'accepted') return;
    throw new Error(
      `verifySignIn: the broker ${result.verdict === 'refused' ? 'refused' : 'could not be reached with'} the new ` +
        `credentials of user "${username}" on broker ${this.brokerId} (${result.reason}): not promoting them; ` +
        'AWSCURRENT is unchanged',
    );
  }

  fields(extra: Record<string, string | undefined> = {}) {
    return { secretArn: this.arn, token: this.token, brokerId: this.brokerId, mode: this.mode, ...extra };
  }

  /**
   * The checks of AWS's rotation templates: rotation is enabled, T is a version of the secret, T is not already
   * AWSCURRENT (then there is nothing to do; finishSecret still tidies up), and T carries AWSPENDING.
   * `false`: nothing to do.
   */
  validate(step: Step): boolean {
    if (!this.rotationEnabled) throw new Error(`secret ${this.arn} is not enabled for rotation`);
    const stages = this.versions.get(this.token);
    if (!stages) throw new Error(`version ${this.token} has no stage for rotation of secret ${this.arn}`);
    if (stages.has(LABELS.current)) {
      if (step === 'finishSecret') return true;
      log(`${step}: version ${this.token} is already AWSCURRENT: nothing to do`, this.fields());
      return false;
    }
    if (!stages.has(LABELS.pending)) {
      throw new Error(`version ${this.token} is not set as AWSPENDING for rotation of secret ${this.arn}`);
    }
    return true;
  }

  holder(label: string): string | undefined {
    for (const [id, stages] of this.versions) if (stages.has(label)) return id;
    return undefined;
  }

  has(versionId: string, label: string): boolean {
    return this.versions.get(versionId)?.has(label) ?? false;
  }

  /** Records labels moved to `versionId` by our own write. */
  private attach(versionId: string, labels: string[]): void {
    for (const label of labels) for (const stages of this.versions.values()) stages.delete(label);
    const stages = this.versions.get(versionId) ?? new Set<string>();
    for (const label of labels) stages.add(label);
    this.versions.set(versionId, stages);
  }

  /** Moves `label` to `versionId` (a no-op where it already is). */
  async moveLabel(label: string, versionId: string): Promise<void> {
    const from = this.holder(label);
    if (from === versionId) return;
    await this.aws.updateVersionStage(this.arn, label, { moveTo: versionId, removeFrom: from });
    this.attach(versionId, [label]);
  }

  /** Removes `label` from `versionId` if it is there. */
  async removeLabel(label: string, versionId: string): Promise<void> {
    if (!this.has(versionId, label)) return;
    await this.aws.updateVersionStage(this.arn, label, { removeFrom: versionId });
    this.versions.get(versionId)?.delete(label);
  }

  async put(versionId: string, secretString: string, labels: string[]): Promise<void> {
    await this.aws.putSecretValue(this.arn, versionId, secretString, labels);
    this.attach(versionId, labels);
  }

  /** Whether version T already has a value (createSecret's "T exists"). */
  async pendingExists(): Promise<boolean> {
    return (
      (await this.aws.secretString(this.arn, { versionId: this.token, versionStage: LABELS.pending })) !== undefined
    );
  }

  /** A version's JSON; `stage` also requires that label on it. */
  async read(versionId: string, stage?: string): Promise<SecretJson> {
    const where = `version ${versionId} of secret ${this.arn}`;
    const text = await this.aws.secretString(this.arn, { versionId, versionStage: stage });
    if (text === undefined) throw new Error(`${where} has no value${stage ? ` labelled ${stage}` : ''}`);
    return parseSecretJson(text, versionId, where);
  }

  async current(): Promise<SecretJson> {
    const id = this.holder(LABELS.current);
    if (!id) throw new Error(`secret ${this.arn} has no AWSCURRENT version`);
    const current = await this.read(id, LABELS.current);
    checkUsername(current.username, `key "username" of ${id} of secret ${this.arn}`);
    checkUsername(otherUser(current.username), `the alternate of key "username" of ${id} of secret ${this.arn}`);
    return current;
  }

  /**
   * Checks that the pending version changes only the other user: `hold` when it is AWSCURRENT's credentials
   * unchanged; an error when it would change the password of the user clients are using.
   */
  classifyPending(pending: SecretJson, current: SecretJson): 'hold' | 'other' {
    if (pending.username === current.username) {
      if (pending.password === current.password) return 'hold';
      throw new Error(
        `version ${pending.versionId} of secret ${this.arn} changes the password of "${current.username}", the user ` +
          'in AWSCURRENT: refused (clients would hold a password the broker has not applied)',
      );
    }
    if (pending.username !== otherUser(current.username)) {
      throw new Error(
        `version ${pending.versionId} of secret ${this.arn} is for user "${pending.username}", which is not the ` +
          `alternate of "${current.username}" in AWSCURRENT`,
      );
    }
    return 'other';
  }

  /** UpdateUser of the other user with its whole state (pending values first, else applied) and `password`. */
  async sendPassword(username: string, password: string): Promise<void> {
    const state = await this.aws.describeUser(this.brokerId, username);
    if (!state) {
      throw new Error(
        `user "${username}" does not exist on broker ${this.brokerId}: the rotation of secret ${this.arn} needs both ` +
          'users that MqUser declares (deploy the stack)',
      );
    }
    await this.aws.updateUser(this.brokerId, username, { ...state, password });
    log('sent the new password of the other user to the broker', this.fields({ username }));
  }

  /** Fails unless the user exists on the broker with no pending change (its password is applied). */
  async requireApplied(username: string): Promise<void> {
    const state = await this.aws.describeUser(this.brokerId, username);
    if (!state) throw new Error(`user "${username}" does not exist on broker ${this.brokerId}`);
    if (state.pendingChange) {
      throw new Error(
        `user "${username}" on broker ${this.brokerId} still has a pending ${state.pendingChange}: its new password ` +
          'is not applied yet',
      );
    }
    log('the broker has applied the user', this.fields({ username }));
  }
}

function parseSecretJson(text: string, versionId: string, where: string): SecretJson {
  registerSensitive(text);
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch {
    throw new Error(`${where} is not JSON: a rotated secret is {"username": ..., "password": ...}`); // never quote it
  }
  if (typeof value !== 'object' || value === null || Array.isArray(value)) {
    throw new Error(`${where} is not a JSON object: a rotated secret is {"username": ..., "password": ...}`);
  }
  const json = value as Record<string, unknown>;
  for (const key of ['username', 'password']) {
    if (typeof json[key] !== 'string' || json[key] === '') {
      throw new Error(`${where} has no string key "${key}"`);
    }
  }
  const password = json.password as string;
  registerSensitive(password);
  if (json.stagedFor !== undefined && typeof json.stagedFor !== 'string') {
    throw new Error(`${where}: key "stagedFor" is not a string`);
  }
  return {
    versionId,
    text,
    value: json,
    username: json.username as string,
    password,
    stagedFor: json.stagedFor as string | undefined,
  };
}

function checkUsername(username: string, where: string): void {
  if (!USERNAME_PATTERN.test(username)) {
    throw new Error(`${where} is not a username Amazon MQ accepts (2 to 100 characters of A-Z a-z 0-9 - . _ ~)`);
  }
}

/** AWSCURRENT's value for a hold: unchanged, unless it carries our own key (never on a client's version). */
function holdValue(current: SecretJson): string {
  return current.stagedFor === undefined ? current.text : JSON.stringify(clientKeys(current));
}

// ---------------------------------------------------------------------------------------------------------------
// MAINTENANCE_WINDOW: stage in one rotation, promote in the next; never reboots.

async function createMaintenance(r: Rotation): Promise<void> {
  if (await r.pendingExists()) {
    log('createSecret: the pending version exists already', r.fields());
    return;
  }
  const current = await r.current();
  const other = otherUser(current.username);
  let stagedId = r.holder(LABELS.staged);
  if (stagedId !== undefined) {
    const staged = await r.read(stagedId);
    const ours = staged.username === other && staged.stagedFor === r.brokerId;
    if (ours && r.has(stagedId, LABELS.sent)) {
      const state = await describeOrRefused(r, other);
      if (state === 'REFUSED') {
        warn(
          'createSecret: the broker refuses user calls (a maintenance window or a reboot in progress): cannot tell ' +
            'whether the staged password is applied: holding',
          r.fields({ username: other, stagedId }),
        );
      } else if (state && !state.pendingChange) {
        const verdict = r.verifySignIn ? await r.signIn(other, staged.password) : { verdict: 'accepted' as const };
        if (verdict.verdict === 'accepted') {
          const promoted = { ...clientKeys(current), ...clientKeys(staged) };
          await r.put(r.token, JSON.stringify(promoted), [LABELS.pending]);
          log('createSecret: the staged password is applied: promoting it', r.fields({ username: other, stagedId }));
          return;
        }
        if (verdict.verdict === 'refused') {
          // The labels said the user holds this password; the broker says otherwise: stage a new one for it.
          warn(
            'createSecret: verifySignIn: the broker refuses the staged password of the other user although it has ' +
              'no pending change: dropping it and staging a new one (holding)',
            r.fields({ username: other, stagedId, reason: verdict.reason }),
          );
          await r.removeLabel(LABELS.sent, stagedId);
          await r.removeLabel(LABELS.staged, stagedId);
          stagedId = undefined;
        } else {
          warn(
            'createSecret: verifySignIn: could not reach the broker to sign in with the staged password: holding',
            r.fields({ username: other, stagedId, reason: verdict.reason }),
          );
        }
      }
      if (state === undefined) {
        // Holding forever would look like a successful rotation: say loudly that the user is gone.
        warn(
          'createSecret: the other user does not exist on the broker: holding, and no rotation can promote until ' +
            'a deploy creates it again (see "Troubleshooting" in the cdk-mq-user README)',
          r.fields({ username: other, stagedId }),
        );
      } else if (state !== 'REFUSED' && state.pendingChange) {
        log(
          `createSecret: the staged password is not applied yet (the user is pending ${state.pendingChange}): holding`,
          r.fields({ stagedId }),
        );
      }
    } else if (!ours) {
      log('createSecret: dropping a staged version for another broker or user', r.fields({ stagedId }));
      await r.removeLabel(LABELS.sent, stagedId);
      await r.removeLabel(LABELS.staged, stagedId);
      stagedId = undefined;
    } else {
      log('createSecret: the staged password is not sent yet: holding', r.fields({ stagedId }));
    }
  }
  if (stagedId === undefined) await stage(r, current, other);
  await r.put(r.token, holdValue(current), [LABELS.pending]);
  log('createSecret: holding AWSCURRENT', r.fields({ username: current.username }));
}

async function stage(r: Rotation, current: SecretJson, other: string): Promise<void> {
  const versionId = stagedVersionId(r.token);
  const value = { ...clientKeys(current), username: other, password: newPassword(), stagedFor: r.brokerId };
  try {
    await r.put(versionId, JSON.stringify(value), [LABELS.staged]);
    log('createSecret: staged a new password for the other user', r.fields({ username: other, stagedId: versionId }));
  } catch (error) {
    // Only an earlier attempt of this rotation can have created this version: it staged it then.
    if (!errorNamed(error, 'ResourceExistsException')) throw error;
    log('createSecret: an earlier attempt staged this version already', r.fields({ stagedId: versionId }));
  }
}

async function setMaintenance(r: Rotation): Promise<void> {
  const stagedId = r.holder(LABELS.staged);
  if (stagedId === undefined) {
    log('setSecret: nothing is staged', r.fields());
    return;
  }
  if (r.has(stagedId, LABELS.sent)) {
    log('setSecret: the staged password was sent already', r.fields({ stagedId }));
    return;
  }
  const current = await r.current();
  const other = otherUser(current.username);
  const staged = await r.read(stagedId);
  if (staged.username !== other || staged.stagedFor !== r.brokerId) {
    // createSecret drops such a version; never send a password to a user or broker it was not staged for.
    warn('setSecret: the staged version is for another broker or user: not sending it', r.fields({ stagedId }));
    return;
  }
  try {
    await r.sendPassword(other, staged.password);
  } catch (error) {
    if (!refusedByBroker(error)) throw error;
    // Nothing is labelled sent, so nothing can be promoted: the next rotation holds and sends it again.
    warn(
      'setSecret: the broker refuses user calls (a maintenance window or a reboot in progress): the staged password ' +
        'is not sent; this rotation holds, and the next one sends it',
      r.fields({ username: other, stagedId, reason: (error as Error).message }),
    );
    return;
  }
  await r.moveLabel(LABELS.sent, stagedId);
}

/**
 * Amazon MQ answers user calls with 400 while the broker reboots (a maintenance window, someone's reboot). The
 * MAINTENANCE_WINDOW function has no `mq:DescribeBroker` (least privilege) to tell that from another 400, and needs
 * none: its calls are well formed, and every step that meets a refusal holds, which is always safe.
 */
function refusedByBroker(error: unknown): boolean {
  if (!(error instanceof CallError && error.httpStatus === 400)) return false;
  // A 400 that names a field of the request is a bad request: it never passes, and must fail loudly.
  return !REQUEST_FIELDS.includes((error.errorAttribute ?? '').toLowerCase());
}

const REQUEST_FIELDS = ['password', 'username', 'groups', 'consoleaccess', 'replicationuser'];

async function describeOrRefused(r: Rotation, username: string) {
  try {
    return await r.aws.describeUser(r.brokerId, username);
  } catch (error) {
    if (refusedByBroker(error)) return 'REFUSED' as const;
    throw error;
  }
}

async function testMaintenance(r: Rotation): Promise<void> {
  const pending = await r.read(r.token, LABELS.pending);
  const current = await r.current();
  if (r.classifyPending(pending, current) === 'hold') {
    log('testSecret: holding AWSCURRENT: nothing to test', r.fields());
    return;
  }
  await r.requireApplied(pending.username);
  await r.requireSignIn(pending.username, pending.password);
}

async function finishMaintenance(r: Rotation): Promise<void> {
  await promote(r);
  const stagedId = r.holder(LABELS.staged);
  if (stagedId === undefined) return;
  const staged = await r.read(stagedId);
  const final = await r.read(r.token);
  if (staged.username === final.username && staged.password === final.password) {
    await r.removeLabel(LABELS.sent, stagedId);
    await r.removeLabel(LABELS.staged, stagedId);
    log('finishSecret: the staged password is promoted: unstaged it', r.fields({ stagedId }));
  }
}

/** Moves AWSCURRENT to T (Secrets Manager moves AWSPREVIOUS along); a no-op if T is AWSCURRENT already. */
async function promote(r: Rotation): Promise<void> {
  if (r.has(r.token, LABELS.current)) {
    log('finishSecret: the version is AWSCURRENT already', r.fields());
    return;
  }
  await r.moveLabel(LABELS.current, r.token);
  log('finishSecret: moved AWSCURRENT to the new version', r.fields());
}

// ---------------------------------------------------------------------------------------------------------------
// REBOOT: one rotation, one reboot at most.

async function createReboot(r: Rotation): Promise<void> {
  if (await r.pendingExists()) {
    log('createSecret: the pending version exists already', r.fields());
    return;
  }
  // A new rotation: refused when it starts sooner than the declared interval allows (nothing staged, no reboot).
  const earliest = earliestRebootRotation(r.config.lastRotatedAt, r.config.intervalMs);
  if (earliest !== undefined && Date.now() < earliest) {
    throw new Error(
      `refused to start a REBOOT rotation of secret ${r.arn}: it was last rotated at ` +
        `${new Date(r.config.lastRotatedAt!).toISOString()}, and a rotation that reboots broker ${r.brokerId} may ` +
        `start again from ${new Date(earliest).toISOString()} (its interval is ${r.config.intervalMs / 3_600_000} hours)`,
    );
  }
  const current = await r.current();
  const other = otherUser(current.username);
  const value = { ...clientKeys(current), username: other, password: newPassword() };
  await r.put(r.token, JSON.stringify(value), [LABELS.pending]);
  log('createSecret: created the pending version for the other user', r.fields({ username: other }));
}

async function setReboot(r: Rotation): Promise<void> {
  if (r.has(r.token, LABELS.sent)) {
    log('setSecret: the password was sent already', r.fields());
    return;
  }
  const pending = await r.read(r.token, LABELS.pending);
  const current = await r.current();
  if (r.classifyPending(pending, current) === 'hold') {
    log('setSecret: the pending version holds AWSCURRENT: nothing to set', r.fields());
    return;
  }
  await r.sendPassword(pending.username, pending.password);
  await r.moveLabel(LABELS.sent, r.token);
}

async function testReboot(r: Rotation): Promise<void> {
  const pending = await r.read(r.token, LABELS.pending);
  const current = await r.current();
  if (r.classifyPending(pending, current) === 'hold') {
    log('testSecret: the pending version holds AWSCURRENT: nothing to test', r.fields());
    return;
  }
  const username = pending.username;
  // A retry of a rotation that rebooted already: its settle period starts now (the reboot's time is not kept).
  // One that asked for a reboot without seeing the answer (`MQUSER_REBOOT_REQUESTED` only) waits a settle period
  // too: an accepted reboot leaves RUNNING within it; if the broker never does, that request never took effect.
  const requestedOnly = r.has(r.token, LABELS.rebootRequested) && !r.has(r.token, LABELS.rebooted);
  let rebootedAt = r.has(r.token, LABELS.rebooted) || requestedOnly ? Date.now() : undefined;
  let unconfirmed = requestedOnly;
  let lastState = 'REBOOT_IN_PROGRESS';
  // A call that meets the deadline fails with a reason that says nothing of the reboot: say what is going on.
  const polled = async <T>(call: () => Promise<T>): Promise<T> => {
    try {
      return await call();
    } catch (error) {
      if (r.aws.deadline.remainingMs() > rotationTiming.pollMs) throw error;
      throw stillRebooting(r, lastState, username);
    }
  };
  for (;;) {
    const state = await polled(() => r.aws.brokerState(r.brokerId));
    lastState = state;
    if (state === 'RUNNING') {
      const user = await polled(() => describeOrRefused(r, username));
      if (user === 'REFUSED') {
        // RebootBroker is asynchronous: the broker said RUNNING, then left it before DescribeUser. Only a broker
        // that still says RUNNING makes the refusal a failure.
        const now = await polled(() => r.aws.brokerState(r.brokerId));
        if (now === 'RUNNING')
          throw new Error(`DescribeUser of "${username}" on broker ${r.brokerId} was refused (400)`);
        lastState = now;
        unconfirmed = false; // the broker left RUNNING: a reboot is under way, and it applies the password
        log('testSecret: the broker left RUNNING meanwhile: waiting for it', r.fields({ state: now }));
        if (r.aws.deadline.remainingMs() <= rotationTiming.pollMs) throw stillRebooting(r, now, username);
        await sleep(rotationTiming.pollMs);
        continue;
      }
      if (!user) throw new Error(`user "${username}" does not exist on broker ${r.brokerId}`);
      if (!user.pendingChange) {
        log('testSecret: the broker is RUNNING with the new password applied', r.fields({ username }));
        await r.requireSignIn(username, pending.password);
        return;
      }
      if (rebootedAt === undefined) {
        await rebootOnce(r);
        rebootedAt = Date.now();
      } else if (unconfirmed && Date.now() - rebootedAt >= rotationTiming.settleMs) {
        // RUNNING with the password pending a whole settle period after the earlier request: it never reached
        // Amazon MQ (the function died before or while calling), so this is this rotation's one reboot.
        log('testSecret: the reboot an earlier attempt asked for never started: rebooting', r.fields({ username }));
        unconfirmed = false;
        await rebootOnce(r);
        rebootedAt = Date.now();
      } else if (Date.now() - rebootedAt >= rotationTiming.settleMs) {
        throw new Error(
          `broker ${r.brokerId} is RUNNING after this rotation's reboot, but user "${username}" still has a pending ` +
            `${user.pendingChange}: not rebooting it again. Check the broker in the Amazon MQ console`,
        );
      }
    } else if (state === 'REBOOT_IN_PROGRESS') {
      unconfirmed = false; // the broker is rebooting: whoever asked, that reboot applies the password
    } else {
      throw new Error(
        `broker ${r.brokerId} is ${state}: Amazon MQ reboots a broker only from RUNNING, and user "${username}" ` +
          'has its new password pending',
      );
    }
    if (r.aws.deadline.remainingMs() <= rotationTiming.pollMs) throw stillRebooting(r, state, username);
    await sleep(rotationTiming.pollMs);
  }
}

function stillRebooting(r: Rotation, state: string, username: string): Error {
  return new Error(
    `broker ${r.brokerId} is still rebooting (${state}) to apply the new password of user "${username}": ` +
      'Secrets Manager retries the rotation, and the retry waits for this reboot without rebooting again',
  );
}

/**
 * `MQUSER_REBOOT_REQUESTED` on T, RebootBroker, then `MQUSER_REBOOTED` on T. The first label closes the window of
 * a second reboot: a function that died after an accepted RebootBroker and before recording it would otherwise, on
 * Secrets Manager's retry, find the broker still RUNNING (the reboot is asynchronous) with the password pending,
 * and reboot it again. With it, the retry waits a settle period (`testReboot`) and reboots only if the broker never
 * left RUNNING, which an accepted reboot does. A definite refusal (an answered 4xx) removes the label again. A 400
 * because the broker has left RUNNING (another reboot, a maintenance window) counts as ours: that reboot applies
 * the password sent before it.
 */
async function rebootOnce(r: Rotation): Promise<void> {
  await r.moveLabel(LABELS.rebootRequested, r.token);
  try {
    await r.aws.rebootBroker(r.brokerId);
    log('testSecret: rebooting the broker to apply the new password', r.fields());
  } catch (error) {
    const busy = error instanceof CallError && error.httpStatus === 400;
    if (!busy || (await r.aws.brokerState(r.brokerId)) === 'RUNNING') {
      // Only a definite refusal (an answered 4xx, no earlier attempt unanswered) proves that no reboot started.
      const refused =
        error instanceof CallError &&
        error.httpStatus !== undefined &&
        error.httpStatus < 500 &&
        !error.earlierAttemptMayHaveSucceeded;
      if (refused) await r.removeLabel(LABELS.rebootRequested, r.token);
      throw error;
    }
    log('testSecret: another reboot of the broker started first: waiting for it', r.fields());
  }
  await r.moveLabel(LABELS.rebooted, r.token);
}

async function finishReboot(r: Rotation): Promise<void> {
  await promote(r);
  for (const label of [LABELS.sent, LABELS.rebootRequested, LABELS.rebooted]) {
    const holder = r.holder(label);
    if (holder !== undefined) await r.removeLabel(label, holder);
  }
}

const STEP_HANDLERS: Record<RotationMode, Record<Step, (r: Rotation) => Promise<void>>> = {
  MAINTENANCE_WINDOW: {
    createSecret: createMaintenance,
    setSecret: setMaintenance,
    testSecret: testMaintenance,
    finishSecret: finishMaintenance,
  },
  REBOOT: { createSecret: createReboot, setSecret: setReboot, testSecret: testReboot, finishSecret: finishReboot },
};
