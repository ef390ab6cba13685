/**
 * The order in which jest starts the test files (`testSequencer` in jest.config.js): the longest first, so that no
 * worker is left with a long file at the end while the others idle, and so that the long files that mostly wait on
 * simulated services run while typecheck, lint and test:integ compute beside jest (`npm test`). Jest's own sequencer
 * knows a file's duration only from its cache of earlier runs on this machine, whatever the load was then; without it
 * (a fresh clone, CI) it goes by file size, which put the longest file, test/package.test.ts (266 lines, about a
 * minute), among the last to start. Here the files below start first, in this order (measured by
 * `npm run bench:test`, docs/RELIABILITY.md, "Test time"), then the rest by jest's cached duration, then by size;
 * files that failed in the last run still go first, as in jest's own sequencer.
 */
'use strict';
const path = require('path');
const Sequencer = require('@jest/test-sequencer').default;

/**
 * Seconds per file, rounded: the baseline of docs/RELIABILITY.md ("Test time", issue 17), reboot-waits as measured
 * alone after its change. The files not listed took less than 10 s. Only the order matters.
 */
const MEASURED_SECONDS = {
  'test/package.test.ts': 58,
  'test/reboot-waits.lifecycle.test.ts': 46,
  'test/rotation.lifecycle.test.ts': 29,
  'test/lifecycle.test.ts': 27,
  'test/findings.lifecycle.test.ts': 22,
  'test/example-app.test.ts': 16,
  'test/readme.test.ts': 15,
  'test/rotation.test.ts': 13,
  'test/rotation-handler.test.ts': 12,
  'test/mq-authorization-map.broker.test.ts': 11,
};
const ROOT = path.join(__dirname, '..', '..');

class LongestFirst extends Sequencer {
  sort(tests) {
    const measured = (test) => MEASURED_SECONDS[path.relative(ROOT, test.path).split(path.sep).join('/')] ?? 0;
    const cached = (test) => this.time(test) ?? 0;
    const size = (test) => test.context.hasteFS.getSize(test.path) ?? 0;
    return [...tests].sort(
      (a, b) =>
        Number(this.hasFailed(b)) - Number(this.hasFailed(a)) ||
        measured(b) - measured(a) ||
        cached(b) - cached(a) ||
        size(b) - size(a),
    );
  }
}

module.exports = LongestFirst;
