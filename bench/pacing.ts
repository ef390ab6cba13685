/**
 * `npm run bench:pacing [-- --write]`: how the handlers' backoff after throttling (429) shares Amazon MQ's
 * account-wide token bucket (documented: 100 requests, refilling at 15 per second) among many concurrent events,
 * next to the backoffs a user would otherwise get. A discrete-event simulation, in seconds of CPU: N events start
 * within one second, each makes its calls one after the other (30 ms each), a refused call takes no token and
 * sleeps as the backoff says. The handlers' backoff is the production `throttleBackoffMs` of
 * lambda/shared/retry.ts with its production timings, fed the way `withRetry` feeds it (the last throttling delay of
 * the invocation carries over to its next call). `npm run bench:deploy` measures the same through the bundled
 * handlers and the emulators, for N = 250 only; this shows where the figures move with N.
 */
import * as path from 'node:path';
import { retryTiming, throttleBackoffMs } from '../lambda/shared/retry';
import { writeBlock } from './doc';

const BUCKET = { capacity: 100, refillPerSecond: 15 };
const CALL_SECONDS = 0.03;
const SEEDS = 20;

/** A backoff: the delay in seconds after a refused call, given what this event's earlier refusals left. */
interface Backoff {
  readonly name: string;
  /** `state.previous`: the last throttling delay of the event (ms); `state.attempt`: refusals of this call. */
  delay(state: { previous?: number; attempt: number }): number;
}

const BACKOFFS: Backoff[] = [
  {
    name: 'cdk-mq-user (decorrelated jitter: first 4 to 10 s, then up to 3 times the last, at most 12 s)',
    delay: (state) => (state.previous = throttleBackoffMs(state.previous)) / 1000,
  },
  {
    name: 'decorrelated jitter from 3 s (first up to 9 s), at most 20 s (cdk-mq-user until 2026-12-07)',
    delay: (state) =>
      (state.previous = withTiming(
        { throttleBaseDelayMs: 3_000, throttleFirstMaxDelayMs: 9_000, throttleMaxDelayMs: 20_000 },
        () => throttleBackoffMs(state.previous),
      )) / 1000,
  },
  {
    // cdk-mq-user before 2026-12-07's pacing, and what an SDK-style retry does.
    name: 'full jitter, 250 ms doubling to 8 s (cdk-mq-user before that)',
    delay: (state) => Math.random() * Math.min(8, 0.25 * 2 ** (state.attempt - 1)),
  },
];

function withTiming<T>(timing: Partial<typeof retryTiming>, run: () => T): T {
  const saved = { ...retryTiming };
  Object.assign(retryTiming, timing);
  try {
    return run();
  } finally {
    Object.assign(retryTiming, saved);
  }
}

/** A small seeded generator, so that every run prints the same figures. */
function seeded(seed: number): () => number {
  let s = seed * 7919 + 1;
  return () => {
    s = (s * 1103515245 + 12345) % 2147483648;
    return s / 2147483648;
  };
}

interface Outcome {
  readonly refusedPerAnswered: number;
  readonly seconds: number;
  readonly floor: number;
}

function simulate(events: number, callsPerEvent: number, backoff: Backoff, seed: number): Outcome {
  const random = seeded(seed);
  const realRandom = Math.random;
  Math.random = random;
  try {
    let tokens = BUCKET.capacity;
    let last = 0;
    const take = (t: number) => {
      tokens = Math.min(BUCKET.capacity, tokens + (t - last) * BUCKET.refillPerSecond);
      last = t;
      if (tokens < 1) return false;
      tokens -= 1;
      return true;
    };
    const state = Array.from({ length: events }, () => ({
      done: 0,
      attempt: 0,
      previous: undefined as number | undefined,
    }));
    // [time, event], kept sorted by time (small N: a sorted insert is enough).
    const queue: Array<[number, number]> = state.map((_, i) => [random(), i] as [number, number]);
    queue.sort((a, b) => a[0] - b[0]);
    const schedule = (at: number, event: number) => {
      let i = queue.length;
      while (i > 0 && queue[i - 1][0] > at) i--;
      queue.splice(i, 0, [at, event]);
    };
    let refused = 0;
    let answered = 0;
    let end = 0;
    while (queue.length > 0) {
      const [t, i] = queue.shift()!;
      const event = state[i];
      if (take(t)) {
        answered++;
        event.done++;
        event.attempt = 0;
        if (event.done < callsPerEvent) schedule(t + CALL_SECONDS, i);
        else end = Math.max(end, t + CALL_SECONDS);
      } else {
        refused++;
        event.attempt++;
        schedule(t + backoff.delay(event), i);
      }
    }
    return {
      refusedPerAnswered: refused / answered,
      seconds: end,
      floor: Math.max(0, (events * callsPerEvent - BUCKET.capacity) / BUCKET.refillPerSecond),
    };
  } finally {
    Math.random = realRandom;
  }
}

function main(): void {
  const started = performance.now();
  const rows: string[] = [];
  for (const events of [100, 250, 400]) {
    for (const callsPerEvent of [1, 2, 3]) {
      const cells = BACKOFFS.map((backoff) => {
        const runs = Array.from({ length: SEEDS }, (_, seed) => simulate(events, callsPerEvent, backoff, seed + 1));
        const mean = (pick: (o: Outcome) => number) => runs.reduce((sum, o) => sum + pick(o), 0) / runs.length;
        const worst = Math.max(...runs.map((o) => o.seconds));
        return `${mean((o) => o.refusedPerAnswered).toFixed(2)} · ${mean((o) => o.seconds).toFixed(1)} s (worst ${worst.toFixed(1)} s)`;
      });
      const floor = Math.max(0, (events * callsPerEvent - BUCKET.capacity) / BUCKET.refillPerSecond);
      rows.push(`| ${events} | ${callsPerEvent} | ${floor.toFixed(1)} s | ${cells.join(' | ')} |`);
    }
  }
  const text = [
    '## Sharing the token bucket: backoffs after a 429, simulated',
    '',
    `Produced by \`npm run bench:pacing -- --write\` in ${((performance.now() - started) / 1000).toFixed(1)} s ` +
      `(a simulation: no handler runs). N events start within one second, each makes its Amazon MQ calls one after the ` +
      `other (${CALL_SECONDS * 1000} ms each); the bucket holds ${BUCKET.capacity} requests and refills ` +
      `${BUCKET.refillPerSecond} per second; a refused call takes no token and sleeps as its backoff says. Each cell: ` +
      `refused calls per answered call · mean wall time over ${SEEDS} seeded runs (the slowest run). The floor is the ` +
      'least time the bucket allows. The first column is the production `throttleBackoffMs` with its production ' +
      'timings; 1 call per event is an update with nothing to write or a delete, 2 an update, 3 a create.',
    '',
    `| events | calls per event | floor | ${BACKOFFS.map((b) => b.name).join(' | ')} |`,
    `| --- | --- | --- | ${BACKOFFS.map(() => '---').join(' | ')} |`,
    ...rows,
  ].join('\n');
  console.log(text);
  if (process.argv.includes('--write')) writeBlock(path.join(__dirname, '..', 'docs', 'BENCHMARKS.md'), 'pacing', text);
}

main();
