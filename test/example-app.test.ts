import { execFileSync } from 'child_process';
import { mkdtempSync, readFileSync, readdirSync, rmSync } from 'fs';
import { tmpdir } from 'os';
import * as path from 'path';
import { App } from 'aws-cdk-lib';
import { Match, Template } from 'aws-cdk-lib/assertions';
import { BrokerStack, ExistingBrokerStack } from '../bin/example-stacks';

const BROKER_ARN = 'arn:aws:mq:us-east-1:111111111111:broker:shared:b-1234a5b6-78cd-901e-2fgh-3i45j6k178l9';

describe('the example app', () => {
  test('declares users with groups, console access, a supplied and a generated secret, and no plaintext password', () => {
    const stack = new BrokerStack(new App(), 'MqUserExample');
    const template = Template.fromStack(stack);
    template.resourceCountIs('Custom::MqUser', 3);
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

  test('declares a user on an existing broker from its ARN', () => {
    const stack = new ExistingBrokerStack(new App(), 'MqUserExistingBroker', BROKER_ARN);
    Template.fromStack(stack).hasResourceProperties('Custom::MqUser', {
      BrokerId: 'b-1234a5b6-78cd-901e-2fgh-3i45j6k178l9',
      Username: 'reporting-service',
    });
  });

  test('synthesizes with `npx cdk synth`, offline and without an AWS account', () => {
    const out = mkdtempSync(path.join(tmpdir(), 'cdk-mq-user-synth-'));
    try {
      execFileSync('npx', ['cdk', 'synth', '--quiet', '--output', out, '-c', `brokerArn=${BROKER_ARN}`], {
        cwd: path.join(__dirname, '..'),
        env: {
          ...process.env,
          AWS_ACCESS_KEY_ID: '',
          AWS_SECRET_ACCESS_KEY: '',
          AWS_PROFILE: '',
          AWS_EC2_METADATA_DISABLED: 'true',
        },
        stdio: 'pipe',
      });
      const templates = readdirSync(out)
        .filter((f) => f.endsWith('.template.json'))
        .sort();
      expect(templates).toEqual(['MqUserExample.template.json', 'MqUserExistingBroker.template.json']);
      const example = JSON.parse(readFileSync(path.join(out, 'MqUserExample.template.json'), 'utf8'));
      expect(Object.values(example.Resources).filter((r: any) => r.Type === 'Custom::MqUser')).toHaveLength(3);
    } finally {
      rmSync(out, { recursive: true, force: true });
    }
  }, 60_000);
});
