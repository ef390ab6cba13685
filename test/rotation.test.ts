import {
  App,
  CfnResource,
  CfnParameter,
  Duration,
  RemovalPolicy,
  SecretValue,
  Stack,
  Validations,
  aws_ec2 as ec2,
  aws_iam as iam,
  aws_logs as logs,
  aws_secretsmanager as secretsmanager,
} from 'aws-cdk-lib';
import { Annotations, Match, Template } from 'aws-cdk-lib/assertions';
import { MqBroker, MqBrokerReboot, MqUser, MqUserProvider, MqUserRotationApply } from '../lib';
import { activeMq } from './fixtures/brokers';
import { findings, isolatedVpc, suppressed, validate } from './fixtures/validation';

const ACCOUNT = '111111111111';
const REGION = 'us-east-1';
const BROKER_ARN = `arn:aws:mq:${REGION}:${ACCOUNT}:broker:shared:b-1234a5b6-78cd-901e-2fab-3c45d6e178f9`;
const OTHER_ARN = `arn:aws:mq:${REGION}:${ACCOUNT}:broker:other:b-9999a5b6-78cd-901e-2fab-3c45d6e17800`;

function newStack(app = new App(), id = 'Stack') {
  return new Stack(app, id, { env: { account: ACCOUNT, region: REGION } });
}

type CfnJson = { Type: string; Properties: Record<string, any>; DependsOn?: string[] };

function resourcesOfType(template: Template, type: string): Record<string, CfnJson> {
  return template.findResources(type) as Record<string, CfnJson>;
}

function onlyOf(template: Template, type: string): [string, CfnJson] {
  const found = Object.entries(resourcesOfType(template, type));
  expect(found).toHaveLength(1);
  return found[0];
}

/** The statements of the rotation function's role. */
/** The statements of the rotation role's policies: its own (logs, brokers), then SecretsPolicy (the secrets). */
function rotationStatements(template: Template): any[] {
  const policies = Object.entries(resourcesOfType(template, 'AWS::IAM::Policy'));
  const of = (prefix: string) => policies.find(([id]) => id.startsWith(prefix))![1].Properties.PolicyDocument.Statement;
  const [logs, ...brokers] = of('CdkMqUserRotationHandlerRole');
  return [logs, ...of('CdkMqUserRotationSecretsPolicy'), ...brokers];
}

const SECRETS_OF_ACCOUNT = {
  'Fn::Join': [
    '',
    [
      'arn:',
      { Ref: 'AWS::Partition' },
      ':secretsmanager:',
      { Ref: 'AWS::Region' },
      ':',
      { Ref: 'AWS::AccountId' },
      ':secret:*',
    ],
  ],
};

describe('the users of a rotation', () => {
  test('adds the alternate <username>_clone with the same broker, groups, flags and secret, and RotationEnabled on both', () => {
    const stack = newStack();
    const user = new MqUser(stack, 'Orders', {
      broker: activeMq(stack),
      username: 'orders-service',
      groups: ['producers', 'consumers'],
      consoleAccess: true,
    });
    user.addRotation();
    const template = Template.fromStack(stack);
    const users = resourcesOfType(template, 'Custom::MqUser');
    const primaryId = stack.getLogicalId(user.node.defaultChild as any);
    const alternateId = Object.keys(users).find((id) => id !== primaryId)!;
    expect(alternateId).toMatch(/^OrdersAlternateResource/);
    const common = {
      ServiceToken: { 'Fn::GetAtt': [expect.stringMatching(/^CdkMqUserProviderframeworkonEvent/), 'Arn'] },
      BrokerId: { Ref: 'Broker' },
      Groups: ['consumers', 'producers'],
      ConsoleAccess: true,
      PasswordSecretArn: { Ref: expect.stringMatching(/^OrdersSecretordersservice/) },
      GeneratedPasswordSettings: expect.stringMatching(/^[0-9a-f]{16}$/),
      RotationEnabled: true,
      FormatVersion: '2',
    };
    expect(users[primaryId].Properties).toEqual({ ...common, Username: 'orders-service' });
    expect(users[alternateId].Properties).toEqual({ ...common, Username: 'orders-service_clone' });
    // The same grant as the primary: the handler reads the same generated secret for both.
    expect(users[alternateId].DependsOn).toEqual(users[primaryId].DependsOn);
  });

  test('leaves the template of a user without rotation as it was: no RotationEnabled, no alternate', () => {
    const stack = newStack();
    new MqUser(stack, 'Orders', { broker: activeMq(stack), username: 'orders-service' });
    const template = Template.fromStack(stack);
    template.resourceCountIs('Custom::MqUser', 1);
    template.hasResourceProperties('Custom::MqUser', { RotationEnabled: Match.absent() });
    template.resourceCountIs('AWS::SecretsManager::RotationSchedule', 0);
    expect(Object.keys(template.toJSON().Resources).filter((id) => id.startsWith('CdkMqUserRotation'))).toEqual([]);
  });

  test('adopts the alternate along with the user, and only then (issue 15: moves of rotated users)', () => {
    const stack = newStack();
    const user = new MqUser(stack, 'Orders', {
      broker: activeMq(stack),
      username: 'orders-service',
      adoptExisting: true,
    });
    user.addRotation();
    const template = Template.fromStack(stack);
    template.hasResourceProperties('Custom::MqUser', { Username: 'orders-service', AdoptExisting: true });
    template.hasResourceProperties('Custom::MqUser', { Username: 'orders-service_clone', AdoptExisting: true });
    const other = newStack(new App(), 'Other');
    new MqUser(other, 'Orders', { broker: activeMq(other), username: 'orders-service' }).addRotation();
    Template.fromStack(other).hasResourceProperties('Custom::MqUser', {
      Username: 'orders-service_clone',
      AdoptExisting: Match.absent(),
    });
  });

  test('gives the alternate the removal policy of the user', () => {
    const stack = newStack();
    const user = new MqUser(stack, 'Orders', {
      broker: activeMq(stack),
      username: 'orders-service',
      removalPolicy: RemovalPolicy.RETAIN_ON_UPDATE_OR_DELETE,
    });
    user.addRotation();
    Template.fromStack(stack).hasResource('Custom::MqUser', {
      Properties: Match.objectLike({ Username: 'orders-service_clone' }),
      DeletionPolicy: 'RetainExceptOnCreate',
      UpdateReplacePolicy: 'Retain',
    });
  });

  test('exposes the alternate username as a token of its resource, and undefined without rotation', () => {
    const stack = newStack();
    const broker = activeMq(stack);
    const rotated = new MqUser(stack, 'Orders', { broker, username: 'orders-service' });
    const plain = new MqUser(stack, 'Plain', { broker, username: 'plain-user' });
    expect(rotated.alternateUsername).toBeUndefined();
    rotated.addRotation();
    expect(stack.resolve(rotated.alternateUsername)).toEqual({
      'Fn::GetAtt': [expect.stringMatching(/^OrdersAlternateResource/), 'Username'],
    });
    expect(plain.alternateUsername).toBeUndefined();
  });
});

describe('the secret of a rotation', () => {
  test('tags the generated secret with the broker, the mode and the stack, without changing how it was generated', () => {
    const render = (rotate: boolean) => {
      const stack = newStack();
      const user = new MqUser(stack, 'Orders', { broker: activeMq(stack), username: 'orders-service' });
      if (rotate) user.addRotation({ applyBy: MqUserRotationApply.REBOOT, automaticallyAfter: Duration.days(1) });
      return onlyOf(Template.fromStack(stack), 'AWS::SecretsManager::Secret');
    };
    const [plainId, plain] = render(false);
    const [rotatedId, rotated] = render(true);
    // CloudFormation regenerates a secret whose GenerateSecretString changes: it must not.
    expect(rotatedId).toBe(plainId);
    expect(rotated.Properties.GenerateSecretString).toEqual(plain.Properties.GenerateSecretString);
    expect(rotated.Properties.Tags).toEqual([
      { Key: 'cdk-mq-user:broker-id', Value: { Ref: 'Broker' } },
      { Key: 'cdk-mq-user:rotation', Value: 'REBOOT' },
      { Key: 'cdk-mq-user:rotation-stack-id', Value: { Ref: 'AWS::StackId' } },
    ]);
  });

  test('tags MAINTENANCE_WINDOW by default, and a literal broker ID for an imported broker', () => {
    const stack = newStack();
    const broker = MqBroker.fromBrokerArn(stack, 'Shared', BROKER_ARN);
    new MqUser(stack, 'Orders', { broker, username: 'orders-service' }).addRotation();
    Template.fromStack(stack).hasResourceProperties('AWS::SecretsManager::Secret', {
      Tags: Match.arrayWith([
        { Key: 'cdk-mq-user:broker-id', Value: 'b-1234a5b6-78cd-901e-2fab-3c45d6e178f9' },
        { Key: 'cdk-mq-user:rotation', Value: 'MAINTENANCE_WINDOW' },
      ]),
    });
  });
});

describe('the schedule', () => {
  test('rotates with the stack’s rotation function every 30 days by default, and returns the RotationSchedule', () => {
    const stack = newStack();
    const schedule = new MqUser(stack, 'Orders', { broker: activeMq(stack), username: 'orders-service' }).addRotation();
    expect(schedule).toBeInstanceOf(secretsmanager.RotationSchedule);
    expect(schedule.node.path).toBe('Stack/Orders/Rotation');
    const template = Template.fromStack(stack);
    const [, rotation] = onlyOf(template, 'AWS::SecretsManager::RotationSchedule');
    expect(rotation.Properties).toEqual({
      SecretId: { Ref: expect.stringMatching(/^OrdersSecretordersservice/) },
      RotationLambdaARN: { 'Fn::GetAtt': [expect.stringMatching(/^CdkMqUserRotationHandler[0-9A-F]{8}$/), 'Arn'] },
      RotationRules: { ScheduleExpression: 'rate(30 days)' },
    });
  });

  test.each([
    [MqUserRotationApply.MAINTENANCE_WINDOW, Duration.days(9), 'rate(9 days)'],
    [MqUserRotationApply.REBOOT, Duration.hours(4), 'rate(4 hours)'],
    [MqUserRotationApply.REBOOT, Duration.days(1000), 'rate(1000 days)'],
  ])('with %s, takes automaticallyAfter %s as %s', (applyBy, automaticallyAfter, expression) => {
    const stack = newStack();
    new MqUser(stack, 'Orders', { broker: activeMq(stack), username: 'orders-service' }).addRotation({
      applyBy,
      automaticallyAfter,
    });
    Template.fromStack(stack).hasResourceProperties('AWS::SecretsManager::RotationSchedule', {
      RotationRules: { ScheduleExpression: expression },
    });
  });

  test('waits for both users and the invoke permission, because Secrets Manager rotates as soon as it exists', () => {
    const stack = newStack();
    new MqUser(stack, 'Orders', { broker: activeMq(stack), username: 'orders-service' }).addRotation();
    const template = Template.fromStack(stack);
    const [, rotation] = onlyOf(template, 'AWS::SecretsManager::RotationSchedule');
    const users = Object.keys(resourcesOfType(template, 'Custom::MqUser'));
    const [permission] = onlyOf(template, 'AWS::Lambda::Permission');
    expect([...rotation.DependsOn!].sort()).toEqual([...users, permission].sort());
  });

  test('waits also for the MqBrokerReboot of the broker, so that its first UpdateUser does not race the reboot', () => {
    const stack = newStack();
    const broker = activeMq(stack);
    new MqUser(stack, 'Orders', { broker, username: 'orders-service' }).addRotation();
    new MqBrokerReboot(stack, 'ApplyUsers', { broker });
    const template = Template.fromStack(stack);
    const [, rotation] = onlyOf(template, 'AWS::SecretsManager::RotationSchedule');
    const [reboot] = onlyOf(template, 'Custom::MqBrokerReboot');
    expect(rotation.DependsOn).toContain(reboot);
  });

  test('adds no per-secret statement and no per-secret permission: one function, one permission, for any number of users', () => {
    const stack = newStack();
    const broker = activeMq(stack);
    for (let i = 0; i < 5; i++) new MqUser(stack, `U${i}`, { broker, username: `user-${i}` }).addRotation();
    const template = Template.fromStack(stack);
    template.resourceCountIs('AWS::SecretsManager::RotationSchedule', 5);
    template.resourceCountIs('AWS::Lambda::Permission', 1);
    expect(
      Object.keys(resourcesOfType(template, 'AWS::Lambda::Function')).filter((id) =>
        id.startsWith('CdkMqUserRotation'),
      ),
    ).toHaveLength(1);
    const statements = Object.values(resourcesOfType(template, 'AWS::IAM::Policy')).flatMap(
      (p) => p.Properties.PolicyDocument.Statement,
    );
    expect(JSON.stringify(statements)).not.toMatch(/GetRandomPassword/);
    // No statement names a secret by its Ref: the grants go by tag.
    expect(JSON.stringify(statements)).not.toMatch(/"Ref":"U\dSecret/);
  });
});

describe('the rotation function', () => {
  test('runs nodejs24.x on arm64 for up to 15 minutes, with its stack ID and the provider’s log retention', () => {
    const stack = newStack();
    MqUserProvider.getOrCreate(stack, { logRetention: logs.RetentionDays.ONE_MONTH });
    new MqUser(stack, 'Orders', { broker: activeMq(stack), username: 'orders-service' }).addRotation();
    const template = Template.fromStack(stack);
    const [, fn] = Object.entries(resourcesOfType(template, 'AWS::Lambda::Function')).find(([id]) =>
      id.startsWith('CdkMqUserRotationHandler'),
    )!;
    expect(fn.Properties).toMatchObject({
      Runtime: 'nodejs24.x',
      Architectures: ['arm64'],
      Handler: 'index.handler',
      Timeout: 900,
      Environment: { Variables: { CDK_MQ_USER_STACK_ID: { Ref: 'AWS::StackId' } } },
      LoggingConfig: { LogGroup: { Ref: expect.stringMatching(/^CdkMqUserRotationHandlerLogs/) } },
    });
    const [, logGroup] = Object.entries(resourcesOfType(template, 'AWS::Logs::LogGroup')).find(([id]) =>
      id.startsWith('CdkMqUserRotationHandlerLogs'),
    )!;
    expect(logGroup.Properties.RetentionInDays).toBe(30);
  });

  test('runs in the VPC of the stack’s MqUserProvider', () => {
    const stack = newStack();
    const vpc = ec2.Vpc.fromVpcAttributes(stack, 'Vpc', {
      vpcId: 'vpc-0123456789abcdef0',
      availabilityZones: ['us-east-1a'],
      privateSubnetIds: ['subnet-0123456789abcdef0'],
    });
    MqUserProvider.getOrCreate(stack, { vpc });
    new MqUser(stack, 'Orders', { broker: activeMq(stack), username: 'orders-service' }).addRotation();
    const template = Template.fromStack(stack);
    const [, fn] = Object.entries(resourcesOfType(template, 'AWS::Lambda::Function')).find(([id]) =>
      id.startsWith('CdkMqUserRotationHandler'),
    )!;
    expect(fn.Properties.VpcConfig.SubnetIds).toEqual(['subnet-0123456789abcdef0']);
  });

  test('may be invoked by Secrets Manager of its own account only', () => {
    const stack = newStack();
    new MqUser(stack, 'Orders', { broker: activeMq(stack), username: 'orders-service' }).addRotation();
    const [id, permission] = onlyOf(Template.fromStack(stack), 'AWS::Lambda::Permission');
    expect(id).toMatch(/^CdkMqUserRotationInvokedBySecretsManager/);
    expect(permission.Properties).toEqual({
      Action: 'lambda:InvokeFunction',
      FunctionName: { 'Fn::GetAtt': [expect.stringMatching(/^CdkMqUserRotationHandler[0-9A-F]{8}$/), 'Arn'] },
      Principal: 'secretsmanager.amazonaws.com',
      SourceAccount: { Ref: 'AWS::AccountId' },
    });
  });

  test('gets exactly: its logs, the tagged secrets, user calls on the rotated brokers, reboots on REBOOT brokers only', () => {
    const stack = newStack();
    const shared = MqBroker.fromBrokerArn(stack, 'Shared', BROKER_ARN);
    const other = MqBroker.fromBrokerArn(stack, 'Other', OTHER_ARN);
    const local = activeMq(stack);
    new MqUser(stack, 'A', { broker: shared, username: 'a-service' }).addRotation();
    new MqUser(stack, 'B', { broker: shared, username: 'b-service' }).addRotation();
    new MqUser(stack, 'C', { broker: other, username: 'c-service' }).addRotation({
      applyBy: MqUserRotationApply.REBOOT,
    });
    new MqUser(stack, 'D', { broker: local, username: 'd-service' }).addRotation({
      applyBy: MqUserRotationApply.REBOOT,
    });
    new MqUser(stack, 'E', { broker: local, username: 'e-service' }).addRotation({
      applyBy: MqUserRotationApply.REBOOT,
    });
    new MqUser(stack, 'NotRotated', { broker: activeMq(stack, 'Unrotated'), username: 'plain-user' });
    expect(rotationStatements(Template.fromStack(stack))).toEqual([
      {
        Action: ['logs:CreateLogStream', 'logs:PutLogEvents'],
        Effect: 'Allow',
        Resource: { 'Fn::GetAtt': [expect.stringMatching(/^CdkMqUserRotationHandlerLogs/), 'Arn'] },
      },
      {
        Action: [
          'secretsmanager:DescribeSecret',
          'secretsmanager:GetSecretValue',
          'secretsmanager:PutSecretValue',
          'secretsmanager:UpdateSecretVersionStage',
        ],
        Condition: { StringEquals: { 'aws:ResourceTag/cdk-mq-user:rotation-stack-id': { Ref: 'AWS::StackId' } } },
        Effect: 'Allow',
        Resource: SECRETS_OF_ACCOUNT,
      },
      {
        Action: ['mq:DescribeUser', 'mq:UpdateUser'],
        Effect: 'Allow',
        Resource: [BROKER_ARN, OTHER_ARN, { 'Fn::GetAtt': ['Broker', 'Arn'] }],
      },
      // To check that a secret is this stack's and read what its metadata binds it to (tags can be forged).
      {
        Action: ['cloudformation:ListStackResources', 'cloudformation:DescribeStackResource'],
        Effect: 'Allow',
        Resource: { Ref: 'AWS::StackId' },
      },
      {
        Action: ['mq:DescribeBroker', 'mq:RebootBroker'],
        Effect: 'Allow',
        Resource: [OTHER_ARN, { 'Fn::GetAtt': ['Broker', 'Arn'] }],
      },
    ]);
  });

  test("binds each rotated secret at synth, in its metadata, to its two users' logical IDs, its mode and interval", () => {
    const stack = newStack();
    const user = new MqUser(stack, 'A', { broker: activeMq(stack), username: 'a-service' });
    user.addRotation({ applyBy: MqUserRotationApply.REBOOT, automaticallyAfter: Duration.days(10) });
    const template = Template.fromStack(stack);
    const logicalIdOf = (path: string) =>
      stack.getLogicalId(stack.node.findChild('A').node.findChild(path).node.defaultChild as CfnResource);
    template.hasResource('AWS::SecretsManager::Secret', {
      Metadata: {
        'cdk-mq-user:rotation': {
          User: logicalIdOf('Resource'),
          Alternate: logicalIdOf('AlternateResource'),
          ApplyBy: 'REBOOT',
          IntervalSeconds: 864_000,
        },
      },
    });
    expect(logicalIdOf('AlternateResource')).not.toBe(logicalIdOf('Resource'));
    template.resourceCountIs('Custom::MqUser', 2);
  });

  test('may reboot nothing when every rotation applies by the maintenance window', () => {
    const stack = newStack();
    new MqUser(stack, 'A', { broker: activeMq(stack), username: 'a-service' }).addRotation();
    const statements = rotationStatements(Template.fromStack(stack));
    expect(JSON.stringify(statements)).not.toMatch(/RebootBroker|DescribeBroker/);
    expect(statements.map((s) => s.Action)).toEqual([
      ['logs:CreateLogStream', 'logs:PutLogEvents'],
      expect.arrayContaining(['secretsmanager:PutSecretValue']),
      ['mq:DescribeUser', 'mq:UpdateUser'],
      ['cloudformation:ListStackResources', 'cloudformation:DescribeStackResource'],
    ]);
  });

  test('may describe a MAINTENANCE_WINDOW broker only where verifySignIn asks for it (issue 15)', () => {
    const stack = newStack();
    const broker = MqBroker.fromBrokerArn(stack, 'Shared', BROKER_ARN);
    const other = MqBroker.fromBrokerArn(stack, 'Other', OTHER_ARN);
    new MqUser(stack, 'A', { broker, username: 'a-service' }).addRotation({ verifySignIn: true });
    new MqUser(stack, 'B', { broker: other, username: 'b-service' }).addRotation();
    const template = Template.fromStack(stack);
    const statements = rotationStatements(template);
    expect(statements.filter((s) => JSON.stringify(s.Action).includes('mq:DescribeBroker'))).toEqual([
      { Action: 'mq:DescribeBroker', Effect: 'Allow', Resource: BROKER_ARN },
    ]);
    // Bound at synth in the secret's metadata, like the mode: a tag anyone may set decides nothing.
    const bindings = Object.values(resourcesOfType(template, 'AWS::SecretsManager::Secret')).map(
      (secret) =>
        (secret as { Metadata?: Record<string, { VerifySignIn?: boolean }> }).Metadata?.['cdk-mq-user:rotation'],
    );
    expect(bindings.map((binding) => binding?.VerifySignIn)).toEqual(expect.arrayContaining([true, undefined]));
    expect(JSON.stringify(template.toJSON())).not.toContain('verify-sign-in');
  });

  test.each<[string, boolean, { publiclyAccessible: boolean; vpc: boolean }]>([
    ['a private broker and a function outside any VPC', true, { publiclyAccessible: false, vpc: false }],
    ['a private broker and a function in a VPC', false, { publiclyAccessible: false, vpc: true }],
    ['a public broker', false, { publiclyAccessible: true, vpc: false }],
  ])('verifySignIn with %s: warns verifySignInUnreachable: %s', (_case, warned, { publiclyAccessible, vpc }) => {
    const stack = newStack();
    if (vpc) MqUserProvider.getOrCreate(stack, { vpc: isolatedVpc(stack) });
    const broker = activeMq(stack, 'Broker', { publiclyAccessible });
    new MqUser(stack, 'A', { broker, username: 'a-service' }).addRotation({ verifySignIn: true });
    const warnings = Annotations.fromStack(stack).findWarning(
      '*',
      Match.stringLikeRegexp('verifySignIn cannot reach it.*cdk-mq-user:verifySignInUnreachable'),
    );
    expect(warnings).toHaveLength(warned ? 1 : 0);
  });

  test('adds no statement for verifySignIn with REBOOT: it describes the broker already', () => {
    const stack = newStack();
    const broker = MqBroker.fromBrokerArn(stack, 'Shared', BROKER_ARN);
    new MqUser(stack, 'A', { broker, username: 'a-service' }).addRotation({
      applyBy: MqUserRotationApply.REBOOT,
      verifySignIn: true,
    });
    const statements = rotationStatements(Template.fromStack(stack));
    expect(statements.filter((s) => JSON.stringify(s.Action).includes('mq:DescribeBroker'))).toEqual([
      { Action: ['mq:DescribeBroker', 'mq:RebootBroker'], Effect: 'Allow', Resource: BROKER_ARN },
    ]);
  });

  test('is one per stack, in each stack that rotates', () => {
    const app = new App();
    const a = newStack(app, 'A');
    const b = newStack(app, 'B');
    new MqUser(a, 'U1', { broker: activeMq(a), username: 'u1-service' }).addRotation();
    new MqUser(a, 'U2', { broker: activeMq(a, 'B2'), username: 'u2-service' }).addRotation();
    new MqUser(b, 'U3', { broker: activeMq(b), username: 'u3-service' }).addRotation();
    for (const stack of [a, b]) {
      expect(stack.node.tryFindChild('CdkMqUserRotation')).toBeDefined();
      Template.fromStack(stack).resourceCountIs('AWS::Lambda::Permission', 1);
    }
  });
});

describe('synth errors of addRotation', () => {
  const passwordSecret = (stack: Stack) => secretsmanager.Secret.fromSecretNameV2(stack, 'Supplied', 'team/mq');

  test.each<[string, (stack: Stack) => MqUser, (user: MqUser) => unknown, string]>([
    [
      'the user has a supplied secret',
      (stack) =>
        new MqUser(stack, 'User', {
          broker: activeMq(stack),
          username: 'orders-service',
          passwordSecret: passwordSecret(stack),
        }),
      (user) => user.addRotation(),
      'MqUser Stack/User: addRotation needs a generated secret, but this MqUser has passwordSecret: the rotation writes new passwords into a secret it owns (JSON {"username", "password"}, tagged for the rotation function). Remove passwordSecret to let MqUser generate the secret, or keep your secret and roll it with passwordVersion',
    ],
    [
      'the user has a passwordVersion',
      (stack) =>
        new MqUser(stack, 'User', { broker: activeMq(stack), username: 'orders-service', passwordVersion: '2' }),
      (user) => user.addRotation(),
      'MqUser Stack/User: passwordVersion "2" cannot be combined with addRotation: the rotation owns the password after the user is created and a deploy never sets it. Remove passwordVersion; to rotate now, run `aws secretsmanager rotate-secret --secret-id <the secret>`',
    ],
    [
      'it is called twice',
      (stack) => new MqUser(stack, 'User', { broker: activeMq(stack), username: 'orders-service' }),
      (user) => {
        user.addRotation();
        user.addRotation();
      },
      'MqUser Stack/User: addRotation was already called on this MqUser: call it once (it returns the rotation schedule)',
    ],
    [
      'the username has 95 characters',
      (stack) => new MqUser(stack, 'User', { broker: activeMq(stack), username: 'u'.repeat(95) }),
      (user) => user.addRotation(),
      `username "${'u'.repeat(95)}" has 95 characters: a rotated user has at most 94, so that its alternate "<username>_clone" fits Amazon MQ's 100. Shorten the username`,
    ],
    [
      'the username ends in _clone',
      (stack) => new MqUser(stack, 'User', { broker: activeMq(stack), username: 'orders_clone' }),
      (user) => user.addRotation(),
      'username "orders_clone" ends in "_clone", the suffix of rotation\'s alternate users: the rotation would take "orders" for its primary user. Rename the user',
    ],
    [
      "the broker's own users list holds the alternate",
      (stack) =>
        new MqUser(stack, 'User', {
          broker: activeMq(stack, 'Broker', {
            users: [{ username: 'orders_clone', password: SecretValue.secretsManager('x').unsafeUnwrap() }],
          }),
          username: 'orders',
        }),
      (user) => user.addRotation(),
      'the alternate user "orders_clone" of the rotation is already in the users list of broker Stack/Broker: a user is managed either by the broker or by MqUser; remove it from that list, or rename this user',
    ],
    [
      'MAINTENANCE_WINDOW rotates every 8 days',
      (stack) => new MqUser(stack, 'User', { broker: activeMq(stack), username: 'orders-service' }),
      (user) => user.addRotation({ automaticallyAfter: Duration.days(8) }),
      "automaticallyAfter 8 days is too short for MqUserRotationApply.MAINTENANCE_WINDOW: the broker's weekly maintenance window (up to 2 hours) must fall between two rotations, which Secrets Manager may run a day closer than the interval, so at least 9 days. Pass Duration.days(9) or more, or applyBy: MqUserRotationApply.REBOOT",
    ],
    [
      'the interval is 3 hours',
      (stack) => new MqUser(stack, 'User', { broker: activeMq(stack), username: 'orders-service' }),
      (user) => user.addRotation({ applyBy: MqUserRotationApply.REBOOT, automaticallyAfter: Duration.hours(3) }),
      "automaticallyAfter 3 hours must be 4 hours to 1000 days (Secrets Manager's rotation limits): pass a duration in that range",
    ],
    [
      'the interval is 1001 days',
      (stack) => new MqUser(stack, 'User', { broker: activeMq(stack), username: 'orders-service' }),
      (user) => user.addRotation({ automaticallyAfter: Duration.days(1001) }),
      "automaticallyAfter 1001 days must be 4 hours to 1000 days (Secrets Manager's rotation limits)",
    ],
    [
      'the interval is 0, which would schedule nothing',
      (stack) => new MqUser(stack, 'User', { broker: activeMq(stack), username: 'orders-service' }),
      (user) => user.addRotation({ applyBy: MqUserRotationApply.REBOOT, automaticallyAfter: Duration.days(0) }),
      'automaticallyAfter 0 days must be 4 hours to 1000 days',
    ],
    [
      'the interval is 36 hours',
      (stack) => new MqUser(stack, 'User', { broker: activeMq(stack), username: 'orders-service' }),
      (user) => user.addRotation({ applyBy: MqUserRotationApply.REBOOT, automaticallyAfter: Duration.hours(36) }),
      "automaticallyAfter 1 day 12 hours must be whole hours below one day, or whole days (Secrets Manager's rate() schedules count hours or days): round it",
    ],
  ])('fails when %s, naming the value, the rule and the fix', (_case, build, act, message) => {
    const stack = newStack();
    const user = build(stack);
    expect(() => act(user)).toThrow(message);
  });

  test('reports every broken rule at once', () => {
    const stack = newStack();
    const user = new MqUser(stack, 'User', { broker: activeMq(stack), username: 'a_clone', passwordVersion: '1' });
    expect(() => user.addRotation({ automaticallyAfter: Duration.days(7) })).toThrow(
      /passwordVersion "1".*; username "a_clone" ends in "_clone".*; automaticallyAfter 7 days is too short/,
    );
  });

  test('accepts 94 characters, REBOOT every 4 hours, and MAINTENANCE_WINDOW every 9 days', () => {
    const stack = newStack();
    const broker = activeMq(stack);
    new MqUser(stack, 'Long', { broker, username: 'u'.repeat(94) }).addRotation();
    new MqUser(stack, 'Often', { broker, username: 'often' }).addRotation({
      applyBy: MqUserRotationApply.REBOOT,
      automaticallyAfter: Duration.hours(4),
    });
    new MqUser(stack, 'Weekly', { broker, username: 'weekly' }).addRotation({ automaticallyAfter: Duration.days(9) });
    Template.fromStack(stack).resourceCountIs('Custom::MqUser', 6);
  });

  test('skips the username rules when the username is a token', () => {
    const stack = newStack();
    const username = new CfnParameter(stack, 'Username').valueAsString;
    new MqUser(stack, 'User', { broker: activeMq(stack), username }).addRotation();
    const template = Template.fromStack(stack);
    template.hasResourceProperties('Custom::MqUser', {
      Username: { 'Fn::Join': ['', [{ Ref: 'Username' }, '_clone']] },
    });
  });
});

describe('the broker registry', () => {
  test('fails when another MqUser declares <username>_clone on the broker, whichever comes first', () => {
    for (const order of ['declared first', 'declared after'] as const) {
      const stack = newStack();
      const broker = MqBroker.fromBrokerArn(stack, 'Shared', BROKER_ARN);
      if (order === 'declared first') new MqUser(stack, 'Clone', { broker, username: 'orders_clone' });
      new MqUser(stack, 'Orders', { broker, username: 'orders' }).addRotation();
      if (order === 'declared after') new MqUser(stack, 'Clone', { broker, username: 'orders_clone' });
      // Whichever comes first, the plain user is named as the rotation's victim.
      expect(() => Template.fromStack(stack)).toThrow(
        'username "orders_clone" of Stack/Clone is the name of the alternate user that the rotation of Stack/Orders ' +
          'manages on broker b-1234a5b6-78cd-901e-2fab-3c45d6e178f9: the rotation would set its password',
      );
    }
  });

  test('fails when a rotated user in another stack of the app has the same alternate', () => {
    const app = new App();
    const a = newStack(app, 'A');
    const b = newStack(app, 'B');
    new MqUser(a, 'Orders', {
      broker: MqBroker.fromBrokerArn(a, 'Shared', BROKER_ARN),
      username: 'orders',
    }).addRotation();
    new MqUser(b, 'Clone', { broker: MqBroker.fromBrokerArn(b, 'Shared', BROKER_ARN), username: 'orders_clone' });
    expect(() => app.synth()).toThrow(
      /\[B\/Clone\] username "orders_clone" of B\/Clone is the name of the alternate user that the rotation of A\/Orders/,
    );
  });

  test('counts the alternate toward the 250 users of a broker', () => {
    const build = (plainUsers: number) => {
      const stack = newStack();
      const broker = MqBroker.fromBrokerArn(stack, 'Shared', BROKER_ARN);
      const secret = secretsmanager.Secret.fromSecretNameV2(stack, 'Secret', 'team/shared');
      new MqUser(stack, 'Rotated', { broker, username: 'rotated' }).addRotation();
      for (let i = 0; i < plainUsers; i++)
        new MqUser(stack, `U${i}`, { broker, username: `user-${i}`, passwordSecret: secret });
      return stack;
    };
    expect(() => Template.fromStack(build(248))).not.toThrow();
    expect(() => Template.fromStack(build(249))).toThrow(
      "broker b-1234a5b6-78cd-901e-2fab-3c45d6e178f9 would have 251 users (250 MqUsers, 1 rotation alternate and 0 in the broker's own users list); Amazon MQ allows at most 250 per broker",
    );
  });

  test('has MqBrokerReboot cover the alternate: its username, its state and a dependency', () => {
    const stack = newStack();
    const broker = activeMq(stack);
    const reboot = new MqBrokerReboot(stack, 'ApplyUsers', { broker });
    const user = new MqUser(stack, 'Orders', { broker, username: 'orders-service' });
    user.addRotation();
    new MqUser(stack, 'Plain', { broker, username: 'plain-user' });
    const template = Template.fromStack(stack);
    const [, rebootResource] = onlyOf(template, 'Custom::MqBrokerReboot');
    const alternateId = stack.getLogicalId(user.node.findChild('AlternateResource').node.defaultChild as any);
    expect(rebootResource.Properties.Usernames).toEqual(['orders-service', 'orders-service_clone', 'plain-user']);
    expect(rebootResource.Properties.UserStates).toContainEqual({ 'Fn::GetAtt': [alternateId, 'StateDigest'] });
    expect(rebootResource.DependsOn).toContain(alternateId);
    expect(reboot).toBeDefined();
  });

  test('changes the reboot’s users digest when rotation is added, so the deploy applies the new alternate', () => {
    const digest = (rotate: boolean) => {
      const stack = newStack();
      const broker = activeMq(stack);
      const user = new MqUser(stack, 'Orders', { broker, username: 'orders-service' });
      if (rotate) user.addRotation();
      new MqBrokerReboot(stack, 'ApplyUsers', { broker });
      return onlyOf(Template.fromStack(stack), 'Custom::MqBrokerReboot')[1].Properties.UsersDigest;
    };
    expect(digest(true)).not.toBe(digest(false));
  });
});

/** Rotated users in both modes, a user without rotation, and the reboot opt-in; in a VPC or not. */
function rotatingApp(inVpc: boolean, acknowledgePlain = true) {
  return (app: App) => {
    const stack = new Stack(app, 'Rotating');
    if (inVpc) {
      MqUserProvider.getOrCreate(stack, { vpc: isolatedVpc(stack) });
    }
    const broker = MqBroker.fromBrokerArn(stack, 'Broker', BROKER_ARN);
    new MqUser(stack, 'Window', { broker, username: 'window-user' }).addRotation();
    new MqUser(stack, 'Reboot', {
      broker: MqBroker.fromBrokerArn(stack, 'Other', OTHER_ARN),
      username: 'reboot-user',
    }).addRotation({
      applyBy: MqUserRotationApply.REBOOT,
      automaticallyAfter: Duration.days(1),
    });
    const plain = new MqUser(stack, 'Plain', { broker, username: 'plain-user' });
    if (acknowledgePlain) {
      Validations.of(plain.secret).acknowledge({
        id: 'AwsSolutions::AwsSolutions-SMG4',
        reason: 'Its owner chose not to rotate it: a test user.',
      });
    }
    new MqBrokerReboot(stack, 'ApplyUsers', { broker });
  };
}

describe('cdk-nag AwsSolutions and the built-in validation with rotation', () => {
  test.each([
    ['outside a VPC', false],
    ['in a VPC', true],
  ])('find nothing unacknowledged, %s', (_case, inVpc) => {
    for (const withNag of [true, false]) {
      const { report, error } = validate(rotatingApp(inVpc), withNag);
      expect(error).toBeUndefined();
      expect(findings(report)).toEqual([]);
    }
  });

  test("report SMG4 for a generated secret that does not rotate: acknowledging it is the owner's choice, not the library's", () => {
    const { report } = validate(rotatingApp(false, false), true);
    expect(findings(report)).toEqual(['AwsSolutions AwsSolutions-SMG4 Rotating/Plain/Secret-plain-user/Resource']);
    expect(suppressed(report).filter((s) => s.rule === 'AwsSolutions-SMG4')).toEqual([]);
  });

  test("acknowledge the rotation role's secret:* only for its tag-conditioned statement, with that scope in the reason", () => {
    const { report } = validate(rotatingApp(false), true);
    const rotation = suppressed(report).filter((s) => s.path.startsWith('Rotating/CdkMqUserRotation/'));
    expect(rotation.map((s) => [s.rule, s.path])).toEqual([
      [
        'AwsSolutions-IAM5[Resource::arn:<AWS::Partition>:secretsmanager:<AWS::Region>:<AWS::AccountId>:secret:*]',
        'Rotating/CdkMqUserRotation/SecretsPolicy/Resource',
      ],
    ]);
    expect(rotation[0].reason).toMatch(/only on secrets tagged cdk-mq-user:rotation-stack-id = this stack's ID/);
  });

  test('still report a statement someone adds to the rotation role', () => {
    const { report } = validate((app) => {
      rotatingApp(false)(app);
      const stack = app.node.findChild('Rotating') as Stack;
      const role = stack.node.findChild('CdkMqUserRotation').node.findChild('HandlerRole') as iam.Role;
      role.addToPrincipalPolicy(new iam.PolicyStatement({ actions: ['s3:GetObject'], resources: ['*'] }));
    }, true);
    expect(findings(report)).toEqual([
      'AwsSolutions AwsSolutions-IAM5[Resource::*] Rotating/CdkMqUserRotation/HandlerRole/DefaultPolicy/Resource',
    ]);
  });
});
