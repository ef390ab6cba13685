/**
 * The `Custom::MqUser` handler, invoked by the CDK Provider framework (which answers CloudFormation).
 * It gathers what the event, the broker and the stack report, and carries out the decisions of ./decide;
 * parsing lives in ./properties, AWS calls in ../shared/aws (and the table of deliveries in ./deliveries), the password
 * in ./password.
 */
import {
  MQ_USER_RESOURCE_TYPE,
  type MqUserResourceAttributes,
  type MqUserResourceProperties,
  type Raw,
} from '../../lib/private/handler-props';
import { Aws, BrokerBusyError, DesiredUser, UserState, mayHaveSucceeded } from '../shared/aws';
import {
  decideDelete,
  decideRepeat,
  decideTakeover,
  decideUndo,
  findHolder,
  fitsEvent,
  isLive,
  madeByEarlierDelivery,
  needsWrite,
  pendingAfterWrite,
  type EventIdentity,
  type Holder,
  type Repeat,
} from './decide';
import { Deliveries, UndoneError } from './deliveries';
import { refuseForeignStack, type HandlerContext, type ProviderEvent } from '../shared/event';
import { failure, log, registerSensitive, resetSensitive, unfinished, warn } from '../shared/log';
import { extractPassword, parseJsonObject } from '../shared/password';
import {
  Owner,
  UserIdentity,
  UserProperties,
  UserRecord,
  parsePhysicalResourceId,
  parseProperties,
  passwordSourceChanged,
  physicalResourceId,
  sameIdentity,
  stateDigest,
} from '../shared/properties';
import { ProofUnavailableError } from '../shared/proof';
import { CallError, Deadline, backoffMs, retryTiming, sleep } from '../shared/retry';
import { LABELS } from '../shared/secret-labels';
import { ALTERNATE_SUFFIX } from '../../lib/private/rules';

/** The timings of every call's retries: exported so that tests can shorten them in the bundle. */
export { retryTiming } from '../shared/retry';
export { deliveryTiming } from './deliveries';

/** The event of a `Custom::MqUser`. */
export type UserEvent = ProviderEvent<MqUserResourceProperties>;

export interface UserResponse {
  readonly PhysicalResourceId: string;
  readonly Data?: MqUserResourceAttributes;
}

/**
 * The Provider framework invokes this again with the same event when its invoke threw, also after a first delivery
 * ran (or while it still runs), in this Lambda environment or another: what the first delivery recorded in the
 * stack's table of deliveries (./deliveries) makes the second one answer as it did (see `run`).
 */
export async function handler(event: UserEvent, context: HandlerContext): Promise<UserResponse> {
  return run(event, context, undefined);
}

/**
 * What the first delivery of an event that met a busy broker hands to `isComplete`, as a field of onEvent's answer
 * (the Provider framework passes every field of it to the waiter). No secret: it names a broker and the ID the event
 * came with, and records what the first attempt may have done.
 */
export interface Waiting {
  /** When the event first met the busy broker (ms since the epoch): the wait is bounded from there. */
  readonly since: number;
  /** The broker that refused user calls while it rebooted; absent when the stack could not be read. */
  readonly brokerId?: string;
  /** The physical ID the event arrived with (absent for a Create). */
  readonly physicalResourceId?: string;
  /** A CreateUser of this event got no answer or a 5xx before the refusal: the user it finds may be its own. */
  readonly ownCreate: boolean;
}

export const WAITING_FIELD = 'CdkMqUserWaiting';

/** onEvent's answer, and what the framework passes on to `isComplete`. */
export type HandedOff = UserResponse & { readonly [WAITING_FIELD]?: Waiting };

/** The event `isComplete` receives: the event, with every field onEvent answered. */
export type CompletionEvent = UserEvent & HandedOff;

/**
 * The Provider framework polls this after every event (it starts its waiter for each one). An event that onEvent
 * finished answers at once, asking nothing of AWS. An event that met a busy broker is tried again once the broker
 * is RUNNING, until `retryTiming.brokerWaitMs` after the first refusal; its answer (physical ID, attributes) is then
 * CloudFormation's. A failure thrown here is answered FAILED by the framework, with its message.
 */
export async function isComplete(
  event: CompletionEvent,
  context: HandlerContext,
): Promise<{ IsComplete: boolean; PhysicalResourceId?: string; Data?: MqUserResourceAttributes }> {
  const waiting = event[WAITING_FIELD];
  if (!waiting) return { IsComplete: true };
  resetSensitive();
  refuseForeignStack(event);
  // The input is only as good as whoever started the waiter: a start time in the future must not stretch the wait.
  const since = Math.min(waiting.since, Date.now());
  const withinWait = Date.now() - since < retryTiming.brokerWaitMs;
  if (waiting.brokerId && withinWait) {
    const aws = new Aws(Deadline.fromRemaining(context.getRemainingTimeInMillis()), event.StackId);
    const state = await aws.describeBroker(waiting.brokerId).then(
      (broker) => broker.state,
      () => 'UNKNOWN',
    );
    if (state === 'REBOOT_IN_PROGRESS') return { IsComplete: false };
  }
  // The event as CloudFormation sent it: the framework put onEvent's answer into it.
  const { [WAITING_FIELD]: _, Data: _data, ...rest } = event;
  const original: UserEvent = { ...rest, PhysicalResourceId: waiting.physicalResourceId };
  const answer = await run(original, context, waiting);
  if (answer[WAITING_FIELD]) return { IsComplete: false };
  return { IsComplete: true, PhysicalResourceId: answer.PhysicalResourceId, Data: answer.Data };
}

async function run(event: UserEvent, context: HandlerContext, waiting: Waiting | undefined): Promise<HandedOff> {
  resetSensitive();
  const aws = new Aws(Deadline.fromRemaining(context.getRemainingTimeInMillis()), event.StackId);
  log(`received ${event.RequestType}${waiting ? ' (again, once the broker is RUNNING)' : ''}`, {
    logicalResourceId: event.LogicalResourceId,
    physicalResourceId: event.PhysicalResourceId,
  });
  // A Delete of an ID this handler never made writes nothing (onDelete): it needs no proof.
  if (event.RequestType !== 'Delete' || parsePhysicalResourceId(event.PhysicalResourceId) !== undefined) {
    const unproven = await prove(aws, event);
    if (unproven) return unproven;
  }
  // Only a Create or an Update is recorded: a Delete is safe to repeat as it is.
  const recorded = event.RequestType === 'Create' || event.RequestType === 'Update';
  const deliveries = Deliveries.of(event, context.getRemainingTimeInMillis());
  const props = recorded ? tryParse(event.ResourceProperties) : undefined;
  const identity: EventIdentity = {
    physicalResourceId: event.PhysicalResourceId,
    ...(props ? { user: identityOf(props) } : {}),
  };
  const repeat = recorded ? decideRepeat(event.RequestType, await deliveries.read(), identity) : {};
  if (repeat.undone) {
    // A delivery of this event deleted the user it made and failed: so does every later one, before any call.
    throw failure(new UndoneError());
  }
  if (repeat.answer) {
    log(`received ${event.RequestType} again (same request): answering as the first delivery did`, {
      logicalResourceId: event.LogicalResourceId,
      physicalResourceId: repeat.answer.PhysicalResourceId,
    });
    return repeat.answer as UserResponse;
  }
  const delivery = ownWork(deliveries, event.RequestType, identity, repeat, waiting?.ownCreate ?? false);
  try {
    switch (event.RequestType) {
      case 'Create':
        return await answered(deliveries, identity, await onCreate(aws, event, delivery));
      case 'Update':
        return await answered(deliveries, identity, await onUpdate(aws, event, delivery));
      case 'Delete':
        return await onDelete(aws, event);
      default:
        throw new Error(`unknown RequestType ${JSON.stringify((event as { RequestType: unknown }).RequestType)}`);
    }
  } catch (thrown) {
    // This delivery failed, but a delivery of the same event running at the same time answered SUCCESS with the user
    // (and kept it from this one's undo): whichever of the two CloudFormation hears, the answer is the same.
    if (thrown instanceof AnsweredByTwin) return thrown.answer;
    const error = WaitError.from(thrown);
    let cause = error instanceof WaitError ? error.cause : error;
    if (error instanceof WaitError) {
      const since = waiting?.since ?? Date.now();
      if (Date.now() - since < retryTiming.brokerWaitMs) {
        const next: Waiting = {
          since,
          ...(error.brokerId ? { brokerId: error.brokerId } : {}),
          ...(event.PhysicalResourceId !== undefined ? { physicalResourceId: event.PhysicalResourceId } : {}),
          ownCreate: (waiting?.ownCreate ?? false) || error.ownCreate,
        };
        log('handing the event to the waiter: it tries again once the broker is RUNNING', {
          logicalResourceId: event.LogicalResourceId,
          brokerId: error.brokerId,
          waitedMs: Date.now() - since,
        });
        // A Create that fails later answers with the framework's marker, so that the framework skips its Delete.
        return { PhysicalResourceId: event.PhysicalResourceId ?? CREATE_FAILED_MARKER, [WAITING_FIELD]: next };
      }
      const forwardCleanup = (await aws.isCleaningUp()) === true && (await aws.isRollingBack()) === false;
      if (event.RequestType === 'Delete' && error.brokerId && forwardCleanup) {
        // No retry comes for a Delete of the cleanup phase: say what stays, and what to do. (A rollback's cleanup
        // answers as every rollback does, below.)
        const record = parsePhysicalResourceId(event.PhysicalResourceId ?? '');
        const refusal = error.cause instanceof BrokerBusyError ? error.cause.refusal.message : error.message;
        cause = new Error(
          `user "${record?.username}" on broker ${record?.brokerId} was not deleted: the broker refused user calls ` +
            `while it rebooted for ${Math.round((Date.now() - since) / 60_000)} minutes (${refusal}). ` +
            'CloudFormation does not retry a Delete of its cleanup phase, so the user stays on the broker: delete ' +
            'it by hand once the broker is RUNNING (see "Troubleshooting" in the cdk-mq-user README)',
        );
      } else if (error.ownCreate) {
        unfinished('gave up waiting: the CreateUser of this event may have made the user; check it by hand', {
          logicalResourceId: event.LogicalResourceId,
          reason: error.message,
        });
      }
    }
    if (event.RequestType !== 'Create') {
      const answer = await answerRollbackAnyway(aws, event, error);
      if (answer) return answer;
    }
    if (event.RequestType === 'Delete' && (await aws.isCleaningUp()) !== false) {
      // The stack goes on to UPDATE_COMPLETE whatever this Delete answers: only the alarm tells. A status that cannot
      // be read may be a cleanup phase too (a stack deletion says DELETE_FAILED itself).
      unfinished('cleanup: the user was not deleted, and CloudFormation does not retry this Delete', {
        logicalResourceId: event.LogicalResourceId,
        physicalResourceId: event.PhysicalResourceId,
        reason: (cause as Error).message,
      });
    }
    throw failure(cause);
  }
}

/**
 * What this delivery knows of its own work on the user it creates: what an earlier delivery of the same event
 * recorded (or the waiter handed on), and the door to record what its own CreateUser may have made.
 */
interface OwnWork {
  /** An earlier attempt of this event may have made `user` with its own CreateUser. */
  mayHaveMade(user: UserIdentity): boolean;
  /** Looks at the record again: a delivery running at the same time may have recorded `user` since. */
  recordedSince(user: UserIdentity): Promise<boolean>;
  /**
   * Records that this delivery's CreateUser may have made `user` (once per user). Throws `UndoneError` when a delivery
   * of this event withdrew its claim meanwhile (the caller undoes what it may have made); never otherwise.
   */
  recordMade(user: UserIdentity): Promise<void>;
  /**
   * Before an undo deletes `user`: withdraws the record that this event may have made it, and says whether to delete
   * it (`decideUndo`), with the answer that stands when a twin delivery answered. Never throws.
   */
  withdraw(
    user: UserIdentity,
  ): Promise<{ readonly decision: 'undo' | 'answered' | 'leave'; readonly answer?: UserResponse }>;
}

function ownWork(
  deliveries: Deliveries,
  requestType: string,
  identity: EventIdentity,
  repeat: Repeat,
  handedOn: boolean,
): OwnWork {
  const recorded = new Set<string>();
  return {
    mayHaveMade: (user) => handedOn || madeByEarlierDelivery(repeat, user),
    recordedSince: async (user) =>
      madeByEarlierDelivery(decideRepeat(requestType, await deliveries.read(), identity), user),
    recordMade: async (user) => {
      const key = `${user.brokerId} ${user.username}`;
      if (recorded.has(key)) return;
      recorded.add(key);
      await deliveries.recordMade(user);
    },
    withdraw: async (user) => {
      const { outcome, answer } = await deliveries.withdraw(user);
      const fitting = fitsEvent(answer, identity) ? (answer as UserResponse) : undefined;
      return { decision: decideUndo(outcome), ...(fitting ? { answer: fitting } : {}) };
    },
  };
}

/** A twin delivery of this event answered SUCCESS with the user this one was about to undo: its answer is ours. */
class AnsweredByTwin extends Error {
  constructor(readonly answer: UserResponse) {
    super('a delivery of this same event answered SUCCESS meanwhile');
    this.name = 'AnsweredByTwin';
  }
}

/** A final answer is recorded for a second delivery of the event; one handed to the waiter is not final. */
async function answered(deliveries: Deliveries, identity: EventIdentity, answer: HandedOff): Promise<HandedOff> {
  if (answer[WAITING_FIELD]) return answer;
  const { PhysicalResourceId, Data } = answer;
  return (await deliveries.recordAnswer(
    {
      PhysicalResourceId,
      ...(Data ? { Data: { ...Data } } : {}),
    },
    identity,
  )) as UserResponse;
}

/** The Provider framework's physical ID of a failed Create: it answers the Delete that follows itself. */
const CREATE_FAILED_MARKER = 'AWSCDK::CustomResourceProviderFramework::CREATE_FAILED';

/** The event cannot finish now, and waiting can finish it: a rebooting broker, a stack that cannot be read. */
class WaitError extends Error {
  constructor(
    readonly cause: Error,
    readonly brokerId: string | undefined,
    readonly ownCreate: boolean,
  ) {
    super(cause.message);
    this.name = 'WaitError';
  }

  static from(error: unknown, ownCreate = false): unknown {
    if (error instanceof WaitError)
      return ownCreate && !error.ownCreate ? new WaitError(error.cause, error.brokerId, true) : error;
    if (error instanceof BrokerBusyError) {
      return new WaitError(error, error.brokerId, ownCreate || error.earlierAttemptMayHaveSucceeded);
    }
    return error;
  }
}

/**
 * Nothing is read or written before CloudFormation confirms that it is working on this very resource now
 * (lambda/shared/proof.ts): a forged or replayed event is refused. When CloudFormation cannot be read (throttled
 * until the deadline, access denied), nothing is written either: a Create fails (its rollback never reaches this
 * handler: the Provider framework answers the Delete of a failed Create itself), while an Update or a Delete,
 * which may be a rollback's that must not wedge, answers SUCCESS with the physical ID it came with and a warning
 * that the user was left as it is. Returns that answer, or `undefined` once the event is proven.
 */
async function prove(aws: Aws, event: UserEvent): Promise<UserResponse | undefined> {
  try {
    await aws.prove(event, MQ_USER_RESOURCE_TYPE);
    return undefined;
  } catch (error) {
    if (!(error instanceof ProofUnavailableError) || event.RequestType === 'Create') throw failure(error);
    unfinished(
      `could not confirm the ${event.RequestType} with CloudFormation: left the user untouched and answered SUCCESS ` +
        'so that a rollback cannot wedge. Check the user by hand: see "Troubleshooting" in the cdk-mq-user README',
      {
        logicalResourceId: event.LogicalResourceId,
        physicalResourceId: event.PhysicalResourceId,
        reason: error.message,
      },
    );
    const props = tryParse(event.ResourceProperties);
    return {
      PhysicalResourceId: event.PhysicalResourceId ?? '',
      ...(props ? { Data: attributes(props, 'UNKNOWN') } : {}),
    };
  }
}

/**
 * Rollbacks never wedge: when an Update or Delete of a stack that is rolling back cannot finish (the broker
 * refuses calls past a bounded wait, a secret is unreadable), it answers SUCCESS and logs what it left undone.
 * Only a status that says "rolling back" counts: when the status is unknown, the failure stays loud.
 */
async function answerRollbackAnyway(aws: Aws, event: UserEvent, error: unknown): Promise<UserResponse | undefined> {
  if ((await aws.isRollingBack()) !== true) return undefined;
  const incoming = event.PhysicalResourceId ?? '';
  unfinished(
    `rollback: could not ${event.RequestType === 'Delete' ? 'delete' : 'restore'} the user; answering SUCCESS so ` +
      'that the rollback completes. Check the user by hand: see "Troubleshooting" in the cdk-mq-user README',
    { logicalResourceId: event.LogicalResourceId, physicalResourceId: incoming, reason: (error as Error).message },
  );
  const props = tryParse(event.ResourceProperties);
  // The rollback of this resource's own move answers with the ID it held before, so that CloudFormation's cleanup
  // deletes the user the failed deploy created; answering with the incoming ID would keep that user forever.
  const current = parsePhysicalResourceId(incoming);
  const restored =
    event.RequestType === 'Update' &&
    props !== undefined &&
    current?.previous !== undefined &&
    !sameIdentity(current, identityOf(props)) &&
    (await isOwnMoveRolledBack(aws, event, identityOf(props), current).catch(() => false));
  return {
    PhysicalResourceId: restored ? current!.previous! : incoming,
    ...(props ? { Data: attributes(props, 'UNKNOWN') } : {}),
  };
}

async function onCreate(aws: Aws, event: UserEvent, own: OwnWork): Promise<UserResponse> {
  const props = parseProperties(event.ResourceProperties);
  const user = identityOf(props);
  await ensureSupportedBroker(aws, user.brokerId);
  const password = await creationPassword(aws, props, user);
  const outcome = await takeUser(aws, props, user, password, { rollingBack: false, own });
  if (outcome === 'leave') throw alreadyExists(user); // only rollbacks leave a user alone; a Create is none
  if (props.RotationEnabled) await resendAfterCreate(aws, props, user, password, outcome, own);
  return respond(props, outcome);
}

/**
 * `resendIfRotatedMeanwhile` after a Create, still under the Create's promise: what its own CreateUser made is
 * deleted again when the Create fails here (the Provider framework answers the Delete of a failed Create itself), and
 * a broker that starts rebooting hands the event to the waiter knowing that the user is its own.
 */
async function resendAfterCreate(
  aws: Aws,
  props: UserProperties,
  user: UserIdentity,
  password: string,
  made: Taken,
  own: OwnWork,
) {
  try {
    await resendIfRotatedMeanwhile(aws, props, user, password);
  } catch (error) {
    if (parsePhysicalResourceId(made.physicalId)?.owner !== 'created') throw error;
    const waiting = WaitError.from(error, true);
    if (waiting instanceof WaitError) throw waiting;
    await undoCreate(aws, user, error as Error, own);
    throw error;
  }
}

async function onUpdate(aws: Aws, event: UserEvent, own: OwnWork): Promise<UserResponse> {
  const props = parseProperties(event.ResourceProperties);
  const user = identityOf(props);
  const current = parsePhysicalResourceId(
    event.PhysicalResourceId,
    tryParse(event.OldResourceProperties)?.AdoptExisting,
  );
  await refuseRotationOffWhileAlternateCurrent(aws, event, props);
  if (!current || !sameIdentity(current, user)) return replace(aws, event, props, user, current, own);

  const before = await aws.describeUser(user);
  if (!isLive(before)) {
    warn('the user is gone (deleted out of band): creating it again', {
      ...user,
      pendingChange: before?.pendingChange,
    });
    const password = await creationPassword(aws, props, user);
    const made = await createUser(aws, user, desiredState(props, password), before, props.AdoptExisting, own);
    if (props.RotationEnabled) await resendIfRotatedMeanwhile(aws, props, user, password);
    return respond(props, { physicalId: event.PhysicalResourceId!, pendingChange: made.pendingChange });
  }
  const previous = tryParse(event.OldResourceProperties);
  // A rotated password belongs to the rotation function once the user exists: a deploy never resets it.
  const password =
    props.RotationEnabled || (previous && !passwordSourceChanged(previous, props))
      ? undefined
      : await readPasswordToRestore(aws, props, user);
  const write = needsWrite(desiredState(props, password), before!);
  if (write) {
    const kept = password === undefined ? await keepRotatedPassword(aws, props, user) : undefined;
    log('updating the user in place', { ...user, groups: props.Groups, passwordSet: password !== undefined });
    await aws.updateUser(user, desiredState(props, password ?? kept));
    if (kept !== undefined) await resendIfRotatedMeanwhile(aws, props, user, kept);
  } else {
    log('the user already holds the declared state: nothing to write', { ...user });
  }
  return respond(props, { physicalId: event.PhysicalResourceId!, pendingChange: pendingAfterWrite(before, write) });
}

/**
 * A new broker or username is a new user: CloudFormation deletes the old one in its cleanup phase, after the
 * whole deploy. The rollback of such a move arrives here too, with the old properties, and restores the user
 * recorded as `previous` in the physical ID.
 */
async function replace(
  aws: Aws,
  event: UserEvent,
  props: UserProperties,
  user: UserIdentity,
  current: UserRecord | undefined,
  own: OwnWork,
): Promise<UserResponse> {
  log('replacing the user: its broker or username changed', { ...user, previous: event.PhysicalResourceId });
  // Asked only where it matters: a restore needs it as part of the proof, reading a password does for rollbacks.
  const rollingBack = !props.AdoptExisting || current?.previous ? await aws.isRollingBack() : false;
  const targetIsPrevious = rollingBack === true && (await isOwnMoveRolledBack(aws, event, user, current));
  await ensureSupportedBroker(aws, user.brokerId);
  const password = await readPasswordToRestore(aws, props, user);
  const outcome = await takeUser(aws, props, user, password, {
    rollingBack,
    targetIsPrevious,
    restoreId: current?.previous,
    previousId: event.PhysicalResourceId,
    own,
  });
  if (outcome === 'leave') {
    warn(
      "rollback: the user exists and nothing proves it was ever this resource's: leaving it untouched. " +
        'The resource keeps its physical ID; no user is deleted in the cleanup phase',
      { ...user, physicalResourceId: event.PhysicalResourceId },
    );
    return respond(props, { physicalId: event.PhysicalResourceId ?? '', pendingChange: 'UNKNOWN' });
  }
  return respond(props, outcome);
}

/**
 * Whether this Update is the rollback of this resource's own rename or broker move to `user`: the incoming
 * physical ID records `user` as its previous one, and the stack's history shows the resource completing with the
 * incoming ID within the current operation. The history matters: `previous` stays in the physical ID after the
 * move completed, and a later forward rename back to that name (while the status already says "rolling back")
 * looks the same otherwise.
 */
async function isOwnMoveRolledBack(
  aws: Aws,
  event: UserEvent,
  user: UserIdentity,
  current: UserRecord | undefined,
): Promise<boolean> {
  const previous = current?.previous ? parsePhysicalResourceId(current.previous) : undefined;
  if (!sameIdentity(previous, user) || !event.LogicalResourceId || !event.PhysicalResourceId) return false;
  return aws.completedInCurrentOperation(event.LogicalResourceId, event.PhysicalResourceId).catch((error: Error) => {
    warn("could not read the stack's events: the restore is not proven", { ...user, reason: error.message });
    return false;
  });
}

interface Taken {
  readonly physicalId: string;
  readonly pendingChange: string;
}

/**
 * Creates the user, or takes over one that exists when that is provably this resource's to do (see
 * `decideTakeover`). Anyone else's user is left untouched.
 */
async function takeUser(
  aws: Aws,
  props: UserProperties,
  user: UserIdentity,
  password: string | undefined,
  move: {
    readonly rollingBack: boolean | undefined;
    readonly targetIsPrevious?: boolean;
    /** The physical ID to return when restoring the previous user. */
    readonly restoreId?: string;
    /** The physical ID the resource holds now, recorded as `previous` in the new one. */
    readonly previousId?: string;
    /** What this event's earlier attempts may have made, and where this one records what it makes. */
    readonly own: OwnWork;
  },
): Promise<Taken | 'leave'> {
  const record = (owner: Owner) => physicalResourceId({ ...user, owner, previous: move.previousId });
  const before = await aws.describeUser(user);
  if (!isLive(before)) {
    if (password === undefined) {
      throw new Error(`cannot create user "${user.username}" on broker ${user.brokerId} without its password`);
    }
    const made = await createUser(aws, user, desiredState(props, password), before, props.AdoptExisting, move.own);
    return { physicalId: record(made.owner), pendingChange: made.pendingChange };
  }
  if (move.own.mayHaveMade(user)) {
    // An earlier attempt of this very event sent CreateUser and it succeeded, or got no answer or a 5xx (recorded in
    // the table of deliveries, or handed on by the waiter): the user it finds is the one that attempt made.
    log('the user exists after our own CreateUser of this event may have made it: converging', { ...user });
    const desired = desiredState(props, password);
    const write = needsWrite(desired, before!);
    if (write) await aws.updateUser(user, desired);
    return { physicalId: record('created'), pendingChange: pendingAfterWrite(before, write) };
  }
  const takeover = decideTakeover({
    adoptExisting: props.AdoptExisting,
    rollingBack: move.rollingBack,
    targetIsPrevious: move.targetIsPrevious ?? false,
  });
  if (takeover === 'fail') throw alreadyExists(user);
  if (takeover === 'leave') return 'leave';
  log(
    takeover === 'adopt'
      ? 'adopting the existing user: converging it to the declared state'
      : 'rollback: restoring the user this resource held before its rename or move',
    { ...user },
  );
  // Restoring the user this resource held before: under rotation its password is the rotation's, untouched by
  // the failed deploy. An adopted user gets the declared password (it is unknown otherwise); under rotation, the
  // password the secret's labels say it holds, so that a version labelled as sent to it stays true (see
  // `creationPassword`).
  const rotated = props.RotationEnabled === true;
  const declared =
    takeover === 'adopt' && rotated ? await creationPassword(aws, props, user) : rotated ? undefined : password;
  const write = needsWrite(desiredState(props, declared), before!);
  if (write) {
    const sent = declared ?? (rotated ? await keepRotatedPassword(aws, props, user) : undefined);
    await aws.updateUser(user, desiredState(props, sent));
    if (rotated && sent !== undefined) await resendIfRotatedMeanwhile(aws, props, user, sent);
  }
  return {
    physicalId:
      takeover === 'adopt' ? adoptedRecord(user, move.previousId, write ? before! : undefined) : move.restoreId!,
    pendingChange: pendingAfterWrite(before, write),
  };
}

/**
 * The physical ID of an adopted user. When the adoption wrote to it, the settings it found are recorded, so that
 * the rollback of this event can put them back (`restoreAdopted`); a pending value counts, as the broker will hold it.
 */
function adoptedRecord(user: UserIdentity, previousId: string | undefined, found: UserState | undefined): string {
  const known = found?.consoleAccess !== undefined && found.groups !== undefined && found.replicationUser !== undefined;
  const prior = known
    ? {
        consoleAccess: found.consoleAccess!,
        replicationUser: found.replicationUser!,
        groups: [...found.groups!].sort(),
      }
    : undefined;
  return physicalResourceId({ ...user, owner: 'adopted', previous: previousId, prior });
}

function alreadyExists(user: UserIdentity): Error {
  return new Error(
    `user "${user.username}" already exists on broker ${user.brokerId} and MqUser left it untouched. ` +
      'To manage it with this MqUser, set adoptExisting: true (it is then converged to the declared state); ' +
      'to move an MqUser between stacks or construct paths, follow "Moving a user" in the cdk-mq-user README.',
  );
}

/**
 * CreateUser, made safe to repeat and undone when it fails. A 409 (or, for a user pending deletion, a 400) is
 * answered by looking at the user: present after an attempt whose outcome is unknown means our own attempt made
 * it; present otherwise means someone else did (adopted with `adoptExisting`, else left alone); absent means a
 * passing conflict: back off and try again. If the Create gives up while its own CreateUser may have made the
 * user, it deletes that user before failing: the Provider framework answers the Delete of a failed Create
 * itself, so nothing else ever would.
 */
async function createUser(
  aws: Aws,
  user: UserIdentity,
  desired: DesiredUser,
  before: UserState | undefined,
  adopt: boolean,
  /** An earlier attempt of this event may have made the user: a refusal then finds our own user. */
  own: OwnWork,
): Promise<{ owner: Owner; pendingChange: string }> {
  log(before ? 'creating the user again: it is pending deletion' : 'creating the user', {
    ...user,
    groups: desired.groups,
  });
  const bounded = aws.narrowed(retryTiming.undoReserveMs);
  let uncertain = own.mayHaveMade(user);
  try {
    for (let round = 1; ; round++) {
      try {
        await bounded.createUser(user, desired as DesiredUser & { password: string });
        uncertain = true; // made by us: a withdrawal by a twin delivery (recordMade's UndoneError) undoes it
        // Recorded before anything else: from here on, a second delivery of this event takes the user as its own.
        await own.recordMade(user);
        return { owner: 'created', pendingChange: 'CREATE' };
      } catch (error) {
        if (mayHaveSucceeded(error)) {
          uncertain = true;
          await own.recordMade(user);
        }
        if (!(error instanceof CallError && (error.httpStatus === 409 || (before && error.httpStatus === 400)))) {
          throw error;
        }
        const now = await bounded.describeUser(user);
        if (isLive(now)) {
          // Another delivery of this event, running at the same time, may have made it and recorded so meanwhile.
          if (!uncertain && (await own.recordedSince(user))) uncertain = true;
          if (!uncertain && !adopt) throw alreadyExists(user);
          log(
            uncertain
              ? 'CreateUser was refused but the user exists: an earlier attempt of ours made it; converging'
              : 'CreateUser was refused: someone created the user meanwhile; adopting it',
            { ...user },
          );
          const write = needsWrite(desired, now!);
          if (write) await bounded.updateUser(user, desired);
          return { owner: uncertain ? 'created' : 'adopted', pendingChange: pendingAfterWrite(now, write) };
        }
        if (now?.pendingChange === 'DELETE') {
          uncertain = true; // from here on, the user is revived by us
          await revive(bounded, user, desired, error);
          await own.recordMade(user);
          return { owner: 'created', pendingChange: 'UPDATE' };
        }
        const delay = backoffMs(round);
        if (delay >= bounded.remainingMs()) throw error;
        log('CreateUser met a passing conflict: trying again', { ...user, round });
        await sleep(delay);
      }
    }
  } catch (error) {
    // A rebooting broker refuses the undo too: the waiter tries the whole event again, knowing what we may have made.
    const wait = WaitError.from(error, uncertain || mayHaveSucceeded(error));
    if (wait instanceof WaitError) throw wait;
    if (uncertain) await undoCreate(aws, user, error as Error, own);
    throw error;
  }
}

/**
 * Deletes the user the failing Create's own CreateUser may have made, once the record that this event made it is
 * withdrawn (see `decideUndo`): a `made` left standing would make a later delivery of this event take a same-named
 * user of someone else as its own, and a delivery of this event that answered SUCCESS meanwhile keeps the user.
 */
async function undoCreate(aws: Aws, user: UserIdentity, cause: Error, own: OwnWork): Promise<void> {
  const { decision, answer } = await own.withdraw(user);
  if (decision === 'answered') {
    if (answer) {
      log(
        'the Create failed, but a delivery of this same event answered SUCCESS with the user meanwhile: answering as it did',
        {
          ...user,
          reason: cause.message,
        },
      );
      throw new AnsweredByTwin(answer);
    }
    unfinished(
      'the Create failed; a delivery of this same event recorded an answer meanwhile that names another user: the ' +
        'user this event may have made was left: check it by hand',
      { ...user, reason: cause.message },
    );
    return;
  }
  if (decision === 'leave') {
    unfinished(
      'the Create failed and the user it may have made was left because its record could not be withdrawn: ' +
        'delete it by hand',
      { ...user, reason: cause.message },
    );
    return;
  }
  try {
    await aws.deleteUser(user);
    warn('the Create failed after its own CreateUser may have made the user: deleted it again', {
      ...user,
      reason: cause.message,
    });
  } catch (error) {
    unfinished('the Create failed and the user it may have made could not be deleted: delete it by hand', {
      ...user,
      reason: (error as Error).message,
    });
  }
}

/** UpdateUser on a user pending deletion, verified: Amazon MQ may accept it and keep the deletion. */
async function revive(aws: Aws, user: UserIdentity, desired: DesiredUser, refusal: CallError): Promise<void> {
  log('CreateUser refused a user pending deletion: trying UpdateUser', { ...user });
  let problem: string;
  try {
    // A 409 here means "not while pending deletion": retrying it would only spend the deadline.
    await aws.updateUser(user, desired, { retryConflict: false });
    const now = await aws.describeUser(user);
    if (isLive(now)) return;
    problem = `UpdateUser was accepted but the user is still ${now ? 'pending DELETE' : 'gone'}`;
  } catch (error) {
    problem = (error as Error).message;
  }
  throw new Error(
    `user "${user.username}" on broker ${user.brokerId} is pending deletion and Amazon MQ refused to create it ` +
      `again (${refusal.message}; then ${problem}). Reboot the broker to apply the deletion, then deploy again.`,
  );
}

async function onDelete(aws: Aws, event: UserEvent): Promise<UserResponse> {
  // The identity and the owner come from the physical ID, never the properties (they may be another version's).
  const physicalId = event.PhysicalResourceId ?? '';
  const record = parsePhysicalResourceId(physicalId, tryParse(event.ResourceProperties)?.AdoptExisting);
  if (!record) {
    log('nothing to delete: this handler never made this physical ID', { physicalResourceId: physicalId });
    return { PhysicalResourceId: physicalId };
  }
  const user: UserIdentity = { brokerId: record.brokerId, username: record.username };
  const rollingBack = await aws.isRollingBack();
  let holder: Holder = 'none';
  if (!(record.owner === 'adopted' && rollingBack !== false)) {
    const stackBeingDeleted = (await aws.isBeingDeleted()) === true;
    holder = await aws.stackResources().then(
      (resources) => findHolder(resources, { logicalId: event.LogicalResourceId, physicalId }, user, stackBeingDeleted),
      (error: Error) => {
        warn("could not read the stack's resources", { reason: error.message });
        return 'unknown' as const;
      },
    );
  }
  const decision = decideDelete({ owner: record.owner, rollingBack, holder });
  if (decision.action === 'keep') {
    if (decision.unsure)
      unfinished(`not deleting the user: ${decision.why}; check it by hand`, {
        ...user,
        physicalResourceId: physicalId,
      });
    else log(`not deleting the user: ${decision.why}`, { ...user });
    if (record.owner === 'adopted' && rollingBack === true) await restoreAdopted(aws, user, record.prior);
    return { PhysicalResourceId: physicalId };
  }
  if (decision.action === 'fail') {
    if ((await aws.isCleaningUp()) === true) {
      // CloudFormation never retries a Delete of its cleanup phase: read the stack again for as long as a busy
      // broker is waited for, then say what stays, and where.
      throw new WaitError(
        new Error(
          `not deleting user "${user.username}" on broker ${user.brokerId}: ${decision.why}. CloudFormation does ` +
            'not retry a Delete of its cleanup phase, so the user stays on the broker: delete it by hand once no ' +
            `resource of stack ${aws.stackName()} declares it (see "Troubleshooting" in the cdk-mq-user README)`,
        ),
        undefined,
        false,
      );
    }
    // A stack deletion that fails can be retried (DELETE_FAILED), and this Delete comes again.
    throw new Error(
      `not deleting user "${user.username}" on broker ${user.brokerId}: ${decision.why}; retry the deletion`,
    );
  }
  if (await aws.deleteUser(user)) {
    log("deleted the user: Amazon MQ applies the deletion at the broker's next reboot", { ...user });
  } else {
    log('nothing to delete: the user or its broker is already gone', { ...user });
  }
  return { PhysicalResourceId: physicalId };
}

/**
 * The rollback of the event that adopted a user keeps it (it existed before) and puts back the settings that event
 * found, when it recorded them: console access, groups and replication flag. The password it set cannot be read
 * back: it stays, and the log says so.
 */
async function restoreAdopted(aws: Aws, user: UserIdentity, prior: UserRecord['prior']): Promise<void> {
  if (!prior) return; // the adoption wrote nothing, or its settings were too long to record
  const now = await aws.describeUser(user);
  if (!isLive(now)) return;
  const desired: DesiredUser = { ...prior, groups: prior.groups };
  if (needsWrite(desired, now!)) await aws.updateUser(user, desired);
  warn(
    'rollback: restored console access, groups and replication flag of the adopted user as the failed deploy found ' +
      'them; the password stays as that deploy set it. See "Troubleshooting" in the cdk-mq-user README',
    { ...user },
  );
}

async function ensureSupportedBroker(aws: Aws, brokerId: string): Promise<void> {
  const broker = await aws.describeBroker(brokerId);
  // DescribeBroker has been seen answering in other casings ("ActiveMQ", "simple").
  if (broker.engineType.toUpperCase() !== 'ACTIVEMQ') {
    throw new Error(
      `broker ${brokerId} runs ${broker.engineType || 'an unknown engine'}: MqUser manages ActiveMQ users only ` +
        '(RabbitMQ users are managed in the RabbitMQ web console or its management API)',
    );
  }
  if (broker.authenticationStrategy.toUpperCase() !== 'SIMPLE') {
    throw new Error(
      `broker ${brokerId} uses ${broker.authenticationStrategy} authentication: its users sign in through LDAP, ` +
        'and MqUser needs a broker with simple authentication',
    );
  }
}

/**
 * Under rotation, the password to send along when a deploy writes to a user: the one it holds or has pending.
 * Amazon MQ may drop a pending password change when UpdateUser omits `Password` (undocumented), and a deploy must
 * never reset a rotated password, so the handler never omits it and never sends another. The rotation function's
 * labels say which it is (lambda/rotation/index.ts): the version last sent for this user on this broker
 * (`MQUSER_SENT`), else the current or previous credentials that name it, else the current password (a user never
 * rotated holds the password both users were created with). `undefined` without rotation: nothing to keep.
 */
async function keepRotatedPassword(aws: Aws, props: UserProperties, user: UserIdentity): Promise<string | undefined> {
  if (!props.RotationEnabled) return undefined;
  for (const stage of [LABELS.sent, LABELS.current, LABELS.previous]) {
    const secretString = await aws.secretStringAt(props.PasswordSecretArn, user, stage);
    if (secretString === undefined) continue;
    registerSensitive(secretString);
    const json = parseJsonObject(secretString);
    if (json?.username !== user.username) continue;
    if (stage === LABELS.sent && typeof json.stagedFor === 'string' && json.stagedFor !== user.brokerId) continue;
    return extractPassword(secretString, props);
  }
  return readPassword(aws, props, user);
}

/**
 * A rotation that sent this user a new password between our read of the labels and our UpdateUser would be undone
 * by it (the broker would apply our older password, and a later rotation would promote one it never got): look
 * again, and send the rotation's password if it changed. This narrows the race to the rotation's own gap between
 * its UpdateUser and its label; README "Rotating passwords" says what remains.
 */
async function resendIfRotatedMeanwhile(aws: Aws, props: UserProperties, user: UserIdentity, sent: string) {
  const now = await keepRotatedPassword(aws, props, user);
  if (now === undefined || now === sent) return;
  warn('a rotation sent this user a new password meanwhile: sending that one', { ...user });
  await aws.updateUser(user, desiredState(props, now));
}

/**
 * The password to create a user with (or to adopt it with). Without rotation, the secret's. Under rotation, the one
 * the secret's labels say this user holds (`keepRotatedPassword`): the rotation function promotes a version
 * labelled `MQUSER_SENT` for this user on this broker once the broker has applied the user, taking the label as
 * proof that the user holds exactly that password. A user created (again) with any other password would make the
 * proof false: after the next reboot or window, `AWSCURRENT` would name a password the broker never received.
 * This is so on every path that makes a rotated user: the deploy that turns rotation (back) on, the re-creation of
 * a user deleted out of band, adoption.
 */
async function creationPassword(aws: Aws, props: UserProperties, user: UserIdentity): Promise<string> {
  return (await keepRotatedPassword(aws, props, user)) ?? readPassword(aws, props, user);
}

/**
 * The deploy that turns rotation off deletes the alternate (in CloudFormation's cleanup phase, where a failure is
 * never retried and fails nothing). If `AWSCURRENT` names the alternate then, every client is locked out once the
 * deletion applies. So the primary's Update, which sees `RotationEnabled` go, refuses the deploy before anything
 * is deleted and says what to do. A rollback is never refused (it would wedge): it warns.
 */
async function refuseRotationOffWhileAlternateCurrent(aws: Aws, event: UserEvent, props: UserProperties) {
  const previous = tryParse(event.OldResourceProperties);
  if (!previous?.RotationEnabled || props.RotationEnabled || previous.Username.endsWith(ALTERNATE_SUFFIX)) return;
  const user = identityOf(previous);
  const alternate = `${previous.Username}${ALTERNATE_SUFFIX}`;
  const secretString = await aws.secretStringAt(previous.PasswordSecretArn, user, LABELS.current);
  if (secretString !== undefined) registerSensitive(secretString);
  const named = secretString === undefined ? undefined : parseJsonObject(secretString)?.username;
  if (named !== alternate) return;
  if ((await aws.isRollingBack()) === true) {
    unfinished(
      'rollback: rotation is turned off while AWSCURRENT names the alternate user, which the rollback may delete: ' +
        'rotate the secret until AWSCURRENT names the user (see "Rotating passwords" in the cdk-mq-user README)',
      { ...user, alternate, secretArn: previous.PasswordSecretArn },
    );
    return;
  }
  throw new Error(
    `cannot turn rotation off for user "${previous.Username}" on broker ${previous.BrokerId} yet: AWSCURRENT of ` +
      `secret ${previous.PasswordSecretArn} names its alternate "${alternate}", which this deploy would delete ` +
      '(every client would be locked out). Nothing was deleted. Rotate the secret until AWSCURRENT names ' +
      `"${previous.Username}" (REBOOT: one more rotation; MAINTENANCE_WINDOW: one rotation stages its password, a ` +
      'maintenance window applies it, the next rotation promotes it), then deploy again. See "Turning rotation ' +
      'off" in the cdk-mq-user README.',
  );
}

async function readPassword(aws: Aws, props: MqUserResourceProperties, user: UserIdentity): Promise<string> {
  return extractPassword(await aws.secretString(props.PasswordSecretArn, user), props);
}

/**
 * Reads the password; during a stack rollback a secret that can no longer be read (its grant was already
 * removed, or it was deleted) must not wedge the rollback: the rest of the user is restored, and the log
 * says exactly what was not.
 */
async function readPasswordToRestore(
  aws: Aws,
  props: MqUserResourceProperties,
  user: UserIdentity,
): Promise<string | undefined> {
  try {
    // A rotated user made on another broker or under another name: the labelled password (`creationPassword`).
    return await (props.RotationEnabled
      ? creationPassword(aws, props as UserProperties, user)
      : readPassword(aws, props, user));
  } catch (error) {
    // Unknown counts as no rollback: failing a forward deploy is safe, skipping a password is not.
    if ((await aws.isRollingBack()) !== true) throw error;
    unfinished(
      'rollback: could not restore the password; console access, groups and replication flag are restored, ' +
        'the password stays as the failed deploy set it. See "Troubleshooting" in the cdk-mq-user README.',
      {
        ...user,
        secretArn: props.PasswordSecretArn,
        passwordField: props.PasswordField,
        reason: (error as Error).message,
      },
    );
    return undefined;
  }
}

/** The answer to CloudFormation: nothing is asked of Amazon MQ here, every value is already known. */
function respond(props: UserProperties, taken: Taken): UserResponse {
  return { PhysicalResourceId: taken.physicalId, Data: attributes(props, taken.pendingChange) };
}

function attributes(props: UserProperties, pendingChange: string): MqUserResourceAttributes {
  return {
    Username: props.Username,
    BrokerId: props.BrokerId,
    PendingChange: pendingChange,
    StateDigest: stateDigest(props),
  };
}

function desiredState(props: UserProperties, password: string | undefined): DesiredUser {
  return {
    consoleAccess: props.ConsoleAccess,
    groups: props.Groups,
    replicationUser: props.ReplicationUser,
    password,
  };
}

function identityOf(props: MqUserResourceProperties): UserIdentity {
  return { brokerId: props.BrokerId, username: props.Username };
}

function tryParse(raw: Raw<MqUserResourceProperties> | undefined): UserProperties | undefined {
  try {
    return parseProperties(raw);
  } catch {
    return undefined; // an unreadable old format: treat every field as changed
  }
}
