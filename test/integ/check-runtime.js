#!/usr/bin/env node
/**
 * The runtime promise on the peer floor: every Lambda function of the snapshot (ours and the Provider
 * framework's) runs on the newest Node.js runtime that this folder's aws-cdk-lib knows, the runtime cdk-nag's
 * AwsSolutions-L1 asks for. (cdk-nag itself cannot run here: docs/DESIGN.md, "Version support".)
 */
'use strict';
const fs = require('fs');
const path = require('path');
const { aws_lambda: lambda } = require('aws-cdk-lib');

const versions = lambda.Runtime.ALL.map((r) => /^nodejs(\d+)\.x$/.exec(r.name))
  .filter((m) => m !== null)
  .map((m) => Number(m[1]));
const newest = `nodejs${Math.max(...versions)}.x`;
const template = JSON.parse(
  fs.readFileSync(path.join(__dirname, 'integ.mq-user.ts.snapshot', 'MqUserInteg.template.json'), 'utf8'),
);
const functions = Object.entries(template.Resources).filter(([, r]) => r.Type === 'AWS::Lambda::Function');
const wrong = functions.filter(([, r]) => r.Properties.Runtime !== newest);
if (functions.length < 2 || wrong.length > 0) {
  for (const [id, r] of wrong) console.error(`check-runtime: ${id} runs on ${r.Properties.Runtime}, not ${newest}`);
  if (functions.length < 2) console.error(`check-runtime: expected at least 2 functions, found ${functions.length}`);
  process.exit(1);
}
const version = require(require.resolve('aws-cdk-lib/package.json', { paths: [__dirname] })).version;
console.log(
  `check-runtime: ${functions.length} functions on ${newest}, the newest runtime aws-cdk-lib ${version} knows`,
);
