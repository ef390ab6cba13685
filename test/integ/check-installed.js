#!/usr/bin/env node
/**
 * Guards the integ test against a stale or wrong copy of the library.
 *
 * `cdk-mq-user` is installed here as a packed copy of the repository root (`file:../..` with
 * `install-links=true`), so that it resolves aws-cdk-lib from this folder's node_modules (the version
 * integ-runner can read) instead of the root's. This script checks that:
 * - the root was built (dist/ and the handler bundle exist),
 * - the copy in node_modules matches the root's build (else: `npm ci` here again),
 * - the library and this app load one and the same aws-cdk-lib.
 */
'use strict';
const crypto = require('crypto');
const fs = require('fs');
const path = require('path');

const root = path.resolve(__dirname, '..', '..');
const installed = path.join(__dirname, 'node_modules', 'cdk-mq-user');
const problems = [];

function shipped(dir) {
  const files = [];
  const distDir = path.join(dir, 'dist');
  const walk = (d) => {
    for (const e of fs.readdirSync(d, { withFileTypes: true })) {
      const p = path.join(d, e.name);
      if (e.isDirectory()) walk(p);
      else if (/\.(js|d\.ts)$/.test(e.name)) files.push(path.relative(dir, p));
    }
  };
  if (fs.existsSync(distDir)) walk(distDir);
  const assetsDir = path.join(dir, 'assets');
  if (fs.existsSync(assetsDir)) {
    for (const a of fs.readdirSync(assetsDir)) {
      if (fs.existsSync(path.join(assetsDir, a, 'index.js'))) files.push(path.join('assets', a, 'index.js'));
    }
  }
  return files.sort();
}
const digest = (file) => crypto.createHash('sha256').update(fs.readFileSync(file)).digest('hex');

const rootFiles = shipped(root);
if (!rootFiles.includes(path.join('dist', 'index.js')) || !rootFiles.some((f) => f.startsWith('assets'))) {
  problems.push(`the library is not built: run \`npm run build\` (or \`npm ci\`) in ${root} first`);
} else if (!fs.existsSync(installed)) {
  problems.push('cdk-mq-user is not installed here: run `npm ci` in this folder');
} else {
  const copyFiles = shipped(installed);
  const differ = [...new Set([...rootFiles, ...copyFiles])].filter(
    (f) =>
      !rootFiles.includes(f) ||
      !copyFiles.includes(f) ||
      digest(path.join(root, f)) !== digest(path.join(installed, f)),
  );
  if (differ.length > 0) {
    problems.push(
      `node_modules/cdk-mq-user differs from the root's build (${differ.slice(0, 5).join(', ')}${differ.length > 5 ? ', ...' : ''}): ` +
        'run `npm ci` in this folder again',
    );
  }
  const appLib = require.resolve('aws-cdk-lib/package.json', { paths: [__dirname] });
  const libLib = require.resolve('aws-cdk-lib/package.json', { paths: [path.join(installed, 'dist')] });
  if (appLib !== libLib) {
    problems.push(`two copies of aws-cdk-lib: the app loads ${appLib}, cdk-mq-user loads ${libLib}`);
  }
}

if (problems.length > 0) {
  for (const p of problems) console.error(`check-installed: ${p}`);
  process.exit(1);
}
const version = require(require.resolve('aws-cdk-lib/package.json', { paths: [__dirname] })).version;
console.log(
  `check-installed: cdk-mq-user matches the root's build (${rootFiles.length} files); one aws-cdk-lib ${version}`,
);
