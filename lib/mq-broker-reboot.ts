import { createHash } from 'crypto';
import { CustomResource, Duration, Lazy, Stack, aws_amazonmq as amazonmq } from 'aws-cdk-lib';
import { Construct } from 'constructs';
import { DeclaredUser, declareReboot } from './private/broker-registry';
import { MQ_BROKER_REBOOT_RESOURCE_TYPE, type MqBrokerRebootResourceProperties } from './private/handler-props';
import { MqBrokerRebootProvider } from './private/reboot-provider';

/** Properties of an MqBrokerReboot. */
export interface MqBrokerRebootProps {
  /** The broker to reboot when this stack's MqUsers of it change. */
  readonly broker: amazonmq.IBrokerRef;

  /**
   * How long the broker may take to return to RUNNING with the users' changes applied before the deploy
   * fails. A reboot takes about five minutes; at most 110 minutes.
   *
   * @default Duration.minutes(15)
   */
  readonly timeout?: Duration;

  /**
   * Any value; change it to reboot on the next deploy even when no user changed, for example to apply the
   * deletion of a removed or renamed user now.
   *
   * @default - reboots only when a covered user changed
   */
  readonly revision?: string;
}

// The Provider framework's waiter gives up after two hours; ours must come first, with room to report.
const MAX_TIMEOUT = Duration.minutes(110);

/**
 * Opts a broker in to applying user changes within the deploy: after this stack's MqUsers of `broker` were
 * created, changed or removed, the broker is rebooted once and the deploy waits until it is RUNNING again.
 *
 * A reboot applies every pending change of the broker, not only users: configuration revisions, engine
 * upgrades, instance changes. A single-instance broker is offline for about five minutes. Users removed or
 * renamed in a deploy are deleted in CloudFormation's cleanup phase, after the reboot: their removal applies
 * at the next reboot (bump `revision` to reboot again). No reboot happens during a stack rollback.
 */
export class MqBrokerReboot extends Construct {
  /** The usernames this reboot covers, known at synth time (tokens stay tokens). */
  private covered: DeclaredUser[] = [];

  constructor(scope: Construct, id: string, props: MqBrokerRebootProps) {
    super(scope, id);
    const timeout = props.timeout ?? Duration.minutes(15);
    if (!timeout.isUnresolved() && (timeout.toSeconds() < 60 || timeout.toSeconds() > MAX_TIMEOUT.toSeconds())) {
      throw new Error(
        `MqBrokerReboot ${this.node.path}: timeout ${timeout.toHumanString()} must be 1 to 110 minutes ` +
          '(a reboot takes about five minutes; the Provider framework waits two hours at most)',
      );
    }
    const stack = Stack.of(this);
    const properties: MqBrokerRebootResourceProperties = {
      BrokerId: props.broker.brokerRef.brokerId,
      Usernames: Lazy.list({ produce: () => this.covered.map((user) => user.username).sort() }),
      UsersDigest: Lazy.string({ produce: () => usersDigest(stack, this.covered) }),
      Revision: props.revision,
      TimeoutSeconds: timeout.toSeconds(),
    };
    const provider = MqBrokerRebootProvider.getOrCreate(this);
    const resource = new CustomResource(this, 'Resource', {
      serviceToken: provider.serviceToken,
      resourceType: MQ_BROKER_REBOOT_RESOURCE_TYPE,
      properties: { ...properties },
    });
    resource.node.addDependency(provider.allowReboot(props.broker));
    declareReboot(this, props.broker, {
      cover: (users) => {
        this.covered = users;
        for (const user of users) resource.node.addDependency(user.resource);
      },
    });
  }
}

/** Changes exactly when a covered user's desired state changes; not with construct order or group order. */
function usersDigest(stack: Stack, users: DeclaredUser[]): string {
  const states = users.map((user) => JSON.stringify(stack.resolve(user.properties))).sort();
  return createHash('sha256').update(JSON.stringify(states)).digest('hex').slice(0, 32);
}
