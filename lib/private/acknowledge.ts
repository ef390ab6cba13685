import * as cdk from 'aws-cdk-lib';
import { IConstruct } from 'constructs';

interface ValidationsApi {
  of(scope: IConstruct): { acknowledge(...rules: Array<{ id: string; reason: string }>): void };
}

/**
 * Acknowledges a cdk-nag AwsSolutions finding on one of our constructs (and its children), through
 * aws-cdk-lib's own `Validations`, so the library needs no dependency on cdk-nag. aws-cdk-lib releases older
 * than `Validations` cannot run cdk-nag 3 either: there this does nothing.
 */
export function acknowledgeNag(scope: IConstruct, rule: string, reason: string): void {
  const validations = (cdk as unknown as { Validations?: ValidationsApi }).Validations;
  validations?.of(scope).acknowledge({ id: `AwsSolutions::${rule}`, reason });
}

/** The cdk-nag finding id of a policy that grants on every version of a function (`<Fn.Arn>:*`). */
export function functionVersionsFinding(fn: cdk.aws_lambda.IFunction): string {
  const logicalId = cdk.Stack.of(fn).getLogicalId(fn.node.defaultChild as cdk.CfnElement);
  return `AwsSolutions-IAM5[Resource::<${logicalId}.Arn>:*]`;
}

export const BROKERS_FINDING =
  'AwsSolutions-IAM5[Resource::arn:<AWS::Partition>:mq:<AWS::Region>:<AWS::AccountId>:broker:*]';

export const BROKERS_REASON =
  'Users of every broker of the account and region: CloudFormation deletes replaced and removed users in its ' +
  'cleanup phase, after this policy was updated, so naming only the current brokers would fail those deletes.';

export const INVOKE_REASON =
  'The CDK Provider framework grants invoke on the function and its versions (`:*`); only this function.';
