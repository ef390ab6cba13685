import { readFileSync } from 'fs';
import * as path from 'path';
import { App, aws_lambda as lambda } from 'aws-cdk-lib';
import { Template } from 'aws-cdk-lib/assertions';
import { BrokerStack } from '../bin/example-stacks';
import { newestNodeRuntime } from '../lib/private/functions';
import { findings, validate } from './fixtures/validation';

describe('newestNodeRuntime', () => {
  test.each<[string, string[], string | undefined]>([
    ['the highest version', ['nodejs20.x', 'nodejs24.x', 'nodejs22.x'], 'nodejs24.x'],
    ['by number, not as text', ['nodejs8.10', 'nodejs9.x', 'nodejs26.x', 'nodejs100.x'], 'nodejs100.x'],
    ['ignoring other families', ['python3.14', 'java25', 'nodejs22.x'], 'nodejs22.x'],
    ['ignoring the unversioned name', ['nodejs', 'nodejs18.x'], 'nodejs18.x'],
    ['undefined without any', ['python3.13', 'provided.al2023'], undefined],
  ])('picks %s', (_case, names, expected) => {
    expect(newestNodeRuntime(names)).toBe(expected);
  });
});

/** Every runtime of the app's Lambda functions, ours and the Provider framework's. */
function runtimesOf(app: App): string[] {
  return app.node
    .findAll()
    .filter((c): c is lambda.CfnFunction => c instanceof lambda.CfnFunction)
    .map((fn) => fn.runtime as string);
}

describe('the runtime of every function, ours and the Provider framework ones in our providers', () => {
  test('is the newest Node.js runtime this aws-cdk-lib knows', () => {
    const app = new App();
    const stack = new BrokerStack(app, 'MqUserExample');
    const newest = newestNodeRuntime(lambda.Runtime.ALL.map((r) => r.name));
    const runtimes = runtimesOf(app);
    // Handler, rotation, reboot onEvent and isComplete; the frameworks' onEvent (2), isComplete and onTimeout.
    expect(runtimes.length).toBeGreaterThanOrEqual(8);
    expect(new Set(runtimes)).toEqual(new Set([newest]));
    Template.fromStack(stack).allResourcesProperties('AWS::Lambda::Function', { Runtime: newest });
  });

  test('follows an aws-cdk-lib that knows a newer runtime, and cdk-nag finds nothing (issue 17, AwsSolutions-L1)', () => {
    // What aws-cdk-lib 2.278 does: it knows nodejs26.x while its per-region "latest" is still nodejs24.x.
    const future = new lambda.Runtime('nodejs26.x', lambda.RuntimeFamily.NODEJS);
    try {
      const { report, error } = validate((app) => new BrokerStack(app, 'MqUserExample'), true);
      expect(error).toBeUndefined();
      expect(findings(report)).toEqual([]);
      const app = new App();
      new BrokerStack(app, 'MqUserExample');
      expect(new Set(runtimesOf(app))).toEqual(new Set(['nodejs26.x']));
    } finally {
      lambda.Runtime.ALL.splice(lambda.Runtime.ALL.indexOf(future), 1);
    }
  });

  test('runs the bundles on every runtime that can be chosen: they target at most Node.js 24, the floor’s newest', () => {
    const scripts = JSON.parse(readFileSync(path.join(__dirname, '..', 'package.json'), 'utf8')).scripts;
    const target = /--target=node(\d+)\b/.exec(scripts.bundle);
    expect(target).not.toBeNull();
    // aws-cdk-lib 2.253.1 (the peer floor) knows nodejs24.x at most, so nothing older can be chosen.
    expect(Number(target![1])).toBeLessThanOrEqual(24);
  });
});
