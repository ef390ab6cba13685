import * as cdk from 'aws-cdk-lib';
import { IConstruct } from 'constructs';

interface ValidationsApi {
  of(scope: IConstruct): { acknowledge(...rules: Array<{ id: string; reason: string }>): void };
}

/**
 * Acknowledges a cdk-nag AwsSolutions finding on one of our constructs (and its children), through
 * aws-cdk-lib's own `Validations`, so the library needs no dependency on cdk-nag.
 *
 * cdk-nag 3 needs aws-cdk-lib 2.257 or newer. Older releases either have no `Validations`, or one that
 * refuses finding-specific IDs such as `AwsSolutions-IAM5[Resource::...]` (2.253 does): there an
 * acknowledgement could serve nothing, so it is skipped rather than failing the user's synth.
 */
export function acknowledgeNag(scope: IConstruct, rule: string, reason: string): void {
  const validations = (cdk as unknown as { Validations?: ValidationsApi }).Validations;
  try {
    validations?.of(scope).acknowledge({ id: `AwsSolutions::${rule}`, reason });
  } catch (error) {
    if ((error as Error).message.includes('Invalid validation rule ID')) return;
    throw error;
  }
}

/** The cdk-nag finding id of a policy that grants on every version of a function (`<Fn.Arn>:*`). */
export function functionVersionsFinding(fn: cdk.aws_lambda.IFunction): string {
  const logicalId = cdk.Stack.of(fn).getLogicalId(fn.node.defaultChild as cdk.CfnElement);
  return `AwsSolutions-IAM5[Resource::<${logicalId}.Arn>:*]`;
}

export const BROKERS_FINDING =
  'AwsSolutions-IAM5[Resource::arn:<AWS::Partition>:mq:<AWS::Region>:<AWS::AccountId>:broker:*]';

export const BROKERS_REASON =
  'mq:CreateUser/UpdateUser/DeleteUser/DescribeUser/DescribeBroker on every broker of the account and region ' +
  '(never another region or account): CloudFormation deletes replaced and removed users in its cleanup phase, after ' +
  'this policy was updated, so naming only the current brokers would fail those deletes. The risk is a confused ' +
  'deputy: whoever can invoke this function or the Provider framework function could send it any event. ' +
  'The fence: before any call, each event must be confirmed by CloudFormation itself (DescribeStackResource: ' +
  'the resource of the expected type in its own stack, in progress for that request type, with that physical ' +
  'ID), so a forged or replayed event writes nothing; lambda:InvokeFunction stays with deployers (README, "Security").';

export const INVOKE_REASON =
  "The CDK Provider framework's grant to its own role: lambda:InvokeFunction on one function of this provider " +
  'and its versions and aliases (`<arn>:*`), nothing else.';
