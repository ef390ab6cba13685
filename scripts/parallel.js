#!/usr/bin/env node
/**
 * Runs npm scripts at the same time and fails if any fails: `node scripts/parallel.js typecheck lint`. Each
 * script's output is printed in one piece when it ends, so outputs never interleave. `npm test` runs jest and its
 * other checks this way once the bundles and the jsii build they need exist: on two cores one of them waits on the
 * network, a child process or a simulated service's timer while another computes (docs/RELIABILITY.md, "Test time").
 */
'use strict';
const { spawn } = require('child_process');

const scripts = process.argv.slice(2);
if (scripts.length === 0) {
  console.error('usage: node scripts/parallel.js <npm script> [<npm script> ...]');
  process.exit(2);
}

const runs = scripts.map(
  (script) =>
    new Promise((resolve) => {
      const started = Date.now();
      // Not `npm run --silent`: npm hands its flags to the script as npm_config_* variables, and a silent
      // npm_config_loglevel would reach every npm the script starts (test/package.test.ts reads npm's output).
      const child = spawn('npm', ['run', script], { stdio: ['ignore', 'pipe', 'pipe'] });
      const output = [];
      child.stdout.on('data', (chunk) => output.push(chunk));
      child.stderr.on('data', (chunk) => output.push(chunk));
      child.on('close', (code, signal) => {
        const seconds = ((Date.now() - started) / 1000).toFixed(1);
        const status = code === 0 ? 'ok' : `FAILED (${signal ?? `exit ${code}`})`;
        process.stdout.write(`\n> npm run ${script}: ${status} in ${seconds} s\n${Buffer.concat(output).toString()}`);
        resolve(code === 0);
      });
    }),
);

Promise.all(runs).then((results) => {
  const failed = scripts.filter((_, i) => !results[i]);
  if (failed.length > 0) {
    console.error(`\nfailed: ${failed.join(', ')}`);
    process.exit(1);
  }
});
