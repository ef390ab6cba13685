/**
 * Every construct of cdk-mq-user, as installed from its tarball, under cdk-nag 3 on the aws-cdk-lib of this
 * folder: nothing unacknowledged, and every function on the newest Node.js runtime this aws-cdk-lib knows.
 */
import { mkdtempSync, readFileSync, rmSync } from 'fs';
import { tmpdir } from 'os';
import * as path from 'path';
import {
  App,
  NestedStack,
  Stack,
  Validations,
  aws_amazonmq as amazonmq,
  aws_ec2 as ec2,
  aws_kms as kms,
  aws_lambda as lambda,
  aws_secretsmanager as secretsmanager,
} from 'aws-cdk-lib';
import { AwsSolutionsChecks } from 'cdk-nag';
import { MqBroker, MqBrokerReboot, MqUser, MqUserProvider, MqUserRotationApply } from 'cdk-mq-user';

const ENV = { account: '111111111111', region: 'us-east-1' };
const BROKER_ARN = 'arn:aws:mq:us-east-1:111111111111:broker:shared:b-1234a5b6-78cd-901e-2fgh-3i45j6k178l9';

interface Report {
  pluginReports: Array<{
    pluginName: string;
    violations: Array<{ ruleName: string; violatingConstructs: Array<{ constructPath: string }> }>;
  }>;
}

function broker(scope: Stack): amazonmq.CfnBroker {
  return new amazonmq.CfnBroker(scope, 'Broker', {
    brokerName: 'orders',
    engineType: 'ACTIVEMQ',
    engineVersion: '5.18',
    deploymentMode: 'SINGLE_INSTANCE',
    hostInstanceType: 'mq.t3.micro',
    publiclyAccessible: false,
    autoMinorVersionUpgrade: true,
    authenticationStrategy: 'SIMPLE',
    logs: { general: true, audit: true },
    users: [],
  });
}

/** Every construct and option that adds resources: the provider in a VPC, rotation both ways, the reboot. */
function everyConstruct(app: App): void {
  const stack = new Stack(app, 'Everything', { env: ENV });
  const vpc = new ec2.Vpc(stack, 'Vpc', {
    natGateways: 0,
    subnetConfiguration: [{ name: 'isolated', subnetType: ec2.SubnetType.PRIVATE_ISOLATED }],
    flowLogs: { all: {} },
  });
  MqUserProvider.getOrCreate(stack, { vpc });
  const cfnBroker = broker(stack);
  new MqUser(stack, 'Rotated', { broker: cfnBroker, username: 'orders-service', groups: ['orders'] }).addRotation();
  new MqUser(stack, 'RotatedByReboot', { broker: cfnBroker, username: 'billing-service' }).addRotation({
    applyBy: MqUserRotationApply.REBOOT,
  });
  const key = new kms.Key(stack, 'Key', { enableKeyRotation: true });
  const supplied = new secretsmanager.Secret(stack, 'SuppliedSecret', {
    encryptionKey: key,
    generateSecretString: { secretStringTemplate: '{}', generateStringKey: 'password', excludeCharacters: ',:=' },
  });
  Validations.of(supplied).acknowledge({
    id: 'AwsSolutions::AwsSolutions-SMG4',
    reason: 'A test secret of the app, changed with passwordVersion.',
  });
  new MqUser(stack, 'Supplied', {
    broker: cfnBroker,
    username: 'supplied',
    passwordSecret: supplied,
    passwordField: 'password',
    passwordVersion: '1',
  });
  const imported = MqBroker.fromBrokerArn(stack, 'Imported', BROKER_ARN);
  new MqUser(stack, 'OnImported', {
    broker: imported,
    username: 'imported',
    passwordSecret: secretsmanager.Secret.fromSecretNameV2(stack, 'Elsewhere', 'imported/mq-password'),
  });
  new MqBrokerReboot(stack, 'ApplyUsers', { broker: cfnBroker });
  new MqBrokerReboot(stack, 'ApplyImported', { broker: imported });

  const root = new Stack(app, 'Root', { env: ENV });
  const nested = new NestedStack(root, 'Users');
  const nestedBroker = MqBroker.fromBrokerArn(nested, 'Broker', BROKER_ARN);
  new MqUser(nested, 'User', { broker: nestedBroker, username: 'nested' }).addRotation();
  new MqBrokerReboot(nested, 'ApplyUsers', { broker: nestedBroker });
}

describe('cdk-mq-user from its tarball on this aws-cdk-lib', () => {
  let report: Report;
  let app: App;
  let error: string | undefined;
  const outdir = mkdtempSync(path.join(tmpdir(), 'consumer-nag-'));

  beforeAll(() => {
    app = new App({ outdir });
    Validations.of(app).addPlugins(new AwsSolutionsChecks(app));
    everyConstruct(app);
    try {
      app.synth();
    } catch (e) {
      error = (e as Error).message;
    }
    report = JSON.parse(readFileSync(path.join(outdir, 'validation-report.json'), 'utf8'));
  });
  afterAll(() => rmSync(outdir, { recursive: true, force: true }));

  test('synthesizes every construct, and cdk-nag finds nothing unacknowledged', () => {
    const findings = report.pluginReports.flatMap((p) =>
      p.violations.map((v) => `${p.pluginName} ${v.ruleName} ${v.violatingConstructs.map((c) => c.constructPath)}`),
    );
    expect(findings).toEqual([]);
    expect(error).toBeUndefined();
    expect(report.pluginReports.map((p) => p.pluginName)).toContain('AwsSolutions');
  });

  test('runs every function on the newest Node.js runtime this aws-cdk-lib knows', () => {
    const versions = lambda.Runtime.ALL.map((r) => /^nodejs(\d+)\.x$/.exec(r.name)?.[1])
      .filter((v): v is string => v !== undefined)
      .map(Number);
    const newest = `nodejs${Math.max(...versions)}.x`;
    const runtimes = app.node
      .findAll()
      .filter((c): c is lambda.CfnFunction => c instanceof lambda.CfnFunction)
      .map((fn) => fn.runtime);
    expect(runtimes.length).toBeGreaterThanOrEqual(8);
    expect(new Set(runtimes)).toEqual(new Set([newest]));
  });
});
