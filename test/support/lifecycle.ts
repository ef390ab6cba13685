/**
 * The frame every lifecycle file shares: the simulated Amazon MQ and the CloudFormation emulator, started once per
 * file, reset before each scenario with the file's brokers and its user nobody declared (`bystander`), checked after
 * it; and the synthesis of a one-stack app into its own cloud assembly. Each file still names its own brokers,
 * seeds, timings and emulator options at the call.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { App, Stack, aws_secretsmanager as secretsmanager } from 'aws-cdk-lib';
import { Construct } from 'constructs';
import { MqBroker, MqUser } from '../../lib';
import { CloudFormation, EmulatorOptions } from './cloudformation';
import { BrokerSpec, FakeMq, UserValues } from './mq-endpoint';
import { collectPasswords, expectBystanderUntouched } from './scenario';

/** The doubles of the running file. */
export interface Doubles {
  readonly mq: FakeMq;
  readonly cfn: CloudFormation;
}

export interface DoublesOptions {
  /** The folder of the file's cloud assemblies: made before the doubles start. */
  readonly out: string;
  /** The emulator's options (poll interval, the bundles' timing knobs). */
  readonly emulator: EmulatorOptions;
  /** Receives the doubles once they run (assign them to the file's `mq` and `cfn`). */
  readonly started: (doubles: Doubles) => void;
  /**
   * Before each scenario, after both doubles are reset (and the emulator's injected faults cleared): the brokers to
   * add, in this order, and the user `bystander` to seed on one of them with these values. Without them, the file
   * resets nothing itself and keeps its own beforeEach/afterEach.
   */
  readonly eachScenario?: {
    readonly brokers: BrokerSpec[];
    readonly bystander: { readonly brokerId: string; readonly seeded: Partial<UserValues> };
    /** Whether the emulator's injected faults are cleared too. @default true */
    readonly clearInjections?: boolean;
    /**
     * After each scenario: the passwords held on these brokers join `secrets`, then the bystander must be exactly as
     * seeded (a change counts in `figures.usersChangedUnexpectedly`).
     */
    readonly passwordsOn: string[];
    readonly secrets: Set<string>;
    readonly figures: { usersChangedUnexpectedly: number };
  };
}

/**
 * Registers the file's hooks: beforeAll starts FakeMq and the emulator (after making `out`), afterAll stops them;
 * with `eachScenario`, beforeEach resets and seeds, afterEach collects the passwords and checks the bystander.
 * Call it at the top level of the file, before its own hooks (which then run after these).
 */
export function startDoubles(options: DoublesOptions): void {
  let mq: FakeMq | undefined;
  let cfn: CloudFormation | undefined;
  beforeAll(async () => {
    fs.mkdirSync(options.out, { recursive: true });
    mq = await FakeMq.start();
    cfn = await CloudFormation.start(mq, options.emulator);
    options.started({ mq, cfn });
  });

  afterAll(async () => {
    await cfn?.stop();
    await mq?.stop();
  });

  const each = options.eachScenario;
  if (!each) return;
  beforeEach(() => {
    mq!.reset();
    if (each.clearInjections ?? true) cfn!.clearInjections();
    for (const broker of each.brokers) mq!.addBroker(broker);
    mq!.seedUser(each.bystander.brokerId, 'bystander', each.bystander.seeded);
  });

  afterEach(() => {
    collectPasswords(mq!, each.passwordsOn, each.secrets);
    expectBystanderUntouched(mq!, each.bystander.brokerId, each.bystander.seeded, each.figures);
  });
}

/** Synthesizes a one-stack app (`build` fills the stack) into its own cloud assembly below `out`; returns its folder. */
export function synthApp(out: string, build: (stack: Stack) => void, stackName = 'Orders'): string {
  const outdir = fs.mkdtempSync(path.join(out, 'assembly-'));
  const app = new App({ outdir });
  build(new Stack(app, stackName));
  app.synth();
  return outdir;
}

/**
 * A user whose Create fails (its secret does not exist) on the broker `brokerArn`, made to run after `after`: a
 * deploy that fails at that point, so that CloudFormation rolls back what ran before it.
 */
export function failingUserOn(scope: Construct, after: Construct, brokerArn: string): MqUser {
  const missing = secretsmanager.Secret.fromSecretCompleteArn(
    scope,
    'Missing',
    'arn:aws:secretsmanager:us-east-1:123456789012:secret:missing-AbCdEf',
  );
  const failing = new MqUser(scope, 'Failing', {
    broker: MqBroker.fromBrokerArn(scope, 'FailingBroker', brokerArn),
    username: 'failing-user',
    passwordSecret: missing,
  });
  failing.node.addDependency(after);
  return failing;
}
