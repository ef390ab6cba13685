import { Annotations, CfnResource, IAspect, Aspects, Stack, Token, aws_amazonmq as amazonmq } from 'aws-cdk-lib';
import { Construct, IConstruct } from 'constructs';
import { MAX_USERS_PER_BROKER } from './rules';

/** An MqUser as the registry knows it. */
export interface DeclaredUser {
  readonly username: string;
  readonly path: string;
  readonly stack: Stack;
  /** The `Custom::MqUser` resource. */
  readonly resource: IConstruct;
  /** Its properties, tokens unresolved. */
  readonly properties: object;
}

/** What an `MqBrokerReboot` needs to learn at synth time: the users it covers. */
export interface RebootDeclaration {
  cover(users: DeclaredUser[]): void;
}

interface BrokerUsers {
  readonly broker: amazonmq.IBrokerRef;
  readonly users: DeclaredUser[];
}

// Per app (the root construct) and per stack, never global: WeakMaps let each App go with its registry.
const appRegistries = new WeakMap<IConstruct, Map<string, BrokerUsers>>();
const stackReboots = new WeakMap<Stack, Map<string, RebootDeclaration>>();

/**
 * Records an MqUser on its broker. At synth time the app fails if a broker gets one username twice, or more
 * users than Amazon MQ allows (counting the `CfnBroker`'s own `users`).
 */
export function declareUser(broker: amazonmq.IBrokerRef, user: DeclaredUser): void {
  const brokers = appRegistry(user.resource.node.root);
  const key = brokerKey(broker);
  const entry = brokers.get(key) ?? { broker, users: [] };
  brokers.set(key, entry);
  entry.users.push(user);
  watchStack(user.stack);
}

/** Records the reboot opt-in of `broker` in `stack`: one per broker per stack. */
export function declareReboot(scope: Construct, broker: amazonmq.IBrokerRef, reboot: RebootDeclaration): void {
  const stack = Stack.of(scope);
  const reboots = stackReboots.get(stack) ?? new Map<string, RebootDeclaration>();
  stackReboots.set(stack, reboots);
  const key = brokerKey(broker);
  if (reboots.has(key)) {
    throw new Error(
      `broker ${brokerLabel(broker)} already has an MqBrokerReboot in stack ${stack.stackName}: declare one per broker per stack`,
    );
  }
  reboots.set(key, reboot);
  watchStack(stack);
}

function appRegistry(root: IConstruct): Map<string, BrokerUsers> {
  let brokers = appRegistries.get(root);
  if (!brokers) {
    const created = new Map<string, BrokerUsers>();
    root.node.addValidation({ validate: () => [...created.values()].flatMap(checkBroker) });
    appRegistries.set(root, created);
    brokers = created;
  }
  return brokers;
}

const watchedStacks = new WeakSet<Stack>();

/**
 * Once all constructs exist (aspects run first in synthesis), hand each opted-in broker's reboot the
 * stack's users of that broker, and tell the other brokers' users how to opt in.
 */
function watchStack(stack: Stack): void {
  if (watchedStacks.has(stack)) return;
  watchedStacks.add(stack);
  const aspect: IAspect = {
    visit: (node) => {
      if (node !== stack) return;
      const brokers = appRegistry(stack.node.root);
      const reboots = stackReboots.get(stack);
      for (const [key, { users }] of brokers) {
        const ours = users.filter((user) => user.stack === stack);
        const reboot = reboots?.get(key);
        if (reboot) {
          reboot.cover(ours);
        } else if (ours.length > 0) {
          Annotations.of(ours[0].resource.node.scope ?? stack).addInfoV2(
            'cdk-mq-user:rebootNotConfigured',
            `Amazon MQ applies the changes of this stack's users of broker ${brokerLabel(brokers.get(key)!.broker)} at the ` +
              "broker's next reboot or weekly maintenance window. To apply them within the deploy, add " +
              'new MqBrokerReboot(stack, id, { broker }).',
          );
        }
      }
      for (const [key, reboot] of reboots ?? []) {
        if (!brokers.has(key)) reboot.cover([]);
      }
    },
  };
  Aspects.of(stack).add(aspect);
}

function checkBroker({ broker, users }: BrokerUsers): string[] {
  const errors: string[] = [];
  const seen = new Map<string, string>();
  for (const user of users.filter((u) => !Token.isUnresolved(u.username))) {
    const first = seen.get(user.username);
    if (first) {
      errors.push(
        `username "${user.username}" is declared twice on broker ${brokerLabel(broker)} (${first} and ${user.path}): ` +
          'a broker has one user per username',
      );
    }
    seen.set(user.username, user.path);
  }
  const ownUsers = cfnBrokerUsernames(broker)?.length ?? 0;
  if (users.length + ownUsers > MAX_USERS_PER_BROKER) {
    errors.push(
      `broker ${brokerLabel(broker)} would have ${users.length + ownUsers} users (${users.length} MqUsers and ` +
        `${ownUsers} in the broker's own users list); Amazon MQ allows at most ${MAX_USERS_PER_BROKER} per broker`,
    );
  }
  return errors;
}

/** The broker as a `CfnBroker` of this app, when it is one. */
export function asCfnBroker(broker: amazonmq.IBrokerRef): amazonmq.CfnBroker | undefined {
  return CfnResource.isCfnResource(broker) && broker.cfnResourceType === 'AWS::AmazonMQ::Broker'
    ? (broker as amazonmq.CfnBroker)
    : undefined;
}

/** The literal usernames of a `CfnBroker`'s own `users` list; `undefined` when it is not a CfnBroker. */
export function cfnBrokerUsernames(broker: amazonmq.IBrokerRef): string[] | undefined {
  const cfn = asCfnBroker(broker);
  if (!cfn) return undefined;
  const users = Token.isUnresolved(cfn.users) ? [] : ((cfn.users as unknown[]) ?? []);
  return users
    .map((user) => (user as { username?: unknown }).username)
    .filter((name): name is string => typeof name === 'string' && !Token.isUnresolved(name));
}

/** Identifies a broker across the app: its literal ID, else its ID's CloudFormation expression in its stack. */
function brokerKey(broker: amazonmq.IBrokerRef): string {
  const id = broker.brokerRef.brokerId;
  if (!Token.isUnresolved(id)) return id;
  const stack = Stack.of(broker);
  return `${stack.node.path}:${JSON.stringify(stack.resolve(id))}`;
}

export function brokerLabel(broker: amazonmq.IBrokerRef): string {
  const id = broker.brokerRef.brokerId;
  return Token.isUnresolved(id) ? broker.node.path : id;
}
