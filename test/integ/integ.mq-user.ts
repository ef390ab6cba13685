/**
 * Integration test of cdk-mq-user: an ActiveMQ broker, two MqUsers on it, and assertions that Amazon MQ's
 * DescribeUser reports each user's groups and console access.
 *
 * - Offline (CI): `npm test` in this folder; integ-runner synthesizes this app and compares it with the
 *   committed snapshot `integ.mq-user.ts.snapshot/`. Nothing calls AWS.
 * - For real: `npm run deploy` with AWS credentials (see README.md: it creates a broker, which costs money).
 *
 * Amazon MQ applies a new user only at the broker's next reboot or maintenance window, and this test does not
 * reboot the broker: right after the deploy, DescribeUser answers with the pending form
 * `Pending: { PendingChange: 'CREATE', Groups, ConsoleAccess }` (the top-level Groups/ConsoleAccess are absent
 * for a pending CREATE). The assertions check that form partially (objectLike), with one DescribeUser call per
 * expected group (arrayWith of one element), so extra fields and the order of groups do not matter.
 */
import {
  App,
  Aspects,
  IAspect,
  RemovalPolicy,
  SecretValue,
  Stack,
  aws_amazonmq as amazonmq,
  aws_logs as logs,
  aws_secretsmanager as secretsmanager,
  cx_api as cxapi,
} from 'aws-cdk-lib';
import { IConstruct } from 'constructs';
import { ExpectedResult, IntegTest, Match } from '@aws-cdk/integ-tests-alpha';
import { MqUser } from 'cdk-mq-user';

// No construct stack traces in the snapshot's metadata: they hold absolute paths of the machine that synthesized.
const app = new App({ stackTraces: false, context: { [cxapi.DISABLE_CREATION_STACK_TRACES]: true } });
const stack = new Stack(app, 'MqUserInteg');

// MqUserProvider's log groups are retained by default (one year); a test run should leave nothing behind.
class DestroyLogGroups implements IAspect {
  public visit(node: IConstruct): void {
    if (node instanceof logs.CfnLogGroup) node.applyRemovalPolicy(RemovalPolicy.DESTROY);
  }
}
Aspects.of(stack).add(new DestroyLogGroups());

// The broker's admin user is created with the broker. Its password comes from a generated secret through a
// dynamic reference that CloudFormation resolves at deploy time: the template never holds the password.
const adminSecret = new secretsmanager.Secret(stack, 'AdminSecret', {
  description: 'cdk-mq-user integ test: password of the broker admin user',
  generateSecretString: { passwordLength: 32, excludePunctuation: true, includeSpace: false },
});
const broker = new amazonmq.CfnBroker(stack, 'Broker', {
  brokerName: 'cdk-mq-user-integ',
  engineType: 'ACTIVEMQ',
  engineVersion: '5.18',
  deploymentMode: 'SINGLE_INSTANCE',
  hostInstanceType: 'mq.t3.micro',
  publiclyAccessible: false,
  autoMinorVersionUpgrade: true,
  authenticationStrategy: 'SIMPLE',
  users: [
    {
      username: 'admin',
      password: SecretValue.secretsManager(adminSecret.secretArn).unsafeUnwrap(),
      consoleAccess: true,
    },
  ],
});

// A user with groups and console access, and a generated password (in `operator.secret`).
const operator = new MqUser(stack, 'Operator', {
  broker,
  username: 'integ-operator',
  groups: ['operators', 'orders-consumers'],
  consoleAccess: true,
});

// A user whose password lives in a secret supplied by the app, as JSON {"username", "password"}.
// excludePunctuation keeps it clear of the characters Amazon MQ refuses in passwords (, : =).
const billingSecret = new secretsmanager.Secret(stack, 'BillingSecret', {
  description: 'cdk-mq-user integ test: password of integ-billing, supplied to MqUser',
  generateSecretString: {
    secretStringTemplate: JSON.stringify({ username: 'integ-billing' }),
    generateStringKey: 'password',
    passwordLength: 24,
    excludePunctuation: true,
    includeSpace: false,
  },
});
const billing = new MqUser(stack, 'Billing', {
  broker,
  username: 'integ-billing',
  groups: ['billing'],
  passwordSecret: billingSecret,
  passwordField: 'password',
  passwordVersion: '1',
});

const integ = new IntegTest(app, 'MqUserIntegTest', {
  testCases: [stack],
  // Deploying the committed snapshot first would create a second broker life cycle (20+ minutes): skip it.
  stackUpdateWorkflow: false,
  diffAssets: false,
});

/**
 * Asserts that DescribeUser reports `user` as a pending CREATE with each of `groups` and, when given, the console
 * access. `arrayWith` matches an ordered subsequence and Amazon MQ's order of groups is not documented, so each
 * group gets its own DescribeUser call (integ-tests-alpha numbers the repeated calls): the check does not
 * depend on the order. `user.username` and `user.brokerId` are attributes of the custom resource, so each call
 * runs only after its user was created.
 */
function expectPendingCreate(user: MqUser, username: string, groups: string[], consoleAccess?: boolean): void {
  for (const group of groups) {
    integ.assertions.awsApiCall('MQ', 'describeUser', { BrokerId: user.brokerId, Username: user.username }).expect(
      ExpectedResult.objectLike({
        Username: username,
        Pending: Match.objectLike({
          PendingChange: 'CREATE',
          ...(consoleAccess === undefined ? {} : { ConsoleAccess: consoleAccess }),
          Groups: Match.arrayWith([group]),
        }),
      }),
    );
  }
}

expectPendingCreate(operator, 'integ-operator', ['operators', 'orders-consumers'], true);
// Console access not asserted: whether Amazon MQ reports `ConsoleAccess: false` or leaves it out is unverified.
expectPendingCreate(billing, 'integ-billing', ['billing']);

app.synth();
