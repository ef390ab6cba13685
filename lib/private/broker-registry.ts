import { CfnResource, Stack, Token, aws_amazonmq as amazonmq } from 'aws-cdk-lib';
import { Construct, IConstruct } from 'constructs';
import { MAX_USERS_PER_BROKER } from './rules';

interface DeclaredUser {
  readonly username: string;
  readonly path: string;
}

interface BrokerUsers {
  readonly broker: amazonmq.IBrokerRef;
  readonly users: DeclaredUser[];
}

// Per app (the root construct), never global: a WeakMap lets each App and its registry go together.
const registries = new WeakMap<IConstruct, Map<string, BrokerUsers>>();

/**
 * Records an MqUser's username on its broker; at synth time, the app fails if a broker gets one username
 * twice, or more users than Amazon MQ allows (counting the `CfnBroker`'s own `users`).
 */
export function declareUser(user: Construct, broker: amazonmq.IBrokerRef, username: string): void {
  if (Token.isUnresolved(username)) return;
  const root = user.node.root;
  let brokers = registries.get(root);
  if (!brokers) {
    const created = new Map<string, BrokerUsers>();
    registries.set(root, created);
    root.node.addValidation({ validate: () => [...created.values()].flatMap(checkBroker) });
    brokers = created;
  }
  const key = brokerKey(broker);
  const entry = brokers.get(key) ?? { broker, users: [] };
  brokers.set(key, entry);
  entry.users.push({ username, path: user.node.path });
}

function checkBroker({ broker, users }: BrokerUsers): string[] {
  const errors: string[] = [];
  const seen = new Map<string, string>();
  for (const user of users) {
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
  const users = Token.isUnresolved(cfn.users) ? [] : (cfn.users as unknown[]) ?? [];
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
