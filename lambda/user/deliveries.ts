/**
 * The record of what the users' handler did for each delivery of a Create or Update, in the stack's table of
 * deliveries (`MqUserProvider` makes it; its name arrives in `CDK_MQ_USER_DELIVERIES_TABLE`). The Provider framework
 * invokes the handler again with the same event when its invoke throws, also after the handler ran (and while it may
 * still run), and that second delivery may land in another Lambda environment: what the first delivery left here is
 * its only proof of its own work. Amazon MQ users carry no tags or timestamps to tell it otherwise.
 *
 * One item per delivery, keyed by the stack, the logical ID, the RequestId and a digest of the whole event (a record
 * never serves another event), holding at most: `made` (this event's CreateUser may have made that user on that
 * broker), `undone` (a delivery withdrew `made` before deleting that user again: it proves nothing any more) and
 * `answer` (the physical ID and Data of the answer; no secret). Reads are strongly consistent. The answer and the
 * withdrawal exclude each other (conditional writes): the answer is written only while no answer and no withdrawal
 * stands (the first answer stands), the withdrawal only while no answer stands. The table failing never breaks a
 * safety rule: a read that fails is "no record" (a second delivery then fails "already exists": loud and safe), a
 * write of `made` or of the answer that fails after its retries is a warning, and a withdrawal that fails leaves the
 * user rather than delete it (index.ts `undoCreate`).
 */
import { createHash } from 'node:crypto';
import { DynamoDBClient, GetItemCommand, UpdateItemCommand, type AttributeValue } from '@aws-sdk/client-dynamodb';
import { DELIVERIES_TABLE_ENV, DELIVERY_KEY_ATTRIBUTE, DELIVERY_TTL_ATTRIBUTE } from '../../lib/private/env';
import type { ProviderEvent } from '../shared/event';
import { unfinished, warn } from '../shared/log';
import type { UserIdentity } from '../shared/properties';
import { Deadline, withRetry } from '../shared/retry';
import { type DeliveryRecord, type EventIdentity, type RecordedAnswer, type Withdrawal, fitsEvent } from './decide';

/** Timings, exported so that tests can shorten them in the bundle. */
export const deliveryTiming = {
  /** The longest one call on the table may take, retries included (at most a quarter of the time left). */
  budgetMs: 5_000,
  /**
   * How long a record is kept (DynamoDB's TTL): an event lives at most 2 hours in the Provider framework's waiter, and
   * up to 6 hours with Lambda's asynchronous retries of the framework's function; a week covers both with room.
   */
  keepSeconds: 7 * 24 * 3_600,
};

let client: DynamoDBClient | undefined;

/** Our own retry loop (lambda/shared/retry) owns backoff and deadlines, as for every other client. */
function dynamodb(): DynamoDBClient {
  client ??= new DynamoDBClient({ maxAttempts: 1 });
  return client;
}

type AnyEvent = ProviderEvent<object>;

/**
 * The delivery's key: readable parts first (for an operator reading the table), then a digest of everything the
 * event carries that could differ between two events with the same RequestId. `undefined` without a RequestId.
 */
export function deliveryKey(event: AnyEvent): string | undefined {
  const { RequestId, RequestType, StackId, LogicalResourceId, PhysicalResourceId } = event;
  if (!RequestId) return undefined;
  const whole = JSON.stringify([
    RequestId,
    RequestType,
    StackId,
    LogicalResourceId,
    PhysicalResourceId,
    event.ResourceProperties,
    event.OldResourceProperties,
  ]);
  const digest = createHash('sha256').update(whole).digest('hex');
  return `${StackId}|${LogicalResourceId}|${RequestId}|${digest}`;
}

export class Deliveries {
  /**
   * The records of `event`'s delivery; records nothing and finds nothing when the function has no table (an older
   * template) or the event no RequestId.
   */
  static of(event: AnyEvent, remainingMs: number): Deliveries {
    const table = process.env[DELIVERIES_TABLE_ENV];
    const key = deliveryKey(event);
    return new Deliveries(table && key ? { table, key } : undefined, Deadline.fromRemaining(remainingMs));
  }

  private constructor(
    private readonly where: { readonly table: string; readonly key: string } | undefined,
    /** Its own deadline: a throttled table must not pace the calls of Amazon MQ. */
    private readonly deadline: Deadline,
  ) {}

  /** What an earlier delivery of this event recorded; `undefined` when nothing is, or the table cannot be read. */
  async read(): Promise<DeliveryRecord | undefined> {
    if (!this.where) return undefined;
    const { table, key } = this.where;
    try {
      const out = await withRetry({ operation: 'GetItem (deliveries)' }, this.bounded(), (abortSignal) =>
        dynamodb().send(
          new GetItemCommand({ TableName: table, Key: { [DELIVERY_KEY_ATTRIBUTE]: { S: key } }, ConsistentRead: true }),
          { abortSignal },
        ),
      );
      return parseItem(out.Item);
    } catch (error) {
      warn('could not read the record of earlier deliveries of this event: handling it as its first', {
        table,
        reason: (error as Error).message,
      });
      return undefined;
    }
  }

  /**
   * Records that this delivery's CreateUser may have made `user`, right after it answered (success, no answer or a
   * 5xx): from then on, a second delivery that finds the user takes it as its own. Conditional on no withdrawal: a
   * delivery of this event that withdrew its `made` deleted the user again, and a claim written after it would make a
   * later delivery take a same-named user of someone else; refused, it throws `UndoneError` (the caller then undoes
   * what it may have made). Other failures are a warning: without the record a second delivery fails "already
   * exists", which is loud and safe.
   */
  async recordMade(user: UserIdentity): Promise<void> {
    if (!this.where) return;
    let refused: Record<string, AttributeValue> | undefined;
    try {
      refused = await this.update(
        'SET #made = :made, #ttl = :ttl',
        { ':made': { M: { brokerId: { S: user.brokerId }, username: { S: user.username } } } },
        'attribute_not_exists(#undone)',
      );
    } catch (error) {
      warn(
        'could not record that this event may have made the user: a second delivery of this event would fail ' +
          '"already exists" (see "Troubleshooting" in the cdk-mq-user README)',
        { ...user, table: this.where.table, reason: (error as Error).message },
      );
      return;
    }
    if (refused !== undefined) throw new UndoneError();
  }

  /**
   * Withdraws `made` before the user it names is deleted again (the Create failed): a delivery of this event that
   * reads the record later fails at once (a withdrawal is final), and one that answers later finds that its user was
   * deleted. Conditional: refused while an answer of this event stands, as a delivery running at the same time then
   * answered SUCCESS with the user; the answer is returned with the refusal. Never throws.
   */
  async withdraw(user: UserIdentity): Promise<{ readonly outcome: Withdrawal; readonly answer?: RecordedAnswer }> {
    if (!this.where) return { outcome: 'untracked' };
    try {
      const earlier = await this.update(
        'SET #undone = :undone, #ttl = :ttl',
        { ':undone': { BOOL: true } },
        'attribute_not_exists(#answer)',
      );
      if (earlier === undefined) return { outcome: 'withdrawn' };
      // The condition failed: an answer stands.
      const stored = (await this.refusedBy(earlier))?.answer;
      return { outcome: 'answered', ...(stored ? { answer: stored } : {}) };
    } catch (error) {
      warn('could not withdraw the record that this event may have made the user', {
        ...user,
        table: this.where.table,
        reason: (error as Error).message,
      });
      return { outcome: 'failed' };
    }
  }

  /**
   * Records the answer to this event, unless an earlier delivery recorded one first or withdrew its `made` (a
   * conditional write): returns the answer that stands, the earlier one if there is one and it fits the event
   * (`fitsEvent`; else ours). Throws `UndoneError` when a delivery of this event withdrew its `made`: it deleted the
   * user again, so this answer must not be SUCCESS. Never throws otherwise.
   */
  async recordAnswer(answer: RecordedAnswer, event: EventIdentity): Promise<RecordedAnswer> {
    if (!this.where) return answer;
    try {
      const earlier = await this.update(
        'SET #answer = :answer, #ttl = :ttl',
        { ':answer': { S: JSON.stringify(answer) } },
        'attribute_not_exists(#answer) AND attribute_not_exists(#undone)',
      );
      if (earlier === undefined) return answer;
      const standing = await this.refusedBy(earlier);
      // A withdrawal is final, whatever stands beside it (an answer beside it can only be forged).
      if (standing?.undone === true) throw new UndoneError();
      return fitsEvent(standing?.answer, event) ? standing.answer : answer;
    } catch (error) {
      if (error instanceof UndoneError) throw error;
      return this.unrecordedAnswer(answer, event, error as Error);
    }
  }

  /**
   * The answer could not be recorded: without it, a delivery of this event running at the same time may still withdraw
   * its `made` and delete the user this answer holds. Read once more: a withdrawal means this answer must not be
   * SUCCESS; a recorded answer (ours, applied after all, or a twin's) stands; otherwise the answer goes out unrecorded,
   * marked for the alarm, as nothing can tell that no twin deletes the user.
   */
  private async unrecordedAnswer(answer: RecordedAnswer, event: EventIdentity, cause: Error): Promise<RecordedAnswer> {
    const standing = await this.read();
    if (standing?.undone === true) throw new UndoneError();
    if (fitsEvent(standing?.answer, event)) return standing.answer;
    unfinished(
      'answered without recording the answer in the table of deliveries: if a delivery of this same event ran at the ' +
        'same time and failed, it may have deleted the user this answer holds; check that it exists',
      { table: this.where!.table, physicalResourceId: answer.PhysicalResourceId, reason: cause.message },
    );
    return answer;
  }

  /** What stood when a conditional write was refused: the item DynamoDB sent back (ALL_OLD), else a fresh read. */
  private async refusedBy(item: Record<string, AttributeValue>): Promise<DeliveryRecord | undefined> {
    return Object.keys(item).length > 0 ? parseItem(item) : this.read();
  }

  /** An UpdateItem of this delivery's item; returns the item as it was when a condition failed, else `undefined`. */
  private async update(
    expression: string,
    values: Record<string, AttributeValue>,
    condition?: string,
  ): Promise<Record<string, AttributeValue> | undefined> {
    const { table, key } = this.where!;
    const expiresAt = Math.floor(Date.now() / 1000) + deliveryTiming.keepSeconds;
    const names: Record<string, string> = { '#ttl': DELIVERY_TTL_ATTRIBUTE };
    // Only the names the expressions use: DynamoDB refuses unused ones (400 ValidationException).
    for (const name of ['made', 'answer', 'undone']) {
      if (expression.includes(`#${name}`) || condition?.includes(`#${name}`)) names[`#${name}`] = name;
    }
    return withRetry({ operation: 'UpdateItem (deliveries)' }, this.bounded(), async (abortSignal) => {
      try {
        await dynamodb().send(
          new UpdateItemCommand({
            TableName: table,
            Key: { [DELIVERY_KEY_ATTRIBUTE]: { S: key } },
            UpdateExpression: expression,
            ExpressionAttributeNames: names,
            ExpressionAttributeValues: { ...values, ':ttl': { N: String(expiresAt) } },
            ...(condition
              ? { ConditionExpression: condition, ReturnValuesOnConditionCheckFailure: 'ALL_OLD' as const }
              : {}),
          }),
          { abortSignal },
        );
        return undefined;
      } catch (error) {
        // The condition failed: an answer (or a withdrawal) stands already. That is an answer, not a failure to retry.
        if ((error as Error).name === 'ConditionalCheckFailedException') {
          return (error as { Item?: Record<string, AttributeValue> }).Item ?? {};
        }
        throw error;
      }
    });
  }

  /** The deadline of one call: its budget, at most a quarter of the time left. */
  private bounded(): Deadline {
    const left = this.deadline.remainingMs();
    const budget = Math.min(deliveryTiming.budgetMs, left / 4);
    return this.deadline.earlier(Math.max(0, left - budget));
  }
}

/** The record as stored; fields that do not parse are left out (decideRepeat judges what remains). */
function parseItem(item: Record<string, AttributeValue> | undefined): DeliveryRecord | undefined {
  if (!item) return undefined;
  const made = item.made?.M;
  const undone = item.undone?.BOOL === true;
  const brokerId = made?.brokerId?.S;
  const username = made?.username?.S;
  let answer: RecordedAnswer | undefined;
  try {
    const parsed = item.answer?.S === undefined ? undefined : (JSON.parse(item.answer.S) as RecordedAnswer);
    if (parsed && typeof parsed === 'object') answer = parsed;
  } catch {
    answer = undefined;
  }
  return {
    ...(brokerId !== undefined && username !== undefined ? { made: { brokerId, username } } : {}),
    ...(answer ? { answer } : {}),
    ...(undone ? { undone } : {}),
  };
}

/** A delivery of this event withdrew its `made` and deleted that user again: this one must not answer SUCCESS. */
export class UndoneError extends Error {
  constructor() {
    super(
      'a delivery of this same event undid its CreateUser and deleted the user again: ' +
        'this Create fails and rolls back, and nothing of it stays on the broker',
    );
    this.name = 'UndoneError';
  }
}
