import { Token } from 'aws-cdk-lib';
import { destinationPatternProblems } from './private/authorization';

/** What an {@link MqDestination} covers. */
export enum MqDestinationKind {
  /** Queues whose names match a pattern. */
  QUEUE = 'queue',
  /** Topics whose names match a pattern. */
  TOPIC = 'topic',
  /** Every temporary queue and topic (request/reply clients create them per connection). */
  TEMPORARY = 'temporary',
}

/**
 * The destinations a rule of an {@link MqAuthorizationMap} is about: queues or topics matching a pattern, or the
 * temporary destinations.
 *
 * Patterns use ActiveMQ's wildcards on `.`-separated name segments: `*` matches exactly one segment
 * (`ORDERS.*` matches `ORDERS.eu` but not `ORDERS.eu.paid`), `>` matches the rest and must come last
 * (`ORDERS.>` matches `ORDERS`, `ORDERS.eu` and `ORDERS.eu.paid`), and `,` lists patterns (`ORDERS.>,BILLING.>`).
 * A pattern is checked when it is created: an invalid one throws, naming the rule it breaks.
 */
export class MqDestination {
  /**
   * Queues whose names match `pattern`.
   *
   * @param pattern for example `ORDERS.>`, `ORDERS.*.paid` or `ORDERS.>,BILLING.>`; the name without a
   *   STOMP `/queue/` or `queue://` prefix
   */
  public static queue(pattern: string): MqDestination {
    return new MqDestination(MqDestinationKind.QUEUE, pattern);
  }

  /**
   * Topics whose names match `pattern`.
   *
   * @param pattern for example `EVENTS.*` or `EVENTS.>`; the name without a STOMP `/topic/` or `topic://` prefix
   */
  public static topic(pattern: string): MqDestination {
    return new MqDestination(MqDestinationKind.TOPIC, pattern);
  }

  /**
   * Every temporary queue and topic of the broker (ActiveMQ has one rule for all of them).
   *
   * A client that creates one needs `admin`, a client that sends to one (a replier) needs `write`, and the
   * client that created it reads it (`read`). Without a rule for them, only `activemq-webconsole` may use them.
   */
  public static temporary(): MqDestination {
    return new MqDestination(MqDestinationKind.TEMPORARY, '');
  }

  /** What the destination covers. */
  public readonly kind: MqDestinationKind;

  /** The name pattern, empty for temporary destinations. */
  public readonly pattern: string;

  private constructor(kind: MqDestinationKind, pattern: string) {
    if (kind !== MqDestinationKind.TEMPORARY) {
      if (Token.isUnresolved(pattern)) {
        throw new Error(
          `MqDestination.${kind}: the pattern must be known at synth time (it is a token): the authorization map is ` +
            'checked and written at synth',
        );
      }
      const problems = destinationPatternProblems(pattern);
      if (problems.length > 0) {
        throw new Error(`MqDestination.${kind}("${pattern}"): ${problems.join('; ')}`);
      }
    }
    this.kind = kind;
    this.pattern = pattern;
  }

  /** `queue "ORDERS.>"`, `topic "EVENTS.*"` or `temporary destinations`. */
  public toString(): string {
    return this.kind === MqDestinationKind.TEMPORARY ? 'temporary destinations' : `${this.kind} "${this.pattern}"`;
  }
}

/** The groups that may use the destinations of a rule, per kind of use. */
export interface MqAccess {
  /**
   * Groups that may receive (consume, subscribe, browse).
   *
   * @default - no group
   */
  readonly read?: string[];

  /**
   * Groups that may send.
   *
   * @default - no group
   */
  readonly write?: string[];

  /**
   * Groups that may create and delete the destinations.
   *
   * ActiveMQ creates a destination on its first use (the first send or subscription) only for a group with `admin`
   * on it.
   *
   * @default - no group
   */
  readonly admin?: string[];
}
