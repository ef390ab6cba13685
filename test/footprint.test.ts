import { App, Stack, aws_ec2 as ec2, aws_secretsmanager as secretsmanager } from 'aws-cdk-lib';
import { Template } from 'aws-cdk-lib/assertions';
import { MqBroker, MqBrokerReboot, MqUser, MqUserProvider, MqUserRotationApply } from '../lib';

// The README's table "What each construct adds to a stack" states these counts: keep them in step.
const BROKER_ARN = 'arn:aws:mq:us-east-1:111111111111:broker:shared:b-1234a5b6-78cd-901e-2fab-3c45d6e178f9';
const OTHER_ARN = 'arn:aws:mq:us-east-1:111111111111:broker:other:b-9999a5b6-78cd-901e-2fab-3c45d6e17800';

/** The CloudFormation resources of a stack built by `build`, by type. */
function resources(build: (stack: Stack) => void): Record<string, number> {
  const stack = new Stack(new App(), 'Stack', { env: { account: '111111111111', region: 'us-east-1' } });
  build(stack);
  const counts: Record<string, number> = {};
  for (const resource of Object.values<{ Type: string }>(Template.fromStack(stack).toJSON().Resources)) {
    counts[resource.Type] = (counts[resource.Type] ?? 0) + 1;
  }
  return counts;
}

const total = (counts: Record<string, number>) => Object.values(counts).reduce((a, b) => a + b, 0);

function vpcOf(stack: Stack): ec2.IVpc {
  return ec2.Vpc.fromVpcAttributes(stack, 'Vpc', {
    vpcId: 'vpc-0123456789abcdef0',
    availabilityZones: ['us-east-1a'],
    privateSubnetIds: ['subnet-0123456789abcdef0'],
  });
}

describe('what each construct adds to a stack', () => {
  test('the user provider: 21 fixed resources (5 functions, 4 roles, 5 inline policies, 3 log groups, the waiter, the table of deliveries, the alarm)', () => {
    const counts = resources((stack) => MqUserProvider.getOrCreate(stack));
    expect(counts).toEqual({
      'AWS::Lambda::Function': 5,
      'AWS::IAM::Role': 4,
      'AWS::IAM::Policy': 5,
      'AWS::Logs::LogGroup': 3,
      'AWS::StepFunctions::StateMachine': 1,
      'AWS::DynamoDB::Table': 1,
      'AWS::Logs::MetricFilter': 1,
      'AWS::CloudWatch::Alarm': 1,
    });
  });

  test('the user provider in a VPC: 29 (a network-interface policy per role, a security group per function)', () => {
    const counts = resources((stack) => MqUserProvider.getOrCreate(stack, { vpc: vpcOf(stack) }));
    expect(total(counts)).toBe(29);
    expect(counts['AWS::IAM::Policy']).toBe(8);
    expect(counts['AWS::EC2::SecurityGroup']).toBe(5);
  });

  test('a user: 1 resource with a supplied secret, 2 with a generated one; 1 managed policy per batch of secrets', () => {
    const base = total(resources((stack) => MqUserProvider.getOrCreate(stack)));
    const supplied = (users: number) =>
      total(
        resources((stack) => {
          const broker = MqBroker.fromBrokerArn(stack, 'Broker', BROKER_ARN);
          for (let i = 0; i < users; i++) {
            const passwordSecret = secretsmanager.Secret.fromSecretNameV2(stack, `S${i}`, `team/user-${i}`);
            new MqUser(stack, `U${i}`, { broker, username: `user-${i}`, passwordSecret });
          }
        }),
      );
    const generated = (users: number) =>
      total(
        resources((stack) => {
          const broker = MqBroker.fromBrokerArn(stack, 'Broker', BROKER_ARN);
          for (let i = 0; i < users; i++) new MqUser(stack, `U${i}`, { broker, username: `user-${i}` });
        }),
      );
    expect(supplied(1) - base).toBe(2); // the user and the first SecretsPolicy
    expect(supplied(2) - supplied(1)).toBe(1);
    expect(generated(1) - base).toBe(3); // the user, its secret and the first SecretsPolicy (every secret is named)
    expect(generated(2) - generated(1)).toBe(2);
  });

  test('the reboot opt-in: 17 fixed resources, and 1 per opted-in broker', () => {
    const users = (stack: Stack) => {
      const broker = MqBroker.fromBrokerArn(stack, 'Broker', BROKER_ARN);
      new MqUser(stack, 'User', { broker, username: 'orders-service' });
      return broker;
    };
    const without = resources(users);
    const one = resources((stack) => new MqBrokerReboot(stack, 'Reboot', { broker: users(stack) }));
    const two = resources((stack) => {
      new MqBrokerReboot(stack, 'Reboot', { broker: users(stack) });
      const other = MqBroker.fromBrokerArn(stack, 'Other', OTHER_ARN);
      new MqUser(stack, 'OtherUser', { broker: other, username: 'other-service' });
      new MqBrokerReboot(stack, 'OtherReboot', { broker: other });
    });
    expect(total(one) - total(without)).toBe(18);
    expect(one['Custom::MqBrokerReboot']).toBe(1);
    expect(one['AWS::StepFunctions::StateMachine'] - without['AWS::StepFunctions::StateMachine']).toBe(1);
    expect(one['AWS::Lambda::Function'] - without['AWS::Lambda::Function']).toBe(5);
    expect(one['AWS::IAM::Role'] - without['AWS::IAM::Role']).toBe(4);
    expect(one['AWS::IAM::Policy'] - without['AWS::IAM::Policy']).toBe(4);
    expect(one['AWS::Logs::LogGroup'] - without['AWS::Logs::LogGroup']).toBe(3);
    // A second broker: its user and secret, and one reboot resource.
    expect(total(two) - total(one)).toBe(3);
  });

  test('the reboot opt-in in a VPC: 25 fixed resources, and 1 per opted-in broker', () => {
    const build = (reboot: boolean) => (stack: Stack) => {
      MqUserProvider.getOrCreate(stack, { vpc: vpcOf(stack) });
      const broker = MqBroker.fromBrokerArn(stack, 'Broker', BROKER_ARN);
      new MqUser(stack, 'User', { broker, username: 'orders-service' });
      if (reboot) new MqBrokerReboot(stack, 'Reboot', { broker });
    };
    expect(total(resources(build(true))) - total(resources(build(false)))).toBe(26);
  });

  test('rotation: 6 fixed resources per stack, and 3 per rotated user (its alternate, schedule and secret policy)', () => {
    const users = (rotated: number) => (stack: Stack) => {
      const broker = MqBroker.fromBrokerArn(stack, 'Broker', BROKER_ARN);
      for (let i = 0; i < 3; i++) {
        const user = new MqUser(stack, `U${i}`, { broker, username: `user-${i}` });
        if (i < rotated) user.addRotation({ applyBy: i === 0 ? MqUserRotationApply.REBOOT : undefined });
      }
    };
    const none = resources(users(0));
    const one = resources(users(1));
    const two = resources(users(2));
    const added = (after: Record<string, number>, before: Record<string, number>) =>
      Object.fromEntries(
        Object.keys(after)
          .filter((type) => after[type] !== (before[type] ?? 0))
          .map((type) => [type, after[type] - (before[type] ?? 0)]),
      );
    expect(added(one, none)).toEqual({
      // the stack's rotation function (CdkMqUserRotation)
      'AWS::Lambda::Function': 1,
      'AWS::IAM::Role': 1,
      'AWS::IAM::Policy': 2, // the role's own, and SecretsPolicy
      'AWS::Logs::LogGroup': 1,
      'AWS::Lambda::Permission': 1,
      // the rotated user
      'Custom::MqUser': 1,
      'AWS::SecretsManager::RotationSchedule': 1,
      'AWS::SecretsManager::ResourcePolicy': 1,
    });
    expect(added(two, one)).toEqual({
      'Custom::MqUser': 1,
      'AWS::SecretsManager::RotationSchedule': 1,
      'AWS::SecretsManager::ResourcePolicy': 1,
    });
  });

  test('rotation in a VPC: 8 fixed resources (a network-interface policy and a security group)', () => {
    const build = (rotate: boolean) => (stack: Stack) => {
      MqUserProvider.getOrCreate(stack, { vpc: vpcOf(stack) });
      const user = new MqUser(stack, 'User', {
        broker: MqBroker.fromBrokerArn(stack, 'Broker', BROKER_ARN),
        username: 'orders-service',
      });
      if (rotate) user.addRotation();
    };
    expect(total(resources(build(true))) - total(resources(build(false)))).toBe(8 + 3);
  });

  test('fits 94 rotated users in a stack, 90 with the reboot opt-in (README, "How many users fit")', () => {
    const count = (rotated: number, reboot: boolean) =>
      total(
        resources((stack) => {
          const broker = MqBroker.fromBrokerArn(stack, 'Broker', BROKER_ARN);
          for (let i = 0; i < rotated; i++) new MqUser(stack, `U${i}`, { broker, username: `user-${i}` }).addRotation();
          if (reboot) new MqBrokerReboot(stack, 'Reboot', { broker });
        }),
      );
    expect(count(94, false)).toBeLessThanOrEqual(500);
    expect(count(90, true)).toBeLessThanOrEqual(500);
    // One more, and synth itself refuses the stack.
    expect(() => count(95, false)).toThrow(/500/);
    expect(() => count(91, true)).toThrow(/500/);
  });
});
