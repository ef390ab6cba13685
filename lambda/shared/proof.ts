/**
 * The proof every event gives before a function writes anything: CloudFormation itself confirms that it is working
 * on that very resource now. An event proves nothing by its content (stack, logical and physical IDs are readable
 * by whoever may describe the stack), and whoever may invoke a function can send it any event; CloudFormation's own
 * view of the resource cannot be forged.
 *
 * One read on the common path: DescribeStackResource of the event's logical ID in the function's own stack. It
 * shows the resource's type, its status (`*_IN_PROGRESS` while CloudFormation waits for this event's answer) and its
 * physical ID. Only a Delete of a physical ID the resource no longer shows (the cleanup of a replaced ID) needs a
 * second: the stack's history (DescribeStackEvents) must show CloudFormation deleting that ID of that resource in
 * the cleanup phase the stack is in now.
 *
 * The decisions are pure functions (`judge`, `judgeCleanup`), tested as tables; `proveEvent` only reads.
 */
import { DescribeStackResourceCommand } from '@aws-sdk/client-cloudformation';
import { ownStackId } from './event';
import { CallError, Deadline, withRetry } from './retry';
import { sdk } from './sdk';
import { stackHistory, type HistoryEvent } from './stack';

export type { HistoryEvent };

/** The part of an event the proof reads. */
export interface ProvableEvent {
  readonly RequestType: 'Create' | 'Update' | 'Delete';
  readonly StackId: string;
  readonly LogicalResourceId?: string;
  readonly PhysicalResourceId?: string;
}

/** A resource as DescribeStackResource shows it now. */
export interface ResourceNow {
  readonly type: string;
  readonly status: string;
  readonly physicalId?: string;
  /** The resource's `Metadata` attribute, as CloudFormation returns it (a JSON string). */
  readonly metadata?: string;
}

export type Judgement =
  | { readonly verdict: 'proven' }
  /** The resource shows another physical ID: only the history can prove a cleanup Delete of this one. */
  | { readonly verdict: 'history' }
  | { readonly verdict: 'refused'; readonly why: string };

/**
 * The statuses a resource shows while CloudFormation waits for the answer to an event of each request type. The
 * `*ROLLBACK_IN_PROGRESS` resource statuses are in CloudFormation's enumeration without a word on when a custom
 * resource shows them: a rollback's Update or Delete may show either, and both are taken.
 */
const IN_PROGRESS: Record<ProvableEvent['RequestType'], readonly string[]> = {
  Create: ['CREATE_IN_PROGRESS'],
  Update: ['UPDATE_IN_PROGRESS', 'UPDATE_ROLLBACK_IN_PROGRESS'],
  Delete: ['DELETE_IN_PROGRESS', 'ROLLBACK_IN_PROGRESS'],
};

/** The stack statuses of a cleanup phase: CloudFormation deletes replaced physical IDs in them. */
const CLEANUP = ['UPDATE_COMPLETE_CLEANUP_IN_PROGRESS', 'UPDATE_ROLLBACK_COMPLETE_CLEANUP_IN_PROGRESS'];

/** Whether CloudFormation's view of the resource proves the event, needs the history, or refutes it. */
export function judge(event: ProvableEvent, expectedType: string, now: ResourceNow): Judgement {
  if (now.type !== expectedType) {
    return { verdict: 'refused', why: `it is a ${now.type || 'resource of unknown type'}, not a ${expectedType}` };
  }
  const inProgress = IN_PROGRESS[event.RequestType]?.includes(now.status) ?? false;
  if (event.RequestType === 'Create') {
    return inProgress ? { verdict: 'proven' } : refusedStatus(event, now);
  }
  if (now.physicalId === event.PhysicalResourceId) {
    return inProgress ? { verdict: 'proven' } : refusedStatus(event, now);
  }
  // Another physical ID: only a Delete of a replaced one (the cleanup phase) can be CloudFormation's.
  if (event.RequestType === 'Delete') return { verdict: 'history' };
  return {
    verdict: 'refused',
    why: `it holds physical ID ${JSON.stringify(now.physicalId ?? '')}, not ${JSON.stringify(event.PhysicalResourceId ?? '')}`,
  };
}

function refusedStatus(event: ProvableEvent, now: ResourceNow): Judgement {
  return {
    verdict: 'refused',
    why: `it is ${now.status || 'in no known status'}, not in progress for a ${event.RequestType}`,
  };
}

/**
 * Whether the stack's history, newest first, shows CloudFormation deleting `physicalId` of `logicalId` now: the
 * newest event of that ID is its `DELETE_IN_PROGRESS`, newer than the stack's own latest status, and that status is
 * a cleanup phase. A Delete replayed after that deletion completed, or in another operation, is refused.
 */
export function judgeCleanup(
  history: readonly HistoryEvent[],
  stackId: string,
  logicalId: string,
  physicalId: string,
): { readonly proven: boolean; readonly why?: string } {
  let deleting = false;
  for (const event of history) {
    if (event.type === 'AWS::CloudFormation::Stack' && event.physicalId === stackId) {
      if (!CLEANUP.includes(event.status ?? '')) {
        return { proven: false, why: `the stack is ${event.status}, not in a cleanup phase` };
      }
      return deleting
        ? { proven: true }
        : { proven: false, why: `the stack's ${event.status} deletes no physical ID ${physicalId} of it` };
    }
    if (!deleting && event.logicalId === logicalId && event.physicalId === physicalId) {
      if (event.status !== 'DELETE_IN_PROGRESS') {
        return { proven: false, why: `its latest event for physical ID ${physicalId} is ${event.status}` };
      }
      deleting = true;
    }
  }
  return { proven: false, why: "the stack's current operation was not found in its history" };
}

/** CloudFormation answered and refutes the event: nothing may be written. */
export class EventRefusedError extends Error {
  constructor(event: ProvableEvent, why: string) {
    super(
      `refused a ${event.RequestType} of ${event.LogicalResourceId ?? '(no logical ID)'} ` +
        `(physical ID ${JSON.stringify(event.PhysicalResourceId ?? '')}): CloudFormation is not working on it now: ` +
        `${why}. Only CloudFormation's own events are carried out`,
    );
    this.name = 'EventRefusedError';
  }
}

/** CloudFormation could not be read (throttled past the deadline, access denied, unavailable): no proof. */
export class ProofUnavailableError extends Error {
  constructor(
    event: ProvableEvent,
    readonly cause: Error,
  ) {
    super(
      `could not confirm with CloudFormation that it is working on ${event.LogicalResourceId} now ` +
        `(${cause.message}): nothing is written without that proof`,
    );
    this.name = 'ProofUnavailableError';
  }
}

// A cleanup phase's events come first in the history; beyond this many pages, no proof.
const MAX_HISTORY_PAGES = 10;

/**
 * Proves `event` against CloudFormation, or throws: `ForeignStackError` (no stack ID, or another stack's),
 * `EventRefusedError` (CloudFormation refutes it), `ProofUnavailableError` (CloudFormation could not be read).
 * Returns the resource as CloudFormation shows it (its metadata included).
 */
export async function proveEvent(deadline: Deadline, event: ProvableEvent, expectedType: string): Promise<ResourceNow> {
  const stackId = ownStackId(event);
  const logicalId = event.LogicalResourceId;
  if (!logicalId) throw new EventRefusedError(event, 'the event names no logical ID');
  const now = await readOrRefuse(event, () => describeStackResource(deadline, stackId, logicalId));
  const judgement = judge(event, expectedType, now);
  if (judgement.verdict === 'refused') throw new EventRefusedError(event, judgement.why);
  if (judgement.verdict === 'history') {
    const history = await readOrRefuse(event, () => readHistory(deadline, stackId));
    const cleanup = judgeCleanup(history, stackId, logicalId, event.PhysicalResourceId ?? '');
    if (!cleanup.proven) {
      throw new EventRefusedError(
        event,
        `it holds physical ID ${JSON.stringify(now.physicalId ?? '')}, and ${cleanup.why}`,
      );
    }
  }
  return now;
}

/** A ValidationError is CloudFormation's answer (no such stack or resource); any other failure leaves no proof. */
async function readOrRefuse<T>(event: ProvableEvent, read: () => Promise<T>): Promise<T> {
  try {
    return await read();
  } catch (error) {
    if (error instanceof CallError && error.errorName === 'ValidationError') {
      throw new EventRefusedError(event, `CloudFormation answers: ${error.message}`);
    }
    throw new ProofUnavailableError(event, error as Error);
  }
}

export async function describeStackResource(
  deadline: Deadline,
  stackId: string,
  logicalId: string,
): Promise<ResourceNow> {
  const out = await withRetry({ operation: 'DescribeStackResource' }, deadline, (abortSignal) =>
    sdk().cloudFormation.send(new DescribeStackResourceCommand({ StackName: stackId, LogicalResourceId: logicalId }), {
      abortSignal,
    }),
  );
  const detail = out.StackResourceDetail;
  return {
    type: detail?.ResourceType ?? '',
    status: detail?.ResourceStatus ?? '',
    physicalId: detail?.PhysicalResourceId,
    metadata: detail?.Metadata,
  };
}

async function readHistory(deadline: Deadline, stackId: string): Promise<HistoryEvent[]> {
  const history: HistoryEvent[] = [];
  for await (const event of stackHistory(deadline, stackId, MAX_HISTORY_PAGES)) {
    history.push(event);
    if (event.type === 'AWS::CloudFormation::Stack' && event.physicalId === stackId) break;
  }
  return history;
}
