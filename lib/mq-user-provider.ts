import {
  Aws,
  Duration,
  Lazy,
  Stack,
  Token,
  RemovalPolicy,
  aws_cloudwatch as cloudwatch,
  aws_dynamodb as dynamodb,
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
import {
  BROKERS_OF_ACCOUNT,
  grantOwnStack,
  handlerFunction,
  lambdaRole,
  logRetention,
  useNodeRuntimeOfOurs,
} from './private/functions';
import { UNFINISHED_WORK_MARKER } from './private/handler-props';
import { acknowledgeWaiter, waiterLogGroup, waiterLogOptions } from './private/waiter';
import { DELIVERIES_TABLE_ENV, DELIVERY_KEY_ATTRIBUTE, DELIVERY_TTL_ATTRIBUTE } from './private/env';

/**
 * Settings of the Lambda functions that manage a stack's MqUsers.
 *
 * Give them through `MqUserProvider.getOrCreate(stack, props)` before the stack's first MqUser.
 */
export interface MqUserProviderProps {
  /**
   * The longest one invocation of the handler may take for one user's create, update or delete, retries included: 30 seconds to 14 minutes.
   *
   * The handler gives up with a clear reason a few seconds before it. The Provider framework's own function
   * stops at 15 minutes, so ours must answer before it. Waiting for a rebooting broker does not count: an event that
   * meets one is handed to the Provider framework's waiter, which tries it again for up to 115 minutes.
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
   * The VPC to run the functions in, for accounts that require Lambda functions in a VPC.
   *
   * They need a route to the Amazon MQ, Secrets Manager and CloudFormation APIs (NAT or interface endpoints), and
   * to DynamoDB for the handler's table of deliveries (NAT, or a gateway endpoint: README, "The shared handler").
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

// IAM: a managed policy holds at most 6,144 characters. An ARN that is a token (a secret of this app)
// resolves at deploy time: 160 characters covers a CloudFormation-generated secret name with room to spare.
const MANAGED_POLICY_BUDGET = 6_144 - 400;
const TOKEN_ARN_ESTIMATE = 160;
// The kms:Decrypt statement's fixed part (action, conditions), counted once per policy.
const KMS_STATEMENT_SIZE = 250;

/**
 * The Lambda functions behind every MqUser of one stack.
 *
 * A `custom_resources.Provider` around the cdk-mq-user handler: one per stack, whatever the number of users
 * and brokers. Whoever may invoke these functions can manage any user of any broker of the account and region
 * (README, "Security"): grant `lambda:InvokeFunction` on them to no one, and never share the service token.
 */
export class MqUserProvider extends Construct {
  /**
   * Returns the provider of `scope`'s stack, and creates it on first use.
   *
   * Pass `props` to configure it; that must happen before the stack's first MqUser, which creates the
   * provider with default settings.
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
          `MqUserProvider ${existing.node.path}: the MqUserProvider of stack ${stack.stackName} already exists (the ` +
            "stack's first MqUser or MqBrokerReboot made it): call MqUserProvider.getOrCreate(stack, props) before " +
            'them to configure it',
        );
      }
      return existing;
    }
    return new MqUserProvider(stack, PROVIDER_ID, props ?? {});
  }

  /**
   * The service token of `Custom::MqUser` resources.
   *
   * Never hand it to another stack: its resources would run with this provider's permissions.
   */
  public readonly serviceToken: string;

  /** The function that calls Amazon MQ, acting only on events that CloudFormation confirms for its own stack. */
  public readonly handler: lambda.IFunction;

  /**
   * The role of the function that calls Amazon MQ.
   *
   * Add to it what your own customizations need; cdk-mq-user acknowledges cdk-nag findings of its own
   * statements only, so a statement you add is checked like any other.
   */
  public readonly handlerRole: iam.IRole;

  /**
   * Goes to ALARM when the handler answered an event but left a user unlike its declaration, where CloudFormation
   * shows nothing: a rollback that could not restore or delete the user it changed (the broker rebooted for longer
   * than the two hours the handler waits, a secret it could no longer read), a cleanup Delete that could not delete
   * the old user (CloudFormation never retries those), an event that could not be confirmed with CloudFormation.
   *
   * The handler's log lines say which user and why (README, "Troubleshooting"). It stays in ALARM until set back
   * (`aws cloudwatch set-alarm-state --state-value OK`) once the user is put right. It has no action: add yours,
   * e.g. `provider.unfinishedWorkAlarm.addAlarmAction(new SnsAction(topic))`. It counts a metric of the handler's
   * log group, in namespace `cdk-mq-user`, named after the stack.
   */
  public readonly unfinishedWorkAlarm: cloudwatch.Alarm;

  /**
   * The settings this provider was made with; the reboot provider of the stack uses them too.
   *
   * @internal
   */
  public readonly _settings: MqUserProviderProps;

  /** The handler's statements on every broker: the acknowledged wildcard. */
  private readonly lifecyclePolicy: iam.Policy;
  private readonly suppliedSecretGrants = new Map<string, IDependable>();
  private readonly secretPolicies: SecretsPolicy[] = [];

  private constructor(scope: Construct, id: string, props: MqUserProviderProps) {
    super(scope, id);
    const timeout = props.timeout;
    // The Provider framework's own function gives up after 15 minutes: ours must answer before it.
    if (timeout && !timeout.isUnresolved() && (timeout.toSeconds() < 30 || timeout.toSeconds() > 14 * 60)) {
      throw new Error(
        `MqUserProvider ${this.node.path}: timeout ${timeout.toHumanString()} must be 30 seconds to 14 minutes ` +
          "(the Provider framework's own function stops at 15 minutes): pass a timeout in that range to " +
          'MqUserProvider.getOrCreate',
      );
    }
    this._settings = props;
    const retention = logRetention(props);

    const logGroup = new logs.LogGroup(this, 'HandlerLogs', { retention });
    const handlerRole = lambdaRole(this, 'HandlerRole', logGroup, props);
    this.handlerRole = handlerRole;
    // The statements with wildcards the lifecycle needs live in a policy of their own, and only that policy
    // acknowledges their cdk-nag findings: a statement a user adds to handlerRole is checked like any other.
    this.lifecyclePolicy = new iam.Policy(this, 'LifecyclePolicy', {
      roles: [handlerRole],
      statements: [
        new iam.PolicyStatement({
          actions: ['mq:CreateUser', 'mq:UpdateUser', 'mq:DeleteUser', 'mq:DescribeUser', 'mq:DescribeBroker'],
          resources: [BROKERS_OF_ACCOUNT],
        }),
      ],
    });
    grantOwnStack(handlerRole, { listResources: true });
    this.handler = handlerFunction(this, 'Handler', {
      asset: 'mq-user-handler',
      handler: 'index.handler',
      description: 'cdk-mq-user: creates, updates and deletes Amazon MQ for ActiveMQ users',
      role: this.handlerRole,
      logGroup,
      timeout: props.timeout ?? Duration.minutes(5),
      settings: props,
    });
    // Every user's event reaches the handler only once it may call Amazon MQ and read its secret.
    this.handler.node.addDependency(this.lifecyclePolicy);

    // Events that meet a rebooting broker finish in the Provider framework's waiter (a reboot takes minutes, a
    // maintenance window up to two hours: longer than one Lambda invocation may run). The framework starts the
    // waiter for every event; this function answers at once for events that onEvent finished.
    const isComplete = handlerFunction(this, 'IsCompleteHandler', {
      asset: 'mq-user-handler',
      handler: 'index.isComplete',
      description: 'cdk-mq-user: finishes the user events that met a rebooting Amazon MQ broker',
      role: this.handlerRole,
      logGroup,
      timeout: props.timeout ?? Duration.minutes(5),
      settings: props,
    });
    isComplete.node.addDependency(this.lifecyclePolicy);

    // What the handler did for each delivery of an event (lambda/user/deliveries.ts): a second delivery of the same
    // event, in any Lambda environment, finds the user its first delivery may have made and the answer it gave.
    // Records expire after a week (an event lasts at most 2 hours in the Provider framework's waiter, 6 hours with
    // Lambda's asynchronous retries). It holds nothing else, so it goes with the stack; its name is generated, so a
    // destroyed stack deploys again under the same name.
    const deliveries = new dynamodb.Table(this, 'Deliveries', {
      partitionKey: { name: DELIVERY_KEY_ATTRIBUTE, type: dynamodb.AttributeType.STRING },
      billingMode: dynamodb.BillingMode.PAY_PER_REQUEST,
      timeToLiveAttribute: DELIVERY_TTL_ATTRIBUTE,
      pointInTimeRecoverySpecification: { pointInTimeRecoveryEnabled: true },
      removalPolicy: RemovalPolicy.DESTROY,
    });
    this.lifecyclePolicy.addStatements(
      new iam.PolicyStatement({
        actions: ['dynamodb:GetItem', 'dynamodb:UpdateItem'],
        resources: [deliveries.tableArn],
      }),
    );
    for (const fn of [this.handler, isComplete]) {
      (fn as lambda.Function).addEnvironment(DELIVERIES_TABLE_ENV, deliveries.tableName);
    }

    const frameworkLogs = new logs.LogGroup(this, 'FrameworkLogs', { retention });
    const frameworkRole = lambdaRole(this, 'FrameworkRole', frameworkLogs, props);
    // A role of its own: with one, the onEvent role's grant on the waiter and the waiter's grant on isComplete
    // would form a dependency cycle.
    const waiterRole = lambdaRole(this, 'FrameworkWaiterRole', frameworkLogs, props);
    const provider = new cr.Provider(this, 'Provider', {
      onEventHandler: this.handler,
      isCompleteHandler: isComplete,
      // The Provider framework's maximum; the handler answers with its own reason five minutes before it.
      totalTimeout: Duration.hours(2),
      queryInterval: Duration.seconds(30),
      frameworkOnEventRole: frameworkRole,
      frameworkCompleteAndTimeoutRole: waiterRole,
      logGroup: frameworkLogs,
      disableWaiterStateMachineLogging: false,
      waiterStateMachineLogOptions: waiterLogOptions(
        waiterLogGroup(this, 'WaiterLogs', 'cdk-mq-user-waiter', retention),
      ),
      vpc: props.vpc,
      vpcSubnets: props.vpcSubnets,
      securityGroups: props.securityGroups,
    });
    useNodeRuntimeOfOurs(provider);
    this.serviceToken = provider.serviceToken;

    // A rollback or a cleanup Delete that cannot finish must not wedge or fail the stack, and CloudFormation shows
    // nothing of what it left: the handler marks those log lines, and this alarm counts them.
    const unfinishedWork = new logs.MetricFilter(this, 'UnfinishedWork', {
      logGroup,
      filterPattern: logs.FilterPattern.literal(`"${UNFINISHED_WORK_MARKER}"`),
      metricNamespace: 'cdk-mq-user',
      metricName: `UnfinishedWork-${Aws.STACK_NAME}`,
      metricValue: '1',
    });
    this.unfinishedWorkAlarm = new cloudwatch.Alarm(this, 'UnfinishedWorkAlarm', {
      alarmDescription:
        'cdk-mq-user: an event left a user unlike its declaration (see the handler log lines with ' +
        `${UNFINISHED_WORK_MARKER}, and "Troubleshooting" in the cdk-mq-user README)`,
      metric: unfinishedWork.metric({ statistic: cloudwatch.Stats.SUM, period: Duration.minutes(5) }),
      threshold: 1,
      evaluationPeriods: 1,
      comparisonOperator: cloudwatch.ComparisonOperator.GREATER_THAN_OR_EQUAL_TO_THRESHOLD,
      // The metric has data only when a line matches: the alarm stays in ALARM until someone has looked and sets it
      // back (README, "Troubleshooting"), rather than falling back to OK five minutes later.
      treatMissingData: cloudwatch.TreatMissingData.IGNORE,
    });

    acknowledgeNag(this.lifecyclePolicy, BROKERS_FINDING, BROKERS_REASON);
    for (const role of [frameworkRole, waiterRole]) {
      for (const fn of [this.handler, isComplete]) acknowledgeNag(role, functionVersionsFinding(fn), INVOKE_REASON);
    }
    acknowledgeWaiter(provider, 'while a broker reboots');
  }

  /**
   * Lets the handler read `secret` and makes `user` wait for that grant.
   *
   * @internal
   */
  public _grantPasswordRead(user: IConstruct, secret: secretsmanager.ISecret): void {
    user.node.addDependency(this.grantSecretRead(secret));
  }

  /**
   * Every secret the handler reads is named, one by one: the stack's generated secrets and the secrets its MqUsers
   * declare, never a tag that anyone allowed to tag secrets could set. They are packed into managed policies of at
   * most 6 KB each: 250 distinct secrets fit in a few policies, where the role's inline policies would overflow at
   * about 100.
   */
  private grantSecretRead(secret: secretsmanager.ISecret): IDependable {
    const arn = secret.secretFullArn ?? `${secret.secretArn}-??????`;
    const key = JSON.stringify(Stack.of(this).resolve(arn));
    const granted = this.suppliedSecretGrants.get(key);
    if (granted) return granted;

    const keyArn = secret.encryptionKey ? this.keyArnToGrant(secret.encryptionKey) : undefined;
    // IAM counts characters: the ARN in the secrets statement, and with a key from elsewhere the ARN again in
    // the KMS condition, the key's ARN, and the KMS statement itself once per policy.
    const arnSize = (Token.isUnresolved(arn) ? TOKEN_ARN_ESTIMATE : arn.length) + 3;
    const keySize = keyArn ? (Token.isUnresolved(keyArn) ? TOKEN_ARN_ESTIMATE : keyArn.length) + 3 : 0;
    const sizeIn = (policy: SecretsPolicy) =>
      arnSize + (keyArn ? arnSize + keySize + (policy.kmsStatement ? 0 : KMS_STATEMENT_SIZE) : 0);
    let current = this.secretPolicies[this.secretPolicies.length - 1];
    if (!current || current.size + sizeIn(current) > MANAGED_POLICY_BUDGET) {
      const statement = new iam.PolicyStatement({ actions: ['secretsmanager:GetSecretValue'] });
      const policy = new iam.ManagedPolicy(this, `SecretsPolicy${this.secretPolicies.length + 1}`, {
        description: `cdk-mq-user: the MqUser password secrets of stack ${Stack.of(this).stackName}`,
        statements: [statement],
        roles: [this.handlerRole],
      });
      current = { policy, statement, size: 0, keyArns: new Set(), encryptedSecretArns: [] };
      this.secretPolicies.push(current);
    }
    current.statement.addResources(arn);
    current.size += sizeIn(current);
    // Every customer-managed key, of this stack or from elsewhere, is granted the same way: kms:Decrypt through
    // Secrets Manager, for this policy's secrets only (the encryption context). A key of this stack cannot carry
    // that condition in its key policy: naming the secret there makes a cycle (the secret names the key).
    if (keyArn) this.grantKeyDecrypt(current, keyArn, arn);
    this.suppliedSecretGrants.set(key, current.policy);
    return current.policy;
  }

  /**
   * What to name in the grant of a key: its ARN when that is a literal or a value of this stack (a key of this
   * stack, `Key.fromKeyArn`); the account's keys when it would be a reference to another stack. Such a reference is
   * what made a key and secret of another stack a dependency cycle (that stack's key policy then named our role),
   * and it would pin an export of the key's ARN in that stack.
   */
  private keyArnToGrant(key: kms.IKey): string {
    if (!Token.isUnresolved(key.keyArn) || Stack.of(key) === Stack.of(this)) return key.keyArn;
    const keysOfAccount = `arn:${Aws.PARTITION}:kms:${Aws.REGION}:${Aws.ACCOUNT_ID}:key/*`;
    return keysOfAccount;
  }

  /**
   * `kms:Decrypt` through Secrets Manager only, for the secrets of `policy` only (Secrets Manager decrypts with
   * the encryption context `SecretARN`): the principal's side of the grant. The key policy must let IAM
   * policies of the account grant it (the default key policy does), or name the role; see the README.
   */
  private grantKeyDecrypt(policy: SecretsPolicy, keyArn: string, secretArn: string): void {
    if (!policy.kmsStatement) {
      policy.kmsStatement = new iam.PolicyStatement({
        actions: ['kms:Decrypt'],
        conditions: {
          StringEquals: { 'kms:ViaService': `secretsmanager.${Stack.of(this).region}.amazonaws.com` },
          StringLike: {
            'kms:EncryptionContext:SecretARN': Lazy.list({ produce: () => policy.encryptedSecretArns }),
          },
        },
      });
      policy.policy.addStatements(policy.kmsStatement);
    }
    const resolvedKey = JSON.stringify(Stack.of(this).resolve(keyArn));
    if (!policy.keyArns.has(resolvedKey)) {
      policy.keyArns.add(resolvedKey);
      policy.kmsStatement.addResources(keyArn);
      if (Token.isUnresolved(keyArn) && keyArn.endsWith(':key/*')) {
        acknowledgeNag(
          policy.policy,
          'AwsSolutions-IAM5[Resource::arn:<AWS::Partition>:kms:<AWS::Region>:<AWS::AccountId>:key/*]',
          'Only kms:Decrypt, only through Secrets Manager (kms:ViaService), only with the encryption context of ' +
            "this policy's own secrets (kms:EncryptionContext:SecretARN): the keys of secrets from another stack, " +
            'named without a cross-stack reference that would make a dependency cycle.',
        );
      }
    }
    policy.encryptedSecretArns.push(secretArn);
  }
}

/** One managed policy of supplied secrets, with the KMS grant for the keys from elsewhere that encrypt them. */
interface SecretsPolicy {
  readonly policy: iam.ManagedPolicy;
  readonly statement: iam.PolicyStatement;
  size: number;
  kmsStatement?: iam.PolicyStatement;
  readonly keyArns: Set<string>;
  readonly encryptedSecretArns: string[];
}
