import {
  Aws,
  Duration,
  Stack,
  aws_amazonmq as amazonmq,
  aws_iam as iam,
  aws_lambda as lambda,
  aws_logs as logs,
} from 'aws-cdk-lib';
import { Construct } from 'constructs';
import { MqUserProvider } from '../mq-user-provider';
import { MqUserRotationApply } from '../mq-user-rotation';
import { acknowledgeNag } from './acknowledge';
import { handlerFunction, lambdaRole, logRetention } from './functions';
import { ROTATION_TAGS } from './rules';

// The construct ID under the stack. Every rotation schedule names the function under it: never rename it (a new
// path is a new function, and a rotation in flight would finish on a deleted one).
const ROTATION_ID = 'CdkMqUserRotation';

/**
 * The function that Secrets Manager invokes to rotate the passwords of a stack's MqUsers: one per stack,
 * created by the first `addRotation`, whatever the number of rotated users. It takes the stack's MqUserProvider
 * settings (log retention, VPC).
 */
export class MqUserRotationFunction extends Construct {
  static getOrCreate(scope: Construct): MqUserRotationFunction {
    const stack = Stack.of(scope);
    const existing = stack.node.tryFindChild(ROTATION_ID);
    return existing instanceof MqUserRotationFunction ? existing : new MqUserRotationFunction(stack, ROTATION_ID);
  }

  /**
   * The function as a reference by ARN, for `RotationSchedule`. With the function itself, each schedule would add
   * a statement naming its secret to the role (250 users would overflow IAM's policy size) and a permission of its
   * own; the role has one tag-conditioned statement and the function one permission instead.
   */
  readonly reference: lambda.IFunction;

  /** Lets Secrets Manager of this account invoke the function: every schedule waits for it. */
  readonly permission: lambda.CfnPermission;

  private readonly userStatement = new iam.PolicyStatement({ actions: ['mq:DescribeUser', 'mq:UpdateUser'] });
  private rebootStatement?: iam.PolicyStatement;
  private describeStatement?: iam.PolicyStatement;
  private readonly describeBrokers = new Set<string>();
  private readonly role: iam.Role;
  private readonly brokers = new Set<string>();
  private readonly rebootBrokers = new Set<string>();

  private constructor(scope: Stack, id: string) {
    super(scope, id);
    const settings = MqUserProvider.getOrCreate(scope)._settings;
    const logGroup = new logs.LogGroup(this, 'HandlerLogs', { retention: logRetention(settings) });
    this.role = lambdaRole(this, 'HandlerRole', logGroup, settings);
    // One statement for every rotated secret of the stack, by tag: its size does not grow with the users. It has a
    // policy of its own, which alone carries the acknowledgement: a statement added to the role is still reported.
    const secretsPolicy = new iam.Policy(this, 'SecretsPolicy', {
      roles: [this.role],
      statements: [
        new iam.PolicyStatement({
          actions: [
            'secretsmanager:DescribeSecret',
            'secretsmanager:GetSecretValue',
            'secretsmanager:PutSecretValue',
            'secretsmanager:UpdateSecretVersionStage',
          ],
          resources: [`arn:${Aws.PARTITION}:secretsmanager:${Aws.REGION}:${Aws.ACCOUNT_ID}:secret:*`],
          conditions: { StringEquals: { [`aws:ResourceTag/${ROTATION_TAGS.stackId}`]: Aws.STACK_ID } },
        }),
      ],
    });
    // The brokers of rotated users only (`allow`): unlike the user handler, no cleanup phase ever needs another.
    this.role.addToPrincipalPolicy(this.userStatement);
    // Tags are no proof of ownership: the function rotates only a secret of this stack, for the users and mode its
    // resource's metadata declares (ListStackResources finds it, DescribeStackResource reads the metadata).
    this.role.addToPrincipalPolicy(
      new iam.PolicyStatement({
        actions: ['cloudformation:ListStackResources', 'cloudformation:DescribeStackResource'],
        resources: [Aws.STACK_ID],
      }),
    );
    acknowledgeNag(
      secretsPolicy,
      'AwsSolutions-IAM5[Resource::arn:<AWS::Partition>:secretsmanager:<AWS::Region>:<AWS::AccountId>:secret:*]',
      'Only DescribeSecret, GetSecretValue, PutSecretValue and UpdateSecretVersionStage, only on secrets tagged ' +
        "cdk-mq-user:rotation-stack-id = this stack's ID (the condition): the generated secrets of this stack's " +
        'rotated MqUsers, and a secret someone allowed to tag secrets tags so. One statement for any number of ' +
        'rotated users.',
    );

    const handler = handlerFunction(this, 'Handler', {
      asset: 'mq-user-rotation',
      handler: 'index.handler',
      description: 'cdk-mq-user: rotates MqUser passwords in Secrets Manager (alternating users)',
      role: this.role,
      logGroup,
      // Lambda's maximum: a REBOOT rotation waits for the broker within one invocation as long as it can.
      timeout: Duration.minutes(15),
      settings,
    });
    handler.node.addDependency(secretsPolicy);
    this.permission = new lambda.CfnPermission(this, 'InvokedBySecretsManager', {
      action: 'lambda:InvokeFunction',
      functionName: handler.functionArn,
      principal: 'secretsmanager.amazonaws.com',
      sourceAccount: Aws.ACCOUNT_ID,
    });
    this.reference = lambda.Function.fromFunctionAttributes(this, 'HandlerReference', {
      functionArn: handler.functionArn,
      sameEnvironment: true,
    });
  }

  /**
   * Lets the function manage users of `broker`, reboot it when `applyBy` is `REBOOT`, and read its endpoints when
   * it signs in to verify new credentials (`verifySignIn`).
   */
  allow(broker: amazonmq.IBrokerRef, applyBy: MqUserRotationApply, verifySignIn = false): void {
    const arn = broker.brokerRef.brokerArn;
    const key = JSON.stringify(Stack.of(this).resolve(arn));
    if (!this.brokers.has(key)) {
      this.brokers.add(key);
      this.userStatement.addResources(arn);
    }
    if (verifySignIn && applyBy !== MqUserRotationApply.REBOOT && !this.describeBrokers.has(key)) {
      if (!this.describeStatement) {
        // Only where a user asked for verifySignIn: the endpoints to sign in to (REBOOT has it already).
        this.describeStatement = new iam.PolicyStatement({ actions: ['mq:DescribeBroker'] });
        this.role.addToPrincipalPolicy(this.describeStatement);
      }
      this.describeBrokers.add(key);
      this.describeStatement.addResources(arn);
    }
    if (applyBy !== MqUserRotationApply.REBOOT || this.rebootBrokers.has(key)) return;
    if (!this.rebootStatement) {
      // Only where a user asked for REBOOT: this permission takes a broker offline.
      this.rebootStatement = new iam.PolicyStatement({ actions: ['mq:DescribeBroker', 'mq:RebootBroker'] });
      this.role.addToPrincipalPolicy(this.rebootStatement);
    }
    this.rebootBrokers.add(key);
    this.rebootStatement.addResources(arn);
  }
}
