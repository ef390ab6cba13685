/**
 * One benchmark sample: builds a stack with `n` ActiveMQ users declared one way (`variant`), synthesizes it
 * into `outdir` and prints one JSON line of timings. Run in a fresh process per sample by `bench/bench.ts`
 * (bundled with esbuild first), never on its own: nothing here calls AWS.
 *
 *   node synth-child.js <variant> <n> <outdir> <liftResourceLimit 0|1>
 */
import {
  App,
  SecretValue,
  Stack,
  aws_amazonmq as amazonmq,
  aws_secretsmanager as secretsmanager,
  custom_resources as cr,
} from 'aws-cdk-lib';
import * as cxapi from 'aws-cdk-lib/cx-api';
import { MqBroker, MqUser } from '../lib';

export const VARIANTS = ['mquser-imported', 'mquser-generated', 'aws-custom-resource', 'native'] as const;
export type Variant = (typeof VARIANTS)[number];

/** What one sample prints (its last stdout line). */
export interface ChildResult {
  readonly ok: boolean;
  readonly error?: string;
  /** From process start to the first line of the app (node start-up and the import of aws-cdk-lib's index). */
  readonly startupMs: number;
  /** Constructing the stack, including the aws-cdk-lib modules it loads lazily. */
  readonly constructMs: number;
  /** `app.synth()`: validation, template, asset staging, manifest. */
  readonly synthMs: number;
  readonly maxRssKb: number;
  /** CPU time of the whole process (user + system, all threads) up to the end of the synth. */
  readonly cpuMs: number;
}

/**
 * The context `cdk synth` gives an app by default (aws-cdk CLI, `contextFromSettings`): path and asset metadata
 * and the CDKMetadata resource are part of the template users deploy.
 */
const CLI_CONTEXT = {
  [cxapi.PATH_METADATA_ENABLE_CONTEXT]: true,
  [cxapi.ASSET_RESOURCE_METADATA_ENABLED_CONTEXT]: true,
  [cxapi.ANALYTICS_REPORTING_ENABLED_CONTEXT]: true,
  [cxapi.BUNDLING_STACKS]: ['**'],
  [cxapi.FAIL_SYNTH_ON_VALIDATION_ERRORS_CONTEXT]: false,
};

export const ENV = { account: '123456789012', region: 'us-east-1' };
const BROKER_ID = 'b-1234a5b6-78cd-901e-2fab-3c45d6e178f9';
const BROKER_ARN = `arn:aws:mq:${ENV.region}:${ENV.account}:broker:shared:${BROKER_ID}`;
export const STACK_NAME = 'MqUserBench';

/** The user `i` (1-based): the same username, groups and password secret in every variant. */
function user(i: number): { username: string; groups: string[]; secretArn: string } {
  const nn = String(i).padStart(3, '0');
  // A complete secret ARN ends with "-" and six random characters; these are deterministic stand-ins.
  const suffix = ((i * 2654435761) % 2 ** 32).toString(36).padStart(6, 'x').slice(-6);
  return {
    username: `service-${nn}`,
    groups: ['consumers', `team-${i % 10}`],
    secretArn: `arn:aws:secretsmanager:${ENV.region}:${ENV.account}:secret:mq/shared/service-${nn}-${suffix}`,
  };
}

/** A dynamic reference to the `password` field of the user's secret, as people write it. */
function passwordReference(secretArn: string): string {
  return SecretValue.secretsManager(secretArn, { jsonField: 'password' }).unsafeUnwrap();
}

export function buildStack(stack: Stack, variant: Variant, n: number): void {
  const users = Array.from({ length: n }, (_, i) => user(i + 1));
  switch (variant) {
    case 'native':
      // The broker itself, with every user in its own list: the only way CloudFormation offers.
      new amazonmq.CfnBroker(stack, 'Broker', {
        brokerName: 'shared',
        engineType: 'ACTIVEMQ',
        engineVersion: '5.18',
        deploymentMode: 'SINGLE_INSTANCE',
        hostInstanceType: 'mq.m5.large',
        publiclyAccessible: false,
        autoMinorVersionUpgrade: true,
        authenticationStrategy: 'SIMPLE',
        users: users.map((u) => ({
          username: u.username,
          groups: u.groups,
          consoleAccess: false,
          password: passwordReference(u.secretArn),
        })),
      });
      return;
    case 'mquser-imported':
    case 'mquser-generated': {
      const broker = MqBroker.fromBrokerArn(stack, 'Broker', BROKER_ARN);
      users.forEach((u, i) => {
        const passwordSecret =
          variant === 'mquser-imported'
            ? secretsmanager.Secret.fromSecretCompleteArn(stack, `Secret${i + 1}`, u.secretArn)
            : undefined;
        new MqUser(stack, `User${i + 1}`, { broker, username: u.username, groups: u.groups, passwordSecret });
      });
      return;
    }
    case 'aws-custom-resource':
      // What a user writes by hand: one AwsCustomResource per user, the password as an SDK parameter.
      users.forEach((u, i) => {
        const physicalResourceId = cr.PhysicalResourceId.of(`${BROKER_ID}/${u.username}`);
        const parameters = {
          BrokerId: BROKER_ID,
          Username: u.username,
          Groups: u.groups,
          ConsoleAccess: false,
          Password: passwordReference(u.secretArn),
        };
        new cr.AwsCustomResource(stack, `User${i + 1}`, {
          onCreate: { service: 'MQ', action: 'createUser', parameters, physicalResourceId },
          onUpdate: { service: 'MQ', action: 'updateUser', parameters, physicalResourceId },
          onDelete: { service: 'MQ', action: 'deleteUser', parameters: { BrokerId: BROKER_ID, Username: u.username } },
          policy: cr.AwsCustomResourcePolicy.fromSdkCalls({ resources: [BROKER_ARN] }),
          installLatestAwsSdk: false,
        });
      });
      return;
  }
}

function usage(): { maxRssKb: number; cpuMs: number } {
  const { maxRSS, userCPUTime, systemCPUTime } = process.resourceUsage();
  return { maxRssKb: maxRSS, cpuMs: (userCPUTime + systemCPUTime) / 1000 };
}

function main(argv: string[]): ChildResult {
  const [variant, n, outdir, lift] = argv;
  if (!VARIANTS.includes(variant as Variant)) throw new Error(`unknown variant ${variant}`);
  const startupMs = performance.now(); // performance.now() counts from process start
  let constructMs = 0;
  try {
    const app = new App({
      outdir,
      context: { ...CLI_CONTEXT, ...(lift === '1' ? { '@aws-cdk/core:stackResourceLimit': 0 } : {}) },
    });
    buildStack(new Stack(app, STACK_NAME, { env: ENV }), variant as Variant, Number(n));
    constructMs = performance.now() - startupMs;
    app.synth();
    return { ok: true, startupMs, constructMs, synthMs: performance.now() - startupMs - constructMs, ...usage() };
  } catch (error) {
    const message = error instanceof Error ? error.message : String(error);
    const synthMs = constructMs ? performance.now() - startupMs - constructMs : 0;
    return { ok: false, error: message, startupMs, constructMs, synthMs, ...usage() };
  }
}

if (require.main === module) {
  console.log(JSON.stringify(main(process.argv.slice(2))));
}
