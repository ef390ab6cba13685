import * as path from 'path';
import { Aws, Duration, aws_iam as iam, aws_lambda as lambda, aws_logs as logs } from 'aws-cdk-lib';
import { Construct } from 'constructs';
import type { MqUserProviderProps } from '../mq-user-provider';
import { acknowledgeNag } from './acknowledge';

/** The prebuilt handler bundles, shipped in the npm package (`npm run bundle` writes them). */
export const ASSETS = path.join(__dirname, '..', '..', 'assets');

/**
 * Every broker of the stack's account and region: CloudFormation deletes removed users in its cleanup phase,
 * after the policy has been updated, so a policy naming today's brokers would fail those deletes.
 */
export const BROKERS_OF_ACCOUNT = `arn:${Aws.PARTITION}:mq:${Aws.REGION}:${Aws.ACCOUNT_ID}:broker:*`;

/**
 * A role for Lambda whose only log permission is writing to `logGroup`; no managed policy. In a VPC it may
 * also manage the function's network interfaces, which Lambda needs to place it there.
 */
export function lambdaRole(
  scope: Construct,
  id: string,
  logGroup: logs.ILogGroup,
  settings: MqUserProviderProps,
): iam.Role {
  const role = new iam.Role(scope, id, { assumedBy: new iam.ServicePrincipal('lambda.amazonaws.com') });
  role.addToPrincipalPolicy(
    new iam.PolicyStatement({
      actions: ['logs:CreateLogStream', 'logs:PutLogEvents'],
      resources: [logGroup.logGroupArn],
    }),
  );
  if (settings.vpc) {
    role.addToPrincipalPolicy(
      new iam.PolicyStatement({
        actions: [
          'ec2:CreateNetworkInterface',
          'ec2:DescribeNetworkInterfaces',
          'ec2:DeleteNetworkInterface',
          'ec2:AssignPrivateIpAddresses',
          'ec2:UnassignPrivateIpAddresses',
        ],
        resources: ['*'],
      }),
    );
    acknowledgeNag(
      role,
      'AwsSolutions-IAM5[Resource::*]',
      'Lambda needs these EC2 network interface actions to run in a VPC; DescribeNetworkInterfaces has no resource-level permissions.',
    );
  }
  return role;
}

/** Lets `role` tell whether its own stack is rolling back. */
export function describeOwnStack(): iam.PolicyStatement {
  return new iam.PolicyStatement({ actions: ['cloudformation:DescribeStacks'], resources: [Aws.STACK_ID] });
}

export interface HandlerOptions {
  readonly asset: string;
  readonly handler: string;
  readonly description: string;
  readonly role: iam.IRole;
  readonly logGroup: logs.ILogGroup;
  readonly timeout: Duration;
  readonly settings: MqUserProviderProps;
}

/** One of our handler functions: nodejs24.x on arm64, with the stack's VPC settings. */
export function handlerFunction(scope: Construct, id: string, options: HandlerOptions): lambda.Function {
  return new lambda.Function(scope, id, {
    description: options.description,
    code: lambda.Code.fromAsset(path.join(ASSETS, options.asset)),
    handler: options.handler,
    runtime: lambda.Runtime.NODEJS_24_X,
    architecture: lambda.Architecture.ARM_64,
    memorySize: 256,
    timeout: options.timeout,
    role: options.role,
    logGroup: options.logGroup,
    vpc: options.settings.vpc,
    vpcSubnets: options.settings.vpcSubnets,
    securityGroups: options.settings.securityGroups,
  });
}

/** The log retention every log group of ours gets. */
export function logRetention(settings: MqUserProviderProps): logs.RetentionDays {
  return settings.logRetention ?? logs.RetentionDays.ONE_YEAR;
}
