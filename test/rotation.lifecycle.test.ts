/**
 * Issue 10, end to end: password rotation of synthesized apps, driven through the bundled rotation function by a
 * Secrets Manager double (test/support/secrets-rotation.ts) against the simulated Amazon MQ with its clock and
 * weekly maintenance windows. A client checker asserts guarantee 1 after every step, every simulated minute and
 * every deploy. docs/RELIABILITY.md ("Rotation") lists what each scenario proves, with the figures this file writes
 * to `.test-out/rotation.json`.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { App, CfnWaitConditionHandle, Duration, RemovalPolicy, Stack } from 'aws-cdk-lib';
import { MqBroker, MqBrokerReboot, MqUser, MqUserRotationApply } from '../lib';
import { CloudFormation, EmulatedStack } from './support/cloudformation';
import { FakeMq } from './support/mq-endpoint';
import { ClientChecker, RotationDriver, RotationResult, RotationStep, STEPS } from './support/secrets-rotation';
import { startDoubles } from './support/lifecycle';
import { collectPasswords, expectBystanderUntouched } from './support/scenario';

process.env.CDK_VALIDATION = 'false';
jest.setTimeout(30_000);

const OUT = path.join(__dirname, '..', '.test-out');
const BROKER = 'b-7a6b5c4d-3e2f-1a0b-9c8d-7e6f5a4b3c2d';
const MOVED_TO = 'b-1f2e3d4c-5b6a-7980-a1b2-c3d4e5f60718';
const USERNAME = 'orders-service';
const ALTERNATE = `${USERNAME}_clone`;
const BYSTANDER = { consoleAccess: true, groups: ['admins'], password: 'Bystander-Passw0rd-1' };
const DAY = 86_400_000;
const MINUTE = 60_000;
/** The rotation function's Lambda deadline in these tests (its Timeout is 15 minutes); it keeps 5 s to answer. */
const FUNCTION_TIMEOUT_MS = 7_000;
const TIMINGS = {
  retryTiming: {
    baseDelayMs: 10,
    throttleBaseDelayMs: 10,
    throttleMaxDelayMs: 100,
    maxDelayMs: 100,
    brokerWaitMs: 1_000,
    attemptTimeoutMs: 2_000,
    accessDeniedWindowMs: 300,
    undoReserveMs: 500,
  },
  rebootTiming: { settleMs: 1_000 },
  rotationTiming: { pollMs: 50, settleMs: 1_000 },
};

let mq: FakeMq;
let cfn: CloudFormation;
/** Every password and secret string seen: none may appear in any log line, response or failure reason. */
const secrets = new Set<string>([BYSTANDER.password]);
const figures = {
  scenarios: 0,
  rotationsDriven: 0,
  rotationsCompleted: 0,
  stepInvocations: 0,
  crashesInjected: 0,
  faultsInjected: 0,
  checkerAssertions: 0,
  checkerViolations: 0,
  credentialsReleased: 0,
  windowsApplied: 0,
  simulatedDays: 0,
  rebootsByMaintenanceWindowRotations: 0,
  rebootsByRebootRotations: 0,
  rebootRotations: 0,
  usersChangedUnexpectedly: 0,
};
const perScenario: Record<string, Record<string, number>> = {};

interface World {
  stack: EmulatedStack;
  driver: RotationDriver;
  checker: ClientChecker;
  secretArn: string;
  mode: MqUserRotationApply;
}
let worlds: World[] = [];
let startedAt = 0;

startDoubles({
  out: OUT,
  emulator: { queryIntervalMs: 10, timings: TIMINGS },
  started: (doubles) => ({ mq, cfn } = doubles),
});

beforeEach(() => {
  mq.reset();
  worlds = [];
  startedAt = mq.now();
  mq.addBroker({ brokerId: BROKER, brokerName: 'orders', engineType: 'ACTIVEMQ' });
  mq.addBroker({ brokerId: MOVED_TO, brokerName: 'orders-v2', engineType: 'ACTIVEMQ' });
  mq.seedUser(BROKER, 'bystander', BYSTANDER);
});

afterEach(() => {
  const name = expect.getState().currentTestName ?? '?';
  if (name.startsWith('nothing leaks')) return;
  figures.scenarios++;
  const mine = {
    rotations: 0,
    steps: 0,
    crashes: 0,
    assertions: 0,
    reboots: 0,
    // Windows of the brokers that held the rotated users.
    windows: [...new Set(worlds.map((w) => w.checker.brokerId))].reduce((n, id) => n + mq.windowsApplied(id), 0),
  };
  for (const w of worlds) {
    w.checker.dispose();
    mine.rotations += w.driver.rotations.filter((r) => !r.refused).length;
    mine.steps += w.driver.steps.length;
    mine.crashes += w.driver.crashes;
    mine.assertions += w.checker.assertions;
    const reboots = w.driver.rotations.reduce((n, r) => n + r.reboots, 0);
    mine.reboots += reboots;
    figures.rotationsCompleted += w.driver.rotations.filter((r) => r.completed).length;
    figures.checkerViolations += w.checker.violations.length;
    figures.credentialsReleased += w.checker.released;
    if (w.mode === MqUserRotationApply.MAINTENANCE_WINDOW) figures.rebootsByMaintenanceWindowRotations += reboots;
    else {
      figures.rebootsByRebootRotations += reboots;
      figures.rebootRotations += w.driver.rotations.filter((r) => r.completed).length;
    }
  }
  figures.rotationsDriven += mine.rotations;
  figures.stepInvocations += mine.steps;
  figures.crashesInjected += mine.crashes;
  figures.checkerAssertions += mine.assertions;
  figures.windowsApplied += mine.windows;
  figures.faultsInjected += mq.faultsInjected;
  figures.simulatedDays += Math.round((mq.now() - startedAt) / DAY);
  perScenario[name] = mine;
  collectPasswords(mq, [BROKER, MOVED_TO], secrets);
  for (const w of worlds) for (const v of mq.secretVersions(w.secretArn)) if (v.value) secrets.add(v.value);
  expectBystanderUntouched(mq, BROKER, BYSTANDER, figures);
});

// ---- apps and helpers ----

interface AppProps {
  /** `false`: the user without `addRotation`. */
  rotate?: boolean;
  applyBy?: MqUserRotationApply;
  days?: number;
  groups?: string[];
  brokerId?: string;
  /** Another MqUser of the broker, `billing-service`, without rotation. */
  billing?: boolean;
  /** An MqBrokerReboot of the broker. */
  reboot?: boolean;
}

function synth(props: AppProps = {}): string {
  const outdir = fs.mkdtempSync(path.join(OUT, 'assembly-'));
  const app = new App({ outdir });
  const stack = new Stack(app, 'Orders');
  const broker = MqBroker.fromBrokerArn(stack, 'Broker', mq.brokerArn(props.brokerId ?? BROKER));
  const user = new MqUser(stack, 'Orders', {
    broker,
    username: USERNAME,
    groups: props.groups ?? ['orders'],
  });
  if (props.rotate !== false) {
    user.addRotation({
      automaticallyAfter: Duration.days(props.days ?? 9),
      applyBy: props.applyBy ?? MqUserRotationApply.MAINTENANCE_WINDOW,
    });
  }
  if (props.billing) new MqUser(stack, 'Billing', { broker, username: 'billing-service', groups: ['billing'] });
  if (props.reboot) new MqBrokerReboot(stack, 'Reboot', { broker });
  app.synth();
  return outdir;
}

/** Deploys the app, hooks a driver and a client checker to its secret; the immediate rotation is not run yet. */
async function deploy(props: AppProps = {}): Promise<World> {
  const stack = cfn.stack('Orders');
  expect(await stack.deploy(synth(props))).toEqual({ status: 'CREATE_COMPLETE' });
  const [secretArn] = Object.values(stack.physicalIdsOf('AWS::SecretsManager::Secret'));
  const checker = new ClientChecker(mq, secretArn, props.brokerId ?? BROKER, [USERNAME, ALTERNATE]);
  const driver = new RotationDriver(cfn, stack, {
    timeoutMs: FUNCTION_TIMEOUT_MS,
    afterStep: (record) => checker.check(`after ${record.step} (attempt ${record.attempt})`),
    onRotation: checker.onRotation,
  });
  const world = { stack, driver, checker, secretArn, mode: props.applyBy ?? MqUserRotationApply.MAINTENANCE_WINDOW };
  worlds.push(world);
  checker.check('after deploy');
  return world;
}

/** A driver and a client checker for the rotated secret of a deployed stack. */
function watch(stack: EmulatedStack, secretArn: string): World {
  const checker = new ClientChecker(mq, secretArn, BROKER, [USERNAME, ALTERNATE]);
  const driver = new RotationDriver(cfn, stack, {
    timeoutMs: FUNCTION_TIMEOUT_MS,
    afterStep: (record) => checker.check(`after ${record.step} (attempt ${record.attempt})`),
    onRotation: checker.onRotation,
  });
  const world = { stack, driver, checker, secretArn, mode: MqUserRotationApply.MAINTENANCE_WINDOW };
  worlds.push(world);
  checker.check('after deploy');
  return world;
}

/** The immediate rotation the RotationSchedule's creation asked for (Secrets Manager starts it on its own). */
async function firstRotation(w: World): Promise<RotationResult> {
  const results = await w.driver.runRequested();
  expect(results).toHaveLength(1);
  return results[0];
}

function credentials(w: World) {
  return w.checker.current()!;
}

function stagesOf(w: World, label: string) {
  return mq.secretVersionWith(w.secretArn, label);
}

function expectCompleted(result: RotationResult, attempts = 1) {
  expect({ completed: result.completed, attempts: result.attempts, error: result.error }).toEqual({
    completed: true,
    attempts,
    error: undefined,
  });
}

function expectCheckerGreen(w: World) {
  expect(w.checker.violations).toEqual([]);
  expect(w.checker.armedAt).toBeDefined();
}

/** MqUser's own users on a broker (the bystander aside). */
function ourUsers(brokerId = BROKER) {
  return mq.users(brokerId).filter((u) => u.username !== 'bystander');
}

// ---- scenarios ----

describe('issue 10: rotation', () => {
  test('guarantee 1: the first rotation after deploy stages the alternate and holds AWSCURRENT until a window applies it', async () => {
    const w = await deploy();
    const initial = credentials(w);
    expect(initial.username).toBe(USERNAME);
    expect(mq.secretTags(w.secretArn)).toMatchObject({
      'cdk-mq-user:broker-id': BROKER,
      'cdk-mq-user:rotation': 'MAINTENANCE_WINDOW',
      'cdk-mq-user:rotation-stack-id': w.stack.stackId,
    });
    // Both users exist (pending CREATE, as every MqUser until a reboot or window) with the secret's password.
    expect(mq.user(BROKER, USERNAME)?.pending).toMatchObject({ change: 'CREATE', password: initial.password });
    expect(mq.user(BROKER, ALTERNATE)?.pending).toMatchObject({ change: 'CREATE', password: initial.password });

    const r1 = await firstRotation(w);
    expectCompleted(r1);
    expect(r1.steps.map((s) => s.step)).toEqual([...STEPS]);
    expect(credentials(w)).toEqual(initial); // held
    const staged = stagesOf(w, 'MQUSER_STAGED')!;
    expect(staged.stages).toEqual(['MQUSER_SENT', 'MQUSER_STAGED']);
    const stagedValue = JSON.parse(staged.value!);
    expect(stagedValue).toMatchObject({ username: ALTERNATE, stagedFor: BROKER });
    expect(mq.user(BROKER, ALTERNATE)?.pending?.change).toBe('CREATE');
    expect((mq.user(BROKER, ALTERNATE)?.pending as { password: string }).password).toBe(stagedValue.password);

    // The week until the window: nothing applied, AWSCURRENT unchanged; the window applies both users.
    mq.advanceTo(mq.nextWindowStart(BROKER) + MINUTE);
    expect(w.checker.armedAt).toBeDefined();
    expect(mq.authenticates(BROKER, USERNAME, initial.password)).toBe(true);
    expect(mq.authenticates(BROKER, ALTERNATE, stagedValue.password)).toBe(true);
    expect(mq.mqCalls(0, 'RebootBroker')).toEqual([]);
    expectCheckerGreen(w);
  });

  test('guarantees 1 and 2: three rotations in a row with MAINTENANCE_WINDOW (9-day interval, rotations as close as 8 days apart, weekly windows): stage, promote, stage, promote; never a reboot', async () => {
    const w = await deploy();
    const c0 = credentials(w);
    expectCompleted(await firstRotation(w)); // stages the alternate
    const seen = [credentials(w)];
    for (let i = 0; i < 3; i++) {
      mq.advance(8 * DAY);
      expectCompleted(await w.driver.rotate(w.secretArn));
      seen.push(credentials(w));
    }
    // R2 promotes the alternate, R3 stages the primary (holds), R4 promotes the primary.
    expect(seen.map((c) => c.username)).toEqual([USERNAME, ALTERNATE, ALTERNATE, USERNAME]);
    expect(seen[0]).toEqual(c0);
    expect(seen[2]).toEqual(seen[1]);
    expect(new Set(seen.map((c) => c.password)).size).toBe(3);
    // The primary's first password was owed until the window after R3, then released; R4's promotion owes R2's.
    expect(mq.authenticates(BROKER, USERNAME, c0.password)).toBe(false);
    expect(w.checker.released).toBe(1);
    expect(w.checker.owedCredentials()).toEqual([seen[1]]);
    mq.advance(8 * DAY);
    expect(mq.mqCalls(0, 'RebootBroker')).toEqual([]);
    expect(mq.windowsApplied(BROKER)).toBe(4);
    expectCheckerGreen(w);
  });

  test('guarantee 1: a window that comes late (skipped once): the rotation holds, the next one promotes', async () => {
    const w = await deploy();
    await firstRotation(w);
    mq.advance(8 * DAY);
    expectCompleted(await w.driver.rotate(w.secretArn)); // R2: promotes the alternate
    const promoted = credentials(w);
    expect(promoted.username).toBe(ALTERNATE);
    mq.advance(8 * DAY);
    expectCompleted(await w.driver.rotate(w.secretArn)); // R3: stages the primary
    mq.postponeWindows(BROKER, 1); // the next window does not come
    mq.advance(8 * DAY);
    expect(mq.user(BROKER, USERNAME)?.pending?.change).toBe('UPDATE');
    expectCompleted(await w.driver.rotate(w.secretArn)); // R4: finds it pending: holds
    expect(credentials(w)).toEqual(promoted);
    expect(mq.mqCalls(0, 'UpdateUser').filter((c) => c.username === USERNAME)).toHaveLength(1); // not re-staged
    mq.advance(8 * DAY); // the following window applies it
    expectCompleted(await w.driver.rotate(w.secretArn)); // R5: promotes the primary
    expect(credentials(w).username).toBe(USERNAME);
    expect(mq.mqCalls(0, 'RebootBroker')).toEqual([]);
    expectCheckerGreen(w);
  });

  test('guarantee 1: a window five days late lands after the next rotation: that rotation holds, the one after promotes', async () => {
    const w = await deploy();
    await firstRotation(w);
    mq.postponeWindows(BROKER, 1, 5 * DAY); // the first window (which also creates the users) comes on Friday
    mq.advance(8 * DAY); // Tuesday: the users are still pending
    expect(mq.windowsApplied(BROKER)).toBe(0);
    expectCompleted(await w.driver.rotate(w.secretArn)); // holds
    expect(credentials(w).username).toBe(USERNAME);
    mq.advance(8 * DAY); // Friday's late window, then Sunday's regular one
    expect(mq.windowsApplied(BROKER)).toBe(2);
    expectCompleted(await w.driver.rotate(w.secretArn)); // promotes
    expect(credentials(w).username).toBe(ALTERNATE);
    expectCheckerGreen(w);
  });

  test('guarantee 5: a crash between each pair of steps (and after the last), in staging and in promoting rotations: the retry resumes and completes', async () => {
    const w = await deploy();
    const points: RotationStep[] = ['createSecret', 'setSecret', 'testSecret', 'finishSecret'];
    const first = await w.driver.runRequested().then(() => w.driver.rotations[0]);
    expectCompleted(first);
    let updates = mq.mqCalls(0, 'UpdateUser').length;
    // 8 rotations: each crash point once in a promoting rotation and once in a staging one.
    for (let i = 0; i < 8; i++) {
      mq.advance(8 * DAY);
      const before = credentials(w);
      const result = await w.driver.rotate(w.secretArn, { crashAfter: points[i % 4] });
      expectCompleted(result, 2);
      expect(mq.secretVersionWith(w.secretArn, 'AWSCURRENT')?.versionId).toBe(result.token);
      const promoting = i % 2 === 0;
      expect(credentials(w).username).toBe(promoting ? otherOf(before.username) : before.username);
      // A staged password is sent exactly once, crash or not.
      const sent = mq.mqCalls(0, 'UpdateUser').length - updates;
      expect(sent).toBe(promoting ? 0 : 1);
      updates += sent;
    }
    expect(w.driver.crashes).toBe(8);
    expect(mq.mqCalls(0, 'RebootBroker')).toEqual([]);
    expectCheckerGreen(w);
  });

  test('guarantee 5: faults inside a step (a lost PutSecretValue answer, a 500 after UpdateUser, a refused label move) are resumed safely', async () => {
    const w = await deploy();
    // createSecret's staging PutSecretValue is performed but its answer lost; the hold's answer is a 500 after it.
    mq.inject({ operation: 'PutSecretValue', fault: 'lostResponse' });
    mq.inject({ operation: 'PutSecretValue', fault: 'internalAfterWrite' });
    // setSecret: UpdateUser done but answered 500; then moving MQUSER_SENT is refused once: the step fails.
    mq.inject({ operation: 'UpdateUser', fault: 'internalAfterWrite' });
    mq.inject({ operation: 'UpdateSecretVersionStage', fault: 'badRequest' });
    const r1 = await firstRotation(w);
    expectCompleted(r1, 2);
    expect(r1.steps.filter((s) => s.outcome === 'failed').map((s) => s.step)).toEqual(['setSecret']);
    // One staged version, holding the password the broker got (the retries re-sent the same one).
    const staged = mq.secretVersions(w.secretArn).filter((v) => v.value?.includes('stagedFor'));
    expect(staged).toHaveLength(1);
    expect((mq.user(BROKER, ALTERNATE)?.pending as { password: string }).password).toBe(
      JSON.parse(staged[0].value!).password,
    );
    mq.advance(8 * DAY);
    expectCompleted(await w.driver.rotate(w.secretArn));
    expect(credentials(w).password).toBe(JSON.parse(staged[0].value!).password);
    expectCheckerGreen(w);
  });

  test('guarantee 2: when Secrets Manager stops retrying, AWSCURRENT keeps working; a new rotation is refused until the pending one resumes', async () => {
    const w = await deploy();
    await firstRotation(w);
    mq.advance(8 * DAY);
    const before = credentials(w);
    // Amazon MQ fails every DescribeUser (a 400 would make the rotation hold instead: issue 15, finding 5).
    mq.inject({ operation: 'DescribeUser', fault: 'internal', times: Infinity });
    const failed = await w.driver.rotate(w.secretArn, { attempts: 2 });
    expect(failed.completed).toBe(false);
    expect(credentials(w)).toEqual(before);
    mq.advance(8 * DAY); // a whole interval with the rotation stuck: clients still sign in
    const refused = await w.driver.rotate(w.secretArn);
    expect(refused.refused).toBe(true);
    mq.clearInjections();
    expectCompleted(await w.driver.rotate(w.secretArn, { token: failed.token }));
    expect(credentials(w).username).toBe(ALTERNATE);
    expectCheckerGreen(w);
  });

  test('guarantee 2: REBOOT with a broker slow to return: testSecret gives up before its deadline, the retry waits, one reboot per rotation', async () => {
    // RebootBroker answers while the broker still says RUNNING (the inconvenient answer), and the reboot outlasts
    // the function's deadline (7 s, of which 2 s usable).
    mq.rebootStartsAfterMs = 300;
    mq.rebootDelayMs = 2_800;
    const w = await deploy({ applyBy: MqUserRotationApply.REBOOT });
    const c0 = credentials(w);
    const r1 = await firstRotation(w);
    expectCompleted(r1, 2);
    const failed = r1.steps.find((s) => s.outcome === 'failed')!;
    expect(failed.step).toBe('testSecret');
    expect(failed.reason).toMatch(/still rebooting/);
    expect(failed.reason).not.toMatch(/timed out/);
    expect(r1.reboots).toBe(1);
    expect(credentials(w).username).toBe(ALTERNATE);
    expect(mq.authenticates(BROKER, USERNAME, c0.password)).toBe(true); // owed until the next rotation's reboot
    // Two more rotations, the broker quick to return: one reboot each; the previous credentials go at that reboot.
    mq.rebootStartsAfterMs = 0;
    mq.rebootDelayMs = 100;
    for (let i = 0; i < 2; i++) {
      mq.advance(8 * DAY);
      const result = await w.driver.rotate(w.secretArn);
      expectCompleted(result);
      expect(result.reboots).toBe(1);
    }
    expect(credentials(w).username).toBe(ALTERNATE);
    expect(w.checker.released).toBe(2);
    expect(mq.mqCalls(0, 'RebootBroker').filter((c) => c.status === 200)).toHaveLength(3);
    expectCheckerGreen(w);
  });

  test('guarantee 5: REBOOT, a crash between each pair of steps: still one reboot per rotation', async () => {
    mq.rebootDelayMs = 100;
    const w = await deploy({ applyBy: MqUserRotationApply.REBOOT });
    expectCompleted(await firstRotation(w));
    for (const crashAfter of STEPS) {
      mq.advance(8 * DAY);
      const result = await w.driver.rotate(w.secretArn, { crashAfter });
      expectCompleted(result, 2);
      expect(result.reboots).toBe(1);
    }
    expectCheckerGreen(w);
  });

  test('guarantee 4: a deploy that changes groups between rotations reaches both users and never resets a rotated password', async () => {
    const w = await deploy({ groups: ['orders'] });
    await firstRotation(w);
    mq.advance(8 * DAY);
    await w.driver.rotate(w.secretArn); // promotes the alternate
    mq.advance(8 * DAY);
    await w.driver.rotate(w.secretArn); // stages the primary: its new password is pending
    const stagedPassword = JSON.parse(stagesOf(w, 'MQUSER_STAGED')!.value!).password;
    const result = await w.stack.deploy(synth({ groups: ['orders', 'audit'] }));
    expect(result).toEqual({ status: 'UPDATE_COMPLETE' });
    w.checker.check('after deploy');
    for (const username of [USERNAME, ALTERNATE])
      expect((mq.user(BROKER, username)?.pending as { groups: string[] }).groups).toEqual(['audit', 'orders']);
    expect((mq.user(BROKER, USERNAME)?.pending as { password: string }).password).toBe(stagedPassword);
    // A reboot applies it all: AWSCURRENT still signs in, the staged password is the primary's.
    mq.finishReboot(BROKER);
    const current = credentials(w);
    expect(mq.authenticates(BROKER, current.username, current.password)).toBe(true);
    expect(mq.authenticates(BROKER, USERNAME, stagedPassword)).toBe(true);
    mq.advance(8 * DAY);
    expectCompleted(await w.driver.rotate(w.secretArn)); // promotes the primary, groups kept
    expect(mq.user(BROKER, USERNAME)?.applied?.groups).toEqual(['audit', 'orders']);
    expect(mq.user(BROKER, ALTERNATE)?.applied?.groups).toEqual(['audit', 'orders']);
    expectCheckerGreen(w);
  });

  test.each(['pending', 'applied'] as const)(
    'guarantee 4 (hostile): a groups deploy between staging and promotion keeps the staged password (UpdateUser without Password: %s)',
    async (omitted) => {
      // Undocumented: whether an UpdateUser that omits Password keeps a pending password change. The handler never
      // omits it under rotation: it sends the password the user holds or has pending (the MQUSER_SENT version).
      mq.updateOmittedPassword = omitted;
      const w = await deploy({ groups: ['orders'] });
      await firstRotation(w);
      mq.advance(8 * DAY);
      await w.driver.rotate(w.secretArn); // promotes the alternate
      mq.advance(8 * DAY);
      await w.driver.rotate(w.secretArn); // stages the primary
      expect(await w.stack.deploy(synth({ groups: ['orders', 'audit'] }))).toEqual({ status: 'UPDATE_COMPLETE' });
      mq.advance(8 * DAY);
      await w.driver.rotate(w.secretArn);
      mq.advance(8 * DAY);
      await w.driver.rotate(w.secretArn);
      expectCheckerGreen(w);
    },
  );

  test('guarantees 3 and 4: turning rotation on for a deployed user keeps its password and adds the alternate with it', async () => {
    const stack = cfn.stack('Orders');
    expect(await stack.deploy(synth({ rotate: false }))).toEqual({ status: 'CREATE_COMPLETE' });
    mq.applyPendingChanges(BROKER);
    const [secretArn] = Object.values(stack.physicalIdsOf('AWS::SecretsManager::Secret'));
    const password = JSON.parse(mq.secretValue(secretArn)!).password as string;
    secrets.add(password);
    expect(mq.authenticates(BROKER, USERNAME, password)).toBe(true);
    expect(await stack.deploy(synth())).toEqual({ status: 'UPDATE_COMPLETE' });
    // The same secret (only tags added: nothing regenerated), the user untouched, the alternate pending CREATE.
    expect(Object.values(stack.physicalIdsOf('AWS::SecretsManager::Secret'))).toEqual([secretArn]);
    expect(JSON.parse(mq.secretValue(secretArn)!).password).toBe(password);
    expect(mq.user(BROKER, USERNAME)?.pending).toBeUndefined();
    expect(mq.user(BROKER, ALTERNATE)?.pending).toMatchObject({ change: 'CREATE', password });
    const checker = new ClientChecker(mq, secretArn, BROKER, [USERNAME, ALTERNATE]);
    const driver = new RotationDriver(cfn, stack, {
      timeoutMs: FUNCTION_TIMEOUT_MS,
      afterStep: (record) => checker.check(`after ${record.step} (attempt ${record.attempt})`),
      onRotation: checker.onRotation,
    });
    const w: World = { stack, driver, checker, secretArn, mode: MqUserRotationApply.MAINTENANCE_WINDOW };
    worlds.push(w);
    checker.check('after turning rotation on');
    expectCompleted(await firstRotation(w)); // stages the alternate
    mq.advance(9 * DAY);
    expectCompleted(await w.driver.rotate(w.secretArn)); // promotes it
    expect(credentials(w).username).toBe(ALTERNATE);
    expectCheckerGreen(w);
  });

  test('guarantee 3: turning rotation off deletes the alternate and keeps the user, its password and the secret', async () => {
    const w = await deploy();
    expectCompleted(await firstRotation(w)); // stages the alternate; AWSCURRENT still names the user
    mq.advance(9 * DAY);
    const current = credentials(w);
    expect(current.username).toBe(USERNAME);
    w.checker.dispose(); // no rotation from here on: the checker would wait for promotions that never come
    expect(await w.stack.deploy(synth({ rotate: false }))).toEqual({ status: 'UPDATE_COMPLETE' });
    expect(mq.user(BROKER, ALTERNATE)?.pending?.change).toBe('DELETE');
    expect(mq.rotationOf(w.secretArn)).toBeUndefined();
    mq.advance(9 * DAY);
    expect(mq.user(BROKER, ALTERNATE)).toBeUndefined();
    expect(mq.authenticates(BROKER, USERNAME, current.password)).toBe(true);
    expect(Object.values(w.stack.physicalIdsOf('AWS::SecretsManager::Secret'))).toEqual([w.secretArn]);
  });

  test('guarantee 3: destroy after rotations removes both users and the secret', async () => {
    const w = await deploy();
    await firstRotation(w);
    for (let i = 0; i < 2; i++) {
      mq.advance(8 * DAY);
      expectCompleted(await w.driver.rotate(w.secretArn));
    }
    expect(
      ourUsers()
        .map((u) => u.username)
        .sort(),
    ).toEqual([USERNAME, ALTERNATE]);
    expect(await w.stack.destroy()).toEqual({ status: 'DELETE_COMPLETE' });
    for (const user of ourUsers()) expect(user.pending?.change).toBe('DELETE');
    mq.advance(8 * DAY);
    expect(ourUsers()).toEqual([]);
    expect(mq.secretArnOf(w.secretArn)).toBeUndefined();
    expectCheckerGreen(w);
  });

  test('hostile: a password staged on a broker the users moved away from is never promoted on the new broker', async () => {
    const w = await deploy();
    await firstRotation(w); // stages the alternate on BROKER
    mq.advance(8 * DAY);
    expectCompleted(await w.driver.rotate(w.secretArn)); // promotes it
    mq.advance(8 * DAY);
    expectCompleted(await w.driver.rotate(w.secretArn)); // stages the primary on BROKER
    const stagedOnOld = JSON.parse(stagesOf(w, 'MQUSER_STAGED')!.value!);
    expect(stagedOnOld.stagedFor).toBe(BROKER);
    // The users move to another broker (a replacement): created there with AWSCURRENT's password.
    expect(await w.stack.deploy(synth({ brokerId: MOVED_TO }))).toEqual({ status: 'UPDATE_COMPLETE' });
    expect(mq.secretTags(w.secretArn)['cdk-mq-user:broker-id']).toBe(MOVED_TO);
    w.checker.dispose();
    const moved: World = { ...w, checker: new ClientChecker(mq, w.secretArn, MOVED_TO, [USERNAME, ALTERNATE]) };
    const driver = new RotationDriver(cfn, w.stack, {
      timeoutMs: FUNCTION_TIMEOUT_MS,
      afterStep: (record) => moved.checker.check(`after ${record.step}`),
      onRotation: moved.checker.onRotation,
    });
    moved.driver = driver;
    worlds.push(moved);
    mq.advance(8 * DAY); // the new broker's window creates the users
    const r = await driver.rotate(w.secretArn);
    expectCompleted(r);
    // Not promoted: the staged password was for the old broker; a new one is staged for the new broker.
    expect(credentials(moved).password).not.toBe(stagedOnOld.password);
    expect(JSON.parse(stagesOf(moved, 'MQUSER_STAGED')!.value!).stagedFor).toBe(MOVED_TO);
    mq.advance(8 * DAY);
    expectCompleted(await driver.rotate(w.secretArn));
    expect(credentials(moved).username).toBe(USERNAME);
    expect(mq.authenticates(MOVED_TO, USERNAME, credentials(moved).password)).toBe(true);
    expect(ourUsers(BROKER)).toEqual([]); // the old broker's users were deleted and a window applied it
    expectCheckerGreen(moved);
  });

  test('hostile: a rotation function of another stack, or a secret without the tag, is refused', async () => {
    const w = await deploy();
    mq.tagSecret(w.secretArn, { ...mq.secretTags(w.secretArn), 'cdk-mq-user:rotation-stack-id': 'someone-else' });
    const result = await firstRotation(w);
    expect(result.completed).toBe(false);
    expect(result.error).toMatch(/rotation-stack-id/);
    expect(mq.mqCalls(0, 'UpdateUser')).toEqual([]);
    expect(mq.secretsCalls(0, 'PutSecretValue')).toEqual([]);
  });

  test("hostile: a forged secret, tagged as this stack's and pointed at its function, changes no user", async () => {
    // Someone allowed to create and tag secrets makes one that names a user this stack does not rotate (the
    // console admin `bystander`), tags it with the stack's (public) ID, broker and mode, and rotates it with the
    // stack's function. Tags are no proof: the secret is not the stack's, so nothing happens.
    const w = await deploy();
    const ownTags = mq.secretTags(w.secretArn);
    const forged = mq.putSecret(
      'arn:aws:secretsmanager:us-east-1:123456789012:secret:forged-AbCdEf',
      JSON.stringify({ username: 'bystander_clone', password: 'Forged-Passw0rd-1' }),
      { tags: ownTags },
    );
    secrets.add('Forged-Passw0rd-1');
    mq.setRotation(forged, mq.rotationOf(w.secretArn)!);
    const before = mq.mqCalls().length;
    const result = await w.driver.rotate(forged);
    expect(result.completed).toBe(false);
    expect(result.error).toMatch(/it is not a secret of stack/);
    expect(mq.mqCalls(before, 'UpdateUser')).toEqual([]);
    expect(mq.user(BROKER, 'bystander')).toEqual({
      username: 'bystander',
      applied: { replicationUser: false, ...BYSTANDER },
    });
  });
});

describe('issue 15: rotation that can never lock a client out', () => {
  test('finding 1 (hostile): rotation turned off and on again: the alternate is created again with the password sent to it, so the promotion signs in', async () => {
    const w = await deploy();
    expectCompleted(await firstRotation(w)); // stages the alternate's new password and sends it
    const sent = JSON.parse(stagesOf(w, 'MQUSER_SENT')!.value!);
    expect(sent.username).toBe(ALTERNATE);
    expect(await w.stack.deploy(synth({ rotate: false }))).toEqual({ status: 'UPDATE_COMPLETE' });
    mq.advance(8 * DAY); // a window applies the deletion of the alternate
    expect(mq.user(BROKER, ALTERNATE)).toBeUndefined();
    expect(await w.stack.deploy(synth())).toEqual({ status: 'UPDATE_COMPLETE' });
    // The labels still say the alternate was sent `sent`: the alternate is created with exactly that password.
    expect(mq.user(BROKER, ALTERNATE)?.pending).toMatchObject({ change: 'CREATE', password: sent.password });
    expectCompleted(await firstRotation(w)); // the new schedule's immediate rotation: the alternate is pending: holds
    expect(credentials(w).username).toBe(USERNAME);
    mq.advance(8 * DAY);
    expectCompleted(await w.driver.rotate(w.secretArn)); // promotes
    expect(credentials(w)).toEqual({ username: ALTERNATE, password: sent.password });
    expectCheckerGreen(w);
  });

  test('finding 1 (hostile): an alternate deleted out of band after its new password was sent, created again by a deploy, gets that password', async () => {
    const w = await deploy();
    expectCompleted(await firstRotation(w));
    const sent = JSON.parse(stagesOf(w, 'MQUSER_SENT')!.value!);
    await deleteUserOutOfBand(ALTERNATE);
    expect(mq.user(BROKER, ALTERNATE)).toBeUndefined();
    // README "Troubleshooting": deploy a change to the MqUser to create the user again.
    expect(await w.stack.deploy(synth({ groups: ['orders', 'audit'] }))).toEqual({ status: 'UPDATE_COMPLETE' });
    expect(mq.user(BROKER, ALTERNATE)?.pending).toMatchObject({ change: 'CREATE', password: sent.password });
    mq.advance(8 * DAY);
    expectCompleted(await w.driver.rotate(w.secretArn)); // promotes what the alternate holds
    expect(credentials(w)).toEqual({ username: ALTERNATE, password: sent.password });
    expectCheckerGreen(w);
  });

  test('finding 2 (hostile): turning rotation off while AWSCURRENT names the alternate fails before anything is deleted; after rotating back it succeeds', async () => {
    const w = await deploy();
    await firstRotation(w);
    mq.advance(8 * DAY);
    expectCompleted(await w.driver.rotate(w.secretArn)); // promotes the alternate
    expect(credentials(w).username).toBe(ALTERNATE);
    const refused = await w.stack.deploy(synth({ rotate: false }));
    expect(refused.status).toBe('UPDATE_ROLLBACK_COMPLETE');
    expect(refused.reason).toMatch(
      /cannot turn rotation off for user "orders-service" .* names its alternate "orders-service_clone".*Nothing was deleted/,
    );
    expect(mq.mqCalls(0, 'DeleteUser')).toEqual([]);
    expect(mq.rotationOf(w.secretArn)).toBeDefined();
    expect(credentials(w).username).toBe(ALTERNATE); // the rollback restored the secret's tags, nothing else
    mq.advance(8 * DAY); // clients keep signing in: the checker runs every minute
    expectCompleted(await w.driver.rotate(w.secretArn)); // stages the primary
    mq.advance(8 * DAY);
    expectCompleted(await w.driver.rotate(w.secretArn)); // promotes it
    expect(credentials(w).username).toBe(USERNAME);
    // The alternate's credentials were AWSCURRENT until this promotion: the clients read the secret again before
    // rotation is turned off (README "Turning rotation off"), then its deletion locks no one out.
    w.checker.clientsRefreshed();
    expect(await w.stack.deploy(synth({ rotate: false }))).toEqual({ status: 'UPDATE_COMPLETE' });
    mq.advance(8 * DAY);
    expect(mq.user(BROKER, ALTERNATE)).toBeUndefined();
    expect(mq.authenticates(BROKER, USERNAME, credentials(w).password)).toBe(true);
    expectCheckerGreen(w);
  });

  test("finding 4 (hostile): with MqBrokerReboot, a deploy that only removes another user does not reboot for the rotation's staged password", async () => {
    const w = await deploy({ billing: true, reboot: true });
    expect(mq.reboots(BROKER)).toBe(1); // the first deploy created the users: rebooted for them
    mq.finishReboot(BROKER);
    expectCompleted(await firstRotation(w)); // stages the alternate's password: pending UPDATE
    expect(mq.user(BROKER, ALTERNATE)?.pending?.change).toBe('UPDATE');
    const before = mq.calls.length;
    expect(await w.stack.deploy(synth({ reboot: true }))).toEqual({ status: 'UPDATE_COMPLETE' });
    expect(mq.mqCalls(before, 'RebootBroker')).toEqual([]);
    expect(mq.user(BROKER, ALTERNATE)?.pending?.change).toBe('UPDATE'); // still the window's to apply
    expect(mq.user(BROKER, 'billing-service')?.pending?.change).toBe('DELETE');
    mq.advance(8 * DAY);
    expectCompleted(await w.driver.rotate(w.secretArn)); // the window applied it: promoted
    expect(credentials(w).username).toBe(ALTERNATE);
    expectCheckerGreen(w);
  });

  test('finding 3: a rotated user moves to another stack of the same app as README "Moving a user" says', async () => {
    // One app, two stacks: `Orders` (the old declaration) and `OrdersV2` (the new one).
    const moveApp = (old: 'destroy' | 'retain' | 'removed', next: boolean) => {
      const outdir = fs.mkdtempSync(path.join(OUT, 'assembly-'));
      const app = new App({ outdir });
      for (const [name, declared] of [
        ['Orders', old !== 'removed'],
        ['OrdersV2', next],
      ] as const) {
        const stack = new Stack(app, name);
        // The old stack has other resources: a stack without any is not deployed, but deleted.
        if (name === 'Orders') new CfnWaitConditionHandle(stack, 'OtherResource');
        if (!declared) continue;
        const user = new MqUser(stack, 'Orders', {
          broker: MqBroker.fromBrokerArn(stack, 'Broker', mq.brokerArn(BROKER)),
          username: USERNAME,
          groups: ['orders'],
          ...(name === 'Orders' && old === 'retain' ? { removalPolicy: RemovalPolicy.RETAIN } : {}),
          ...(name === 'OrdersV2' ? { adoptExisting: true } : {}),
        });
        user.addRotation({ automaticallyAfter: Duration.days(9) });
      }
      app.synth();
      return outdir;
    };
    const oldStack = cfn.stack('Orders');
    expect(await oldStack.deploy(moveApp('destroy', false))).toEqual({ status: 'CREATE_COMPLETE' });
    const [oldSecret] = Object.values(oldStack.physicalIdsOf('AWS::SecretsManager::Secret'));
    const old = watch(oldStack, oldSecret);
    expectCompleted(await firstRotation(old));
    mq.advance(8 * DAY);
    expectCompleted(await old.driver.rotate(oldSecret)); // the alternate is AWSCURRENT: it must move too
    expect(credentials(old).username).toBe(ALTERNATE);

    // 1. The old declaration retains its users; 2. the new stack adopts both (one app: it synthesizes).
    expect(await oldStack.deploy(moveApp('retain', false))).toEqual({ status: 'UPDATE_COMPLETE' });
    const newStack = cfn.stack('OrdersV2');
    const both = moveApp('retain', true);
    expect(await newStack.deploy(both)).toEqual({ status: 'CREATE_COMPLETE' });
    const template = JSON.parse(fs.readFileSync(path.join(both, 'OrdersV2.template.json'), 'utf8'));
    const adopted = Object.entries<{ Type: string }>(template.Resources)
      .filter(([, r]) => r.Type === 'Custom::MqUser')
      .map(([id]) => newStack.physicalId(id))
      .sort();
    // Adopted, each with the settings it had before recorded for a rollback (`prior`, issue 14).
    expect(adopted).toEqual(
      [USERNAME, ALTERNATE]
        .sort()
        .map((name) => expect.stringMatching(new RegExp(`^${BROKER}/${name}\\?owner=adopted(&|$)`))),
    );
    // Clients now read the new stack's secret (README): the old one is no longer watched.
    old.checker.dispose();
    const [newSecret] = Object.values(newStack.physicalIdsOf('AWS::SecretsManager::Secret'));
    const moved = watch(newStack, newSecret);
    expectCompleted(await firstRotation(moved));

    // 3. The old declaration goes: its resources are dropped without a delete.
    const before = mq.calls.length;
    expect(await oldStack.deploy(moveApp('removed', true))).toEqual({ status: 'UPDATE_COMPLETE' });
    expect(mq.mqCalls(before, 'DeleteUser')).toEqual([]);
    expect(mq.rotationOf(oldSecret)).toBeUndefined();
    mq.advance(8 * DAY); // a window applies what the adoption and the new rotation sent
    expectCompleted(await moved.driver.rotate(newSecret));
    expect(credentials(moved).username).toBe(ALTERNATE);
    expect(
      ourUsers()
        .map((u) => u.username)
        .sort(),
    ).toEqual([USERNAME, ALTERNATE].sort());
    expectCheckerGreen(moved);
  });

  test('finding 5 (hostile): a MAINTENANCE_WINDOW rotation that runs while the broker reboots (user calls refused) holds and succeeds', async () => {
    const w = await deploy();
    mq.applyPendingChanges(BROKER);
    // A maintenance window's reboot is under way when the immediate rotation runs: Amazon MQ refuses user calls.
    mq.callsOutsideRunning = 'reject';
    mq.setBrokerState(BROKER, 'REBOOT_IN_PROGRESS');
    const r1 = await firstRotation(w);
    expectCompleted(r1); // not failed, no retry: the staged password is simply not sent yet
    expect(stagesOf(w, 'MQUSER_STAGED')!.stages).toEqual(['MQUSER_STAGED']);
    // Without mq:DescribeBroker (the MAINTENANCE_WINDOW role has none).
    expect(r1.steps.flatMap((step) => step.calls).filter((c) => c.operation === 'DescribeBroker')).toEqual([]);
    mq.setBrokerState(BROKER, 'RUNNING');
    mq.advance(8 * DAY);
    expectCompleted(await w.driver.rotate(w.secretArn)); // holds, sends the staged password now
    expect(stagesOf(w, 'MQUSER_STAGED')!.stages).toEqual(['MQUSER_SENT', 'MQUSER_STAGED']);
    // The next rotation runs during a window's reboot again: it cannot tell whether the password is applied.
    mq.advance(8 * DAY);
    mq.setBrokerState(BROKER, 'REBOOT_IN_PROGRESS');
    expectCompleted(await w.driver.rotate(w.secretArn));
    expect(credentials(w).username).toBe(USERNAME);
    mq.setBrokerState(BROKER, 'RUNNING');
    mq.applyPendingChanges(BROKER);
    expectCompleted(await w.driver.rotate(w.secretArn)); // promotes
    expect(credentials(w).username).toBe(ALTERNATE);
    expect(mq.mqCalls(0, 'RebootBroker')).toEqual([]);
    expectCheckerGreen(w);
  });
});

async function deleteUserOutOfBand(username: string, brokerId = BROKER) {
  const { DeleteUserCommand, MqClient } = await import('@aws-sdk/client-mq');
  await new MqClient({ ...mq.clientConfig(), maxAttempts: 1 }).send(
    new DeleteUserCommand({ BrokerId: brokerId, Username: username }),
  );
  mq.applyPendingChanges(brokerId);
}

function otherOf(username: string): string {
  return username.endsWith('_clone') ? username.slice(0, -'_clone'.length) : `${username}_clone`;
}

describe('nothing leaks', () => {
  test('no log line, response or failure reason of the rotation scenarios holds a password or secret string', () => {
    for (const generated of cfn.generatedSecrets) secrets.add(generated);
    const transcript = cfn.transcript.join('\n');
    expect(cfn.transcript.length).toBeGreaterThan(100);
    for (const value of secrets) {
      expect(transcript).not.toContain(value);
      const inner = JSON.stringify(value).slice(1, -1);
      expect(transcript).not.toContain(inner);
    }
    expect(figures.usersChangedUnexpectedly).toBe(0);
    expect(figures.checkerViolations).toBe(0);
    expect(figures.rebootsByMaintenanceWindowRotations).toBe(0);
    const summary = { ...figures, secretsChecked: secrets.size, perScenario };
    fs.writeFileSync(path.join(OUT, 'rotation.json'), `${JSON.stringify(summary, null, 2)}\n`);
    process.stdout.write(`rotation figures: ${JSON.stringify(figures)}\n`);
  });
});
