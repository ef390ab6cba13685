import { App, CfnResource, Stack } from 'aws-cdk-lib';
import { Template } from 'aws-cdk-lib/assertions';
import { MqUser } from '../lib';
import { activeMq } from './fixtures/brokers';

/** The logical IDs of the generated secret and of the user of `build`'s stack. */
function logicalIds(build: (stack: Stack) => MqUser): { secret: string; user: string } {
  const stack = new Stack(new App(), 'Stack');
  const user = build(stack);
  const template = Template.fromStack(stack);
  const secrets = Object.keys(template.findResources('AWS::SecretsManager::Secret'));
  expect(secrets).toHaveLength(1);
  const [secret] = secrets;
  const [resource] = Object.keys(template.findResources('Custom::MqUser'));
  expect(user.secret.node.defaultChild).toBeInstanceOf(CfnResource); // the generated one, of this MqUser
  return { secret, user: resource };
}

describe('README, "Moving a user": a generated password and the construct path', () => {
  const before = logicalIds(
    (stack) => new MqUser(stack, 'OrdersService', { broker: activeMq(stack), username: 'orders' }),
  );

  test('renaming the construct ID gives the generated secret a new logical ID: a new secret, a new password', () => {
    const after = logicalIds(
      (stack) => new MqUser(stack, 'OrdersServiceV2', { broker: activeMq(stack), username: 'orders' }),
    );
    expect(after.secret).not.toBe(before.secret);
    expect(after.user).not.toBe(before.user);
  });

  test("overriding both logical IDs, as the README says, keeps the user's resource and its secret", () => {
    const after = logicalIds((stack) => {
      const user = new MqUser(stack, 'OrdersServiceV2', { broker: activeMq(stack), username: 'orders' });
      (user.node.defaultChild as CfnResource).overrideLogicalId(before.user);
      (user.secret.node.defaultChild as CfnResource).overrideLogicalId(before.secret);
      return user;
    });
    expect(after).toEqual(before);
  });
});
