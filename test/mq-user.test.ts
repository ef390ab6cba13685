import {
  App,
  CfnParameter,
  CfnResource,
  Duration,
  NestedStack,
  RemovalPolicy,
  SecretValue,
  Stack,
  aws_amazonmq as amazonmq,
  aws_ec2 as ec2,
  aws_kms as kms,
  aws_logs as logs,
  aws_secretsmanager as secretsmanager,
} from 'aws-cdk-lib';
import { Annotations, Match, Template } from 'aws-cdk-lib/assertions';
import { MqBroker, MqUser, MqUserProvider } from '../lib';
import { activeMq } from './fixtures/brokers';

const ACCOUNT = '111111111111';
const REGION = 'us-east-1';
const BROKER_ARN = `arn:aws:mq:${REGION}:${ACCOUNT}:broker:shared:b-1234a5b6-78cd-901e-2fab-3c45d6e178f9`;

function newStack(app = new App(), id = 'Stack') {
  return new Stack(app, id, { env: { account: ACCOUNT, region: REGION } });
}

/** An entry of a CfnBroker's own users list; its password a dynamic reference, as it should be. */
function brokerUser(username: string): amazonmq.CfnBroker.UserProperty {
  return { username, password: SecretValue.secretsManager(`${username}-password`).unsafeUnwrap() };
}

function resourcesOfType(template: Template, type: string) {
  return Object.values(template.findResources(type)) as Array<{ Properties: Record<string, any> }>;
}

describe('the custom resource', () => {
  test('carries broker, username, sorted groups, flags and the secret ARN, never a password', () => {
    const stack = newStack();
    const broker = activeMq(stack);
    new MqUser(stack, 'User', {
      broker,
      username: 'orders-service',
      groups: ['b-group', 'a-group', 'b-group'],
      consoleAccess: true,
    });

    const template = Template.fromStack(stack);
    const [user] = resourcesOfType(template, 'Custom::MqUser');
    expect(user.Properties).toEqual({
      ServiceToken: { 'Fn::GetAtt': [expect.stringMatching(/^CdkMqUserProviderframeworkonEvent/), 'Arn'] },
      BrokerId: { Ref: 'Broker' },
      Username: 'orders-service',
      Groups: ['a-group', 'b-group'],
      ConsoleAccess: true,
      PasswordSecretArn: { Ref: expect.stringMatching(/^UserSecret/) },
      GeneratedPasswordSettings: expect.stringMatching(/^[0-9a-f]{16}$/),
      // Bumped when a format adds attributes: every user deployed before gets one Update that answers them.
      FormatVersion: '2',
    });
    expect(JSON.stringify(template.toJSON())).not.toMatch(/"Password"/);
  });

  test('writes flags only when they are true: absent means false', () => {
    const stack = newStack();
    const broker = activeMq(stack);
    new MqUser(stack, 'Plain', { broker, username: 'plain-user' });
    new MqUser(stack, 'Flags', { broker, username: 'flag-user', replicationUser: true, adoptExisting: true });
    const template = Template.fromStack(stack);
    template.hasResourceProperties('Custom::MqUser', {
      Username: 'plain-user',
      ConsoleAccess: Match.absent(),
      ReplicationUser: Match.absent(),
      AdoptExisting: Match.absent(),
    });
    template.hasResourceProperties('Custom::MqUser', {
      Username: 'flag-user',
      ConsoleAccess: Match.absent(),
      ReplicationUser: true,
      AdoptExisting: true,
    });
  });

  test('is the same whatever the order of the groups', () => {
    const render = (groups: string[]) => {
      const stack = newStack();
      new MqUser(stack, 'User', { broker: activeMq(stack), username: 'orders-service', groups });
      return Template.fromStack(stack).toJSON();
    };
    expect(render(['x-group', 'y-group'])).toEqual(render(['y-group', 'x-group', 'x-group']));
  });

  test('generates a secret of 32 letters and digits, as JSON with the username', () => {
    const stack = newStack();
    const user = new MqUser(stack, 'User', { broker: activeMq(stack), username: 'orders-service' });
    Template.fromStack(stack).hasResourceProperties('AWS::SecretsManager::Secret', {
      GenerateSecretString: {
        SecretStringTemplate: '{"username":"orders-service"}',
        GenerateStringKey: 'password',
        PasswordLength: 32,
        ExcludePunctuation: true,
        IncludeSpace: false,
      },
    });
    // No tag decides who may read it: anyone allowed to tag secrets could set one.
    expect(
      Object.values(Template.fromStack(stack).findResources('AWS::SecretsManager::Secret'))[0].Properties.Tags,
    ).toBeUndefined();
    expect(user.secret).toBeDefined();
  });

  test('replaces a generated secret when the username changes, instead of regenerating it in place', () => {
    const secretOf = (username: string) => {
      const stack = newStack();
      new MqUser(stack, 'User', { broker: activeMq(stack), username });
      return Object.keys(Template.fromStack(stack).findResources('AWS::SecretsManager::Secret'));
    };
    const [before] = secretOf('orders-service');
    const [after] = secretOf('orders-v2');
    // A new logical ID: CloudFormation creates the new secret and deletes the old one only after success, so
    // the rollback of a rename finds the old password where it was.
    expect(before).toMatch(/^UserSecretordersservice/);
    expect(after).not.toBe(before);
    expect(secretOf('orders-service')).toEqual([before]);
  });

  test('passes a supplied secret by ARN, with its field and version', () => {
    const stack = newStack();
    const secret = secretsmanager.Secret.fromSecretNameV2(stack, 'Imported', 'team/orders');
    new MqUser(stack, 'User', {
      broker: activeMq(stack),
      username: 'orders-service',
      passwordSecret: secret,
      passwordField: 'mq',
      passwordVersion: '7',
    });
    const template = Template.fromStack(stack);
    template.hasResourceProperties('Custom::MqUser', {
      PasswordSecretArn: { 'Fn::Join': ['', Match.arrayWith([Match.stringLikeRegexp(':secret:team/orders$')])] },
      PasswordField: 'mq',
      PasswordVersion: '7',
      GeneratedPasswordSettings: Match.absent(),
    });
    template.resourceCountIs('AWS::SecretsManager::Secret', 0);
  });

  test('exposes the username and pending change as attributes of the custom resource', () => {
    const stack = newStack();
    const user = new MqUser(stack, 'User', { broker: activeMq(stack), username: 'orders-service' });
    expect(stack.resolve(user.username)).toEqual({ 'Fn::GetAtt': [expect.stringMatching(/^User/), 'Username'] });
    expect(stack.resolve(user.pendingChange)).toEqual({
      'Fn::GetAtt': [expect.stringMatching(/^User/), 'PendingChange'],
    });
  });

  test.each([
    [undefined, 'Delete', 'Delete'],
    [RemovalPolicy.DESTROY, 'Delete', 'Delete'],
    [RemovalPolicy.RETAIN_ON_UPDATE_OR_DELETE, 'RetainExceptOnCreate', 'Retain'],
    [RemovalPolicy.RETAIN, 'Retain', 'Retain'],
  ])('applies removalPolicy %s to the user and its generated secret', (removalPolicy, deletion, replace) => {
    const stack = newStack();
    new MqUser(stack, 'User', { broker: activeMq(stack), username: 'orders-service', removalPolicy });
    const template = Template.fromStack(stack);
    for (const type of ['Custom::MqUser', 'AWS::SecretsManager::Secret']) {
      template.hasResource(type, { DeletionPolicy: deletion, UpdateReplacePolicy: replace });
    }
  });

  test('makes the CloudFormation resource its default child, so that overrideLogicalId works', () => {
    const stack = newStack();
    const user = new MqUser(stack, 'User', { broker: activeMq(stack), username: 'orders-service' });
    expect(user.node.defaultChild).toBeInstanceOf(CfnResource);
    (user.node.defaultChild as CfnResource).overrideLogicalId('OldLogicalId');
    expect(Template.fromStack(stack).toJSON().Resources.OldLogicalId.Type).toBe('Custom::MqUser');
  });

  test('exposes the broker ID as a token of the custom resource, not as the literal ID', () => {
    const stack = newStack();
    const user = new MqUser(stack, 'User', {
      broker: MqBroker.fromBrokerArn(stack, 'B', BROKER_ARN),
      username: 'orders-service',
    });
    expect(stack.resolve(user.brokerId)).toEqual({ 'Fn::GetAtt': [expect.stringMatching(/^User/), 'BrokerId'] });
  });
});

describe('MqBroker.fromBrokerArn', () => {
  test('takes the broker ID from a literal ARN', () => {
    const stack = newStack();
    new MqUser(stack, 'User', { broker: MqBroker.fromBrokerArn(stack, 'B', BROKER_ARN), username: 'orders-service' });
    Template.fromStack(stack).hasResourceProperties('Custom::MqUser', {
      BrokerId: 'b-1234a5b6-78cd-901e-2fab-3c45d6e178f9',
    });
  });

  test('selects the eighth field of a token ARN', () => {
    const stack = newStack();
    const arn = new CfnParameter(stack, 'BrokerArn').valueAsString;
    new MqUser(stack, 'User', { broker: MqBroker.fromBrokerArn(stack, 'B', arn), username: 'orders-service' });
    Template.fromStack(stack).hasResourceProperties('Custom::MqUser', {
      BrokerId: { 'Fn::Select': [7, { 'Fn::Split': [':', { Ref: 'BrokerArn' }] }] },
    });
  });

  test.each([
    [
      'a malformed ARN',
      'arn:aws:sqs:us-east-1:111111111111:queue',
      'is not an Amazon MQ broker ARN: expected arn:<partition>:mq:<region>:<account>:broker:<broker name>:<broker id>',
    ],
    [
      'a bare broker ID, with a hint (issue 17: the error came from aws-cdk-lib, without path or hint)',
      'b-1234a5b6-78cd-901e-2fgh-3i45j6k178l9',
      'is not an Amazon MQ broker ARN: expected arn:<partition>:mq:<region>:<account>:broker:<broker name>:<broker id>; ' +
        '"b-1234a5b6-78cd-901e-2fgh-3i45j6k178l9" looks like a broker ID: pass the broker\'s ARN',
    ],
    [
      'a broker name',
      'orders-broker',
      'is not an Amazon MQ broker ARN: expected arn:<partition>:mq:<region>:<account>:broker:<broker name>:<broker id>; ' +
        "pass the broker's Arn attribute",
    ],
    [
      'another account',
      BROKER_ARN.replace(ACCOUNT, '222222222222'),
      'is in account 222222222222 but stack Stack deploys to account 111111111111',
    ],
    [
      'another region',
      BROKER_ARN.replace(REGION, 'eu-west-1'),
      'is in region eu-west-1 but stack Stack deploys to region us-east-1',
    ],
  ])('fails for %s, naming the construct path and the fix', (_case, arn, message) => {
    const stack = newStack();
    expect(() => MqBroker.fromBrokerArn(stack, 'B', arn)).toThrow(`MqBroker.fromBrokerArn Stack/B: brokerArn "${arn}"`);
    expect(() => MqBroker.fromBrokerArn(stack, 'B2', arn)).toThrow(message);
  });

  test('warns, with a stable id, when a literal ARN meets a stack that does not say where it deploys', () => {
    const stack = new Stack(new App(), 'Agnostic');
    // A user on the broker, as in real use (an empty stack would also fail the built-in template validation).
    new MqUser(stack, 'User', { broker: MqBroker.fromBrokerArn(stack, 'B', BROKER_ARN), username: 'orders-service' });
    Annotations.fromStack(stack).hasWarning(
      '/Agnostic/B',
      Match.stringLikeRegexp(
        `brokerArn "${BROKER_ARN}" is in account ${ACCOUNT} and region ${REGION}, but stack Agnostic does not say ` +
          'where it deploys.*\\[ack: cdk-mq-user:brokerArnEnvironment\\]',
      ),
    );
  });

  test("does not warn when the stack deploys to the broker's account and region, or the ARN is a token", () => {
    const stack = newStack();
    new MqUser(stack, 'User', { broker: MqBroker.fromBrokerArn(stack, 'B', BROKER_ARN), username: 'orders-service' });
    const agnostic = new Stack(new App(), 'Agnostic');
    const tokenArn = new CfnParameter(agnostic, 'BrokerArn').valueAsString;
    new MqUser(agnostic, 'User', {
      broker: MqBroker.fromBrokerArn(agnostic, 'B', tokenArn),
      username: 'orders-service',
    });
    for (const s of [stack, agnostic]) {
      expect(Annotations.fromStack(s).findWarning('*', Match.stringLikeRegexp('brokerArnEnvironment'))).toEqual([]);
    }
  });
});

describe('the provider', () => {
  function build(users: number, brokers: number) {
    const stack = newStack();
    const all = Array.from({ length: brokers }, (_, i) => activeMq(stack, `Broker${i}`));
    for (let i = 0; i < users; i++) new MqUser(stack, `User${i}`, { broker: all[i % brokers], username: `user-${i}` });
    return Template.fromStack(stack);
  }

  test.each([
    [1, 2],
    [20, 2],
  ])('keeps five functions and four roles for %d users on %d brokers', (users, brokers) => {
    const template = build(users, brokers);
    // onEvent and isComplete of the handler, the framework's onEvent, isComplete and onTimeout; the waiter's role.
    template.resourceCountIs('AWS::Lambda::Function', 5);
    template.resourceCountIs('AWS::IAM::Role', 4);
    template.resourceCountIs('Custom::MqUser', users);
  });

  test('runs the handler on nodejs24.x with the bundled asset, no managed policies on its roles', () => {
    const template = build(1, 1);
    expect(JSON.stringify(template.toJSON())).not.toContain('ec2:CreateNetworkInterface');
    template.hasResourceProperties('AWS::Lambda::Function', { Runtime: 'nodejs24.x', Handler: 'index.handler' });
    for (const role of resourcesOfType(template, 'AWS::IAM::Role'))
      expect(role.Properties.ManagedPolicyArns).toBeUndefined();
  });

  test("keeps one table of the handler's deliveries: generated name, on demand, TTL, PITR, destroyed with the stack", () => {
    const template = build(3, 1);
    const tables = resourcesOfType(template, 'AWS::DynamoDB::Table');
    expect(tables).toHaveLength(1);
    const [table] = tables;
    expect(table.Properties.TableName).toBeUndefined(); // generated: a destroyed stack deploys again
    expect(table.Properties).toMatchObject({
      BillingMode: 'PAY_PER_REQUEST',
      KeySchema: [{ AttributeName: 'delivery', KeyType: 'HASH' }],
      TimeToLiveSpecification: { AttributeName: 'expiresAt', Enabled: true },
      PointInTimeRecoverySpecification: { PointInTimeRecoveryEnabled: true },
    });
    const policies = table as unknown as { DeletionPolicy?: string; UpdateReplacePolicy?: string };
    expect([policies.DeletionPolicy, policies.UpdateReplacePolicy]).toEqual(['Delete', 'Delete']);
    const tableId = Object.entries(template.toJSON().Resources).find(
      ([, r]) => (r as { Type: string }).Type === 'AWS::DynamoDB::Table',
    )![0];
    // Both of the users' functions get its name; nothing else in the stack does.
    const named = resourcesOfType(template, 'AWS::Lambda::Function').filter(
      (fn) => fn.Properties.Environment?.Variables?.CDK_MQ_USER_DELIVERIES_TABLE !== undefined,
    );
    expect(named.map((fn) => fn.Properties.Handler).sort()).toEqual(['index.handler', 'index.isComplete']);
    for (const fn of named)
      expect(fn.Properties.Environment.Variables.CDK_MQ_USER_DELIVERIES_TABLE).toEqual({ Ref: tableId });
    // Only GetItem and UpdateItem, only on this table, only for the handler's role.
    const onTable = resourcesOfType(template, 'AWS::IAM::Policy')
      .flatMap((policy) => policy.Properties.PolicyDocument.Statement as Array<Record<string, unknown>>)
      .filter((statement) => JSON.stringify(statement).includes(tableId));
    expect(onTable).toEqual([
      {
        Action: ['dynamodb:GetItem', 'dynamodb:UpdateItem'],
        Effect: 'Allow',
        Resource: { 'Fn::GetAtt': [tableId, 'Arn'] },
      },
    ]);
  });

  test('grants the user actions on the brokers of its account and region, never on *', () => {
    const template = build(1, 1);
    template.hasResourceProperties('AWS::IAM::Policy', {
      PolicyDocument: {
        Statement: Match.arrayWith([
          Match.objectLike({
            Action: ['mq:CreateUser', 'mq:UpdateUser', 'mq:DeleteUser', 'mq:DescribeUser', 'mq:DescribeBroker'],
            Resource: {
              'Fn::Join': [
                '',
                [
                  'arn:',
                  { Ref: 'AWS::Partition' },
                  ':mq:',
                  { Ref: 'AWS::Region' },
                  ':',
                  { Ref: 'AWS::AccountId' },
                  ':broker:*',
                ],
              ],
            },
          }),
        ]),
      },
    });
    // Only the waiter state machine's role (the Provider framework's), for Step Functions' log delivery actions.
    const statements = resourcesOfType(template, 'AWS::IAM::Policy')
      .filter((p) => !JSON.stringify(p.Properties.Roles).includes('waiterstatemachineRole'))
      .flatMap((p) => p.Properties.PolicyDocument.Statement);
    expect(statements.filter((s) => s.Resource === '*')).toEqual([]);
  });

  test('lets the functions write logs only to their own log groups', () => {
    const template = build(1, 1);
    const logStatements = resourcesOfType(template, 'AWS::IAM::Policy')
      .flatMap((p) => p.Properties.PolicyDocument.Statement)
      .filter((s) => JSON.stringify(s.Action).includes('logs:') && s.Resource !== '*');
    // The handler's role, the framework's two roles (one shared group); the waiter's log delivery has no resource.
    expect(logStatements).toHaveLength(3);
    for (const s of logStatements) {
      expect(s.Resource).toEqual({
        'Fn::GetAtt': [expect.stringMatching(/^CdkMqUserProvider(Handler|Framework)Logs/), 'Arn'],
      });
    }
  });

  test('reads generated secrets by their ARNs, never by a tag, and each user waits for its grant', () => {
    const template = build(3, 1);
    const statements = [
      ...resourcesOfType(template, 'AWS::IAM::Policy'),
      ...resourcesOfType(template, 'AWS::IAM::ManagedPolicy'),
    ].flatMap((p) => p.Properties.PolicyDocument.Statement);
    const reads = statements.filter((s) => JSON.stringify(s.Action).includes('secretsmanager:GetSecretValue'));
    expect(JSON.stringify(reads)).not.toMatch(/ResourceTag|secret:\*/);
    const secretIds = Object.keys(template.findResources('AWS::SecretsManager::Secret'));
    expect(secretIds).toHaveLength(3);
    const named = reads.flatMap((s) => [s.Resource].flat());
    for (const id of secretIds) expect(named).toContainEqual({ Ref: id });
    const withDeps = Object.values(template.findResources('Custom::MqUser')) as Array<{ DependsOn: string[] }>;
    expect(withDeps).toHaveLength(3);
    for (const u of withDeps)
      expect(u.DependsOn).toContainEqual(expect.stringMatching(/^CdkMqUserProviderSecretsPolicy/));
  });

  test('is configured per stack before the first user', () => {
    const stack = newStack();
    const vpc = new ec2.Vpc(stack, 'Vpc', {
      natGateways: 0,
      subnetConfiguration: [{ name: 'isolated', subnetType: ec2.SubnetType.PRIVATE_ISOLATED }],
    });
    MqUserProvider.getOrCreate(stack, { timeout: Duration.minutes(2), logRetention: logs.RetentionDays.ONE_WEEK, vpc });
    new MqUser(stack, 'User', { broker: activeMq(stack), username: 'orders-service' });
    const template = Template.fromStack(stack);
    template.hasResourceProperties('AWS::Lambda::Function', {
      Runtime: 'nodejs24.x',
      Timeout: 120,
      VpcConfig: Match.anyValue(),
    });
    template.allResourcesProperties('AWS::Logs::LogGroup', { RetentionInDays: 7 });
    // Lambda needs to manage its network interfaces in a VPC: granted inline, never as a managed policy.
    const eniGrants = resourcesOfType(template, 'AWS::IAM::Policy').filter((p) =>
      JSON.stringify(p.Properties.PolicyDocument).includes('ec2:CreateNetworkInterface'),
    );
    expect(eniGrants).toHaveLength(3);
    for (const role of resourcesOfType(template, 'AWS::IAM::Role'))
      expect(role.Properties.ManagedPolicyArns).toBeUndefined();
    // In a policy of its own (so that its acknowledgement covers nothing else), which each function waits for:
    // Lambda checks the permission when it creates a function in a VPC.
    const eniPolicies = Object.keys(template.findResources('AWS::IAM::Policy')).filter((id) =>
      id.includes('NetworkInterfacesPolicy'),
    );
    expect(eniPolicies).toHaveLength(3);
    for (const fn of Object.values(template.findResources('AWS::Lambda::Function')) as Array<{ DependsOn: string[] }>) {
      expect(fn.DependsOn.filter((dep) => eniPolicies.includes(dep))).toHaveLength(1);
    }
  });

  test.each([Duration.seconds(10), Duration.minutes(15)])('fails for a handler timeout of %s', (timeout) => {
    expect(() => MqUserProvider.getOrCreate(newStack(), { timeout })).toThrow(
      /^MqUserProvider Stack\/CdkMqUserProvider: timeout .* must be 30 seconds to 14 minutes .*: pass a timeout in that range/,
    );
  });

  test.each([Duration.seconds(30), Duration.minutes(14)])('accepts a handler timeout of %s', (timeout) => {
    const stack = newStack();
    MqUserProvider.getOrCreate(stack, { timeout });
    Template.fromStack(stack).hasResourceProperties('AWS::Lambda::Function', {
      Handler: 'index.handler',
      Timeout: timeout.toSeconds(),
    });
  });

  test('fails when configured after the first user', () => {
    const stack = newStack();
    new MqUser(stack, 'User', { broker: activeMq(stack), username: 'orders-service' });
    expect(() => MqUserProvider.getOrCreate(stack, { timeout: Duration.minutes(2) })).toThrow(
      "MqUserProvider Stack/CdkMqUserProvider: the MqUserProvider of stack Stack already exists (the stack's first MqUser or MqBrokerReboot made it): call MqUserProvider.getOrCreate(stack, props) before them to configure it",
    );
  });

  test("tells each function its own stack's ID, so that the handler can refuse other stacks' events", () => {
    const template = build(1, 1);
    const functions = resourcesOfType(template, 'AWS::Lambda::Function');
    const ours = functions.filter((f) => f.Properties.Handler === 'index.handler');
    expect(ours).toHaveLength(1);
    expect(ours[0].Properties.Environment).toEqual({
      Variables: { CDK_MQ_USER_STACK_ID: { Ref: 'AWS::StackId' }, CDK_MQ_USER_DELIVERIES_TABLE: expect.anything() },
    });
  });

  test('lets the handler read the status, the resources (the proof of each event) and the history of its own stack only', () => {
    const template = build(1, 1);
    const statements = resourcesOfType(template, 'AWS::IAM::Policy')
      .flatMap((p) => p.Properties.PolicyDocument.Statement)
      .filter((s) => JSON.stringify(s.Action).includes('cloudformation:'));
    expect(statements).toEqual([
      {
        Action: [
          'cloudformation:DescribeStacks',
          'cloudformation:DescribeStackResource',
          'cloudformation:ListStackResources',
          'cloudformation:DescribeStackEvents',
        ],
        Effect: 'Allow',
        Resource: { Ref: 'AWS::StackId' },
      },
    ]);
  });

  test('in a nested stack, lets the handler also read the status of the root stack, by its name', () => {
    const parent = newStack(new App(), 'Root');
    const nested = new NestedStack(parent, 'Users');
    new MqUser(nested, 'User', { broker: MqBroker.fromBrokerArn(nested, 'B', BROKER_ARN), username: 'orders-service' });
    const statements = resourcesOfType(Template.fromStack(nested), 'AWS::IAM::Policy')
      .flatMap((p) => p.Properties.PolicyDocument.Statement)
      .filter((s) => JSON.stringify(s.Action).includes('cloudformation:'));
    expect(statements).toEqual([
      {
        Action: [
          'cloudformation:DescribeStacks',
          'cloudformation:DescribeStackResource',
          'cloudformation:ListStackResources',
          'cloudformation:DescribeStackEvents',
        ],
        Effect: 'Allow',
        Resource: { Ref: 'AWS::StackId' },
      },
      {
        Action: 'cloudformation:DescribeStacks',
        Effect: 'Allow',
        Resource: {
          'Fn::Join': [
            '',
            [
              'arn:',
              { Ref: 'AWS::Partition' },
              ':cloudformation:',
              { Ref: 'AWS::Region' },
              ':',
              { Ref: 'AWS::AccountId' },
              ':stack/Root/*',
            ],
          ],
        },
      },
    ]);
  });
});

describe('customer-managed keys of supplied secrets', () => {
  const KEY_ARN = `arn:aws:kms:${REGION}:${ACCOUNT}:key/1234abcd-12ab-34cd-56ef-1234567890ab`;

  function kmsStatements(template: Template) {
    return [...resourcesOfType(template, 'AWS::IAM::ManagedPolicy'), ...resourcesOfType(template, 'AWS::IAM::Policy')]
      .flatMap((p) => p.Properties.PolicyDocument.Statement)
      .filter((s) => JSON.stringify(s.Action).includes('kms:'));
  }

  test('grants kms:Decrypt on an imported key, through Secrets Manager and for that secret only', () => {
    const stack = newStack();
    const secretArn = `arn:aws:secretsmanager:${REGION}:${ACCOUNT}:secret:team/orders-AbCdEf`;
    const passwordSecret = secretsmanager.Secret.fromSecretAttributes(stack, 'Secret', {
      secretCompleteArn: secretArn,
      encryptionKey: kms.Key.fromKeyArn(stack, 'Key', KEY_ARN),
    });
    new MqUser(stack, 'User', { broker: activeMq(stack), username: 'orders-service', passwordSecret });
    expect(kmsStatements(Template.fromStack(stack))).toEqual([
      {
        Action: 'kms:Decrypt',
        Effect: 'Allow',
        Resource: KEY_ARN,
        Condition: {
          StringEquals: { 'kms:ViaService': `secretsmanager.${REGION}.amazonaws.com` },
          StringLike: { 'kms:EncryptionContext:SecretARN': [secretArn] },
        },
      },
    ]);
  });

  test('grants a key and secret of another stack of the app without a dependency cycle', () => {
    const app = new App();
    const keys = newStack(app, 'Keys');
    const passwordSecret = new secretsmanager.Secret(keys, 'Secret', {
      encryptionKey: new kms.Key(keys, 'Key'),
      generateSecretString: { excludeCharacters: ',:=' },
    });
    const users = newStack(app, 'Users');
    new MqUser(users, 'User', {
      broker: MqBroker.fromBrokerArn(users, 'B', BROKER_ARN),
      username: 'orders-service',
      passwordSecret,
    });
    expect(() => app.synth()).not.toThrow();
    // The key stack does not reference the users' stack: no key policy names the handler role.
    expect(JSON.stringify(Template.fromStack(keys).toJSON())).not.toContain('CdkMqUserProvider');
    expect(kmsStatements(Template.fromStack(users))).toEqual([
      {
        Action: 'kms:Decrypt',
        Effect: 'Allow',
        Resource: {
          'Fn::Join': [
            '',
            [
              'arn:',
              { Ref: 'AWS::Partition' },
              ':kms:',
              { Ref: 'AWS::Region' },
              ':',
              { Ref: 'AWS::AccountId' },
              ':key/*',
            ],
          ],
        },
        Condition: {
          StringEquals: { 'kms:ViaService': `secretsmanager.${REGION}.amazonaws.com` },
          StringLike: { 'kms:EncryptionContext:SecretARN': [{ 'Fn::ImportValue': expect.stringMatching(/^Keys:/) }] },
        },
      },
    ]);
  });

  test('grants a key of its own stack like any other: through Secrets Manager, for its own secrets only', () => {
    const stack = newStack();
    const passwordSecret = new secretsmanager.Secret(stack, 'Secret', {
      encryptionKey: new kms.Key(stack, 'Key'),
      generateSecretString: { excludeCharacters: ',:=' },
    });
    new MqUser(stack, 'User', { broker: activeMq(stack), username: 'orders-service', passwordSecret });
    const template = Template.fromStack(stack);
    // The key policy names no role (naming the secret there would make a cycle: the secret names the key) ...
    const keyPolicy = Object.values(template.findResources('AWS::KMS::Key'))[0].Properties.KeyPolicy;
    expect(JSON.stringify(keyPolicy)).not.toMatch(/CdkMqUserProviderHandlerRole/);
    // ... the role's secrets policy grants Decrypt with the Secrets Manager encryption context of the secret.
    const statements = resourcesOfType(template, 'AWS::IAM::ManagedPolicy').flatMap(
      (p) => p.Properties.PolicyDocument.Statement,
    );
    expect(statements).toContainEqual({
      Action: 'kms:Decrypt',
      Effect: 'Allow',
      Resource: { 'Fn::GetAtt': ['Key961B73FD', 'Arn'] },
      Condition: {
        StringEquals: { 'kms:ViaService': `secretsmanager.${REGION}.amazonaws.com` },
        StringLike: { 'kms:EncryptionContext:SecretARN': [{ Ref: 'SecretA720EF05' }] },
      },
    });
  });
});

describe('scale', () => {
  /** IAM's size of a policy document: JSON without whitespace, with every token replaced by a real value. */
  function iamSize(document: unknown, arnLength: number): number {
    const text = JSON.stringify(document, (_key, value) => {
      if (value && typeof value === 'object' && !Array.isArray(value)) {
        const keys = Object.keys(value);
        if (keys.length === 1 && (keys[0] === 'Ref' || keys[0].startsWith('Fn::'))) return 'x'.repeat(arnLength);
      }
      return value;
    });
    return text.length;
  }

  test('fits 250 users with distinct supplied secrets in CloudFormation and IAM limits', () => {
    const stack = newStack();
    const brokers = [activeMq(stack, 'B0'), activeMq(stack, 'B1')];
    for (let i = 0; i < 250; i++) {
      const arn = `arn:aws:secretsmanager:${REGION}:${ACCOUNT}:secret:teams/orders/service-${i}/mq-password-AbCdEf`;
      const secret = secretsmanager.Secret.fromSecretCompleteArn(stack, `S${i}`, arn);
      new MqUser(stack, `U${i}`, { broker: brokers[i % 2], username: `user-${i}`, passwordSecret: secret });
    }
    const template = Template.fromStack(stack);
    expect(Object.keys(template.toJSON().Resources).length).toBeLessThanOrEqual(500);
    const managed = resourcesOfType(template, 'AWS::IAM::ManagedPolicy');
    expect(managed.length).toBeGreaterThan(1);
    expect(managed.length).toBeLessThanOrEqual(10);
    const granted = managed.flatMap((p) =>
      p.Properties.PolicyDocument.Statement.flatMap((s: { Resource: string[] }) => s.Resource),
    );
    expect(new Set(granted).size).toBe(250);
    for (const policy of managed) expect(iamSize(policy.Properties.PolicyDocument, 100)).toBeLessThanOrEqual(6_144);
    for (const policy of resourcesOfType(template, 'AWS::IAM::Policy')) {
      expect(iamSize(policy.Properties.PolicyDocument, 100)).toBeLessThanOrEqual(10_240);
    }
  });

  test('packs secrets of this app, whose ARNs are tokens, with room for long generated names', () => {
    const stack = newStack();
    const broker = activeMq(stack);
    for (let i = 0; i < 100; i++) {
      new MqUser(stack, `U${i}`, {
        broker,
        username: `user-${i}`,
        passwordSecret: new secretsmanager.Secret(stack, `S${i}`, {
          generateSecretString: { excludePunctuation: true },
        }),
      });
    }
    const managed = resourcesOfType(Template.fromStack(stack), 'AWS::IAM::ManagedPolicy');
    // A CloudFormation-generated secret name stays far below 160 characters of ARN.
    for (const policy of managed) expect(iamSize(policy.Properties.PolicyDocument, 160)).toBeLessThanOrEqual(6_144);
  });

  test("fits 235 users with generated secrets in CloudFormation's and IAM's limits, each secret named", () => {
    const build = (users: number) => {
      const stack = newStack();
      const broker = activeMq(stack);
      for (let i = 0; i < users; i++) new MqUser(stack, `U${i}`, { broker, username: `user-${i}` });
      return Template.fromStack(stack);
    };
    // One more, and synth itself refuses the stack (README, "How many users fit").
    expect(() => build(236)).toThrow(/500/);
    const template = build(235);
    expect(Object.keys(template.toJSON().Resources).length).toBeLessThanOrEqual(500);
    const managed = resourcesOfType(template, 'AWS::IAM::ManagedPolicy');
    expect(managed.length).toBeLessThanOrEqual(10); // IAM's default quota of managed policies per role
    for (const policy of managed) expect(iamSize(policy.Properties.PolicyDocument, 160)).toBeLessThanOrEqual(6_144);
    const inline = resourcesOfType(template, 'AWS::IAM::Policy');
    for (const policy of inline) expect(iamSize(policy.Properties.PolicyDocument, 100)).toBeLessThanOrEqual(2_048);
  });
});

describe('validation', () => {
  test.each([
    ['the username is too short', { username: 'a' }, 'username "a" must be 2 to 100 characters of A-Z a-z 0-9 - . _ ~'],
    [
      'the username has a space',
      { username: 'orders service' },
      'username "orders service" must be 2 to 100 characters',
    ],
    ['the username is 101 characters', { username: 'u'.repeat(101) }, 'must be 2 to 100 characters'],
    [
      'a group is invalid',
      { groups: ['ok-group', 'bad/group'] },
      'group "bad/group" must be 2 to 100 characters of A-Z a-z 0-9 - . _ ~',
    ],
    [
      'there are 21 groups',
      { groups: Array.from({ length: 21 }, (_, i) => `g-${i}`) },
      'groups has 21 entries; Amazon MQ allows at most 20 groups per user',
    ],
    [
      'consoleAccess comes with replicationUser',
      { consoleAccess: true, replicationUser: true },
      'consoleAccess and replicationUser cannot both be true',
    ],
    ['passwordField comes without passwordSecret', { passwordField: 'pw' }, 'passwordField "pw" needs passwordSecret'],
    [
      'the username is two dots',
      { username: '..' },
      'MqUser Stack/User: username ".." must be 2 to 100 characters of A-Z a-z 0-9 - . _ ~, and not only dots',
    ],
    ['the username is only dots', { username: '.....' }, 'username "....." must be 2 to 100 characters'],
  ])('fails when %s', (_case, props, message) => {
    const stack = newStack();
    expect(() => new MqUser(stack, 'User', { broker: activeMq(stack), username: 'orders-service', ...props })).toThrow(
      message,
    );
  });

  test.each([
    ['runs RabbitMQ', { engineType: 'RABBITMQ' }, 'has engineType "RABBITMQ": MqUser manages ActiveMQ users only'],
    ['runs rabbitmq, in any casing', { engineType: 'rabbitmq' }, 'has engineType "rabbitmq"'],
    [
      'uses LDAP',
      { authenticationStrategy: 'ldap' },
      'has authenticationStrategy "ldap": LDAP users sign in through LDAP',
    ],
  ])('fails when the CfnBroker %s', (_case, overrides, message) => {
    const stack = newStack();
    expect(
      () => new MqUser(stack, 'User', { broker: activeMq(stack, 'Broker', overrides), username: 'orders-service' }),
    ).toThrow(message);
  });

  test('fails when one broker gets a username twice in one app, also across stacks', () => {
    const app = new App();
    const a = newStack(app, 'A');
    const b = newStack(app, 'B');
    new MqUser(a, 'User', { broker: MqBroker.fromBrokerArn(a, 'Shared', BROKER_ARN), username: 'orders-service' });
    new MqUser(b, 'User', { broker: MqBroker.fromBrokerArn(b, 'Shared', BROKER_ARN), username: 'orders-service' });
    expect(() => app.synth()).toThrow(
      '[B/User] username "orders-service" is declared twice on broker b-1234a5b6-78cd-901e-2fab-3c45d6e178f9 (A/User and B/User): a broker has one user per username; remove one of the two MqUsers or give it another username',
    );
  });

  test.each<[string, { old: RemovalPolicy | undefined; adopt: boolean; sameStack?: boolean }, boolean]>([
    [
      'a move between stacks: the old one retains, the new one adopts',
      { old: RemovalPolicy.RETAIN, adopt: true },
      true,
    ],
    [
      'RETAIN_ON_UPDATE_OR_DELETE counts as retaining',
      { old: RemovalPolicy.RETAIN_ON_UPDATE_OR_DELETE, adopt: true },
      true,
    ],
    ['the old one would delete the adopted user', { old: undefined, adopt: true }, false],
    ['neither adopts', { old: RemovalPolicy.RETAIN, adopt: false }, false],
    [
      'one stack (a move within a stack is one deploy)',
      { old: RemovalPolicy.RETAIN, adopt: true, sameStack: true },
      false,
    ],
  ])('a username twice in one app: %s (issue 15)', (_case, { old, adopt, sameStack }, accepted) => {
    const app = new App();
    const a = newStack(app, 'A');
    const b = sameStack ? a : newStack(app, 'B');
    for (const [stack, id, props] of [
      [a, 'User', { removalPolicy: old }],
      [b, 'Moved', { adoptExisting: adopt }],
    ] as const) {
      new MqUser(stack, id, {
        broker: MqBroker.fromBrokerArn(stack, `Shared${id}`, BROKER_ARN),
        username: 'orders-service',
        ...props,
      }).addRotation();
    }
    if (accepted) expect(() => app.synth()).not.toThrow();
    else expect(() => app.synth()).toThrow(/username "orders-service" is declared twice/);
  });

  test('accepts usernames with dots that are not only dots', () => {
    const stack = newStack();
    new MqUser(stack, 'User', { broker: activeMq(stack), username: 'orders.service.' });
    new MqUser(stack, 'Dots', { broker: activeMq(stack, 'B2'), username: '.~' });
    Template.fromStack(stack).resourceCountIs('Custom::MqUser', 2);
  });

  test('warns, with a stable id, when one token username is used twice on a broker', () => {
    const stack = newStack();
    const broker = activeMq(stack);
    const username = new CfnParameter(stack, 'Username').valueAsString;
    new MqUser(stack, 'U1', { broker, username });
    new MqUser(stack, 'U2', { broker, username });
    new MqUser(stack, 'U3', { broker, username: new CfnParameter(stack, 'Other').valueAsString });
    const warnings = Annotations.fromStack(stack).findWarning('*', Match.stringLikeRegexp('sameTokenUsername'));
    expect(warnings.map((w) => w.id)).toEqual(['/Stack/U2']);
    expect(warnings[0].entry.data).toMatch(
      /same deploy-time value as that of Stack\/U1 \(\{"Ref":"Username"\}\) on broker Stack\/Broker/,
    );
  });

  test('accepts one username on two brokers', () => {
    const stack = newStack();
    new MqUser(stack, 'U1', { broker: activeMq(stack, 'B1'), username: 'orders-service' });
    new MqUser(stack, 'U2', { broker: activeMq(stack, 'B2'), username: 'orders-service' });
    expect(() => Template.fromStack(stack)).not.toThrow();
  });

  test("fails when the CfnBroker's own users list holds the username", () => {
    const stack = newStack();
    const broker = activeMq(stack, 'Broker', { users: [brokerUser('orders-service')] });
    expect(() => new MqUser(stack, 'User', { broker, username: 'orders-service' })).toThrow(
      'username "orders-service" is already in the users list of broker Stack/Broker: a user is managed either by the broker or by MqUser; to move it to MqUser, set adoptExisting: true',
    );
  });

  test("only warns, with a stable id, when adoptExisting takes over a user of the broker's own list", () => {
    const stack = newStack();
    const broker = activeMq(stack, 'Broker', { users: [brokerUser('orders-service')] });
    new MqUser(stack, 'User', { broker, username: 'orders-service', adoptExisting: true });
    Annotations.fromStack(stack).hasWarning(
      '/Stack/User',
      Match.stringLikeRegexp('also in the users list of broker Stack/Broker.*\\[ack: cdk-mq-user:adoptBrokerUser\\]'),
    );
  });

  test("fails past 250 users on one broker, counting the broker's own users", () => {
    const stack = newStack();
    const broker = activeMq(stack, 'Broker', { users: [brokerUser('admin')] });
    const secret = secretsmanager.Secret.fromSecretNameV2(stack, 'Shared', 'shared');
    for (let i = 0; i < 250; i++) new MqUser(stack, `U${i}`, { broker, username: `user-${i}`, passwordSecret: secret });
    expect(() => Template.fromStack(stack)).toThrow(
      "[Stack/Broker] broker Stack/Broker would have 251 users (250 MqUsers and 1 in the broker's own users list); Amazon MQ allows at most 250 per broker: move users to another broker",
    );
  });

  test('warns, with a stable id, about console access together with activemq-webconsole', () => {
    const stack = newStack();
    new MqUser(stack, 'User', {
      broker: activeMq(stack),
      username: 'operator',
      consoleAccess: true,
      groups: ['activemq-webconsole'],
    });
    Annotations.fromStack(stack).hasWarning(
      '/Stack/User',
      Match.stringLikeRegexp('administers every destination.*\\[ack: cdk-mq-user:consoleAdministrator\\]'),
    );
  });

  test('fails for removalPolicy SNAPSHOT, which does not apply to a user', () => {
    const stack = newStack();
    expect(
      () =>
        new MqUser(stack, 'User', {
          broker: activeMq(stack),
          username: 'orders-service',
          removalPolicy: RemovalPolicy.SNAPSHOT,
        }),
    ).toThrow(
      'MqUser Stack/User: removalPolicy SNAPSHOT does not apply to a user: use DESTROY, RETAIN_ON_UPDATE_OR_DELETE or RETAIN',
    );
  });

  test('skips the checks that need a value hidden by a token', () => {
    const stack = newStack();
    const username = new CfnParameter(stack, 'Username').valueAsString;
    const broker = activeMq(stack, 'Broker', {
      engineType: new CfnParameter(stack, 'Engine').valueAsString,
      users: [brokerUser('admin')],
    });
    new MqUser(stack, 'U1', { broker, username });
    new MqUser(stack, 'U2', { broker, username });
    expect(() => Template.fromStack(stack)).not.toThrow();
  });
});
