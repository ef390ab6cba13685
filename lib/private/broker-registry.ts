import {
  Annotations,
  CfnDeletionPolicy,
  CfnResource,
  IAspect,
  Aspects,
  Stack,
  Token,
  aws_amazonmq as amazonmq,
} from 'aws-cdk-lib';
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
  /** `Fn::GetAtt <resource>.StateDigest`: the user's state as the handler resolved it at deploy time. */
  readonly stateDigest: string;
  /** For the alternate user of a rotated MqUser: that MqUser's construct path, for messages. */
  readonly alternateOf?: string;
  /**
   * Constructs that must wait for the `MqBrokerReboot` covering this user, when there is one: the rotation
   * schedule, because Secrets Manager rotates as soon as it is created and its UpdateUser would otherwise race
   * the deploy's reboot. Filled until synthesis.
   */
  readonly afterReboot: IConstruct[];
}

/** What an `MqBrokerReboot` needs to learn at synth time: the users it covers. */
export interface RebootDeclaration {
  /** The `MqBrokerReboot`, for its annotations and messages. */
  readonly scope: IConstruct;
  cover(users: DeclaredUser[]): void;
}

interface BrokerUsers {
  readonly broker: amazonmq.IBrokerRef;
  readonly users: DeclaredUser[];
}

// Per app (the root construct) and per stack, never global: WeakMaps let each App go with its registry.
const appRegistries = new WeakMap<IConstruct, Map<string, BrokerUsers>>();
const stackReboots = new WeakMap<Stack, Map<string, RebootDeclaration & { broker: amazonmq.IBrokerRef }>>();

/**
 * Records an MqUser on its broker. At synth time the app fails if a broker gets one username twice (reported
 * on the second MqUser), or more users than Amazon MQ allows, counting the `CfnBroker`'s own `users` (reported
 * on the broker): each error names the construct it belongs to.
 */
export function declareUser(broker: amazonmq.IBrokerRef, user: DeclaredUser): void {
  const brokers = appRegistry(user.resource.node.root);
  const key = brokerKey(broker);
  let entry = brokers.get(key);
  if (!entry) {
    const created: BrokerUsers = { broker, users: [] };
    broker.node.addValidation({ validate: () => checkBrokerSize(created) });
    brokers.set(key, created);
    entry = created;
  }
  const declared = entry;
  declared.users.push(user);
  (user.resource.node.scope ?? user.resource).node.addValidation({
    validate: () => checkUsernameOnce(declared, user),
  });
  watchStack(user.stack);
}

/** Records the reboot opt-in of `broker` in `stack`: one per broker per stack. */
export function declareReboot(scope: Construct, broker: amazonmq.IBrokerRef, reboot: RebootDeclaration): void {
  const stack = Stack.of(scope);
  const reboots = stackReboots.get(stack) ?? new Map<string, RebootDeclaration & { broker: amazonmq.IBrokerRef }>();
  stackReboots.set(stack, reboots);
  const key = brokerKey(broker);
  const existing = reboots.get(key);
  if (existing) {
    throw new Error(
      `MqBrokerReboot ${scope.node.path}: broker ${brokerLabel(broker)} already has an MqBrokerReboot in stack ` +
        `${stack.stackName} (${existing.scope.node.path}): declare one per broker per stack, it covers all the ` +
        "stack's MqUsers of that broker",
    );
  }
  reboots.set(key, { scope: reboot.scope, cover: (users) => reboot.cover(users), broker });
  watchStack(stack);
}

function appRegistry(root: IConstruct): Map<string, BrokerUsers> {
  let brokers = appRegistries.get(root);
  if (!brokers) {
    brokers = new Map<string, BrokerUsers>();
    appRegistries.set(root, brokers);
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
        warnSameTokenUsername(stack, brokers.get(key)!.broker, ours);
        const reboot = reboots?.get(key);
        if (reboot) {
          if (ours.length === 0 && !authorizationMapOf(stack, reboot.broker)) {
            warnRebootWithoutUsers(stack, reboot.broker, reboot);
          }
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
        if (brokers.has(key)) continue;
        if (!authorizationMapOf(stack, reboot.broker)) warnRebootWithoutUsers(stack, reboot.broker, reboot);
        reboot.cover([]);
      }
    },
  };
  Aspects.of(stack).add(aspect);
}

/**
 * The second MqUser of a literal username on one broker fails, naming the first. Except a move between two stacks
 * of one app (README "Moving a user"): one declaration adopts the user (`adoptExisting`, which a rotation's
 * alternate takes from its MqUser) and the other retains it (its removal policy), so neither deletes the other's.
 */
function checkUsernameOnce({ broker, users }: BrokerUsers, user: DeclaredUser): string[] {
  if (Token.isUnresolved(user.username)) return [];
  const first = users.find((other) => other.username === user.username && !isMoveBetweenStacks(other, user));
  if (!first || first === user) return [];
  const describe = (u: DeclaredUser) =>
    u.alternateOf ? `${u.path}, the alternate user of the rotation of ${u.alternateOf}` : u.path;
  const alternate = [first, user].find((u) => u.alternateOf !== undefined);
  const plain = [first, user].find((u) => u.alternateOf === undefined);
  if (alternate && plain) {
    // Rotation sets the password of `<name>_clone`: a plain user of that name would be its victim.
    return [
      `username "${user.username}" of ${plain.path} is the name of the alternate user that the rotation of ` +
        `${alternate.alternateOf} manages on broker ${brokerLabel(broker)}: the rotation would set its password. ` +
        'Rename the plain user, or rotate it instead of declaring its _clone yourself',
    ];
  }
  return [
    `username "${user.username}" is declared twice on broker ${brokerLabel(broker)} (${describe(first)} and ` +
      `${describe(user)}): a broker has one user per username; remove one of the two MqUsers or give it another username`,
  ];
}

function isMoveBetweenStacks(a: DeclaredUser, b: DeclaredUser): boolean {
  if (a === b || a.stack === b.stack) return false;
  return (adopts(a) && retains(b)) || (adopts(b) && retains(a));
}

function adopts(user: DeclaredUser): boolean {
  return (user.properties as { AdoptExisting?: unknown }).AdoptExisting === true;
}

function retains(user: DeclaredUser): boolean {
  const policy = (user.resource.node.defaultChild as CfnResource | undefined)?.cfnOptions.deletionPolicy;
  return policy === CfnDeletionPolicy.RETAIN || policy === CfnDeletionPolicy.RETAIN_EXCEPT_ON_CREATE;
}

function checkBrokerSize({ broker, users }: BrokerUsers): string[] {
  const ownUsers = cfnBrokerUsernames(broker)?.length ?? 0;
  if (users.length + ownUsers <= MAX_USERS_PER_BROKER) return [];
  const alternates = users.filter((user) => user.alternateOf !== undefined).length;
  const ours = alternates
    ? `${users.length - alternates} MqUsers, ${alternates} rotation ${alternates === 1 ? 'alternate' : 'alternates'}`
    : `${users.length} MqUsers`;
  return [
    `broker ${brokerLabel(broker)} would have ${users.length + ownUsers} users (${ours} and ` +
      `${ownUsers} in the broker's own users list); Amazon MQ allows at most ${MAX_USERS_PER_BROKER} per broker: ` +
      'move users to another broker',
  ];
}

/** Two MqUsers of one broker whose usernames are the same unresolved value: one deploy-time username, twice. */
function warnSameTokenUsername(stack: Stack, broker: amazonmq.IBrokerRef, users: DeclaredUser[]): void {
  const seen = new Map<string, DeclaredUser>();
  for (const user of users.filter((u) => Token.isUnresolved(u.username))) {
    const expression = JSON.stringify(stack.resolve(user.username));
    const first = seen.get(expression);
    if (!first) {
      seen.set(expression, user);
      continue;
    }
    Annotations.of(user.resource.node.scope ?? user.resource).addWarningV2(
      'cdk-mq-user:sameTokenUsername',
      `the username of this MqUser is the same deploy-time value as that of ${first.path} (${expression}) on broker ` +
        `${brokerLabel(broker)}: a broker has one user per username, so the deploy would fail or both would manage ` +
        'one user. Give each MqUser its own username.',
    );
  }
}

function warnRebootWithoutUsers(stack: Stack, broker: amazonmq.IBrokerRef, reboot: RebootDeclaration): void {
  Annotations.of(reboot.scope).addWarningV2(
    'cdk-mq-user:rebootWithoutUsers',
    `this MqBrokerReboot covers no user: stack ${stack.stackName} declares no MqUser of broker ${brokerLabel(broker)}, ` +
      "and it applies only this stack's MqUsers of its broker. Declare the broker's MqUsers in this stack, or " +
      'remove the MqBrokerReboot (its revision would still reboot the broker).',
  );
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

/** The MqUsers of `broker` declared anywhere in the app of `scope` so far (read them at synth time). */
export function declaredUsersOf(scope: IConstruct, broker: amazonmq.IBrokerRef): readonly DeclaredUser[] {
  return appRegistries.get(scope.node.root)?.get(brokerKey(broker))?.users ?? [];
}

/** The configuration revision of each broker's MqAuthorizationMap, per stack (the map lives in the broker's). */
const stackMaps = new WeakMap<Stack, Map<string, { readonly id: string; readonly revision: number }>>();

/** Records the configuration an MqAuthorizationMap gave `broker`, for the stack's MqBrokerReboot of it. */
export function declareAuthorizationMap(
  scope: IConstruct,
  broker: amazonmq.IBrokerRef,
  configuration: { readonly id: string; readonly revision: number },
): void {
  const stack = Stack.of(scope);
  const maps = stackMaps.get(stack) ?? new Map<string, { readonly id: string; readonly revision: number }>();
  stackMaps.set(stack, maps);
  maps.set(brokerKey(broker), configuration);
}

/** The configuration of `broker`'s MqAuthorizationMap in the stack of `scope`, if it has one there. */
export function authorizationMapOf(
  scope: IConstruct,
  broker: amazonmq.IBrokerRef,
): { readonly id: string; readonly revision: number } | undefined {
  return stackMaps.get(Stack.of(scope))?.get(brokerKey(broker));
}
