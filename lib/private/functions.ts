import * as path from 'path';
import { Aws, Duration, Stack, aws_iam as iam, aws_lambda as lambda, aws_logs as logs } from 'aws-cdk-lib';
import { Construct } from 'constructs';
import type { MqUserProviderProps } from '../mq-user-provider';
import { acknowledgeNag } from './acknowledge';
import { STACK_ID_ENV } from './env';

/** The prebuilt handler bundles, shipped in the npm package (`npm run bundle` writes them). */
export const ASSETS = path.join(__dirname, '..', '..', 'assets');

/**
 * Every broker of the stack's account and region: CloudFormation deletes removed users in its cleanup phase,
 * after the policy has been updated, so a policy naming today's brokers would fail those deletes.
 */
export const BROKERS_OF_ACCOUNT = `arn:${Aws.PARTITION}:mq:${Aws.REGION}:${Aws.ACCOUNT_ID}:broker:*`;

/**
 * A role for Lambda whose only log permission is writing to `logGroup`; no managed policy. In a VPC it may
 * also manage the function's network interfaces, which Lambda needs to place it there.
 */
export function lambdaRole(
  scope: Construct,
  id: string,
  logGroup: logs.ILogGroup,
  settings: MqUserProviderProps,
): iam.Role {
  const role = new iam.Role(scope, id, { assumedBy: new iam.ServicePrincipal('lambda.amazonaws.com') });
  role.addToPrincipalPolicy(
    new iam.PolicyStatement({
      actions: ['logs:CreateLogStream', 'logs:PutLogEvents'],
      resources: [logGroup.logGroupArn],
    }),
  );
  if (settings.vpc) {
    // A policy of its own, so that the acknowledgement of its `Resource: *` covers this statement only, never a
    // statement someone adds to the role. A child of the role: the functions that use the role depend on it.
    const networkInterfaces = new iam.Policy(role, 'NetworkInterfacesPolicy', {
      statements: [
        new iam.PolicyStatement({
          actions: [
            'ec2:CreateNetworkInterface',
            'ec2:DescribeNetworkInterfaces',
            'ec2:DeleteNetworkInterface',
            'ec2:AssignPrivateIpAddresses',
            'ec2:UnassignPrivateIpAddresses',
          ],
          resources: ['*'],
        }),
      ],
      roles: [role],
    });
    acknowledgeNag(
      networkInterfaces,
      'AwsSolutions-IAM5[Resource::*]',
      'Only the five EC2 network-interface actions Lambda needs to place a function in a VPC: ' +
        'ec2:DescribeNetworkInterfaces supports no resource-level permissions, and the interfaces do not exist ' +
        'before Lambda creates them. This policy holds nothing else.',
    );
  }
  return role;
}

/**
 * Lets `role` read its own stack's status (is it rolling back?) and, with `listResources`, its resources (does
 * another resource of the stack hold a user?). In a nested stack also the status of the root stack, whose
 * rollback deletes the nested stack with a status of its own (`DELETE_IN_PROGRESS`).
 */
export function grantOwnStack(role: iam.Role, options: { listResources: boolean }): void {
  // DescribeStackResource: every event's proof that CloudFormation is working on it now (lambda/shared/proof.ts).
  const actions = ['cloudformation:DescribeStacks', 'cloudformation:DescribeStackResource'];
  // The user handler reads the stack's resources (who holds a user) and its events (what this operation did).
  if (options.listResources) actions.push('cloudformation:ListStackResources', 'cloudformation:DescribeStackEvents');
  role.addToPrincipalPolicy(new iam.PolicyStatement({ actions, resources: [Aws.STACK_ID] }));
  const root = rootStack(Stack.of(role));
  if (root !== Stack.of(role)) {
    // The root's ID is not known in the nested stack's template: its name is, and a stack's ARN is
    // stack/<name>/<uuid>. Only DescribeStacks, which reveals the root's status and outputs.
    const rootArn = `arn:${Aws.PARTITION}:cloudformation:${Aws.REGION}:${Aws.ACCOUNT_ID}:stack/${root.stackName}/*`;
    role.addToPrincipalPolicy(
      new iam.PolicyStatement({ actions: ['cloudformation:DescribeStacks'], resources: [rootArn] }),
    );
    acknowledgeNag(
      role,
      `AwsSolutions-IAM5[Resource::arn:<AWS::Partition>:cloudformation:<AWS::Region>:<AWS::AccountId>:stack/${root.stackName}/*]`,
      `Only cloudformation:DescribeStacks, only on the root stack ${root.stackName} of this nested stack (any ` +
        "generation of it: its ID is not known in the nested stack's template), to tell its rollback apart.",
    );
  }
}

function rootStack(stack: Stack): Stack {
  let current = stack;
  while (current.nestedStackParent) current = current.nestedStackParent;
  return current;
}

export interface HandlerOptions {
  readonly asset: string;
  readonly handler: string;
  readonly description: string;
  readonly role: iam.IRole;
  readonly logGroup: logs.ILogGroup;
  readonly timeout: Duration;
  readonly settings: MqUserProviderProps;
}

/**
 * The newest of the Node.js runtimes named in `names` (`nodejs24.x`, `nodejs26.x`, ...), by version number; other
 * families and unversioned names are ignored. `undefined` if there is none.
 */
export function newestNodeRuntime(names: readonly string[]): string | undefined {
  let newest: { name: string; version: number } | undefined;
  for (const name of names) {
    const match = /^nodejs(\d+)\.x$/.exec(name);
    if (!match) continue;
    const version = Number(match[1]);
    if (!newest || version > newest.version) newest = { name, version };
  }
  return newest?.name;
}

/**
 * The Node.js runtime of every function of ours: the newest that the installed aws-cdk-lib knows
 * (`Runtime.ALL`), which is the one cdk-nag's AwsSolutions-L1 asks for on that aws-cdk-lib. Not
 * `determineLatestNodeRuntime`: its per-region table lags behind (`nodejs22.x` on 2.253 while `nodejs24.x` is
 * known, `nodejs24.x` on 2.278 while `nodejs26.x` is), so L1 would flag every function (docs/DESIGN.md,
 * "Version support"). The bundles target Node.js 20, which every runtime that can be chosen here runs.
 */
export function nodeRuntime(): lambda.Runtime {
  const name = newestNodeRuntime(lambda.Runtime.ALL.map((runtime) => runtime.name));
  const named = lambda.Runtime.ALL.filter((known) => known.name === name);
  // The peer floor (2.253.1) knows nodejs24.x: no supported aws-cdk-lib reaches the last fallback.
  return named.find((known) => !known.isVariable) ?? named[0] ?? lambda.Runtime.NODEJS_24_X;
}

/**
 * Puts the Provider framework's own functions under `provider` (onEvent, and the waiter's isComplete and
 * onTimeout) on the runtime of ours: aws-cdk-lib gives them `determineLatestNodeRuntime`, which cdk-nag flags
 * wherever aws-cdk-lib knows a newer runtime. Their code is plain Node.js JavaScript that runs on every version.
 */
export function useNodeRuntimeOfOurs(provider: Construct): void {
  const runtime = nodeRuntime().name;
  for (const child of provider.node.findAll()) {
    if (
      child instanceof lambda.CfnFunction &&
      typeof child.runtime === 'string' &&
      child.runtime.startsWith('nodejs')
    ) {
      child.runtime = runtime;
    }
  }
}

/** One of our handler functions: the newest Node.js runtime (`nodeRuntime`) on arm64, with the stack's VPC settings. */
export function handlerFunction(scope: Construct, id: string, options: HandlerOptions): lambda.Function {
  return new lambda.Function(scope, id, {
    description: options.description,
    code: lambda.Code.fromAsset(path.join(ASSETS, options.asset)),
    handler: options.handler,
    runtime: nodeRuntime(),
    architecture: lambda.Architecture.ARM_64,
    memorySize: 256,
    timeout: options.timeout,
    role: options.role,
    logGroup: options.logGroup,
    vpc: options.settings.vpc,
    vpcSubnets: options.settings.vpcSubnets,
    securityGroups: options.settings.securityGroups,
    // The handlers refuse events of any other stack (the confused-deputy fence).
    environment: { [STACK_ID_ENV]: Aws.STACK_ID },
  });
}

/** The log retention every log group of ours gets. */
export function logRetention(settings: MqUserProviderProps): logs.RetentionDays {
  return settings.logRetention ?? logs.RetentionDays.ONE_YEAR;
}
