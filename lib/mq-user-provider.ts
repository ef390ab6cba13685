import {
  Aws,
  Duration,
  Stack,
  Tags,
  Token,
  aws_ec2 as ec2,
  aws_iam as iam,
  aws_kms as kms,
  aws_lambda as lambda,
  aws_logs as logs,
  aws_secretsmanager as secretsmanager,
  custom_resources as cr,
} from 'aws-cdk-lib';
import { Construct, IConstruct, IDependable } from 'constructs';
import {
  BROKERS_FINDING,
  BROKERS_REASON,
  INVOKE_REASON,
  acknowledgeNag,
  functionVersionsFinding,
} from './private/acknowledge';
import { BROKERS_OF_ACCOUNT, describeOwnStack, handlerFunction, lambdaRole, logRetention } from './private/functions';

/**
 * Settings of the Lambda functions that manage a stack's MqUsers. Give them through
 * `MqUserProvider.getOrCreate(stack, props)` before the stack's first MqUser.
 */
export interface MqUserProviderProps {
  /**
   * The longest one user's create, update or delete may take, retries included. The handler gives up with a
   * clear reason a few seconds before it.
   *
   * @default Duration.minutes(5)
   */
  readonly timeout?: Duration;

  /**
   * How long the logs of the handler and of the Provider framework are kept.
   *
   * @default logs.RetentionDays.ONE_YEAR
   */
  readonly logRetention?: logs.RetentionDays;

  /**
   * The VPC to run the functions in, for accounts that require Lambda functions in a VPC. They need a route
   * to the Amazon MQ, Secrets Manager and CloudFormation APIs (NAT or interface endpoints).
   *
   * @default - not in a VPC
   */
  readonly vpc?: ec2.IVpc;

  /**
   * Where in `vpc` to place the functions.
   *
   * @default - the VPC's private subnets
   */
  readonly vpcSubnets?: ec2.SubnetSelection;

  /**
   * Security groups of the functions, when `vpc` is set.
   *
   * @default - a dedicated security group, created by Lambda's construct
   */
  readonly securityGroups?: ec2.ISecurityGroup[];
}

// The construct ID under the stack. The service token of every deployed MqUser derives from it, and
// CloudFormation refuses to change a service token: never rename it.
const PROVIDER_ID = 'CdkMqUserProvider';

/** Tag on generated secrets; the handler may read the secrets that carry its stack's ID there. */
const GENERATED_SECRET_TAG = 'cdk-mq-user:stack-id';

// IAM: a managed policy holds at most 6,144 characters. An ARN that is a token (a secret of this app)
// resolves at deploy time: 160 characters covers a CloudFormation-generated secret name with room to spare.
const MANAGED_POLICY_BUDGET = 6_144 - 400;
const TOKEN_ARN_ESTIMATE = 160;

/**
 * The Lambda functions behind every MqUser of one stack: a `custom_resources.Provider` around the
 * cdk-mq-user handler. One per stack, whatever the number of users and brokers.
 */
export class MqUserProvider extends Construct {
  /**
   * The provider of `scope`'s stack, created on first use. Pass `props` to configure it; that must happen
   * before the stack's first MqUser, which creates the provider with default settings.
   *
   * @param scope any construct of the stack
   * @param props settings of the functions
   */
  public static getOrCreate(scope: Construct, props?: MqUserProviderProps): MqUserProvider {
    const stack = Stack.of(scope);
    const existing = stack.node.tryFindChild(PROVIDER_ID);
    if (existing instanceof MqUserProvider) {
      if (props !== undefined) {
        throw new Error(
          `the MqUserProvider of stack ${stack.stackName} already exists (the stack's first MqUser or MqBrokerReboot ` +
            'made it): call MqUserProvider.getOrCreate(stack, props) before them to configure it',
        );
      }
      return existing;
    }
    return new MqUserProvider(stack, PROVIDER_ID, props ?? {});
  }

  /** The service token of `Custom::MqUser` resources. */
  public readonly serviceToken: string;

  /** The function that calls Amazon MQ. */
  public readonly handler: lambda.IFunction;

  /** The role of the function that calls Amazon MQ. */
  public readonly handlerRole: iam.IRole;

  /**
   * The settings this provider was made with; the reboot provider of the stack uses them too.
   *
   * @internal
   */
  public readonly _settings: MqUserProviderProps;

  private generatedSecretsGrant?: IDependable;
  private readonly suppliedSecretGrants = new Map<string, IDependable>();
  private readonly secretPolicies: Array<{ policy: iam.ManagedPolicy; statement: iam.PolicyStatement; size: number }> =
    [];

  private constructor(scope: Construct, id: string, props: MqUserProviderProps) {
    super(scope, id);
    const timeout = props.timeout;
    // The Provider framework's own function gives up after 15 minutes: ours must answer before it.
    if (timeout && !timeout.isUnresolved() && (timeout.toSeconds() < 30 || timeout.toSeconds() > 14 * 60)) {
      throw new Error(`MqUserProvider timeout ${timeout.toHumanString()} must be 30 seconds to 14 minutes`);
    }
    this._settings = props;
    const retention = logRetention(props);

    const logGroup = new logs.LogGroup(this, 'HandlerLogs', { retention });
    this.handlerRole = lambdaRole(this, 'HandlerRole', logGroup, props);
    this.handlerRole.addToPrincipalPolicy(
      new iam.PolicyStatement({
        actions: ['mq:CreateUser', 'mq:UpdateUser', 'mq:DeleteUser', 'mq:DescribeUser', 'mq:DescribeBroker'],
        resources: [BROKERS_OF_ACCOUNT],
      }),
    );
    this.handlerRole.addToPrincipalPolicy(describeOwnStack());
    this.handler = handlerFunction(this, 'Handler', {
      asset: 'mq-user-handler',
      handler: 'index.handler',
      description: 'cdk-mq-user: creates, updates and deletes Amazon MQ for ActiveMQ users',
      role: this.handlerRole,
      logGroup,
      timeout: props.timeout ?? Duration.minutes(5),
      settings: props,
    });

    const frameworkLogs = new logs.LogGroup(this, 'FrameworkLogs', { retention });
    const frameworkRole = lambdaRole(this, 'FrameworkRole', frameworkLogs, props);
    const provider = new cr.Provider(this, 'Provider', {
      onEventHandler: this.handler,
      frameworkOnEventRole: frameworkRole,
      logGroup: frameworkLogs,
      vpc: props.vpc,
      vpcSubnets: props.vpcSubnets,
      securityGroups: props.securityGroups,
    });
    this.serviceToken = provider.serviceToken;

    acknowledgeNag(this.handlerRole, BROKERS_FINDING, BROKERS_REASON);
    acknowledgeNag(frameworkRole, functionVersionsFinding(this.handler), INVOKE_REASON);
  }

  /**
   * Lets the handler read `secret` and makes `user` wait for that grant.
   *
   * @internal
   */
  public _grantPasswordRead(user: IConstruct, secret: secretsmanager.ISecret, generated: boolean): void {
    user.node.addDependency(generated ? this.grantGeneratedSecret(secret) : this.grantSuppliedSecret(secret));
  }

  /** One statement for every generated secret, by tag: its size does not grow with the number of users. */
  private grantGeneratedSecret(secret: secretsmanager.ISecret): IDependable {
    Tags.of(secret).add(GENERATED_SECRET_TAG, Aws.STACK_ID);
    if (!this.generatedSecretsGrant) {
      acknowledgeNag(
        this.handlerRole,
        'AwsSolutions-IAM5[Resource::arn:<AWS::Partition>:secretsmanager:<AWS::Region>:<AWS::AccountId>:secret:*]',
        "Only secrets tagged with this stack's ID (the condition); one statement for any number of generated secrets.",
      );
    }
    this.generatedSecretsGrant ??= this.handlerRole.addToPrincipalPolicy(
      new iam.PolicyStatement({
        actions: ['secretsmanager:GetSecretValue'],
        resources: [`arn:${Aws.PARTITION}:secretsmanager:${Aws.REGION}:${Aws.ACCOUNT_ID}:secret:*`],
        conditions: { StringEquals: { [`aws:ResourceTag/${GENERATED_SECRET_TAG}`]: Aws.STACK_ID } },
      }),
    ).policyDependable!;
    return this.generatedSecretsGrant;
  }

  /**
   * Supplied secrets are named one by one, packed into managed policies of at most 6 KB each: 250 distinct
   * secrets fit in a few policies, where the role's inline policies would overflow at about 100.
   */
  private grantSuppliedSecret(secret: secretsmanager.ISecret): IDependable {
    const arn = secret.secretFullArn ?? `${secret.secretArn}-??????`;
    const key = JSON.stringify(Stack.of(this).resolve(arn));
    const granted = this.suppliedSecretGrants.get(key);
    if (granted) return granted;

    const size = (Token.isUnresolved(arn) ? TOKEN_ARN_ESTIMATE : arn.length) + 3;
    let current = this.secretPolicies[this.secretPolicies.length - 1];
    if (!current || current.size + size > MANAGED_POLICY_BUDGET) {
      const statement = new iam.PolicyStatement({ actions: ['secretsmanager:GetSecretValue'] });
      const policy = new iam.ManagedPolicy(this, `SecretsPolicy${this.secretPolicies.length + 1}`, {
        description: `cdk-mq-user: the MqUser password secrets of stack ${Stack.of(this).stackName}`,
        statements: [statement],
        roles: [this.handlerRole],
      });
      current = { policy, statement, size: 0 };
      this.secretPolicies.push(current);
    }
    current.statement.addResources(arn);
    current.size += size;
    if (secret.encryptionKey) {
      // A customer-managed key: decrypt through Secrets Manager only.
      secret.encryptionKey.grantDecrypt(
        new kms.ViaServicePrincipal(`secretsmanager.${Stack.of(this).region}.amazonaws.com`, this.handlerRole),
      );
    }
    this.suppliedSecretGrants.set(key, current.policy);
    return current.policy;
  }
}
