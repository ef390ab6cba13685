#!/usr/bin/env node
/**
 * cdk-nag on the peer floor: every construct of the installed cdk-mq-user in one app, on this folder's
 * aws-cdk-lib (2.253.1), under cdk-nag 2 (an aspect; cdk-nag 3 needs aws-cdk-lib 2.257). The library writes its
 * acknowledgements for both (docs/DESIGN.md, "Version support"): nothing may be left unacknowledged, and every
 * function runs on the newest Node.js runtime this aws-cdk-lib knows (cdk-nag's AwsSolutions-L1).
 */
'use strict';
const {
  App,
  Aspects,
  NestedStack,
  Stack,
  aws_amazonmq: amazonmq,
  aws_ec2: ec2,
  aws_kms: kms,
  aws_lambda: lambda,
  aws_secretsmanager: secretsmanager,
} = require('aws-cdk-lib');
const { Annotations, Match } = require('aws-cdk-lib/assertions');
const { AwsSolutionsChecks, NagSuppressions } = require('cdk-nag');
const { MqBroker, MqBrokerReboot, MqUser, MqUserProvider, MqUserRotationApply } = require('cdk-mq-user');

const ENV = { account: '111111111111', region: 'us-east-1' };
const BROKER_ARN = 'arn:aws:mq:us-east-1:111111111111:broker:shared:b-1234a5b6-78cd-901e-2fgh-3i45j6k178l9';

const app = new App();
Aspects.of(app).add(new AwsSolutionsChecks());

const stack = new Stack(app, 'Everything', { env: ENV });
const vpc = new ec2.Vpc(stack, 'Vpc', {
  natGateways: 0,
  subnetConfiguration: [{ name: 'isolated', subnetType: ec2.SubnetType.PRIVATE_ISOLATED }],
  flowLogs: { all: {} },
});
MqUserProvider.getOrCreate(stack, { vpc });
const broker = new amazonmq.CfnBroker(stack, 'Broker', {
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
new MqUser(stack, 'Rotated', { broker, username: 'orders-service', groups: ['orders'] }).addRotation();
new MqUser(stack, 'RotatedByReboot', { broker, username: 'billing-service' }).addRotation({
  applyBy: MqUserRotationApply.REBOOT,
});
const supplied = new secretsmanager.Secret(stack, 'SuppliedSecret', {
  encryptionKey: new kms.Key(stack, 'Key', { enableKeyRotation: true }),
  generateSecretString: { secretStringTemplate: '{}', generateStringKey: 'password', excludeCharacters: ',:=' },
});
NagSuppressions.addResourceSuppressions(supplied, [
  { id: 'AwsSolutions-SMG4', reason: 'A test secret of the app, changed with passwordVersion.' },
]);
new MqUser(stack, 'Supplied', {
  broker,
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
new MqBrokerReboot(stack, 'ApplyUsers', { broker });
new MqBrokerReboot(stack, 'ApplyImported', { broker: imported });

const root = new Stack(app, 'Root', { env: ENV });
const nested = new NestedStack(root, 'Users');
const nestedBroker = MqBroker.fromBrokerArn(nested, 'Broker', BROKER_ARN);
new MqUser(nested, 'User', { broker: nestedBroker, username: 'nested' }).addRotation();
new MqBrokerReboot(nested, 'ApplyUsers', { broker: nestedBroker });

app.synth();
const problems = [];
// A nested stack is no artifact of its own: its annotations are in its root stack's.
for (const s of [stack, root]) {
  for (const e of Annotations.fromStack(s).findError('*', Match.anyValue())) problems.push(`${e.id}: ${e.entry.data}`);
}
const versions = lambda.Runtime.ALL.map((r) => /^nodejs(\d+)\.x$/.exec(r.name))
  .filter((m) => m !== null)
  .map((m) => Number(m[1]));
const newest = `nodejs${Math.max(...versions)}.x`;
const functions = app.node.findAll().filter((c) => c instanceof lambda.CfnFunction);
for (const fn of functions)
  if (fn.runtime !== newest) problems.push(`${fn.node.path}: runtime ${fn.runtime}, not ${newest}`);
if (functions.length < 8) problems.push(`expected every function of the library, found ${functions.length}`);

if (problems.length > 0) {
  for (const p of problems) console.error(`check-nag: ${p.split('\n')[0]}`);
  process.exit(1);
}
const nag = require(require.resolve('cdk-nag/package.json', { paths: [__dirname] })).version;
const lib = require(require.resolve('aws-cdk-lib/package.json', { paths: [__dirname] })).version;
console.log(`check-nag: cdk-nag ${nag} on aws-cdk-lib ${lib}: no error; ${functions.length} functions on ${newest}`);
