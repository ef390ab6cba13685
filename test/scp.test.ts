/**
 * The sample service control policy of README "Security" (docs/scp.json): valid JSON that reserves, for deployers
 * and the construct's own framework roles, the permissions that would otherwise turn the functions into a deputy.
 * Checked against the names CloudFormation generates for the resources of a stack that uses every construct:
 * `<stack name>-<logical ID>-<suffix>` for functions and roles (at most 64 characters), `<logical ID>-<suffix>` for
 * the state machine.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { App, Stack } from 'aws-cdk-lib';
import { Template } from 'aws-cdk-lib/assertions';
import { MqBroker, MqBrokerReboot, MqUser, MqUserRotationApply } from '../lib';
import { ROTATION_TAGS } from '../lib/private/rules';

interface Statement {
  Sid: string;
  Effect: string;
  Action: string | string[];
  Resource: string | string[];
  Condition?: Record<string, Record<string, string | string[]>>;
}

const scp = JSON.parse(fs.readFileSync(path.join(__dirname, '..', 'docs', 'scp.json'), 'utf8')) as {
  Version: string;
  Statement: Statement[];
};
const ACCOUNT = '111111111111';
const SUFFIX = 'A1B2C3D4E5F6';

/** IAM's wildcards: `*` any run of characters, `?` one. */
function matches(pattern: string, value: string): boolean {
  const regex = pattern
    .replace(/[.+^${}()|[\]\\]/g, '\\$&')
    .replace(/\*/g, '.*')
    .replace(/\?/g, '.');
  return new RegExp(`^${regex}$`).test(value);
}
const list = (value: string | string[] | undefined) => (value === undefined ? [] : [value].flat());
const statement = (sid: string) => scp.Statement.find((s) => s.Sid === sid)!;
const exempt = (s: Statement, principalArn: string) =>
  list(s.Condition?.ArnNotLike?.['aws:PrincipalArn']).some((p) => matches(p, principalArn));
const deniedResource = (s: Statement, arn: string) => list(s.Resource).some((p) => matches(p, arn));

/** A stack with every construct of the library, and CloudFormation's names for its functions, roles, waiter. */
function names(stackName: string) {
  const stack = new Stack(new App(), stackName);
  const broker = MqBroker.fromBrokerArn(
    stack,
    'Broker',
    `arn:aws:mq:us-east-1:${ACCOUNT}:broker:shared:b-1234a5b6-78cd-901e-2fab-3c45d6e178f9`,
  );
  new MqUser(stack, 'User', { broker, username: 'orders' }).addRotation({ applyBy: MqUserRotationApply.REBOOT });
  new MqBrokerReboot(stack, 'Reboot', { broker });
  const resources = Object.entries<{ Type: string }>(Template.fromStack(stack).toJSON().Resources);
  const ofType = (type: string) => resources.filter(([, r]) => r.Type === type).map(([id]) => id);
  const generated = (id: string) => `${stackName}-${id}-${SUFFIX}`.slice(0, 64);
  return {
    functions: ofType('AWS::Lambda::Function').map(
      (id) => [id, `arn:aws:lambda:us-east-1:${ACCOUNT}:function:${generated(id)}`] as const,
    ),
    roles: ofType('AWS::IAM::Role').map((id) => [id, `arn:aws:iam::${ACCOUNT}:role/${generated(id)}`] as const),
    tables: ofType('AWS::DynamoDB::Table').map(
      (id) => `arn:aws:dynamodb:us-east-1:${ACCOUNT}:table/${`${stackName}-${id}-${SUFFIX}`.slice(0, 255)}`,
    ),
    stateMachines: ofType('AWS::StepFunctions::StateMachine').map(
      (id) => `arn:aws:states:us-east-1:${ACCOUNT}:stateMachine:${id}-${SUFFIX}`,
    ),
  };
}

const DEPLOYER = `arn:aws:iam::${ACCOUNT}:role/cdk-hnb659fds-cfn-exec-role-${ACCOUNT}-us-east-1`;
const SOMEONE = `arn:aws:iam::${ACCOUNT}:role/developer`;
/** The roles of the construct that invoke its functions or start its waiter: the Provider frameworks'. */
const FRAMEWORK_ROLES = /FrameworkRole|FrameworkOnEventRole|FrameworkWaiterRole|waiterstatemachineRole/;

test('is a valid policy document of Deny statements with unique Sids', () => {
  expect(scp.Version).toBe('2012-10-17');
  expect(scp.Statement.length).toBeGreaterThanOrEqual(5);
  for (const s of scp.Statement) {
    expect(s.Effect).toBe('Deny');
    expect(list(s.Action).length).toBeGreaterThan(0);
    expect(list(s.Resource).length).toBeGreaterThan(0);
  }
  expect(new Set(scp.Statement.map((s) => s.Sid)).size).toBe(scp.Statement.length);
  // An SCP holds at most 5,120 characters.
  expect(JSON.stringify(scp).length).toBeLessThanOrEqual(5_120);
});

/** The longest stack name whose generated role names still hold the framework roles' whole construct names. */
const LONGEST_STACK_NAME = 'Payments-Prod-Euw1';

test.each(['Orders', LONGEST_STACK_NAME])(
  'reserves invoke and reconfiguration of every function of stack %s for deployers and the framework roles',
  (stackName) => {
    const s = statement('CdkMqUserFunctionsOnlyByDeployersAndTheirFramework');
    const { functions, roles } = names(stackName);
    // Ours (user onEvent and isComplete, reboot onEvent and isComplete, rotation) and the two frameworks' (onEvent,
    // isComplete, onTimeout of the user provider; the same three of the reboot provider).
    expect(functions.length).toBe(11);
    for (const action of ['lambda:InvokeFunction', 'lambda:UpdateFunctionConfiguration', 'lambda:UpdateFunctionCode'])
      expect(list(s.Action)).toContain(action);
    for (const [, arn] of functions) expect(deniedResource(s, arn)).toBe(true);
    expect(exempt(s, DEPLOYER)).toBe(true);
    expect(exempt(s, SOMEONE)).toBe(false);
    for (const [id, arn] of roles) expect([id, exempt(s, arn)]).toEqual([id, FRAMEWORK_ROLES.test(id)]);
  },
);

test("reserves the waiters' executions (users' and reboot's) for the frameworks that start them", () => {
  const s = statement('CdkMqUserWaiterOnlyByItsFramework');
  const { stateMachines, roles } = names('Orders');
  expect(stateMachines).toHaveLength(2);
  expect(list(s.Action)).toContain('states:StartExecution');
  for (const stateMachine of stateMachines) expect(deniedResource(s, stateMachine)).toBe(true);
  const starters = roles.filter(([, arn]) => exempt(s, arn)).map(([id]) => id);
  expect(starters.sort()).toEqual([
    expect.stringMatching(/^CdkMqUserProviderFrameworkRole/),
    expect.stringMatching(/^CdkMqUserRebootProviderFrameworkOnEventRole/),
  ]);
  expect(exempt(s, SOMEONE)).toBe(false);
});

test("reserves writing the users' table of deliveries for deployers and the users' handler", () => {
  // A record there makes a second delivery of an event take the user it names as its own: only the handler writes.
  const s = statement('CdkMqUserDeliveriesOnlyByItsHandler');
  const { tables, roles } = names(LONGEST_STACK_NAME);
  expect(tables).toHaveLength(1);
  for (const action of ['dynamodb:PutItem', 'dynamodb:UpdateItem', 'dynamodb:BatchWriteItem'])
    expect(list(s.Action)).toContain(action);
  for (const table of tables) expect(deniedResource(s, table)).toBe(true);
  const writers = roles.filter(([, arn]) => exempt(s, arn)).map(([id]) => id);
  expect(writers).toEqual([expect.stringMatching(/^CdkMqUserProviderHandlerRole/)]);
  expect([exempt(s, DEPLOYER), exempt(s, SOMEONE)]).toEqual([true, false]);
});

test("reserves passing and changing the construct's roles for deployers", () => {
  const s = statement('CdkMqUserRolesOnlyByDeployers');
  for (const [, arn] of names('Orders').roles) expect(deniedResource(s, arn)).toBe(true);
  expect(list(s.Action)).toEqual(expect.arrayContaining(['iam:PassRole', 'iam:PutRolePolicy']));
  expect(exempt(s, DEPLOYER)).toBe(true);
  expect(exempt(s, SOMEONE)).toBe(false);
});

test('reserves every cdk-mq-user tag key the construct sets, and rotating rotated secrets, for deployers', () => {
  const tags = statement('CdkMqUserTagsOnlyByDeployers');
  expect(list(tags.Action)).toEqual(['secretsmanager:TagResource', 'secretsmanager:UntagResource']);
  const keyPatterns = list(tags.Condition?.['ForAnyValue:StringLike']?.['aws:TagKeys']);
  for (const key of Object.values(ROTATION_TAGS)) expect(keyPatterns.some((p) => matches(p, key))).toBe(true);
  expect(keyPatterns.some((p) => matches(p, 'team:owner'))).toBe(false);
  const rotate = statement('CdkMqUserRotationOnlyBySchedule');
  expect(list(rotate.Action)).toContain('secretsmanager:RotateSecret');
  expect(rotate.Condition?.Null).toEqual({ [`aws:ResourceTag/${ROTATION_TAGS.stackId}`]: 'false' });
  for (const s of [tags, rotate]) expect([exempt(s, DEPLOYER), exempt(s, SOMEONE)]).toEqual([true, false]);
});

test('stops matching the framework roles beyond 18 characters of stack name (README: name them yourself then)', () => {
  expect(LONGEST_STACK_NAME).toHaveLength(18);
  const s = statement('CdkMqUserFunctionsOnlyByDeployersAndTheirFramework');
  const { roles, functions } = names(`${LONGEST_STACK_NAME}X`);
  // The functions are still covered (their pattern needs only "CdkMqUser")...
  for (const [, arn] of functions) expect(deniedResource(s, arn)).toBe(true);
  // ... but CloudFormation cuts the longest framework role name before its end, so the exemption misses it.
  const missed = roles.filter(([id, arn]) => FRAMEWORK_ROLES.test(id) && !exempt(s, arn)).map(([id]) => id);
  expect(missed).toEqual([expect.stringMatching(/^CdkMqUserRebootProviderwaiterstatemachineRole/)]);
});
