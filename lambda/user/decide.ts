/**
 * The lifecycle decisions of the `Custom::MqUser` handler, as pure functions of what the event, the broker
 * and the stack report. ./index gathers those reports and carries the decisions out; tests cover these as tables.
 */
import type { DesiredUser, UserState } from '../shared/aws';
import { type Owner, type UserIdentity, parsePhysicalResourceId, sameIdentity } from '../shared/properties';
import type { StackResource } from '../shared/stack';

/** A user that exists and is not on its way out. */
export function isLive(state: UserState | undefined): boolean {
  return state !== undefined && state.pendingChange !== 'DELETE';
}

/**
 * Whether UpdateUser must be sent: a password to set, or a field whose pending (else applied) value differs
 * from the desired one. A field Amazon MQ did not report counts as different.
 */
export function needsWrite(desired: DesiredUser, state: UserState): boolean {
  if (desired.password !== undefined) return true;
  return (
    state.consoleAccess !== desired.consoleAccess ||
    state.replicationUser !== desired.replicationUser ||
    state.groups === undefined ||
    JSON.stringify([...state.groups].sort()) !== JSON.stringify(desired.groups)
  );
}

/** The user's pending change once this event's write (if any) is accepted: known without asking again. */
export function pendingAfterWrite(before: UserState | undefined, wrote: boolean): string {
  if (before?.pendingChange === 'CREATE') return 'CREATE';
  if (wrote) return 'UPDATE';
  return before?.pendingChange ?? 'NONE';
}

/**
 * What to do when the user a Create or replacement targets already exists (live).
 * - `adopt`: `adoptExisting` says so; the resource records it as adopted.
 * - `restore`: the rollback of this resource's own rename or broker move: the target is the physical ID it held
 *   before (recorded in its current physical ID) and the stack is rolling back.
 * - `leave`: a rollback that cannot prove the user was ever this resource's: touch nothing, answer SUCCESS.
 * - `fail`: a forward deploy onto someone else's user.
 * The stack status alone never proves ownership: it may say "rolling back" while a forward update still runs.
 */
export type Takeover = 'adopt' | 'restore' | 'leave' | 'fail';

export function decideTakeover(input: {
  readonly adoptExisting: boolean;
  readonly rollingBack: boolean | undefined;
  /** The target is exactly the identity recorded as `previous` in the incoming physical ID. */
  readonly targetIsPrevious: boolean;
}): Takeover {
  if (input.rollingBack === true && input.targetIsPrevious) return 'restore';
  if (input.adoptExisting) return 'adopt';
  return input.rollingBack === true ? 'leave' : 'fail';
}

/** Another current `Custom::MqUser` of the stack that holds the user, `none`, or `unknown` (unreadable). */
export type Holder = { readonly logicalId: string } | 'none' | 'unknown';

/**
 * The resource of the stack that now holds `user` (a swap or a move within the stack, or the same resource
 * under a new physical ID), other than the entry of the resource being deleted itself. Two resources may show
 * the same physical ID string (both adopted the user): the logical ID tells them apart. A resource shown as
 * being deleted still holds the user unless the whole stack is being deleted: what ListStackResources shows for
 * a resource whose replaced physical resource is deleted in a cleanup phase is undocumented.
 */
export function findHolder(
  resources: StackResource[],
  self: { readonly logicalId?: string; readonly physicalId: string },
  user: UserIdentity,
  stackBeingDeleted = false,
): Holder {
  for (const resource of resources) {
    if (resource.type !== 'Custom::MqUser') continue;
    if (resource.logicalId === self.logicalId && resource.physicalId === self.physicalId) continue;
    // Gone, or deleting its own user along with the stack; one whose create failed holds the framework's marker.
    if (resource.status === 'DELETE_COMPLETE' || resource.status === 'DELETE_SKIPPED') continue;
    if (stackBeingDeleted && resource.status.startsWith('DELETE_')) continue;
    if (sameIdentity(parsePhysicalResourceId(resource.physicalId), user)) return { logicalId: resource.logicalId };
  }
  return 'none';
}

export type DeleteDecision =
  | { readonly action: 'delete' }
  | {
      readonly action: 'keep';
      readonly why: string;
      /** Kept for want of knowing (the stack's status or resources unreadable): it may be a user nothing declares. */
      readonly unsure: boolean;
    }
  | { readonly action: 'fail'; readonly why: string };

/**
 * Whether a Delete removes the user.
 * - An adopted user existed before this resource took it: a rollback (or an unknown status) keeps it.
 * - A user that another current resource of the stack holds is theirs now (swaps, moves within the stack).
 * - When the stack's resources cannot be read: keep during a rollback (never wedge it, never delete what may be
 *   declared), else fail so that the deletion can be retried.
 */
export function decideDelete(input: {
  readonly owner: Owner;
  readonly rollingBack: boolean | undefined;
  readonly holder: Holder;
}): DeleteDecision {
  if (input.owner === 'adopted' && input.rollingBack !== false) {
    return {
      action: 'keep',
      why:
        input.rollingBack === true
          ? 'the user was adopted: it existed before this resource took it over, and this is a rollback'
          : 'the user was adopted and the stack status cannot be read: keeping it rather than risk deleting it',
      unsure: input.rollingBack === undefined,
    };
  }
  if (typeof input.holder === 'object') {
    return {
      action: 'keep',
      why: `resource ${input.holder.logicalId} of this stack now holds the user`,
      unsure: false,
    };
  }
  if (input.holder === 'unknown') {
    const why = "the stack's resources cannot be read, so whether another resource holds the user is unknown";
    return input.rollingBack === false ? { action: 'fail', why } : { action: 'keep', why, unsure: true };
  }
  return { action: 'delete' };
}

/** What an earlier delivery of the same event recorded (lambda/user/deliveries.ts), as read back. */
export interface DeliveryRecord {
  /** That delivery's CreateUser succeeded, or got an answer after which it may have: it may have made this user. */
  readonly made?: UserIdentity;
  /** That delivery's answer to a Create or Update (no secret in it). */
  readonly answer?: RecordedAnswer;
  /** A delivery withdrew `made` before deleting the user it may have made (the Create failed): `made` proves nothing. */
  readonly undone?: boolean;
}

export interface RecordedAnswer {
  readonly PhysicalResourceId: string;
  readonly Data?: Record<string, string>;
}

/** Who the event is about: the physical ID it carries and the user its properties declare (if they parse). */
export interface EventIdentity {
  readonly physicalResourceId?: string;
  readonly user?: UserIdentity;
}

/**
 * What a record of the same delivery (same stack, logical ID, RequestId and whole event: the key says so) proves:
 * - `answer`: an earlier delivery finished the event: its answer is this one, unchanged.
 * - `made`: an earlier delivery's own CreateUser may have made this user: finding it live is finding our own work
 *   (converge it, owner `created`); a user of any other identity proves nothing (`madeByEarlierDelivery`). A `made`
 *   withdrawn (`undone`: a delivery deleted that user again) proves nothing.
 * Nothing: a user found live is someone else's ("already exists", or adoption with `adoptExisting`).
 * A Delete is never recorded nor answered from a record: it is safe to repeat as it is. An answer that is not one
 * this handler could have given to this event (`fitsEvent`) is no answer; a `made` without both names is nothing.
 */
export interface Repeat {
  readonly answer?: RecordedAnswer;
  readonly made?: UserIdentity;
  /**
   * A delivery of this event withdrew its `made` and deleted that user again, and no answer stands: the event failed,
   * and every later delivery of it fails too, before any call (a withdrawal is final).
   */
  readonly undone?: boolean;
}

export function decideRepeat(requestType: string, record: DeliveryRecord | undefined, event: EventIdentity): Repeat {
  if ((requestType !== 'Create' && requestType !== 'Update') || !record) return {};
  const { answer, made } = record;
  const validMade =
    made !== undefined &&
    typeof made.brokerId === 'string' &&
    made.brokerId !== '' &&
    typeof made.username === 'string' &&
    made.username !== '';
  // A withdrawal is final: an answer beside it can only be forged (the two writes exclude each other).
  if (record.undone === true) return { undone: true };
  return {
    ...(fitsEvent(answer, event)
      ? { answer: { PhysicalResourceId: answer.PhysicalResourceId, Data: answer.Data } }
      : {}),
    ...(validMade ? { made: { brokerId: made.brokerId, username: made.username } } : {}),
  };
}

/**
 * Whether a stored answer is one this handler could have given to this event: a physical ID (not the framework's
 * CREATE_FAILED marker) that is the event's own or names exactly the user its properties declare, and Data that is a
 * map of strings whose `Username` and `BrokerId` (when present) are that user's. Anything else (a forged or
 * misdirected record) is no answer: returning it would make the resource hold, and later delete, another user.
 */
export function fitsEvent(answer: RecordedAnswer | undefined, event: EventIdentity): answer is RecordedAnswer {
  if (answer === undefined || typeof answer !== 'object' || answer === null) return false;
  const id = answer.PhysicalResourceId;
  if (typeof id !== 'string' || id === '' || id === CREATE_FAILED_MARKER) return false;
  const data = answer.Data;
  if (
    data !== undefined &&
    (typeof data !== 'object' ||
      data === null ||
      Array.isArray(data) ||
      !Object.values(data).every((value) => typeof value === 'string'))
  ) {
    return false;
  }
  const user = event.user;
  if (data !== undefined && user !== undefined) {
    if (data.Username !== undefined && data.Username !== user.username) return false;
    if (data.BrokerId !== undefined && data.BrokerId !== user.brokerId) return false;
  }
  if (event.physicalResourceId !== undefined && id === event.physicalResourceId) return true;
  const named = parsePhysicalResourceId(id);
  return user !== undefined && named !== undefined && sameIdentity(named, user);
}

/**
 * How the withdrawal of `made` went before an undo (lambda/user/deliveries.ts `withdraw`): written; refused because
 * an answer of this event stands; failed (the table, after its retries); or not tracked (no table, no RequestId).
 */
export type Withdrawal = 'withdrawn' | 'answered' | 'failed' | 'untracked';

/**
 * Whether a failing Create deletes the user its own CreateUser may have made.
 * - `undo`: the claim is withdrawn (a withdrawal is final: no delivery of this event acts after it), or the handler
 *   has no table (nothing was ever recorded).
 * - `answered`: a delivery of this event running at the same time answered SUCCESS with the user: it stands.
 * - `leave`: the withdrawal failed. A `made` may stand (even a write that answered an error may have been applied):
 *   deleting the user would let a later delivery take a same-named user of someone else as its own. Leaving it is
 *   loud (the alarm) and takes nothing.
 */
export function decideUndo(withdrawal: Withdrawal): 'undo' | 'answered' | 'leave' {
  if (withdrawal === 'answered') return 'answered';
  if (withdrawal === 'failed') return 'leave';
  return 'undo';
}

/** Whether the record proves that `user`, found live, is the work of an earlier delivery's own CreateUser. */
export function madeByEarlierDelivery(repeat: Repeat, user: UserIdentity): boolean {
  return sameIdentity(repeat.made, user);
}

const CREATE_FAILED_MARKER = 'AWSCDK::CustomResourceProviderFramework::CREATE_FAILED';
