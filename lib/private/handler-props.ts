/**
 * The wire format of a `Custom::MqUser` resource: written once, imported by the construct (which sends it)
 * and by the handler (which parses it). CloudFormation delivers every scalar as a string, so the handler
 * receives `Raw<MqUserResourceProperties>` and parses it in one place (`lambda/shared/properties.ts`).
 *
 * Changing a key here changes the template of every deployed user: add keys, never rename or remove them
 * (old properties keep arriving on Delete and on the rollback of an Update).
 */
export interface MqUserResourceProperties {
  /** Broker ID, e.g. `b-1234a5b6-78cd-901e-2fab-3c45d6e178f9`. Part of the user's identity. */
  readonly BrokerId: string;
  /** Part of the user's identity: a change replaces the user. */
  readonly Username: string;
  /** Sorted and de-duplicated, so that reordering them changes nothing. */
  readonly Groups: string[];
  /** Absent means false: flags are written only when true, which keeps each user's template small. */
  readonly ConsoleAccess?: boolean;
  /** Absent means false. */
  readonly ReplicationUser?: boolean;
  /** ARN of the Secrets Manager secret that holds the password. Never the password itself. */
  readonly PasswordSecretArn: string;
  /** JSON key inside the secret; absent: `password` of a JSON object, else the whole string. */
  readonly PasswordField?: string;
  /** Opaque value whose change makes the handler read the secret again and set the password. */
  readonly PasswordVersion?: string;
  /** Digest of the settings a generated secret was made with; absent for a supplied secret. */
  readonly GeneratedPasswordSettings?: string;
  /** Converge a user that already exists instead of failing. Absent means false. */
  readonly AdoptExisting?: boolean;
  /**
   * The password is rotated (`MqUser.addRotation`): the rotation function owns it after the user's creation, so
   * an Update never sets it. Absent means false.
   */
  readonly RotationEnabled?: boolean;
  /**
   * The version of this format whose attributes other resources read. A new value makes CloudFormation send every
   * existing user one Update, which writes nothing to the broker and answers the new attributes: without it, a user
   * deployed by 0.1 would never gain `StateDigest`, and `MqBrokerReboot`'s `Fn::GetAtt` of it would fail.
   */
  readonly FormatVersion?: string;
}

/** The current `FormatVersion`: `2` since 0.2 added `StateDigest`. */
export const MQ_USER_FORMAT_VERSION = '2';

/** What the handler returns in `Data`: available through `Fn::GetAtt`. */
export interface MqUserResourceAttributes {
  readonly Username: string;
  readonly BrokerId: string;
  /** `CREATE`, `UPDATE`, `DELETE` or `NONE`: the user's pending change after this deploy; `UNKNOWN` if unreadable. */
  readonly PendingChange: string;
  /**
   * Digest of the user's desired state as the handler resolved it (username, groups, flags, password source and
   * version): changes exactly when a deploy changed what the broker holds, including values that only resolve
   * at deploy time (a parameter, an SSM value, a replaced secret). `MqBrokerReboot` lists it for every covered
   * user, so that such a change reaches the reboot too.
   */
  readonly StateDigest: string;
}

/** How a value looks after CloudFormation has turned every scalar into a string. */
export type Raw<T> = { [K in keyof T]?: unknown };

/** The custom resource type: public API, never to be renamed. */
export const MQ_USER_RESOURCE_TYPE = 'Custom::MqUser';

/**
 * The wire format of a `Custom::MqBrokerReboot` resource: one per opted-in broker per stack, updated exactly
 * when one of the users it covers was created, changed or removed.
 */
export interface MqBrokerRebootResourceProperties {
  readonly BrokerId: string;
  /** The covered users (the stack's MqUsers of this broker), sorted: the handler waits for their changes. */
  readonly Usernames: string[];
  /** Digest of the synth-time desired state of every covered user (settings that reach the broker only). */
  readonly UsersDigest: string;
  /**
   * `Fn::GetAtt <user>.StateDigest` of every covered user, in the order of `Usernames`: values resolved at
   * deploy time reach the reboot resource through them. Absent in properties written before 0.2.
   */
  readonly UserStates?: string[];
  /** Opaque value whose change forces a reboot on the next deploy. */
  readonly Revision?: string;
  /** How long the broker may take to return to RUNNING. */
  readonly TimeoutSeconds: number;
  /**
   * The configuration revision this deploy gave the broker (the `MqAuthorizationMap` of the broker in this
   * stack), `Fn::GetAtt` of its `Id` and `Revision`: rebooted for when DescribeBroker shows it pending. Absent
   * without a map.
   */
  readonly ConfigurationId?: string;
  readonly ConfigurationRevision?: string;
}

/** What the reboot handler's onEvent decided; the Provider framework hands it to every isComplete call. */
export interface MqBrokerRebootAttributes {
  /**
   * `REBOOTED`, `WAITING` (a reboot was already in progress), `SKIPPED_ROLLBACK`, `SKIPPED_UNPROVEN` (CloudFormation
   * could not be read) or `NONE`.
   */
  readonly Action: string;
  /**
   * `true` when a covered user had a pending change when onEvent ran: then isComplete may take "none pending
   * any more" as proof that the reboot applied it. Otherwise (a `revision` reboot) it waits for the broker to
   * be seen rebooting or for the settle period.
   */
  readonly HadPending?: string;
  /** When onEvent ran, in milliseconds since the epoch: the timeout counts from here. */
  readonly RequestedAt: string;
  /**
   * `true` when the configuration revision of `ConfigurationId`/`ConfigurationRevision` was pending when
   * onEvent ran (or may be, behind a reboot already in progress): isComplete then reboots again and waits
   * while DescribeBroker still shows it pending. Absent otherwise.
   */
  readonly ConfigurationPending?: string;
}

/** The reboot resource type: public API, never to be renamed. */
export const MQ_BROKER_REBOOT_RESOURCE_TYPE = 'Custom::MqBrokerReboot';

/**
 * The word every log line of the users' handler carries when it answered but left a user unlike its declaration (a
 * rollback that could not restore or delete it, a cleanup Delete that could not delete it, an event it could not
 * prove): the handler's log group counts these lines into a metric, and `MqUserProvider.unfinishedWorkAlarm` goes
 * to ALARM. One word, so that the metric filter matches it in any log format.
 */
export const UNFINISHED_WORK_MARKER = 'CdkMqUserUnfinishedWork';
