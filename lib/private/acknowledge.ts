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
  acknowledgeForNag2(scope, rule, reason);
  const validations = (cdk as unknown as { Validations?: ValidationsApi }).Validations;
  try {
    validations?.of(scope).acknowledge({ id: `AwsSolutions::${rule}`, reason });
  } catch (error) {
    if ((error as Error).message.includes('Invalid validation rule ID')) return;
    throw error;
  }
}

/** cdk-nag 2's suppression, as its `NagSuppressions.addResourceSuppressions` writes it into resource metadata. */
interface Nag2Suppression {
  readonly id: string;
  readonly reason: string;
  readonly applies_to?: string[];
  readonly is_reason_encoded?: boolean;
}

/**
 * The same acknowledgement for cdk-nag 2, the last cdk-nag that runs on aws-cdk-lib before 2.257 (the peer floor
 * is 2.253.1): an aspect that reads `cdk_nag.rules_to_suppress` from each resource's metadata, where its
 * `NagSuppressions` writes it. Written here in that format on every CloudFormation resource under `scope`, so a
 * consumer's cdk-nag 2 run sees what cdk-nag 3 sees, without a dependency on either. `AwsSolutions-IAM5[X]` is
 * the rule `AwsSolutions-IAM5` applied to the finding `X`.
 */
function acknowledgeForNag2(scope: IConstruct, rule: string, reason: string): void {
  const finding = /^([^[]+)\[(.+)\]$/.exec(rule);
  // cdk-nag 2 keeps reasons with characters beyond Latin-1 in base64.
  const encoded = [...reason].some((c) => c.codePointAt(0)! > 255);
  const suppression: Nag2Suppression = {
    reason: encoded ? Buffer.from(reason).toString('base64') : reason,
    id: finding ? finding[1] : rule,
    ...(finding ? { applies_to: [finding[2]] } : {}),
    ...(encoded ? { is_reason_encoded: true } : {}),
  };
  for (const child of scope.node.findAll()) {
    if (!(child instanceof cdk.CfnResource)) continue;
    const existing = (child.getMetadata('cdk_nag') as { rules_to_suppress?: Nag2Suppression[] } | undefined)
      ?.rules_to_suppress;
    const rules = [...(existing ?? [])];
    if (!rules.some((r) => JSON.stringify(r) === JSON.stringify(suppression))) rules.push(suppression);
    child.addMetadata('cdk_nag', { rules_to_suppress: rules });
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
