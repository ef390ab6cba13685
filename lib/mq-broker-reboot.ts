import { createHash } from 'crypto';
import { CustomResource, Duration, Lazy, Stack, Token, aws_amazonmq as amazonmq } from 'aws-cdk-lib';
import { Construct } from 'constructs';
import { DeclaredUser, authorizationMapOf, declareReboot } from './private/broker-registry';
import { MQ_BROKER_REBOOT_RESOURCE_TYPE, type MqBrokerRebootResourceProperties } from './private/handler-props';
import { MqBrokerRebootProvider } from './private/reboot-provider';

/** Properties of an MqBrokerReboot. */
export interface MqBrokerRebootProps {
  /** The broker to reboot when this stack's MqUsers of it change. */
  readonly broker: amazonmq.IBrokerRef;

  /**
   * How long the broker may take to return to RUNNING with the users' changes applied before the deploy fails.
   *
   * 1 to 110 minutes. A reboot takes about five minutes.
   *
   * @default Duration.minutes(15)
   */
  readonly timeout?: Duration;

  /**
   * A value whose change reboots the broker on the next deploy, even when no user changed.
   *
   * Any string. Bump it for example to apply the deletion of a removed or renamed user now.
   *
   * @default - reboots only when a covered user changed
   */
  readonly revision?: string;
}

// The Provider framework's waiter gives up after two hours; ours must come first, with room to report.
const MAX_TIMEOUT = Duration.minutes(110);

/**
 * Opts a broker in to applying user changes within the deploy.
 *
 * After this stack's MqUsers of `broker` were created or changed, the broker is rebooted once and the deploy
 * waits until it is RUNNING again with their changes applied. The same when this deploy gave the broker a new
 * configuration revision through its `MqAuthorizationMap` in this stack, and DescribeBroker shows that revision
 * pending (a revision set by someone else is never rebooted for).
 *
 * A reboot applies every pending change of the broker, not only users: configuration revisions, engine
 * upgrades, instance changes. A single-instance broker is offline for about five minutes. Users removed or
 * renamed in a deploy are deleted in CloudFormation's cleanup phase, after the reboot: their removal applies
 * at the next reboot (bump `revision` to reboot again). No reboot happens during a stack rollback.
 */
export class MqBrokerReboot extends Construct {
  /** The users this reboot covers, in a stable order (see `coverageOrder`). */
  private covered: DeclaredUser[] = [];

  constructor(scope: Construct, id: string, props: MqBrokerRebootProps) {
    super(scope, id);
    const timeout = props.timeout ?? Duration.minutes(15);
    if (!timeout.isUnresolved() && (timeout.toSeconds() < 60 || timeout.toSeconds() > MAX_TIMEOUT.toSeconds())) {
      throw new Error(
        `MqBrokerReboot ${this.node.path}: timeout ${timeout.toHumanString()} must be 1 to 110 minutes ` +
          '(a reboot takes about five minutes; the Provider framework waits two hours at most): pass a timeout ' +
          'in that range',
      );
    }
    const stack = Stack.of(this);
    const properties: MqBrokerRebootResourceProperties = {
      BrokerId: props.broker.brokerRef.brokerId,
      Usernames: Lazy.list({ produce: () => this.covered.map((user) => user.username) }),
      UsersDigest: Lazy.string({ produce: () => usersDigest(stack, this.covered) }),
      // Values that resolve only at deploy time (a parameter, an SSM value, a replaced secret) reach the reboot
      // through each user's digest of its resolved state.
      UserStates: Lazy.list({ produce: () => this.covered.map((user) => user.stateDigest) }),
      Revision: props.revision,
      TimeoutSeconds: timeout.toSeconds(),
      // The configuration revision of the broker's MqAuthorizationMap in this stack, if any: applied too.
      ConfigurationId: Lazy.string({ produce: () => authorizationMapOf(this, props.broker)?.id }),
      ConfigurationRevision: Lazy.string({
        produce: () => {
          const map = authorizationMapOf(this, props.broker);
          return map ? Token.asString(map.revision) : undefined;
        },
      }),
    };
    const provider = MqBrokerRebootProvider.getOrCreate(this);
    const resource = new CustomResource(this, 'Resource', {
      serviceToken: provider.serviceToken,
      resourceType: MQ_BROKER_REBOOT_RESOURCE_TYPE,
      properties: { ...properties },
    });
    resource.node.addDependency(provider.allowReboot(props.broker));
    declareReboot(this, props.broker, {
      scope: this,
      cover: (users) => {
        this.covered = [...users].sort(coverageOrder);
        for (const user of users) {
          resource.node.addDependency(user.resource);
          for (const waiting of user.afterReboot) waiting.node.addDependency(resource);
        }
      },
    });
  }
}

/**
 * Changes exactly when a covered user's desired state, as far as it reaches the broker, changes: not with
 * construct order or group order, and not with `adoptExisting` (how a user is taken over, not what it holds).
 */
function usersDigest(stack: Stack, users: DeclaredUser[]): string {
  const states = users
    .map((user) => JSON.stringify(stack.resolve({ ...user.properties, AdoptExisting: undefined })))
    .sort();
  return createHash('sha256').update(JSON.stringify(states)).digest('hex').slice(0, 32);
}

/** Literal usernames first, sorted; then usernames that are tokens, by the construct path of their MqUser. */
function coverageOrder(a: DeclaredUser, b: DeclaredUser): number {
  const key = (user: DeclaredUser) => (Token.isUnresolved(user.username) ? `1 ${user.path}` : `0 ${user.username}`);
  return key(a) < key(b) ? -1 : key(a) > key(b) ? 1 : 0;
}
