#!/usr/bin/env node
/**
 * Run by `cdk.json` before the example app: bundles the handlers (`npm run bundle`) when a bundle is missing,
 * as on a fresh clone after `npm ci` (the package has no install script that would build them). An existing
 * bundle is left alone: `npm test` and `npm run bundle` refresh it after a change in `lambda/`, and a bundle
 * rewritten while tests read it could be read half-written.
 */
'use strict';
const { execSync } = require('child_process');
const fs = require('fs');
const path = require('path');

const root = path.resolve(__dirname, '..');
const bundles = ['mq-user-handler', 'mq-broker-reboot-handler', 'mq-user-rotation'].map((name) =>
  path.join(root, 'assets', name, 'index.js'),
);
if (bundles.some((bundle) => !fs.existsSync(bundle))) {
  execSync('npm run --silent bundle', { cwd: root, stdio: ['ignore', 'ignore', 'inherit'] });
}
