#!/usr/bin/env node
/**
 * Offline check of the DescribeUser assertions, with the code that would run them in AWS.
 *
 * integ-runner's verify mode compares templates only: it never runs an assertion. This script runs the
 * assertion Lambda handler that the snapshot ships (asset of the DeployAssert stack, from
 * @aws-cdk/integ-tests-alpha) on the `Custom::DeployAssert@SdkCallMQdescribeUser` resources of the committed
 * snapshot, with `@aws-sdk/client-mq` replaced by a stub that answers DescribeUser with canned responses, and
 * the CloudFormation response (an HTTPS PUT) captured in memory. Nothing calls AWS.
 *
 * It shows that the expectations accept the response Amazon MQ gives for a pending CREATE (the state right
 * after a deploy, before the broker reboots) and reject wrong groups, missing console access or another
 * pending change.
 */
'use strict';
const fs = require('fs');
const https = require('https');
const Module = require('module');
const path = require('path');
const { EventEmitter } = require('events');

const SNAPSHOT = path.join(__dirname, 'integ.mq-user.ts.snapshot');
const BROKER_ID = 'b-00000000-1111-2222-3333-444444444444';

// --- the stub SDK client: DescribeUser answers with whatever the current case sets -----------------------
let cannedResponses = {}; // username -> DescribeUser response
const seenCalls = [];
class MQClient {
  async send(command) {
    seenCalls.push({ command: command.constructor.name, input: command.input });
    const response = cannedResponses[command.input.Username];
    if (!response)
      throw Object.assign(new Error(`no canned response for ${command.input.Username}`), { name: 'NotFoundException' });
    return { $metadata: { httpStatusCode: 200 }, ...structuredClone(response) };
  }
}
class DescribeUserCommand {
  constructor(input) {
    this.input = input;
  }
}
const stubPath = path.join(__dirname, '__stub_client_mq__.js');
require.cache[stubPath] = Object.assign(new Module(stubPath), {
  filename: stubPath,
  loaded: true,
  exports: { MQClient, DescribeUserCommand },
});
const originalResolve = Module._resolveFilename;
Module._resolveFilename = function (request, ...rest) {
  return request === '@aws-sdk/client-mq' ? stubPath : originalResolve.call(this, request, ...rest);
};

// --- capture the handler's response to CloudFormation ---------------------------------------------------
let lastResponse;
https.request = (_options, callback) => {
  const req = new EventEmitter();
  let body = '';
  req.write = (chunk) => (body += chunk);
  req.end = () => {
    lastResponse = JSON.parse(body);
    setImmediate(() => callback({ statusCode: 200 }));
  };
  return req;
};

// --- the snapshot's assertion resources and handler -----------------------------------------------------
const assertTemplateFile = fs.readdirSync(SNAPSHOT).find((f) => /DeployAssert.*\.template\.json$/.test(f));
const assertTemplate = JSON.parse(fs.readFileSync(path.join(SNAPSHOT, assertTemplateFile), 'utf8'));
const calls = Object.entries(assertTemplate.Resources).filter(
  ([, r]) => r.Type === 'Custom::DeployAssert@SdkCallMQdescribeUser',
);
const handlerPath = (() => {
  const fn = Object.values(assertTemplate.Resources).find((r) => r.Type === 'AWS::Lambda::Function');
  const assets = JSON.parse(
    fs.readFileSync(path.join(SNAPSHOT, assertTemplateFile.replace('.template.json', '.assets.json')), 'utf8'),
  );
  const hash = fn.Properties.Code.S3Key.replace(/\.zip$/, '');
  return path.join(SNAPSHOT, assets.files[hash].source.path, fn.Properties.Handler.replace(/\.[^.]+$/, '.js'));
})();
const quietly = async (fn) => {
  const { log, info } = console;
  console.log = console.info = () => {};
  try {
    return await fn();
  } finally {
    Object.assign(console, { log, info });
  }
};
const { handler } = require(handlerPath);

/** The call's parameters with the stack imports replaced: BrokerId -> BROKER_ID, Username -> from `expected`. */
function resolveProperties(props) {
  const expectedUsername = JSON.parse(props.expected).$ObjectLike.Username;
  return {
    ...props,
    ServiceToken: 'arn:aws:lambda:us-east-1:111111111111:function:assert',
    parameters: { BrokerId: JSON.stringify(BROKER_ID), Username: JSON.stringify(expectedUsername) },
  };
}

async function runAssertion(logicalId, props) {
  lastResponse = undefined;
  const event = {
    RequestType: 'Create',
    ServiceToken: props.ServiceToken,
    ResponseURL: 'https://cloudformation-custom-resource-response.invalid/response',
    StackId: 'arn:aws:cloudformation:us-east-1:111111111111:stack/MqUserIntegAssert/1',
    RequestId: `req-${logicalId}`,
    LogicalResourceId: logicalId,
    ResourceType: 'Custom::DeployAssert@SdkCallMQdescribeUser',
    ResourceProperties: props,
  };
  const context = { getRemainingTimeInMillis: () => 60_000, logStreamName: 'offline' };
  await quietly(() => handler(event, context));
  if (!lastResponse) throw new Error('the handler sent no response');
  if (lastResponse.Status !== 'SUCCESS') return { status: 'error', message: lastResponse.Reason };
  return JSON.parse(lastResponse.Data.assertion);
}

// --- cases: DescribeUser responses (shapes from the Amazon MQ API reference) ----------------------------
const pendingCreate = (username, groups, consoleAccess) => ({
  BrokerId: BROKER_ID,
  Username: username,
  Pending: { PendingChange: 'CREATE', ConsoleAccess: consoleAccess, Groups: groups },
});
const cases = [
  {
    name: 'pending CREATE with the declared groups and console access',
    responses: {
      'integ-operator': pendingCreate('integ-operator', ['operators', 'orders-consumers'], true),
      'integ-billing': pendingCreate('integ-billing', ['billing'], false),
    },
    want: { 'integ-operator': 'success', 'integ-billing': 'success' },
  },
  {
    name: 'groups in another order, extra response fields',
    responses: {
      'integ-operator': {
        ...pendingCreate('integ-operator', ['orders-consumers', 'operators'], true),
        ReplicationUser: false,
      },
      'integ-billing': { ...pendingCreate('integ-billing', ['billing'], false), ReplicationUser: false },
    },
    want: { 'integ-operator': 'success', 'integ-billing': 'success' },
  },
  {
    name: 'a declared group missing',
    responses: {
      'integ-operator': pendingCreate('integ-operator', ['operators'], true),
      'integ-billing': pendingCreate('integ-billing', [], false),
    },
    want: { 'integ-operator': 'fail', 'integ-billing': 'fail' },
  },
  {
    name: 'console access not granted',
    responses: { 'integ-operator': pendingCreate('integ-operator', ['operators', 'orders-consumers'], false) },
    want: { 'integ-operator': 'fail' },
  },
  {
    name: 'a pending UPDATE instead of CREATE',
    responses: {
      'integ-operator': {
        ...pendingCreate('integ-operator', ['operators', 'orders-consumers'], true),
        Pending: { PendingChange: 'UPDATE', ConsoleAccess: true, Groups: ['operators', 'orders-consumers'] },
      },
    },
    want: { 'integ-operator': 'fail' },
  },
  {
    name: 'no pending change (the applied form, after a reboot): the test asserts the state right after deploy',
    responses: {
      'integ-operator': {
        BrokerId: BROKER_ID,
        Username: 'integ-operator',
        ConsoleAccess: true,
        Groups: ['operators', 'orders-consumers'],
      },
    },
    want: { 'integ-operator': 'fail' },
  },
];

(async () => {
  let passed = 0;
  let failed = 0;
  // The snapshot must hold one DescribeUser call per declared group of each user (see integ.mq-user.ts).
  const declared = { 'integ-operator': ['operators', 'orders-consumers'], 'integ-billing': ['billing'] };
  const found = {};
  for (const [, resource] of calls) {
    const expected = JSON.parse(resource.Properties.expected).$ObjectLike;
    (found[expected.Username] ??= []).push(...expected.Pending.$ObjectLike.Groups.$ArrayWith);
  }
  for (const username of Object.keys(found)) found[username].sort();
  if (JSON.stringify(found) !== JSON.stringify(declared)) {
    console.error(
      `DescribeUser assertions in ${assertTemplateFile}: groups ${JSON.stringify(found)}, expected ${JSON.stringify(declared)}`,
    );
    process.exit(1);
  }
  // A user's check fails when any of its DescribeUser assertions fails (any failure fails the integ test).
  for (const c of cases) {
    cannedResponses = c.responses;
    for (const [username, want] of Object.entries(c.want)) {
      const results = [];
      for (const [logicalId, resource] of calls) {
        const props = resolveProperties(resource.Properties);
        if (JSON.parse(props.parameters.Username) !== username) continue;
        seenCalls.length = 0;
        const result = await runAssertion(logicalId, props);
        const called =
          seenCalls.length === 1 &&
          seenCalls[0].input.BrokerId === BROKER_ID &&
          seenCalls[0].input.Username === username;
        results.push(called ? result : { status: 'error', message: `DescribeUser calls ${JSON.stringify(seenCalls)}` });
      }
      const got = results.every((r) => r.status === 'success')
        ? 'success'
        : results.some((r) => r.status === 'error')
          ? 'error'
          : 'fail';
      const ok = got === want;
      if (ok) passed++;
      else failed++;
      const detail = ok ? '' : ` (got ${got}: ${JSON.stringify(results)})`;
      console.log(
        `${ok ? 'ok  ' : 'FAIL'} ${c.name}: ${username} -> ${want}, ${results.length} DescribeUser assertions${detail}`,
      );
    }
  }
  console.log(`assertions: ${passed} passed, ${failed} failed`);
  process.exit(failed === 0 ? 0 : 1);
})().catch((e) => {
  console.error(e);
  process.exit(1);
});
