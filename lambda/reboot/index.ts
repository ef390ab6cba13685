/**
 * The `Custom::MqBrokerReboot` handler: reboots a broker once so that the user changes of this deploy take
 * effect, and waits (through the Provider framework's isComplete polling, not inside one invocation) until it
 * is RUNNING again with no covered user's change pending.
 */
import {
  MQ_BROKER_REBOOT_RESOURCE_TYPE,
  type MqBrokerRebootAttributes,
  type MqBrokerRebootResourceProperties,
} from '../../lib/private/handler-props';
import { Aws, type BrokerInfo } from '../shared/aws';
import { failure, log, resetSensitive, warn } from '../shared/log';
import { parseRebootProperties } from '../shared/properties';
import { ProofUnavailableError } from '../shared/proof';
import { Deadline } from '../shared/retry';
import { refuseForeignStack, type HandlerContext, type ProviderEvent } from '../shared/event';
import { decideReboot, usersOfThisDeploy } from './decide';
import { configurationState, describeRevision, type ConfigurationRevision } from './configuration';

/** The timings of every call's retries: exported so that tests can shorten them in the bundle. */
export { retryTiming } from '../shared/retry';

export interface RebootEvent extends ProviderEvent<MqBrokerRebootResourceProperties> {
  /** Present on isComplete calls: what onEvent returned. */
  readonly Data?: Partial<MqBrokerRebootAttributes>;
}

export interface RebootResponse {
  readonly PhysicalResourceId: string;
  readonly Data: MqBrokerRebootAttributes;
}

/** Timings, exported so tests can shorten them. */
export const rebootTiming = {
  /**
   * RebootBroker is asynchronous: right after it, the broker may still say RUNNING with the changes pending.
   * Only after this long is "RUNNING and still pending" taken to mean the changes need another reboot.
   */
  settleMs: 60_000,
};

export async function onEvent(event: RebootEvent, context: HandlerContext): Promise<RebootResponse> {
  resetSensitive();
  try {
    refuseForeignStack(event);
    const props = parseRebootProperties(event.ResourceProperties);
    const physicalResourceId = event.PhysicalResourceId ?? `${props.BrokerId}/reboot`;
    const respond = (action: string, hadPending = false, configurationPending = false): RebootResponse => ({
      PhysicalResourceId: physicalResourceId,
      Data: {
        Action: action,
        RequestedAt: String(Date.now()),
        HadPending: String(hadPending),
        ...(configurationPending ? { ConfigurationPending: 'true' } : {}),
      },
    });
    if (event.RequestType === 'Delete') {
      log('nothing to do: removing the reboot opt-in reboots nothing', { brokerId: props.BrokerId });
      return respond('NONE');
    }
    const previous = event.RequestType === 'Update' ? tryParse(event.OldResourceProperties) : undefined;
    if (event.RequestType === 'Update' && previous && !usersChanged(previous, props)) {
      log('no covered user changed (only the reboot settings did): not rebooting', { brokerId: props.BrokerId });
      return respond('NONE');
    }
    const aws = new Aws(Deadline.fromRemaining(context.getRemainingTimeInMillis()), event.StackId);
    // Nothing is asked of the broker before CloudFormation confirms this event (lambda/shared/proof.ts). Unreadable,
    // it is skipped as a rollback's is: no reboot without proof, and no failure that could wedge a rollback.
    try {
      await aws.prove(event, MQ_BROKER_REBOOT_RESOURCE_TYPE);
    } catch (error) {
      if (!(error instanceof ProofUnavailableError)) throw error;
      warn(`${error.message}: not rebooting. The users' changes stay pending until the broker's next reboot`, {
        brokerId: props.BrokerId,
      });
      return respond('SKIPPED_UNPROVEN');
    }
    const rollingBack = await aws.isRollingBack();
    // Unknown counts as a rollback: a skipped reboot leaves changes pending, a reboot in a rollback can wedge it.
    if (rollingBack !== false) {
      warn(
        `${rollingBack ? 'the stack is rolling back' : 'the stack status is unknown'}: not rebooting. The users' changes stay pending until the ` +
          'broker\'s next reboot or maintenance window; see "Applying changes now" in the cdk-mq-user README',
        { brokerId: props.BrokerId },
      );
      return respond('SKIPPED_ROLLBACK');
    }
    const revisionChanged = event.RequestType === 'Update' && previous?.Revision !== props.Revision;
    const broker = await aws.describeBroker(props.BrokerId);
    if (broker.state === 'REBOOT_IN_PROGRESS') {
      // Amazon MQ lists no users while it reboots. isComplete waits for this reboot, then the settle period, and
      // reboots again if a covered user is still pending.
      log('the broker is already rebooting: waiting for it, then rebooting again if a covered user is still pending', {
        brokerId: props.BrokerId,
      });
      return respond('WAITING', false, wantedConfiguration(props) !== undefined);
    }
    if (broker.state !== 'RUNNING') {
      throw new Error(`broker ${props.BrokerId} is ${broker.state}: Amazon MQ reboots a broker only from RUNNING`);
    }
    // The broker's own state decides, not the template: a deploy that only removes users, or changes settings
    // that never reach the broker, leaves nothing pending, and removed users are deleted only after this.
    const pending = await pendingUnlessRebooting(aws, props.BrokerId);
    if (pending === 'REBOOTING') {
      log('the broker started rebooting meanwhile: waiting for it', { brokerId: props.BrokerId });
      return respond('WAITING', false, wantedConfiguration(props) !== undefined);
    }
    const configurationPending = configurationToApply(props, broker);
    const decision = decideReboot({
      users: usersOfThisDeploy(props, previous),
      pending,
      revisionChanged,
      configurationPending,
    });
    if (decision.action === 'NONE') {
      log(`${decision.why}: not rebooting`, { brokerId: props.BrokerId });
      return respond('NONE');
    }
    const covered = decision.users;
    const hadPending = covered.length > 0 || configurationPending;
    if (await rebootUnlessBusy(aws, props.BrokerId)) {
      log("rebooting the broker to apply its users' pending changes", {
        brokerId: props.BrokerId,
        users: covered,
        ...(configurationPending ? { configuration: describeRevision(wantedConfiguration(props)) } : {}),
      });
      return respond('REBOOTED', hadPending, configurationPending);
    }
    return respond('WAITING', hadPending, configurationPending);
  } catch (error) {
    throw failure(error);
  }
}

export async function isComplete(event: RebootEvent, context: HandlerContext): Promise<{ IsComplete: boolean }> {
  resetSensitive();
  try {
    refuseForeignStack(event);
    const action = event.Data?.Action;
    if (action !== 'REBOOTED' && action !== 'WAITING') return { IsComplete: true };
    const props = parseRebootProperties(event.ResourceProperties);
    const elapsedMs = Date.now() - Number(event.Data?.RequestedAt ?? Date.now());
    const aws = new Aws(Deadline.fromRemaining(context.getRemainingTimeInMillis()), event.StackId);
    const broker = await aws.describeBroker(props.BrokerId);

    if (broker.state !== 'RUNNING' && broker.state !== 'REBOOT_IN_PROGRESS') {
      throw new Error(
        `broker ${props.BrokerId} went to state ${broker.state} while rebooting; its users' changes may not be applied`,
      );
    }
    let stillPending: string[] = [];
    const pending = broker.state === 'RUNNING' ? await pendingUnlessRebooting(aws, props.BrokerId) : 'REBOOTING';
    const wanted = wantedConfiguration(props);
    const configurationWaits =
      event.Data?.ConfigurationPending === 'true' &&
      wanted !== undefined &&
      configurationState(broker.configurations ?? {}, wanted) === 'PENDING';
    if (pending !== 'REBOOTING') {
      // Only this deploy's users: a rotation's staged password or another deploy's change is never waited for.
      const previous = event.RequestType === 'Update' ? tryParse(event.OldResourceProperties) : undefined;
      stillPending = usersOfThisDeploy(props, previous).filter((username) => pending.has(username));
      if (configurationWaits) stillPending.push(`configuration ${describeRevision(wanted)}`);
      // RebootBroker is asynchronous: the broker may say RUNNING for a while after it. Changes that were pending
      // and are gone prove the reboot happened; without them (a revision reboot), only the settle period does.
      if (stillPending.length === 0 && (event.Data?.HadPending === 'true' || elapsedMs >= rebootTiming.settleMs)) {
        log("the broker is RUNNING and its users' changes are applied", { brokerId: props.BrokerId, elapsedMs });
        return { IsComplete: true };
      }
    }
    if (elapsedMs > props.TimeoutSeconds * 1000) {
      throw new Error(
        `broker ${props.BrokerId} did not return to RUNNING with its users' changes applied within ` +
          `${formatDuration(props.TimeoutSeconds)} (state ${broker.state}). The changes stay pending; check the broker ` +
          "in the Amazon MQ console, and raise MqBrokerReboot's timeout if it needs longer",
      );
    }
    // At most one more RebootBroker per settle period: a broker slow to leave RUNNING must not be rebooted
    // at every poll.
    if (stillPending.length > 0 && elapsedMs >= rebootTiming.settleMs && elapsedMs % rebootTiming.settleMs < POLL_MS) {
      // Anyone allowed to start the waiter can hand it any input: only CloudFormation's own event reboots.
      if (await provenForReboot(aws, event)) {
        log('the broker is RUNNING but users still have pending changes: rebooting again', {
          brokerId: props.BrokerId,
          users: stillPending,
        });
        await rebootUnlessBusy(aws, props.BrokerId);
      }
    }
    return { IsComplete: false };
  } catch (error) {
    throw failure(error);
  }
}

/**
 * Whether CloudFormation confirms that it is waiting for this resource now; throws when it refutes it. When it
 * cannot be read, this poll reboots nothing (the next poll asks again).
 */
async function provenForReboot(aws: Aws, event: RebootEvent): Promise<boolean> {
  try {
    await aws.prove(event, MQ_BROKER_REBOOT_RESOURCE_TYPE);
    return true;
  } catch (error) {
    if (!(error instanceof ProofUnavailableError)) throw error;
    warn(`${error.message}: not rebooting again at this poll`, {});
    return false;
  }
}

/** The Provider framework polls isComplete this often (the provider's queryInterval). */
const POLL_MS = 15_000;

/**
 * The configuration revision this deploy set, when DescribeBroker shows it pending: then a reboot applies it.
 * A revision that is neither pending nor current is someone else's business (logged, never rebooted for).
 */
function configurationToApply(props: MqBrokerRebootResourceProperties, broker: BrokerInfo): boolean {
  const wanted = wantedConfiguration(props);
  if (!wanted) return false;
  const state = configurationState(broker.configurations ?? {}, wanted);
  if (state === 'OTHER') {
    warn(
      `configuration ${describeRevision(wanted)} of this deploy is neither pending nor current on the broker ` +
        `(current ${describeRevision(broker.configurations?.current)}, pending ` +
        `${describeRevision(broker.configurations?.pending)}): not rebooting for it`,
      { brokerId: props.BrokerId },
    );
  }
  return state === 'PENDING';
}

function wantedConfiguration(props: MqBrokerRebootResourceProperties): ConfigurationRevision | undefined {
  return props.ConfigurationId !== undefined && props.ConfigurationRevision !== undefined
    ? { id: props.ConfigurationId, revision: Number(props.ConfigurationRevision) }
    : undefined;
}

/**
 * Whether the deploy changed a covered user (digests, resolved states or usernames), the broker, the revision,
 * or the configuration revision of the broker's MqAuthorizationMap.
 */
function usersChanged(previous: MqBrokerRebootResourceProperties, next: MqBrokerRebootResourceProperties): boolean {
  // Usernames and UserStates too: values from parameters change only after resolution, not in the synth digest.
  return (
    previous.ConfigurationId !== next.ConfigurationId ||
    previous.ConfigurationRevision !== next.ConfigurationRevision ||
    previous.UsersDigest !== next.UsersDigest ||
    JSON.stringify(previous.UserStates ?? []) !== JSON.stringify(next.UserStates ?? []) ||
    previous.Revision !== next.Revision ||
    previous.BrokerId !== next.BrokerId ||
    JSON.stringify(previous.Usernames) !== JSON.stringify(next.Usernames)
  );
}

function tryParse(raw: RebootEvent['OldResourceProperties']): MqBrokerRebootResourceProperties | undefined {
  try {
    return parseRebootProperties(raw);
  } catch {
    return undefined; // an unreadable old format: look at the broker, as a change would
  }
}

/**
 * The broker's pending changes, or `REBOOTING` when it left RUNNING between DescribeBroker and ListUsers (Amazon
 * MQ refuses user calls, ListUsers included, with a 400 while it reboots).
 */
async function pendingUnlessRebooting(aws: Aws, brokerId: string): Promise<Map<string, string> | 'REBOOTING'> {
  try {
    return await aws.pendingChanges(brokerId);
  } catch (error) {
    if (!(await aws.refusedWhileRebooting(error, brokerId))) throw error;
    return 'REBOOTING';
  }
}

/**
 * RebootBroker, answering `false` when another reboot got there first: Amazon MQ answers 400 once the broker
 * has left RUNNING (another stack's reboot, a maintenance window). Then this deploy waits for that one.
 */
async function rebootUnlessBusy(aws: Aws, brokerId: string): Promise<boolean> {
  try {
    await aws.rebootBroker(brokerId);
    return true;
  } catch (error) {
    if (!(await aws.refusedWhileRebooting(error, brokerId))) throw error;
    log('another reboot of the broker started first: waiting for it', { brokerId, reason: (error as Error).message });
    return false;
  }
}

function formatDuration(seconds: number): string {
  if (seconds % 60 === 0) return seconds === 60 ? '1 minute' : `${seconds / 60} minutes`;
  return seconds === 1 ? '1 second' : `${seconds} seconds`;
}
