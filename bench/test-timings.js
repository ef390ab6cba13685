#!/usr/bin/env node
/**
 * Where the time of `npm test` goes: runs each step of the `test:all` script one after the other (the way
 * `npm test` does, with its environment), prints the wall time of each, and for jest the time of each test
 * file (from `jest --json`, which the `test:jest` script is asked for through `BENCH_JEST_ARGS`). Prints the load
 * average before and after: on a shared machine the figures only mean something next to it. Usage:
 * `npm run bench:test` (it runs the whole suite once: mind the CPU), or `npm run bench:test -- 'npm run jsii'`
 * for only the steps that start with those arguments.
 */
'use strict';
const { spawnSync } = require('child_process');
const fs = require('fs');
const os = require('os');
const path = require('path');

const root = path.join(__dirname, '..');
const pkg = JSON.parse(fs.readFileSync(path.join(root, 'package.json'), 'utf8'));
const env = {
  ...process.env,
  // What `npm run` adds: the steps call jest, tsc and others by name.
  PATH: `${path.join(root, 'node_modules', '.bin')}${path.delimiter}${process.env.PATH}`,
  JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION: '20',
  JSII_SILENCE_WARNING_DEPRECATED_NODE_VERSION: '1',
  AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED: 'true',
};
const load = () =>
  os
    .loadavg()
    .map((l) => l.toFixed(2))
    .join(' ');
const jestJson = path.join(root, '.test-out', 'jest-timings.json');
fs.mkdirSync(path.dirname(jestJson), { recursive: true });
fs.rmSync(jestJson, { force: true });
// `test:jest` is `jest $BENCH_JEST_ARGS`, wherever test:all runs it (scripts/parallel.js).
env.BENCH_JEST_ARGS = `--json --outputFile=${jestJson}`;

/** The steps of `test:all`: `a && b && c` (a step that is jest itself also gets the JSON report). */
const only = process.argv.slice(2);
const steps = pkg.scripts['test:all']
  .split(' && ')
  .map((step) => step.trim())
  .filter((step) => only.length === 0 || only.some((prefix) => step.startsWith(prefix)));
console.log(`cores ${os.cpus().length}, load average before: ${load()}`);
const started = Date.now();
const rows = [];
let failed = false;
for (const step of steps) {
  const command = /^jest\b/.test(step) ? `${step} --json --outputFile=${jestJson}` : step;
  const t0 = Date.now();
  const result = spawnSync(command, {
    cwd: root,
    env,
    shell: true,
    stdio: ['ignore', 'pipe', 'pipe'],
    maxBuffer: 256 * 1024 * 1024,
  });
  const seconds = (Date.now() - t0) / 1000;
  rows.push([step, seconds, result.status]);
  console.log(`${seconds.toFixed(1).padStart(7)} s  ${result.status === 0 ? 'ok  ' : 'FAIL'}  ${step}`);
  // scripts/parallel.js says how long each of its scripts took.
  for (const line of result.stdout
    .toString()
    .split('\n')
    .filter((l) => /^> npm run .*: (ok|FAILED)/.test(l))) {
    console.log(`           ${line.slice(2)}`);
  }
  if (result.status !== 0) {
    failed = true;
    process.stderr.write(result.stderr.toString().slice(-4000));
    break;
  }
}
console.log(`${((Date.now() - started) / 1000).toFixed(1).padStart(7)} s  total; load average after: ${load()}`);

if (fs.existsSync(jestJson)) {
  const report = JSON.parse(fs.readFileSync(jestJson, 'utf8'));
  const files = report.testResults
    .map((r) => ({
      file: path.relative(root, r.name),
      seconds: (r.endTime - r.startTime) / 1000,
      tests: r.assertionResults.length,
    }))
    .sort((a, b) => b.seconds - a.seconds);
  console.log(
    `\njest: ${report.numTotalTests} tests in ${files.length} files; time per file (workers run in parallel):`,
  );
  for (const f of files)
    console.log(`${f.seconds.toFixed(1).padStart(7)} s  ${String(f.tests).padStart(4)} tests  ${f.file}`);
  const sum = files.reduce((s, f) => s + f.seconds, 0);
  console.log(`${sum.toFixed(1).padStart(7)} s  sum of the files`);
}
process.exit(failed ? 1 : 0);
