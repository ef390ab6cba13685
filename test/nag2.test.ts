import { App, CfnResource, Stack, aws_iam as iam } from 'aws-cdk-lib';
import { Template } from 'aws-cdk-lib/assertions';
import { BrokerStack } from '../bin/example-stacks';
import { BROKERS_FINDING, BROKERS_REASON, acknowledgeNag } from '../lib/private/acknowledge';

/** The cdk-nag 2 suppressions of `resource`, as cdk-nag 2's `NagSuppressions` would have written them. */
const suppressionsOf = (resource: CfnResource) =>
  (resource.getMetadata('cdk_nag') as { rules_to_suppress: unknown[] } | undefined)?.rules_to_suppress;

describe('acknowledgements for cdk-nag 2 (the nag of aws-cdk-lib before 2.257), in its metadata format', () => {
  test('split a finding-specific rule into the rule and the finding it applies to, with the same reason', () => {
    const stack = new BrokerStack(new App(), 'MqUserExample');
    const policies = Template.fromStack(stack).findResources('AWS::IAM::Policy');
    const lifecycle = Object.values(policies).filter((p) => JSON.stringify(p).includes(':broker:*'));
    expect(lifecycle.length).toBeGreaterThan(0);
    const rule = /^([^[]+)\[(.+)\]$/.exec(BROKERS_FINDING)!;
    for (const policy of lifecycle) {
      expect(policy.Metadata.cdk_nag.rules_to_suppress).toContainEqual({
        id: rule[1],
        applies_to: [rule[2]],
        reason: BROKERS_REASON,
      });
    }
  });

  test('cover every resource under the scope, keep earlier ones, write each once, and encode what is not Latin-1', () => {
    const role = new iam.Role(new Stack(), 'Role', { assumedBy: new iam.ServicePrincipal('lambda.amazonaws.com') });
    role.addToPrincipalPolicy(new iam.PolicyStatement({ actions: ['s3:GetObject'], resources: ['*'] }));
    acknowledgeNag(role, 'AwsSolutions-IAM5[Resource::*]', 'A test role: any object, read only.');
    acknowledgeNag(role, 'AwsSolutions-IAM5[Resource::*]', 'A test role: any object, read only.');
    acknowledgeNag(role, 'AwsSolutions-IAM4', 'A test role — no managed policy here.');
    const expected = [
      { id: 'AwsSolutions-IAM5', applies_to: ['Resource::*'], reason: 'A test role: any object, read only.' },
      {
        id: 'AwsSolutions-IAM4',
        reason: Buffer.from('A test role — no managed policy here.').toString('base64'),
        is_reason_encoded: true,
      },
    ];
    const resources = role.node.findAll().filter((c): c is CfnResource => c instanceof CfnResource);
    expect(resources.map((r) => r.cfnResourceType).sort()).toEqual(['AWS::IAM::Policy', 'AWS::IAM::Role']);
    for (const resource of resources) expect(suppressionsOf(resource)).toEqual(expected);
  });
});
