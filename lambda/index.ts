/**
 * The `Custom::MqUser` handler, invoked by the CDK Provider framework (which answers CloudFormation).
 * Decisions live here; parsing in ./properties, AWS calls in ./aws, the password in ./password.
 */
import type { MqUserResourceAttributes, MqUserResourceProperties, Raw } from '../lib/private/handler-props';
import { Aws, DesiredUser, UserState } from './aws';
import type { HandlerContext, ProviderEvent } from './event';
import { failure, log, resetSensitive, warn } from './log';
import { extractPassword } from './password';
import {
  UserIdentity,
  UserProperties,
  parsePhysicalResourceId,
  parseProperties,
  passwordSourceChanged,
  physicalResourceId,
  sameIdentity,
} from './properties';
import { CallError, Deadline } from './retry';

/** The event of a `Custom::MqUser`. */
export type UserEvent = ProviderEvent<MqUserResourceProperties>;

export interface UserResponse {
  readonly PhysicalResourceId: string;
  readonly Data?: MqUserResourceAttributes;
}

export async function handler(event: UserEvent, context: HandlerContext): Promise<UserResponse> {
  resetSensitive();
  const aws = new Aws(Deadline.fromRemaining(context.getRemainingTimeInMillis()));
  log(`received ${event.RequestType}`, {
    logicalResourceId: event.LogicalResourceId,
    physicalResourceId: event.PhysicalResourceId,
  });
  try {
    switch (event.RequestType) {
      case 'Create':
        return await onCreate(aws, event);
      case 'Update':
        return await onUpdate(aws, event);
      case 'Delete':
        return await onDelete(aws, event);
      default:
        throw new Error(`unknown RequestType ${JSON.stringify((event as { RequestType: unknown }).RequestType)}`);
    }
  } catch (error) {
    throw failure(error);
  }
}

async function onCreate(aws: Aws, event: UserEvent): Promise<UserResponse> {
  const props = parseProperties(event.ResourceProperties);
  const user = identityOf(props);
  await ensureSupportedBroker(aws, user.brokerId);
  const password = await readPassword(aws, props, user);
  await createOrConverge(aws, event, props, user, password);
  return respond(aws, user);
}

async function onUpdate(aws: Aws, event: UserEvent): Promise<UserResponse> {
  const props = parseProperties(event.ResourceProperties);
  const user = identityOf(props);
  if (!sameIdentity(parsePhysicalResourceId(event.PhysicalResourceId), user)) {
    // A new broker or username is a new user: CloudFormation deletes the old one after the whole deploy.
    log('replacing the user: its broker or username changed', { ...user, previous: event.PhysicalResourceId });
    await ensureSupportedBroker(aws, user.brokerId);
    const password = await readPasswordToRestore(aws, event, props, user);
    await createOrConverge(aws, event, props, user, password);
    return respond(aws, user);
  }

  const existing = await aws.describeUser(user);
  if (!isLive(existing)) {
    warn('the user is gone (deleted out of band): creating it again', {
      ...user,
      pendingChange: existing?.pendingChange,
    });
    const password = await readPassword(aws, props, user);
    await createUser(aws, user, { ...desiredState(props, password), password }, existing, props.AdoptExisting);
    return respond(aws, user);
  }
  const previous = tryParse(event.OldResourceProperties);
  const password =
    previous && !passwordSourceChanged(previous, props)
      ? undefined
      : await readPasswordToRestore(aws, event, props, user);
  log('updating the user in place', { ...user, groups: props.Groups, passwordSet: password !== undefined });
  await aws.updateUser(user, desiredState(props, password));
  return respond(aws, user);
}

async function onDelete(aws: Aws, event: UserEvent): Promise<UserResponse> {
  // The identity comes from the physical ID: the properties may be those of another version of the library.
  const physicalId = event.PhysicalResourceId ?? '';
  const user = parsePhysicalResourceId(physicalId);
  if (!user) {
    log('nothing to delete: this handler never made this physical ID', { physicalResourceId: physicalId });
    return { PhysicalResourceId: physicalId };
  }
  const existing = await aws.describeUser(user);
  // An adopted user existed before this stack took it over: a rollback must not delete it. One still pending
  // CREATE did not exist: this stack made it, and its rollback removes it.
  if (
    existing &&
    existing.pendingChange !== 'CREATE' &&
    tryParse(event.ResourceProperties)?.AdoptExisting &&
    (await aws.isRollingBack(event.StackId)) !== false
  ) {
    log('not deleting an adopted user during a rollback: it existed before this stack took it over', { ...user });
    return { PhysicalResourceId: physicalId };
  }
  if (!existing) {
    log('nothing to delete: the user or its broker is already gone', { ...user });
  } else if (existing.pendingChange === 'DELETE') {
    log('nothing to delete: the user is already pending deletion', { ...user });
  } else if (await aws.deleteUser(user)) {
    log("deleted the user: Amazon MQ applies the deletion at the broker's next reboot", { ...user });
  } else {
    log('nothing to delete: the user or its broker is already gone', { ...user });
  }
  return { PhysicalResourceId: physicalId };
}

/**
 * Creates the user, or converges one that exists when that is ours to do: `adoptExisting`, or the rollback
 * of a rename (the old user was never deleted). Anyone else's user is left untouched.
 */
async function createOrConverge(
  aws: Aws,
  event: UserEvent,
  props: UserProperties,
  user: UserIdentity,
  password: string | undefined,
): Promise<void> {
  const existing = await aws.describeUser(user);
  if (!isLive(existing)) {
    if (password === undefined) {
      throw new Error(`cannot create user "${user.username}" on broker ${user.brokerId} without its password`);
    }
    await createUser(aws, user, { ...desiredState(props, password), password }, existing, props.AdoptExisting);
    return;
  }
  if (props.AdoptExisting) {
    log('adopting the existing user: converging it to the declared state', { ...user });
  } else if (event.RequestType === 'Update' && (await aws.isRollingBack(event.StackId)) === true) {
    log('converging the existing user: this rollback restores a user that was never deleted', { ...user });
  } else {
    throw alreadyExists(user);
  }
  await aws.updateUser(user, desiredState(props, password));
}

function alreadyExists(user: UserIdentity): Error {
  return new Error(
    `user "${user.username}" already exists on broker ${user.brokerId} and MqUser left it untouched. ` +
      'To manage it with this MqUser, set adoptExisting: true (it is then converged to the declared state); ' +
      'to move an MqUser between stacks or construct paths, follow "Moving a user" in the cdk-mq-user README.',
  );
}

/**
 * CreateUser, made safe to repeat: a 409 (or, for a user pending deletion, a 400) is answered by looking
 * at the user. Present after an attempt whose outcome is unknown (no answer, a 5xx): that attempt of ours
 * created it, so converge it. Otherwise someone else created it meanwhile, so it is not ours.
 */
async function createUser(
  aws: Aws,
  user: UserIdentity,
  desired: DesiredUser & { readonly password: string },
  before: UserState | undefined,
  adopt: boolean,
): Promise<void> {
  log(before ? 'creating the user again: it is pending deletion' : 'creating the user', {
    ...user,
    groups: desired.groups,
  });
  for (let round = 1; ; round++) {
    try {
      await aws.createUser(user, desired);
      return;
    } catch (error) {
      if (!(error instanceof CallError && (error.httpStatus === 409 || (before && error.httpStatus === 400))))
        throw error;
      const now = await aws.describeUser(user);
      if (isLive(now)) {
        if (!error.earlierAttemptMayHaveSucceeded && !adopt) throw alreadyExists(user);
        log('CreateUser was refused but the user exists: an earlier attempt created it; converging', { ...user });
        await aws.updateUser(user, desired);
        return;
      }
      if (now?.pendingChange === 'DELETE') {
        await reviveWithUpdate(aws, user, desired, error);
        return;
      }
      if (round >= 3) throw error;
    }
  }
}

async function reviveWithUpdate(aws: Aws, user: UserIdentity, desired: DesiredUser, refusal: CallError): Promise<void> {
  log('CreateUser refused a user pending deletion: trying UpdateUser', { ...user });
  try {
    // A 409 here means "not while pending deletion": retrying it would only spend the deadline.
    await aws.updateUser(user, desired, { retryConflict: false });
  } catch (error) {
    throw new Error(
      `user "${user.username}" on broker ${user.brokerId} is pending deletion and Amazon MQ refused to create it ` +
        `again (${refusal.message}; then ${(error as Error).message}). Reboot the broker to apply the deletion, then deploy again.`,
    );
  }
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
  event: UserEvent,
  props: MqUserResourceProperties,
  user: UserIdentity,
): Promise<string | undefined> {
  try {
    return await readPassword(aws, props, user);
  } catch (error) {
    // Unknown counts as no rollback: failing a forward deploy is safe, skipping a password is not.
    if ((await aws.isRollingBack(event.StackId)) !== true) throw error;
    warn(
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

/** The answer to CloudFormation. The user is in place: failing now would leave it behind, so this never throws. */
async function respond(aws: Aws, user: UserIdentity): Promise<UserResponse> {
  const state = await aws.describeUser(user).catch((error: Error) => {
    warn('could not read the pending change of the user', { ...user, reason: error.message });
    return undefined;
  });
  return {
    PhysicalResourceId: physicalResourceId(user),
    Data: {
      Username: user.username,
      BrokerId: user.brokerId,
      PendingChange: state ? (state.pendingChange ?? 'NONE') : 'UNKNOWN',
    },
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

/** A user that exists and is not on its way out. */
function isLive(state: UserState | undefined): boolean {
  return state !== undefined && state.pendingChange !== 'DELETE';
}

function tryParse(raw: Raw<MqUserResourceProperties> | undefined): UserProperties | undefined {
  try {
    return parseProperties(raw);
  } catch {
    return undefined; // an unreadable old format: treat every field as changed
  }
}
