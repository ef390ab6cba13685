import {
  Aws,
  Fn,
  aws_lambda as lambda,
  aws_logs as logs,
  aws_stepfunctions as sfn,
  custom_resources as cr,
} from 'aws-cdk-lib';
import { Construct } from 'constructs';
import { INVOKE_REASON, acknowledgeNag, functionVersionsFinding } from './acknowledge';

/**
 * The log group of a Provider framework waiter (Step Functions). Step Functions delivers logs to groups under
 * `/aws/vendedlogs/` without growing a resource policy. The group is retained with the other logs, so its name holds
 * the stack ID's unique part: a stack destroyed and deployed again under the same name gets a new group rather than
 * "already exists".
 */
export function waiterLogGroup(scope: Construct, id: string, prefix: string, retention: logs.RetentionDays) {
  const stackUuid = Fn.select(2, Fn.split('/', Aws.STACK_ID));
  return new logs.LogGroup(scope, id, {
    retention,
    logGroupName: `/aws/vendedlogs/states/${prefix}-${stackUuid}`,
  });
}

/** The waiter's logging options: every state, no execution data (the events hold properties, never a password). */
export function waiterLogOptions(destination: logs.ILogGroup): sfn.LogOptions {
  return { destination, level: sfn.LogLevel.ALL, includeExecutionData: false };
}

/** Acknowledges the cdk-nag findings of what the Provider framework writes for its waiter, and nothing else. */
export function acknowledgeWaiter(provider: cr.Provider, purpose: string): void {
  const waiter = provider.node.findChild('waiter-state-machine');
  for (const fn of ['framework-isComplete', 'framework-onTimeout']) {
    const frameworkFunction = provider.node.findChild(fn) as lambda.IFunction;
    acknowledgeNag(waiter, functionVersionsFinding(frameworkFunction), INVOKE_REASON);
  }
  acknowledgeNag(
    waiter,
    'AwsSolutions-IAM5[Resource::*]',
    "Only the waiter state machine's own role, written by the Provider framework: the CloudWatch Logs delivery " +
      'actions Step Functions needs for execution logs (logs:CreateLogDelivery and friends), which support no ' +
      'resource-level permissions.',
  );
  acknowledgeNag(
    waiter,
    'AwsSolutions-SF2',
    `The waiter only polls one Lambda function ${purpose}; its executions are logged at level ALL. ` +
      'X-Ray would add trace writes on Resource * for no diagnostic gain.',
  );
}
