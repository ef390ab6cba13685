/**
 * What the deploy benchmarks (`deploy.ts`, `deliveries.ts`) share: the local doubles of the lifecycle tests (fake
 * Amazon MQ, CloudFormation emulator) with one broker and one supplied secret, and apps of MqUsers on them.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { App, Stack, aws_secretsmanager as secretsmanager } from 'aws-cdk-lib';
import { MqBroker, MqUser } from '../lib';
import { CloudFormation } from '../test/support/cloudformation';
import { FakeMq } from '../test/support/mq-endpoint';

process.env.CDK_VALIDATION = 'false';
export const BROKER = 'b-1234a5b6-78cd-901e-2fab-3c45d6e178f9';
export const MQ_OPERATIONS = ['DescribeBroker', 'DescribeUser', 'CreateUser', 'UpdateUser', 'DeleteUser', 'ListUsers'];
const SECRET_ARN = 'arn:aws:secretsmanager:us-east-1:123456789012:secret:bench-AbCdEf';

export interface BenchDoubles {
  readonly mq: FakeMq;
  readonly cfn: CloudFormation;
  /** Adds the broker and the secret to the fake (again, after `mq.reset()`). */
  seed(): void;
  /** A cloud assembly of stack `stackName`: MqUser `User<i>` named `usernames[i]` on the broker, with the secret. */
  synth(stackName: string, usernames: string[], groups: string[], adoptExisting?: boolean): string;
  stop(): Promise<void>;
}

export async function startBenchDoubles(): Promise<BenchDoubles> {
  // Inside the repository, so that the bundled handlers resolve the AWS SDK from its node_modules as Lambda's
  // runtime would; not in .test-out, which the lifecycle tests empty when they start.
  const out = path.join(__dirname, '..', '.bench-out');
  fs.mkdirSync(out, { recursive: true });
  const mq = await FakeMq.start();
  const cfn = await CloudFormation.start(mq, { queryIntervalMs: 10 });
  const seed = () => {
    mq.addBroker({ brokerId: BROKER, brokerName: 'bench', engineType: 'ACTIVEMQ' });
    mq.putSecret(SECRET_ARN, JSON.stringify({ password: 'Bench-Passw0rd-2026' }));
  };
  seed();
  return {
    mq,
    cfn,
    seed,
    synth: (stackName, usernames, groups, adoptExisting = false) => {
      const outdir = fs.mkdtempSync(path.join(out, 'assembly-'));
      const app = new App({ outdir });
      const stack = new Stack(app, stackName);
      const broker = MqBroker.fromBrokerArn(stack, 'Broker', mq.brokerArn(BROKER));
      const passwordSecret = secretsmanager.Secret.fromSecretCompleteArn(stack, 'Secret', SECRET_ARN);
      usernames.forEach((username, i) => {
        new MqUser(stack, `User${i}`, { broker, username, groups, passwordSecret, adoptExisting });
      });
      app.synth();
      return outdir;
    },
    stop: async () => {
      await cfn.stop();
      await mq.stop();
      fs.rmSync(out, { recursive: true, force: true });
    },
  };
}
