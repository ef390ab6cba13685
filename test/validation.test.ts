import { spawnSync } from 'child_process';
import { existsSync, mkdtempSync, rmSync } from 'fs';
import { tmpdir } from 'os';
import * as path from 'path';
import {
  App,
  NestedStack,
  Stack,
  Validations,
  aws_amazonmq as amazonmq,
  aws_iam as iam,
  aws_kms as kms,
  aws_secretsmanager as secretsmanager,
} from 'aws-cdk-lib';
import { MqBroker, MqBrokerReboot, MqUser, MqUserProvider, MqUserRotationApply } from '../lib';
import { BrokerStack, ExistingBrokerStack } from '../bin/example-stacks';
import { findings, isolatedVpc, suppressed, validate } from './fixtures/validation';

const BROKER_ARN = 'arn:aws:mq:us-east-1:111111111111:broker:shared:b-1234a5b6-78cd-901e-2fab-3c45d6e178f9';

function exampleApp(app: App) {
  new BrokerStack(app, 'MqUserExample');
  new ExistingBrokerStack(app, 'MqUserExistingBroker', BROKER_ARN);
}

/** Users with the handlers in a VPC, the reboot opt-in and a rotation: their extra grants must be acknowledged too. */
function vpcApp(app: App) {
  const stack = new Stack(app, 'MqUserInVpc');
  MqUserProvider.getOrCreate(stack, { vpc: isolatedVpc(stack) });
  const broker = MqBroker.fromBrokerArn(stack, 'Broker', BROKER_ARN);
  new MqUser(stack, 'User', { broker, username: 'in-vpc' }).addRotation({ applyBy: MqUserRotationApply.REBOOT });
  new MqBrokerReboot(stack, 'ApplyUsers', { broker });
}

/** A nested stack of users whose secrets and keys live in another stack: the grants this needs, checked too. */
function nestedApp(app: App) {
  const keys = new Stack(app, 'Keys');
  const secret = new secretsmanager.Secret(keys, 'Secret', {
    generateSecretString: { excludeCharacters: ',:=' },
    encryptionKey: new kms.Key(keys, 'Key', { enableKeyRotation: true }),
  });
  Validations.of(secret).acknowledge({ id: 'AwsSolutions::AwsSolutions-SMG4', reason: 'A test secret: no rotation.' });
  const root = new Stack(app, 'Root');
  const nested = new NestedStack(root, 'Users');
  const broker = MqBroker.fromBrokerArn(nested, 'Broker', BROKER_ARN);
  new MqUser(nested, 'User', { broker, username: 'nested-user', passwordSecret: secret });
  new MqBrokerReboot(nested, 'ApplyUsers', { broker });
}

describe('cdk-nag AwsSolutions', () => {
  test('finds nothing unacknowledged in the example app', () => {
    const { report, error } = validate(exampleApp, true);
    expect(error).toBeUndefined();
    expect(findings(report)).toEqual([]);
  });

  test('finds nothing unacknowledged with the handlers in a VPC', () => {
    const { report, error } = validate(vpcApp, true);
    expect(error).toBeUndefined();
    expect(findings(report)).toEqual([]);
  });

  test('finds nothing unacknowledged in a nested stack whose secret and key live in another stack', () => {
    const { report, error } = validate(nestedApp, true);
    expect(error).toBeUndefined();
    expect(findings(report)).toEqual([]);
  });

  test("acknowledges Resource::* in a VPC only on the network-interface policies and the waiter's own role", () => {
    const { report } = validate(vpcApp, true);
    const wildcards = suppressed(report).filter((s) => s.rule.endsWith('[Resource::*]'));
    expect(wildcards.length).toBeGreaterThan(0);
    for (const { path } of wildcards) {
      expect(path).toMatch(
        /\/(HandlerRole|FrameworkRole|FrameworkOnEventRole|FrameworkWaiterRole)\/NetworkInterfacesPolicy\/Resource$|\/waiter-state-machine\//,
      );
    }
    expect(wildcards.map((w) => w.path)).toContain(
      'MqUserInVpc/CdkMqUserProvider/HandlerRole/NetworkInterfacesPolicy/Resource',
    );
  });

  test.each([
    ['in a VPC', true],
    ['outside a VPC', false],
  ])('still reports a Resource::* statement a user adds to the public handlerRole, %s', (_case, inVpc) => {
    const { report } = validate((app) => {
      const stack = new Stack(app, 'Custom');
      if (inVpc) {
        MqUserProvider.getOrCreate(stack, { vpc: isolatedVpc(stack) });
      }
      MqUserProvider.getOrCreate(stack).handlerRole.addToPrincipalPolicy(
        new iam.PolicyStatement({ actions: ['s3:ListAllMyBuckets'], resources: ['*'] }),
      );
      // A supplied secret: a generated one without rotation would add its own SMG4 finding.
      const passwordSecret = secretsmanager.Secret.fromSecretNameV2(stack, 'Password', 'custom/mq-password');
      new MqUser(stack, 'User', {
        broker: MqBroker.fromBrokerArn(stack, 'Broker', BROKER_ARN),
        username: 'custom',
        passwordSecret,
      });
    }, true);
    expect(findings(report)).toEqual([
      'AwsSolutions AwsSolutions-IAM5[Resource::*] Custom/CdkMqUserProvider/HandlerRole/DefaultPolicy/Resource',
    ]);
  });

  test('says in the acknowledgement of broker:* what the deputy risk is and how it is fenced', () => {
    const { report } = validate(exampleApp, true);
    const brokers = suppressed(report).filter((s) => s.rule.includes(':broker:*'));
    expect(brokers.length).toBeGreaterThan(0);
    for (const { reason } of brokers) {
      expect(reason).toMatch(/confused deputy/);
      expect(reason).toMatch(/each event must be confirmed by CloudFormation itself/);
      expect(reason).toMatch(/lambda:InvokeFunction/);
    }
  });

  test('acknowledges only on our own constructs, each with a reason', () => {
    const { report } = validate(exampleApp, true);
    const suppressed = report.pluginReports.flatMap((p) => p.suppressedViolations ?? []);
    expect(suppressed.length).toBeGreaterThan(5);
    for (const s of suppressed) {
      expect(s.reason.length).toBeGreaterThan(40);
      for (const c of s.violatingConstructs) {
        expect(c.constructPath).toMatch(
          /\/(CdkMqUserProvider|CdkMqUserRebootProvider|CdkMqUserRotation|[A-Za-z]+\/Secret-[a-z-]+|AdminSecret)\//,
        );
      }
    }
  });

  test('still reports what it should: a secret of someone else without rotation is flagged (SMG4)', () => {
    const { report } = validate((app) => new secretsmanager.Secret(new Stack(app, 'Plain'), 'Secret'), true);
    expect(findings(report).join('\n')).toMatch(/AwsSolutions-SMG4 Plain\/Secret/);
  });
});

describe("aws-cdk-lib's built-in template validation", () => {
  test('finds nothing in the example app', () => {
    const { report, error } = validate(exampleApp, false);
    expect(error).toBeUndefined();
    expect(findings(report)).toEqual([]);
  });

  test('still reports what it should: a hard-coded broker password is flagged (W2501)', () => {
    jest.spyOn(console, 'error').mockImplementation(() => undefined);
    const { report } = validate((app) => {
      new amazonmq.CfnBroker(new Stack(app, 'Plain'), 'Broker', {
        brokerName: 'plain',
        engineType: 'ACTIVEMQ',
        engineVersion: '5.18',
        deploymentMode: 'SINGLE_INSTANCE',
        hostInstanceType: 'mq.t3.micro',
        publiclyAccessible: false,
        users: [{ username: 'admin', password: 'hard-coded-password' }],
      });
    }, false);
    expect(findings(report).join('\n')).toMatch(/W2501/);
  });

  test('runs only where a test asks for it, and the processes the tests start still run it', () => {
    // test/support/incidental-validation.ts: off for a plain synth (no report is written), on in validate().
    const outdir = mkdtempSync(path.join(tmpdir(), 'cdk-mq-user-incidental-'));
    try {
      const app = new App({ outdir });
      exampleApp(app);
      app.synth();
      expect(existsSync(path.join(outdir, 'validation-report.json'))).toBe(false);
    } finally {
      rmSync(outdir, { recursive: true, force: true });
    }
    // validate() turns it on: the same app gets its report (reading a missing one would throw), with nothing in it.
    expect(validate(exampleApp, false).report.pluginReports).toEqual([]);
    // The switch is not in the environment the tests hand to `cdk synth` or `npm` (`{ ...process.env }`).
    const child = spawnSync(process.execPath, ['-e', 'process.stdout.write(String(process.env.CDK_VALIDATION))'], {
      env: { ...process.env },
      encoding: 'utf8',
    });
    expect(child.stdout).toBe('undefined');
  });
});
