/**
 * `npm run bench:deploy [-- --n 250] [--write]`: what a deploy of MqUsers asks of Amazon MQ, and how long it takes under
 * Amazon MQ's account-wide token bucket (documented: 100 requests, refilling at 15 per second).
 *
 * The bundled handlers run against the local fake Amazon MQ and the CloudFormation emulator of the lifecycle
 * tests (test/support), which run custom resources concurrently as CloudFormation does. Nothing calls AWS.
 * Prints a markdown table: MQ calls per event (exact, one user deployed alone), then the totals and wall time of
 * N users created, updated, left unchanged and destroyed, next to the floor the token bucket sets for that many
 * calls and next to what the alternatives would call. `--write` puts it into docs/BENCHMARKS.md.
 */
import * as os from 'node:os';
import * as path from 'node:path';
import { type CallRecord } from '../test/support/mq-endpoint';
import { writeDeployBlock } from './doc';
import { BROKER, MQ_OPERATIONS, startBenchDoubles } from './doubles';

const BUCKET = { capacity: 100, refillPerSecond: 15 };

interface Phase {
  readonly name: string;
  readonly events: number;
  readonly calls: CallRecord[];
  /** CloudFormation reads of the handlers (the proof, stack status, resources, history), by operation. */
  readonly cloudFormation: string[];
  readonly refused: number;
  readonly seconds: number;
  readonly status: string;
  /** Calls of our functions: onEvent, and the isComplete the Provider framework's waiter makes after each event. */
  readonly invocations: number;
}

async function main(): Promise<void> {
  const n = Number(argValue('--n') ?? 250);
  const started = performance.now();
  const { mq, cfn, seed, synth, stop } = await startBenchDoubles();
  const app = (stackName: string, users: number, groups: string[], adoptExisting = false) =>
    synth(
      stackName,
      Array.from({ length: users }, (_, i) => `user-${i}`),
      groups,
      adoptExisting,
    );
  try {
    const measure = async (name: string, events: number, run: () => Promise<{ status: string }>) => {
      const from = mq.calls.length;
      const cfnFrom = cfn.calls.length;
      const invocationsBefore = cfn.invocations.length + cfn.isCompleteCalls;
      const started = performance.now();
      const result = await run();
      const seconds = (performance.now() - started) / 1000;
      const mqCalls = mq.calls.slice(from).filter((c) => MQ_OPERATIONS.includes(c.operation));
      // A call the bucket refused (429) took no token: the floor counts the calls that got through.
      const calls = mqCalls.filter((c) => c.status !== 429);
      mq.applyPendingChanges(BROKER); // the broker reboots between phases, as MqBrokerReboot would
      const cloudFormation = cfn.calls.slice(cfnFrom).map((c) => c.operation);
      const invocations = cfn.invocations.length + cfn.isCompleteCalls - invocationsBefore;
      return {
        name,
        events,
        calls,
        cloudFormation,
        refused: mqCalls.length - calls.length,
        seconds,
        status: result.status,
        invocations,
      };
    };

    // Per event, exact: one user, no throttle.
    const single = cfn.stack('Single');
    const perEvent = [
      await measure('create', 1, () => single.deploy(app('Single', 1, ['a-group']))),
      await measure('update (groups)', 1, () => single.deploy(app('Single', 1, ['b-group']))),
      await measure('update (no change reaches the broker)', 1, () =>
        single.deploy(app('Single', 1, ['b-group'], true)),
      ),
      await measure('delete', 1, () => single.destroy()),
    ];

    // N users under the token bucket.
    mq.reset();
    seed();
    mq.throttle = BUCKET;
    const many = cfn.stack('Many');
    const phases: Phase[] = [];
    const pause = async () => new Promise((resolve) => setTimeout(resolve, 8_000)); // refill the bucket between phases
    phases.push(await measure(`create ${n}`, n, () => many.deploy(app('Many', n, ['a-group']))));
    await pause();
    phases.push(await measure(`update ${n} (groups)`, n, () => many.deploy(app('Many', n, ['b-group']))));
    await pause();
    phases.push(
      await measure(`update ${n} (adoptExisting only)`, n, () => many.deploy(app('Many', n, ['b-group'], true))),
    );
    await pause();
    phases.push(await measure(`destroy ${n}`, n, () => many.destroy()));

    const text = report(perEvent, phases, n, mq.rateLimited, (performance.now() - started) / 1000);
    console.log(text);
    if (process.argv.includes('--write')) writeDeployBlock(path.join(__dirname, '..', 'docs', 'BENCHMARKS.md'), text);
  } finally {
    await stop();
  }
}

function report(perEvent: Phase[], phases: Phase[], n: number, throttled: number, seconds: number): string {
  const byOperation = (calls: CallRecord[]) =>
    MQ_OPERATIONS.map((op) => [op, calls.filter((c) => c.operation === op).length] as const)
      .filter(([, count]) => count > 0)
      .map(([op, count]) => `${op} ${count}`)
      .join(', ') || 'none';
  const cfnByOperation = (operations: string[]) =>
    [...new Set(operations)]
      .sort()
      .map((op) => `${op} ${operations.filter((o) => o === op).length}`)
      .join(', ') || 'none';
  // Every call takes a token; the bucket starts full: the fastest possible phase.
  const floor = (calls: number) => Math.max(0, (calls - BUCKET.capacity) / BUCKET.refillPerSecond);
  const lines = [
    '## Deploying: Amazon MQ calls and the token bucket',
    '',
    `Produced by \`npm run bench:deploy -- --write\` on ${new Date().toISOString().slice(0, 10)} in ${seconds.toFixed(0)} s. ` +
      `Machine: ${os.cpus().length} × ${os.cpus()[0]?.model.trim()}, Node.js ${process.version}.`,
    '',
    'The bundled handlers deploy MqUsers through the CloudFormation emulator of the lifecycle tests (custom',
    'resources run concurrently, as CloudFormation runs them) against the local fake Amazon MQ, which enforces',
    "Amazon MQ's documented account-wide token bucket in the second part. Between phases the fake broker applies",
    'the pending changes (as a reboot would) and the bucket refills. The floor is the least time the bucket allows',
    'for the calls that got through: (calls − 100) / 15 s; a call refused with 429 takes no token. AwsCustomResource',
    'makes one SDK call per event (and none for an unchanged template), so its floor is that of N calls; it',
    'checks nothing first (the broker, an existing user) and, unlike MqUser, puts the password in the template.',
    'Every MqUser event first proves itself with one CloudFormation read (DescribeStackResource); the emulator',
    "answers CloudFormation's reads without throttling (CloudFormation's own API rate limits are not modelled).",
    '',
    '### Amazon MQ calls per event (one user, no throttling)',
    '',
    '| event | MQ calls | which | CloudFormation reads (the proof is DescribeStackResource) | calls of our functions (onEvent + isComplete) | wall time | outcome | AwsCustomResource (one SDK call per event) |',
    '| --- | --- | --- | --- | --- | --- | --- | --- |',
    ...perEvent.map(
      // AwsCustomResource sends its one call per event; an unchanged template sends it no event at all.
      (p) =>
        `| ${p.name} | ${p.calls.length} | ${byOperation(p.calls)} | ${cfnByOperation(p.cloudFormation)} | ${p.invocations} | ` +
        `${(p.seconds * 1000).toFixed(0)} ms | ${p.status} | ${p.name.includes('no change') ? 0 : 1} |`,
    ),
    '',
    `### ${n} users against the token bucket (${BUCKET.capacity} requests, ${BUCKET.refillPerSecond}/s)`,
    '',
    '| phase | MQ calls answered | per user | refused (429, retried) | refused per answered | CloudFormation reads per user | wall time | token-bucket floor for these calls | wall time / floor | floor for AwsCustomResource (N calls) | outcome |',
    '| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |',
    ...phases.map(
      (p) =>
        `| ${p.name} | ${p.calls.length} | ${(p.calls.length / p.events).toFixed(2)} | ${p.refused} | ` +
        `${(p.refused / Math.max(1, p.calls.length)).toFixed(2)} | ${(p.cloudFormation.length / p.events).toFixed(2)} | ` +
        `${p.seconds.toFixed(1)} s | ${floor(p.calls.length).toFixed(1)} s | ` +
        `${(p.seconds / Math.max(0.1, floor(p.calls.length))).toFixed(2)} | ${floor(p.events).toFixed(1)} s | ${p.status} |`,
    ),
    '',
    `Calls refused by the bucket over the whole run: ${throttled}.`,
  ];
  return lines.join('\n');
}

function argValue(name: string): string | undefined {
  const i = process.argv.indexOf(name);
  return i >= 0 ? process.argv[i + 1] : undefined;
}

main().catch((error) => {
  console.error(error);
  process.exit(1);
});
