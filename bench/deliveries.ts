/**
 * `npm run bench:deliveries`: what the users' table of deliveries costs per event, and what a
 * second delivery in another Lambda environment costs. One user, no throttling: the bundled handler through the
 * CloudFormation emulator, the fake Amazon MQ and the DynamoDB double of the lifecycle tests. Prints a markdown table
 * of DynamoDB calls (by operation) and Amazon MQ calls per event. Nothing calls AWS.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { App, Stack, aws_secretsmanager as secretsmanager } from 'aws-cdk-lib';
import { MqBroker, MqUser } from '../lib';
import { CloudFormation, type DeployOptions } from '../test/support/cloudformation';
import { FakeMq } from '../test/support/mq-endpoint';

process.env.CDK_VALIDATION = 'false';
const BROKER = 'b-1234a5b6-78cd-901e-2fab-3c45d6e178f9';
const MQ_OPERATIONS = ['DescribeBroker', 'DescribeUser', 'CreateUser', 'UpdateUser', 'DeleteUser', 'ListUsers'];

async function main(): Promise<void> {
  const out = path.join(__dirname, '..', '.bench-out');
  fs.mkdirSync(out, { recursive: true });
  const mq = await FakeMq.start();
  const cfn = await CloudFormation.start(mq, { queryIntervalMs: 10 });
  const rows: string[] = [];
  try {
    mq.addBroker({ brokerId: BROKER, brokerName: 'bench', engineType: 'ACTIVEMQ' });
    const secretArn = mq.putSecret(
      'arn:aws:secretsmanager:us-east-1:123456789012:secret:bench-AbCdEf',
      JSON.stringify({ password: 'Bench-Passw0rd-2026' }),
    );
    const app = (stackName: string, username: string, groups: string[], adoptExisting = false) => {
      const outdir = fs.mkdtempSync(path.join(out, 'assembly-'));
      const a = new App({ outdir });
      const stack = new Stack(a, stackName);
      const broker = MqBroker.fromBrokerArn(stack, 'Broker', mq.brokerArn(BROKER));
      const secret = secretsmanager.Secret.fromSecretCompleteArn(stack, 'Secret', secretArn);
      new MqUser(stack, 'User', { broker, username, groups, passwordSecret: secret, adoptExisting });
      a.synth();
      return outdir;
    };
    const measure = async (name: string, run: () => Promise<{ status: string }>) => {
      const mqFrom = mq.calls.length;
      const tableFrom = cfn.dynamodb.calls.length;
      const started = performance.now();
      const result = await run();
      const ms = performance.now() - started;
      const tableCalls = cfn.dynamodb.calls.slice(tableFrom);
      const count = (op: string) => tableCalls.filter((c) => c.operation === op).length;
      const mqCalls = mq.calls.slice(mqFrom).filter((c) => MQ_OPERATIONS.includes(c.operation));
      const byOp = MQ_OPERATIONS.map((op) => [op, mqCalls.filter((c) => c.operation === op).length] as const)
        .filter(([, k]) => k > 0)
        .map(([op, k]) => `${op} ${k}`)
        .join(', ');
      rows.push(
        `| ${name} | ${count('GetItem')} | ${count('UpdateItem')} | ${mqCalls.length} (${byOp || 'none'}) | ` +
          `${ms.toFixed(0)} ms | ${result.status} |`,
      );
      mq.applyPendingChanges(BROKER);
    };
    const lostElsewhere = (type: string): DeployOptions => ({
      redeliver: (event) => (event.RequestType === type ? 'answerLostElsewhere' : false),
    });

    const single = cfn.stack('Single');
    await measure('create', () => single.deploy(app('Single', 'user-1', ['a-group'])));
    await measure('update (groups)', () => single.deploy(app('Single', 'user-1', ['b-group'])));
    await measure('update (no change reaches the broker)', () =>
      single.deploy(app('Single', 'user-1', ['b-group'], true)),
    );
    await measure('update (rename)', () => single.deploy(app('Single', 'user-2', ['b-group'], true)));
    await measure('delete', () => single.destroy());
    const twice = cfn.stack('Twice');
    await measure('create, delivered twice (answer lost, second in another environment)', () =>
      twice.deploy(app('Twice', 'user-3', ['a-group']), lostElsewhere('Create')),
    );
    await measure('rename, delivered twice (answer lost, second in another environment)', () =>
      twice.deploy(app('Twice', 'user-4', ['a-group']), lostElsewhere('Update')),
    );
    console.log(
      [
        '| event (one user) | GetItem | UpdateItem | Amazon MQ calls | wall time | outcome |',
        '| --- | --- | --- | --- | --- | --- |',
        ...rows,
      ].join('\n'),
    );
  } finally {
    await cfn.stop();
    await mq.stop();
  }
}

main().catch((error) => {
  console.error(error);
  process.exitCode = 1;
});
