import { createHash } from 'crypto';
import {
  Annotations,
  Aws,
  CfnResource,
  CustomResource,
  Duration,
  Lazy,
  RemovalPolicy,
  Stack,
  Tags,
  Token,
  aws_amazonmq as amazonmq,
  aws_secretsmanager as secretsmanager,
} from 'aws-cdk-lib';
import { Construct } from 'constructs';
import { MqUserProvider } from './mq-user-provider';
import { MqUserRotationApply, MqUserRotationOptions } from './mq-user-rotation';
import { DeclaredUser, asCfnBroker, brokerLabel, cfnBrokerUsernames, declareUser } from './private/broker-registry';
import { MQ_USER_FORMAT_VERSION, MQ_USER_RESOURCE_TYPE, type MqUserResourceProperties } from './private/handler-props';
import { MqUserRotationFunction } from './private/rotation-function';
import {
  ALTERNATE_SUFFIX,
  ROTATION_BINDING_KEY,
  ROTATION_TAGS,
  WEB_CONSOLE_GROUP,
  type RotationBinding,
} from './private/rules';
import { normalizeGroups, validateRotation, validateSuppliedSecret, validateUserProps } from './private/validate';

/** Properties of an MqUser. */
export interface MqUserProps {
  /**
   * The Amazon MQ for ActiveMQ broker (simple authentication) that holds the user.
   *
   * A `CfnBroker`, or a broker from `MqBroker.fromBrokerArn` (also the way to use a broker of another
   * construct library: pass its ARN). Changing it replaces the user.
   */
  readonly broker: amazonmq.IBrokerRef;

  /**
   * The name the user signs in with.
   *
   * 2 to 100 characters of `A-Z a-z 0-9 - . _ ~`, and not only dots. Amazon MQ asks for no personal data
   * here (usernames reach logs). Changing it replaces the user.
   */
  readonly username: string;

  /**
   * The ActiveMQ groups of the user.
   *
   * At most 20, each 2 to 100 characters of `A-Z a-z 0-9 - . _ ~`. Their order and duplicates do not matter.
   *
   * @default - no groups
   */
  readonly groups?: string[];

  /**
   * Whether the user may sign in to the ActiveMQ Web Console.
   *
   * Together with the group `activemq-webconsole` it administers every destination.
   *
   * @default false
   */
  readonly consoleAccess?: boolean;

  /**
   * Whether the user is the replication user of cross-Region data replication (CRDR).
   *
   * A replication user cannot have console access.
   *
   * @default false
   */
  readonly replicationUser?: boolean;

  /**
   * The secret that holds the password, read by the handler at deploy time and never placed in the template.
   *
   * The password must be 12 to 250 characters with at least 4 distinct ones, and none of `,` `:` `=`. When
   * Secrets Manager generates it for a secret of this app (`generateSecretString`), synth checks the settings:
   * `passwordLength` 12 to 250, and `excludeCharacters` holding `,:=` unless `excludePunctuation` is set. A
   * secret encrypted with a customer-managed KMS key needs a key policy that lets the handler's role decrypt
   * through Secrets Manager (README, "Security").
   *
   * @default - a generated secret: JSON `{"username", "password"}`, 32 letters and digits; `addRotation` can rotate it
   */
  readonly passwordSecret?: secretsmanager.ISecret;

  /**
   * The JSON key of the password inside `passwordSecret`.
   *
   * @default - the `password` field when the secret string is a JSON object that has one, else the whole string
   */
  readonly passwordField?: string;

  /**
   * A value whose change makes the next deploy read the secret again and set the password.
   *
   * Any string. CloudFormation cannot see a new value behind an unchanged secret ARN: bump it after changing
   * the secret's value. Not with `addRotation` (the rotation owns the password; rotate with
   * `aws secretsmanager rotate-secret` instead).
   *
   * @default - the password is set when the user is created, and when the secret or field changes
   */
  readonly passwordVersion?: string;

  /**
   * Whether to take over a user that already exists on the broker instead of failing.
   *
   * The existing user is converged to this declaration, password included. The migration path for users
   * created by hand, by the broker's own `users` list, or by an MqUser elsewhere that was retained. The
   * resource records that it adopted the user, so the rollback of the deploy that adopted it never deletes it;
   * a user that did not exist is created and recorded as created, and that deploy's rollback removes it. The
   * flag never reaches the broker: turning it off later writes nothing and reboots nothing. With `addRotation`,
   * the alternate user (`<username>_clone`) is adopted too, with the password the secret's rotation labels say it
   * holds: a rotated user moves to another stack with its alternate.
   *
   * @default false
   */
  readonly adoptExisting?: boolean;

  /**
   * What happens to the user (and a generated secret) when the MqUser is removed from the stack or replaced.
   *
   * One of these three:
   *
   * - `DESTROY`: the user is deleted.
   * - `RETAIN_ON_UPDATE_OR_DELETE` (CloudFormation's `RetainExceptOnCreate`): the user is kept, except when
   *   the deploy that created it fails. Use it to move a user to another stack or construct.
   * - `RETAIN`: the user is always kept, even after a failed first deploy; the user left behind then makes
   *   every retry fail with "already exists" until an MqUser adopts it (`adoptExisting`).
   *
   * CloudFormation never asks the handler to delete a retained user.
   *
   * @default RemovalPolicy.DESTROY
   */
  readonly removalPolicy?: RemovalPolicy;
}

/**
 * The settings of generated passwords: fixed forever. Their digest is a property of the custom resource,
 * so that a change (which would make new secrets) also updates the users.
 */
const GENERATED_PASSWORD = { passwordLength: 32, excludePunctuation: true, includeSpace: false } as const;
const GENERATED_PASSWORD_DIGEST = createHash('sha256')
  .update(JSON.stringify(GENERATED_PASSWORD))
  .digest('hex')
  .slice(0, 16);

/** What `addRotation` made. */
interface Rotation {
  readonly alternate: CustomResource;
}

/**
 * A user of an Amazon MQ for ActiveMQ broker, created, updated and deleted with the stack.
 *
 * Amazon MQ applies a user's creation, change or deletion at the broker's next reboot or maintenance window.
 * `addRotation` rotates the password of a generated secret with a second, alternate user.
 */
export class MqUser extends Construct {
  /**
   * The username, as a token that makes its consumer depend on the user's creation.
   *
   * It resolves to `Fn::GetAtt` of the custom resource, not to the literal string. With `addRotation` it names
   * only the primary user: a rotation moves the current credentials between it and the alternate
   * (`alternateUsername`), so clients read the username from the secret (its `username` field) together with
   * the password, never from this attribute.
   */
  public readonly username: string;

  /**
   * The ID of the broker that holds the user, as a token (`Fn::GetAtt` of the custom resource).
   *
   * It resolves at deploy time, not to the literal ID: compare or print `broker.brokerRef.brokerId` for that.
   */
  public readonly brokerId: string;

  /** The secret that holds the password, which is `passwordSecret` or the generated one. */
  public readonly secret: secretsmanager.ISecret;

  /**
   * The user's pending change as the handler saw it right after its change, as a token.
   *
   * `CREATE`, `UPDATE`, `DELETE` or `NONE`, known from what the handler read before writing; `UNKNOWN` after a
   * rollback that left the user alone. It takes effect at the broker's next reboot or maintenance window.
   */
  public readonly pendingChange: string;

  private readonly props: MqUserProps;
  private readonly properties: MqUserResourceProperties;
  private readonly resource: CustomResource;
  private readonly declared: DeclaredUser;
  private rotation?: Rotation;

  constructor(scope: Construct, id: string, props: MqUserProps) {
    super(scope, id);
    const groups = normalizeGroups(props.groups);
    const consoleAccess = props.consoleAccess ?? false;
    const replicationUser = props.replicationUser ?? false;
    const removalPolicy = props.removalPolicy ?? RemovalPolicy.DESTROY;

    const errors = [
      ...validateUserProps({
        username: props.username,
        groups,
        consoleAccess,
        replicationUser,
        passwordField: props.passwordField,
        hasPasswordSecret: props.passwordSecret !== undefined,
        removalPolicy,
      }),
      ...validateSuppliedSecret(props.passwordSecret),
      ...this.checkBroker(props),
    ];
    if (errors.length > 0) throw new Error(`MqUser ${this.node.path}: ${errors.join('; ')}`);
    if (consoleAccess && groups.includes(WEB_CONSOLE_GROUP)) {
      Annotations.of(this).addWarningV2(
        'cdk-mq-user:consoleAdministrator',
        `user "${props.username}" has console access and the group ${WEB_CONSOLE_GROUP}: it administers every destination of the broker`,
      );
    }
    const generated = props.passwordSecret === undefined;
    // A generated secret belongs to one username: its ID names it, so that a rename replaces the secret
    // (CloudFormation would otherwise regenerate it in place, and a rollback would not get the old value back).
    const secretId = Token.isUnresolved(props.username) ? 'Secret' : `Secret-${props.username}`;
    this.secret =
      props.passwordSecret ??
      new secretsmanager.Secret(this, secretId, {
        description: `cdk-mq-user: password of Amazon MQ user ${props.username}`,
        generateSecretString: {
          ...GENERATED_PASSWORD,
          secretStringTemplate: Stack.of(this).toJsonString({ username: props.username }),
          generateStringKey: 'password',
        },
        removalPolicy,
      });
    // A generated secret without rotation is reported by cdk-nag's AwsSolutions-SMG4 like any other: rotating it
    // (addRotation) or acknowledging the finding is the owner's choice, not ours to make on their behalf.

    this.props = props;
    const properties: MqUserResourceProperties = {
      BrokerId: props.broker.brokerRef.brokerId,
      Username: props.username,
      Groups: groups,
      ConsoleAccess: consoleAccess || undefined,
      ReplicationUser: replicationUser || undefined,
      PasswordSecretArn: this.secret.secretArn,
      PasswordField: props.passwordField,
      PasswordVersion: props.passwordVersion,
      GeneratedPasswordSettings: generated ? GENERATED_PASSWORD_DIGEST : undefined,
      AdoptExisting: props.adoptExisting || undefined,
      // Absent until addRotation: templates of users without rotation stay as they were.
      RotationEnabled: Lazy.any({ produce: () => (this.rotation ? true : undefined) }) as unknown as boolean,
      FormatVersion: MQ_USER_FORMAT_VERSION,
    };
    this.properties = properties;
    const { resource, declared } = this.userResource('Resource', properties);
    // What CDK users expect of `node.defaultChild`: the CloudFormation resource (for overrideLogicalId,
    // addPropertyOverride, cfnOptions), not the CustomResource construct around it.
    this.node.defaultChild = resource.node.defaultChild;
    this.resource = resource;
    this.declared = declared;

    this.username = resource.getAttString('Username');
    this.brokerId = resource.getAttString('BrokerId');
    this.pendingChange = resource.getAttString('PendingChange');
  }

  /**
   * The username of the rotation's alternate user (`<username>_clone`), as a token of its custom resource.
   *
   * `undefined` until `addRotation` is called. The generated secret names either user: read `username` from the
   * secret, never assume one of them.
   */
  public get alternateUsername(): string | undefined {
    return this.rotation?.alternate.getAttString('Username');
  }

  /**
   * Rotates the password of the generated secret with Secrets Manager, and returns the rotation schedule.
   *
   * Adds a second user, `<username>_clone` (the alternate), with the same groups and flags; each rotation sets a
   * new password on the user that clients are not using, and moves `AWSCURRENT` to it only once the broker has
   * applied it. So the credentials labelled `AWSCURRENT` always work, and the previous ones keep working until
   * the next rotation (clients must read the secret again within one interval). Needs a generated secret (no
   * `passwordSecret`) and no `passwordVersion`; the username may have at most 94 characters and must not end in
   * `_clone`. Call it once. See the README, "Rotating passwords".
   *
   * @param options the interval and how a new password reaches the broker
   */
  public addRotation(options: MqUserRotationOptions = {}): secretsmanager.RotationSchedule {
    const props = this.props;
    const applyBy = options.applyBy ?? MqUserRotationApply.MAINTENANCE_WINDOW;
    const automaticallyAfter = options.automaticallyAfter ?? Duration.days(30);
    if (this.rotation) {
      throw new Error(
        `MqUser ${this.node.path}: addRotation was already called on this MqUser: call it once (it returns the ` +
          'rotation schedule)',
      );
    }
    const errors = validateRotation({
      username: props.username,
      hasPasswordSecret: props.passwordSecret !== undefined,
      passwordVersion: props.passwordVersion,
      automaticallyAfter,
      maintenanceWindow: applyBy === MqUserRotationApply.MAINTENANCE_WINDOW,
      brokerUsernames: cfnBrokerUsernames(props.broker) ?? [],
      brokerLabel: brokerLabel(props.broker),
    });
    if (errors.length > 0) throw new Error(`MqUser ${this.node.path}: ${errors.join('; ')}`);

    const alternateUsername = `${props.username}${ALTERNATE_SUFFIX}`;
    // Everything the primary has but the name. AdoptExisting too: a move to another stack (README "Moving a user")
    // adopts the alternate the old stack retained along with the user.
    const alternateProperties: MqUserResourceProperties = {
      ...this.properties,
      Username: alternateUsername,
      RotationEnabled: true,
    };
    const { resource: alternate, declared } = this.userResource('AlternateResource', alternateProperties, true);
    this.rotation = { alternate };

    // What the rotation function may do with this secret, bound at synth in the secret's metadata (only a deploy of
    // the stack changes it; a metadata change never regenerates the secret): the two users, the mode, the interval.
    const binding: RotationBinding = {
      User: (this.resource.node.defaultChild as CfnResource).logicalId,
      Alternate: (alternate.node.defaultChild as CfnResource).logicalId,
      ApplyBy: applyBy,
      IntervalSeconds: automaticallyAfter.toSeconds(),
      ...(options.verifySignIn ? { VerifySignIn: true } : {}),
    };
    (this.secret.node.defaultChild as CfnResource).addMetadata(ROTATION_BINDING_KEY, binding);
    // Tags never regenerate a secret (a changed generateSecretString would). The function's grant on secrets is by
    // the stack tag; it trusts none of them.
    Tags.of(this.secret).add(ROTATION_TAGS.brokerId, props.broker.brokerRef.brokerId);
    Tags.of(this.secret).add(ROTATION_TAGS.mode, applyBy);
    Tags.of(this.secret).add(ROTATION_TAGS.stackId, Aws.STACK_ID);

    const rotationFunction = MqUserRotationFunction.getOrCreate(this);
    rotationFunction.allow(props.broker, applyBy, options.verifySignIn ?? false);
    if (options.verifySignIn) this.warnIfSignInUnreachable(props.broker);
    const schedule = new secretsmanager.RotationSchedule(this, 'Rotation', {
      secret: this.secret,
      rotationLambda: rotationFunction.reference,
      automaticallyAfter,
    });
    // Secrets Manager rotates as soon as the schedule exists: both users and the invoke permission must be there,
    // and the deploy's reboot (MqBrokerReboot) done.
    schedule.node.addDependency(this.resource, alternate, rotationFunction.permission);
    this.declared.afterReboot.push(schedule);
    declared.afterReboot.push(schedule);
    return schedule;
  }

  /**
   * One `Custom::MqUser` of this MqUser, the user or the rotation's alternate: made with the stack's provider and
   * this MqUser's removal policy, granted its secret, and declared on the broker (limits, duplicates, reboot).
   */
  private userResource(
    id: string,
    properties: MqUserResourceProperties,
    alternate = false,
  ): { resource: CustomResource; declared: DeclaredUser } {
    const provider = MqUserProvider.getOrCreate(this);
    const resource = new CustomResource(this, id, {
      serviceToken: provider.serviceToken,
      resourceType: MQ_USER_RESOURCE_TYPE,
      properties: { ...properties },
      removalPolicy: this.props.removalPolicy ?? RemovalPolicy.DESTROY,
    });
    provider._grantPasswordRead(resource, this.secret);
    const declared: DeclaredUser = {
      username: properties.Username,
      path: alternate ? resource.node.path : this.node.path,
      stack: Stack.of(this),
      resource,
      properties,
      stateDigest: resource.getAttString('StateDigest'),
      alternateOf: alternate ? this.node.path : undefined,
      afterReboot: [],
    };
    declareUser(this.props.broker, declared);
    return { resource, declared };
  }

  /**
   * `verifySignIn` signs in over the network: a broker of this app that is not publicly accessible is reachable
   * only from its VPC, where the rotation function runs only when `MqUserProvider` was given one.
   */
  private warnIfSignInUnreachable(broker: amazonmq.IBrokerRef): void {
    const cfn = asCfnBroker(broker);
    if (!cfn || Token.isUnresolved(cfn.publiclyAccessible) || cfn.publiclyAccessible === true) return;
    if (MqUserProvider.getOrCreate(this)._settings.vpc) return;
    Annotations.of(this).addWarningV2(
      'cdk-mq-user:verifySignInUnreachable',
      `broker ${brokerLabel(broker)} is not publicly accessible, and the rotation function runs outside any VPC: ` +
        "verifySignIn cannot reach it and no password would ever be promoted. Give MqUserProvider the broker's " +
        'VPC and a security group the broker admits on port 61614 (MqUserProvider.getOrCreate(stack, { vpc, ' +
        'securityGroups }) before the first MqUser)',
    );
  }

  /** What can be told about the broker at synth time: its engine, its authentication, its own users. */
  private checkBroker(props: MqUserProps): string[] {
    const cfn = asCfnBroker(props.broker);
    if (!cfn) return [];
    const errors: string[] = [];
    const label = brokerLabel(props.broker);
    if (!Token.isUnresolved(cfn.engineType) && cfn.engineType.toUpperCase() !== 'ACTIVEMQ') {
      errors.push(
        `broker ${label} has engineType "${cfn.engineType}": MqUser manages ActiveMQ users only ` +
          '(RabbitMQ users are managed in the RabbitMQ web console or its management API)',
      );
    }
    const strategy = cfn.authenticationStrategy;
    if (strategy !== undefined && !Token.isUnresolved(strategy) && strategy.toUpperCase() === 'LDAP') {
      errors.push(
        `broker ${label} has authenticationStrategy "${strategy}": LDAP users sign in through LDAP, MqUser needs SIMPLE`,
      );
    }
    if (!Token.isUnresolved(props.username) && cfnBrokerUsernames(props.broker)?.includes(props.username)) {
      if (props.adoptExisting) {
        Annotations.of(this).addWarningV2(
          'cdk-mq-user:adoptBrokerUser',
          `user "${props.username}" is also in the users list of broker ${label}: MqUser adopts it; remove it from that ` +
            'list once the MqUser is deployed, never manage a username both ways',
        );
      } else {
        errors.push(
          `username "${props.username}" is already in the users list of broker ${label}: a user is managed either by ` +
            'the broker or by MqUser; to move it to MqUser, set adoptExisting: true',
        );
      }
    }
    return errors;
  }
}
