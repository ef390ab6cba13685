import {
  App,
  CfnParameter,
  Duration,
  NestedStack,
  Stack,
  aws_amazonmq as amazonmq,
  aws_secretsmanager as secretsmanager,
} from 'aws-cdk-lib';
import { Annotations, Match, Template } from 'aws-cdk-lib/assertions';
import { MqBroker, MqBrokerReboot, MqUser, MqUserProps } from '../lib';

const BROKER_ARN = 'arn:aws:mq:us-east-1:111111111111:broker:shared:b-1234a5b6-78cd-901e-2fab-3c45d6e178f9';
const OTHER_ARN = 'arn:aws:mq:us-east-1:111111111111:broker:other:b-9999a5b6-78cd-901e-2fab-3c45d6e17800';

function newStack(app = new App(), id = 'Stack') {
  return new Stack(app, id, { env: { account: '111111111111', region: 'us-east-1' } });
}

function rebootResources(template: Template) {
  return Object.entries(template.findResources('Custom::MqBrokerReboot')) as Array<
    [string, { Properties: Record<string, any>; DependsOn?: string[] }]
  >;
}

function logicalIdOf(stack: Stack, user: MqUser): string {
  return stack.getLogicalId(user.node.findChild('Resource').node.defaultChild as never);
}

describe('MqBrokerReboot', () => {
  test('adds one reboot per opted-in broker, depending on every covered user declared before or after it', () => {
    const stack = newStack();
    const broker = MqBroker.fromBrokerArn(stack, 'Broker', BROKER_ARN);
    const other = MqBroker.fromBrokerArn(stack, 'Other', OTHER_ARN);
    const before = new MqUser(stack, 'Before', { broker, username: 'before' });
    new MqBrokerReboot(stack, 'ApplyUsers', { broker });
    const after = new MqUser(stack, 'After', { broker, username: 'after' });
    const elsewhere = new MqUser(stack, 'Elsewhere', { broker: other, username: 'elsewhere' });

    const template = Template.fromStack(stack);
    const reboots = rebootResources(template);
    expect(reboots).toHaveLength(1);
    const [, reboot] = reboots[0];
    expect(reboot.Properties).toMatchObject({
      BrokerId: 'b-1234a5b6-78cd-901e-2fab-3c45d6e178f9',
      Usernames: ['after', 'before'],
      UsersDigest: expect.stringMatching(/^[0-9a-f]{32}$/),
      TimeoutSeconds: 900,
    });
    expect(reboot.DependsOn).toEqual(expect.arrayContaining([logicalIdOf(stack, before), logicalIdOf(stack, after)]));
    expect(reboot.DependsOn).not.toContain(logicalIdOf(stack, elsewhere));
  });

  test('runs behind a provider of its own that exists only in stacks that opt in', () => {
    const withReboot = newStack();
    const broker = MqBroker.fromBrokerArn(withReboot, 'Broker', BROKER_ARN);
    new MqUser(withReboot, 'User', { broker, username: 'orders-service' });
    new MqBrokerReboot(withReboot, 'ApplyUsers', { broker });
    const opted = Template.fromStack(withReboot);
    opted.resourceCountIs('AWS::StepFunctions::StateMachine', 2); // the users' waiter and the reboot's
    opted.hasResourceProperties('AWS::Lambda::Function', { Handler: 'index.isComplete', Runtime: 'nodejs24.x' });
    // Rebooting takes a broker offline: only the opted-in brokers, and the reboot waits for the grant.
    opted.hasResourceProperties('AWS::IAM::Policy', {
      PolicyDocument: {
        Statement: Match.arrayWith([
          Match.objectLike({ Action: ['mq:RebootBroker', 'mq:DescribeBroker', 'mq:ListUsers'], Resource: BROKER_ARN }),
        ]),
      },
    });
    const [, reboot] = rebootResources(opted)[0];
    expect(reboot.DependsOn).toEqual(
      expect.arrayContaining([expect.stringMatching(/^CdkMqUserRebootProviderHandlerRoleDefaultPolicy/)]),
    );

    const without = newStack();
    new MqUser(without, 'User', {
      broker: MqBroker.fromBrokerArn(without, 'Broker', BROKER_ARN),
      username: 'orders-service',
    });
    const plain = Template.fromStack(without);
    plain.resourceCountIs('AWS::StepFunctions::StateMachine', 1); // the users' waiter only
    plain.resourceCountIs('Custom::MqBrokerReboot', 0);
    plain.resourceCountIs('AWS::Lambda::Function', 5);
  });

  test('without the opt-in, tells once per broker how to opt in, with a stable id', () => {
    const stack = newStack();
    const broker = MqBroker.fromBrokerArn(stack, 'Broker', BROKER_ARN);
    new MqUser(stack, 'A', { broker, username: 'user-a' });
    new MqUser(stack, 'B', { broker, username: 'user-b' });
    new MqUser(stack, 'C', { broker: MqBroker.fromBrokerArn(stack, 'Other', OTHER_ARN), username: 'user-c' });
    const infos = Annotations.fromStack(stack).findInfo(
      '*',
      Match.stringLikeRegexp('cdk-mq-user:rebootNotConfigured|MqBrokerReboot'),
    );
    expect(infos).toHaveLength(2);
    expect(infos[0].entry.data).toMatch(
      /next reboot or weekly maintenance window.*new MqBrokerReboot\(stack, id, \{ broker \}\)/,
    );
  });

  test('adds no such note for an opted-in broker', () => {
    const stack = newStack();
    const broker = MqBroker.fromBrokerArn(stack, 'Broker', BROKER_ARN);
    new MqUser(stack, 'A', { broker, username: 'user-a' });
    new MqBrokerReboot(stack, 'ApplyUsers', { broker });
    expect(Annotations.fromStack(stack).findInfo('*', Match.stringLikeRegexp('MqBrokerReboot'))).toEqual([]);
  });

  describe('the digest of the covered users', () => {
    function digest(
      overrides: Partial<MqUserProps> = {},
      extra?: (stack: Stack, broker: amazonmq.IBrokerRef) => void,
    ): string {
      const stack = newStack();
      const broker = MqBroker.fromBrokerArn(stack, 'Broker', BROKER_ARN);
      new MqUser(stack, 'User', { broker, username: 'orders-service', groups: ['a-group', 'b-group'], ...overrides });
      extra?.(stack, broker);
      new MqBrokerReboot(stack, 'ApplyUsers', { broker });
      return rebootResources(Template.fromStack(stack))[0][1].Properties.UsersDigest;
    }
    const base = digest();

    test.each<[string, Partial<MqUserProps>]>([
      ['username', { username: 'orders-v2' }],
      ['groups', { groups: ['a-group'] }],
      ['consoleAccess', { consoleAccess: true }],
      ['replicationUser', { replicationUser: true }],
      ['passwordVersion', { passwordVersion: '2' }],
    ])('changes with %s', (_field, change) => {
      expect(digest(change)).not.toBe(base);
    });

    test('changes with the secret and its field', () => {
      const withSecret = (name: string, field?: string) => {
        const stack = newStack();
        const broker = MqBroker.fromBrokerArn(stack, 'Broker', BROKER_ARN);
        const passwordSecret = secretsmanager.Secret.fromSecretNameV2(stack, 'S', name);
        new MqUser(stack, 'User', { broker, username: 'orders-service', passwordSecret, passwordField: field });
        new MqBrokerReboot(stack, 'ApplyUsers', { broker });
        return rebootResources(Template.fromStack(stack))[0][1].Properties.UsersDigest;
      };
      expect(withSecret('one')).not.toBe(withSecret('two'));
      expect(withSecret('one')).not.toBe(withSecret('one', 'pw'));
    });

    test('changes when a user is added or removed', () => {
      expect(digest({}, (stack, broker) => new MqUser(stack, 'Second', { broker, username: 'second' }))).not.toBe(base);
    });

    test('does not change with the order of the groups', () => {
      expect(digest({ groups: ['b-group', 'a-group', 'a-group'] })).toBe(base);
    });

    test('does not change with adoptExisting, which never reaches the broker', () => {
      expect(digest({ adoptExisting: true })).toBe(base);
    });
  });

  test("lists each covered user's deploy-time state digest, in the order of the usernames", () => {
    const stack = newStack();
    const broker = MqBroker.fromBrokerArn(stack, 'Broker', BROKER_ARN);
    const zed = new MqUser(stack, 'A', { broker, username: 'zed' });
    const tokenB = new MqUser(stack, 'TokenB', { broker, username: new CfnParameter(stack, 'NameB').valueAsString });
    const tokenA = new MqUser(stack, 'TokenA', { broker, username: new CfnParameter(stack, 'NameA').valueAsString });
    const amy = new MqUser(stack, 'Z', { broker, username: 'amy' });
    new MqBrokerReboot(stack, 'ApplyUsers', { broker });
    const [, reboot] = rebootResources(Template.fromStack(stack))[0];
    // Literal usernames sorted, then token usernames by construct path.
    expect(reboot.Properties.Usernames).toEqual(['amy', 'zed', { Ref: 'NameA' }, { Ref: 'NameB' }]);
    expect(reboot.Properties.UserStates).toEqual(
      [amy, zed, tokenA, tokenB].map((user) => ({ 'Fn::GetAtt': [logicalIdOf(stack, user), 'StateDigest'] })),
    );
  });

  test('warns, with a stable id, when the broker has no MqUser in the stack', () => {
    const stack = newStack();
    const broker = MqBroker.fromBrokerArn(stack, 'Broker', BROKER_ARN);
    new MqUser(stack, 'Elsewhere', { broker: MqBroker.fromBrokerArn(stack, 'Other', OTHER_ARN), username: 'other' });
    new MqBrokerReboot(stack, 'ApplyUsers', { broker });
    Annotations.fromStack(stack).hasWarning(
      '/Stack/ApplyUsers',
      Match.stringLikeRegexp(
        'covers no user: stack Stack declares no MqUser of broker b-1234a5b6-78cd-901e-2fab-3c45d6e178f9.*' +
          '\\[ack: cdk-mq-user:rebootWithoutUsers\\]',
      ),
    );

    const covered = newStack();
    const coveredBroker = MqBroker.fromBrokerArn(covered, 'Broker', BROKER_ARN);
    new MqUser(covered, 'User', { broker: coveredBroker, username: 'orders-service' });
    new MqBrokerReboot(covered, 'ApplyUsers', { broker: coveredBroker });
    expect(Annotations.fromStack(covered).findWarning('*', Match.stringLikeRegexp('rebootWithoutUsers'))).toEqual([]);
  });

  test("tells its functions their stack's ID and lets them read the stack's status, and in a nested stack the root's", () => {
    const root = newStack(new App(), 'Root');
    const nested = new NestedStack(root, 'Users');
    const broker = MqBroker.fromBrokerArn(nested, 'Broker', BROKER_ARN);
    new MqUser(nested, 'User', { broker, username: 'orders-service' });
    new MqBrokerReboot(nested, 'ApplyUsers', { broker });
    const template = Template.fromStack(nested);
    for (const handler of ['index.onEvent', 'index.isComplete']) {
      template.hasResourceProperties('AWS::Lambda::Function', {
        Handler: handler,
        Environment: { Variables: { CDK_MQ_USER_STACK_ID: { Ref: 'AWS::StackId' } } },
      });
    }
    const rebootPolicies = Object.entries(template.findResources('AWS::IAM::Policy'))
      .filter(([id]) => id.startsWith('CdkMqUserRebootProviderHandlerRole'))
      .flatMap(
        ([, p]) => (p as { Properties: { PolicyDocument: { Statement: any[] } } }).Properties.PolicyDocument.Statement,
      )
      .filter((statement) => JSON.stringify(statement.Action).includes('cloudformation:'));
    expect(rebootPolicies).toEqual([
      {
        Action: ['cloudformation:DescribeStacks', 'cloudformation:DescribeStackResource'],
        Effect: 'Allow',
        Resource: { Ref: 'AWS::StackId' },
      },
      {
        Action: 'cloudformation:DescribeStacks',
        Effect: 'Allow',
        Resource: { 'Fn::Join': ['', expect.arrayContaining([':stack/Root/*'])] },
      },
    ]);
  });

  test('fails when a broker gets a second reboot in one stack', () => {
    const stack = newStack();
    const broker = MqBroker.fromBrokerArn(stack, 'Broker', BROKER_ARN);
    new MqBrokerReboot(stack, 'First', { broker });
    expect(() => new MqBrokerReboot(stack, 'Second', { broker })).toThrow(
      'MqBrokerReboot Stack/Second: broker b-1234a5b6-78cd-901e-2fab-3c45d6e178f9 already has an MqBrokerReboot in ' +
        "stack Stack (Stack/First): declare one per broker per stack, it covers all the stack's MqUsers of that broker",
    );
  });

  test.each([Duration.seconds(30), Duration.minutes(111)])('fails for a timeout of %s', (timeout) => {
    const stack = newStack();
    expect(
      () => new MqBrokerReboot(stack, 'R', { broker: MqBroker.fromBrokerArn(stack, 'Broker', BROKER_ARN), timeout }),
    ).toThrow(/timeout .* must be 1 to 110 minutes/);
  });

  test('carries its timeout and revision', () => {
    const stack = newStack();
    new MqBrokerReboot(stack, 'R', {
      broker: MqBroker.fromBrokerArn(stack, 'Broker', BROKER_ARN),
      timeout: Duration.minutes(30),
      revision: '2',
    });
    Template.fromStack(stack).hasResourceProperties('Custom::MqBrokerReboot', {
      TimeoutSeconds: 1800,
      Revision: '2',
      Usernames: [],
    });
  });
});
