import { spawnSync } from 'child_process';
import { mkdtempSync, readFileSync, readdirSync, rmSync } from 'fs';
import { tmpdir } from 'os';
import * as path from 'path';
import { App } from 'aws-cdk-lib';
import { Match, Template } from 'aws-cdk-lib/assertions';
import { BrokerStack, ExistingBrokerStack } from '../bin/example-stacks';

const BROKER_ARN = 'arn:aws:mq:us-east-1:111111111111:broker:shared:b-1234a5b6-78cd-901e-2fab-3c45d6e178f9';
const ROOT = path.join(__dirname, '..');
const CDK_JSON = JSON.parse(readFileSync(path.join(ROOT, 'cdk.json'), 'utf8'));

describe('the example app', () => {
  test('declares users with groups, console access, a supplied and a generated secret, and no plaintext password', () => {
    const stack = new BrokerStack(new App(), 'MqUserExample');
    const template = Template.fromStack(stack);
    // Three MqUsers, and the alternate of the rotated one.
    template.resourceCountIs('Custom::MqUser', 4);
    template.hasResourceProperties('Custom::MqUser', { Username: 'operator', ConsoleAccess: true });
    template.hasResourceProperties('Custom::MqUser', { Username: 'billing-service', PasswordField: 'password' });
    template.hasResourceProperties('Custom::MqUser', {
      Username: 'orders-service',
      GeneratedPasswordSettings: Match.stringLikeRegexp('^[0-9a-f]{16}$'),
    });
    const broker = Object.values(template.findResources('AWS::AmazonMQ::Broker'))[0] as {
      Properties: { Users: Array<{ Password: unknown }> };
    };
    expect(JSON.stringify(broker.Properties.Users[0].Password)).toContain('{{resolve:secretsmanager:');
  });

  test('rotates the password of orders-service every 30 days, applied by the maintenance window', () => {
    const template = Template.fromStack(new BrokerStack(new App(), 'MqUserExample'));
    template.hasResourceProperties('Custom::MqUser', { Username: 'orders-service', RotationEnabled: true });
    template.hasResourceProperties('Custom::MqUser', { Username: 'orders-service_clone', RotationEnabled: true });
    for (const username of ['operator', 'billing-service'])
      template.hasResourceProperties('Custom::MqUser', { Username: username, RotationEnabled: Match.absent() });
    template.resourceCountIs('AWS::SecretsManager::RotationSchedule', 1);
    template.hasResourceProperties('AWS::SecretsManager::RotationSchedule', {
      SecretId: { Ref: Match.stringLikeRegexp('^OrdersServiceSecretordersservice') },
      RotationRules: { ScheduleExpression: 'rate(30 days)' },
    });
    template.hasResourceProperties('AWS::SecretsManager::Secret', {
      Tags: Match.arrayWith([{ Key: 'cdk-mq-user:rotation', Value: 'MAINTENANCE_WINDOW' }]),
    });
    // The broker's reboot opt-in covers the alternate too, and the first rotation waits for that reboot.
    template.hasResourceProperties('Custom::MqBrokerReboot', {
      Usernames: ['billing-service', 'operator', 'orders-service', 'orders-service_clone'],
    });
  });

  test('declares a user on an existing broker from its ARN', () => {
    const stack = new ExistingBrokerStack(new App(), 'MqUserExistingBroker', BROKER_ARN);
    Template.fromStack(stack).hasResourceProperties('Custom::MqUser', {
      BrokerId: 'b-1234a5b6-78cd-901e-2fab-3c45d6e178f9',
      Username: 'reporting-service',
    });
  });

  test('synthesizes with `npx cdk synth`, offline, without an AWS account and without notices', () => {
    const out = mkdtempSync(path.join(tmpdir(), 'cdk-mq-user-synth-'));
    try {
      const synth = spawnSync('npx', ['cdk', 'synth', '--quiet', '--output', out, '-c', `brokerArn=${BROKER_ARN}`], {
        cwd: ROOT,
        env: {
          ...process.env,
          AWS_ACCESS_KEY_ID: '',
          AWS_SECRET_ACCESS_KEY: '',
          AWS_PROFILE: '',
          AWS_EC2_METADATA_DISABLED: 'true',
        },
        encoding: 'utf8',
      });
      expect(synth.status).toBe(0);
      // With the flags `cdk init` writes, the CLI has nothing to say (it used to print "85 feature flags are
      // not configured").
      expect(synth.stderr).not.toMatch(/feature flag/i);
      const templates = readdirSync(out)
        .filter((f) => f.endsWith('.template.json'))
        .sort();
      expect(templates).toEqual(['MqUserExample.template.json', 'MqUserExistingBroker.template.json']);
      const example = JSON.parse(readFileSync(path.join(out, 'MqUserExample.template.json'), 'utf8'));
      expect(Object.values(example.Resources).filter((r: any) => r.Type === 'Custom::MqUser')).toHaveLength(4);
      // The CLI's template is the example stack built with cdk.json's context: the flags are what changed it.
      const withFlags = new App({ context: CDK_JSON.context, analyticsReporting: false });
      const expected = Template.fromStack(new BrokerStack(withFlags, 'MqUserExample')).toJSON();
      // What only the CLI adds: construct paths, asset locations, the version-reporting resource.
      delete example.Resources.CDKMetadata;
      delete example.Conditions;
      for (const resource of Object.values<any>(example.Resources)) {
        // aws:cdk:path and aws:asset:*; other metadata (the library's cdk-nag acknowledgements) is the stack's.
        for (const key of Object.keys(resource.Metadata ?? {}))
          if (key.startsWith('aws:')) delete resource.Metadata[key];
        if (resource.Metadata && Object.keys(resource.Metadata).length === 0) delete resource.Metadata;
      }
      expect(example).toEqual(expected);
    } finally {
      rmSync(out, { recursive: true, force: true });
    }
  }, 90_000);

  test("ships every feature flag `cdk init` writes for the installed aws-cdk-lib, at `cdk init`'s value", () => {
    const recommended = JSON.parse(
      readFileSync(path.join(ROOT, 'node_modules', 'aws-cdk-lib', 'recommended-feature-flags.json'), 'utf8'),
    );
    expect(Object.keys(recommended).length).toBeGreaterThan(80);
    for (const [flag, value] of Object.entries(recommended))
      expect([flag, CDK_JSON.context[flag]]).toEqual([flag, value]);
  });

  test('the flags merge IAM statements (minimizePolicies) and leave the MqUser resources as they were', () => {
    const plain = Template.fromStack(new BrokerStack(new App(), 'MqUserExample')).toJSON();
    const flagged = Template.fromStack(
      new BrokerStack(new App({ context: CDK_JSON.context }), 'MqUserExample'),
    ).toJSON();
    const ofType = (template: any, type: string) =>
      Object.fromEntries(Object.entries(template.Resources).filter(([, r]: [string, any]) => r.Type === type));
    expect(ofType(flagged, 'Custom::MqUser')).toEqual(ofType(plain, 'Custom::MqUser'));
    expect(ofType(flagged, 'Custom::MqBrokerReboot')).toEqual(ofType(plain, 'Custom::MqBrokerReboot'));
    expect(Object.keys(flagged.Resources).sort()).toEqual(Object.keys(plain.Resources).sort());
    const statementCount = (template: any) =>
      Object.values(ofType(template, 'AWS::IAM::Policy')).flatMap((p: any) => p.Properties.PolicyDocument.Statement)
        .length;
    expect(statementCount(flagged)).toBeLessThan(statementCount(plain));
  });
});
