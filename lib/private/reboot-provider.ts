import { Duration, Stack, aws_iam as iam, aws_logs as logs, custom_resources as cr } from 'aws-cdk-lib';
import { Construct } from 'constructs';
import { MqUserProvider } from '../mq-user-provider';
import { BROKERS_OF_ACCOUNT, describeOwnStack, handlerFunction, lambdaRole, logRetention } from './functions';

// The construct ID under the stack: the service token of every deployed reboot derives from it. Never rename.
const PROVIDER_ID = 'CdkMqUserRebootProvider';

/**
 * The functions behind `Custom::MqBrokerReboot`: an onEvent handler that starts the reboot and an isComplete
 * handler that the Provider framework's waiter polls, so no Lambda stays open during the five-minute reboot.
 * Exists only in stacks that opt in; takes its settings from the stack's MqUserProvider.
 */
export class MqBrokerRebootProvider extends Construct {
  static getOrCreate(scope: Construct): MqBrokerRebootProvider {
    const stack = Stack.of(scope);
    const existing = stack.node.tryFindChild(PROVIDER_ID);
    return existing instanceof MqBrokerRebootProvider ? existing : new MqBrokerRebootProvider(stack, PROVIDER_ID);
  }

  readonly serviceToken: string;

  private constructor(scope: Stack, id: string) {
    super(scope, id);
    const settings = MqUserProvider.getOrCreate(scope)._settings;
    const retention = logRetention(settings);

    const logGroup = new logs.LogGroup(this, 'HandlerLogs', { retention });
    const role = lambdaRole(this, 'HandlerRole', logGroup);
    role.addToPrincipalPolicy(
      new iam.PolicyStatement({
        actions: ['mq:RebootBroker', 'mq:DescribeBroker', 'mq:ListUsers'],
        resources: [BROKERS_OF_ACCOUNT],
      }),
    );
    role.addToPrincipalPolicy(describeOwnStack());
    const common = { asset: 'mq-broker-reboot-handler', role, logGroup, timeout: Duration.minutes(1), settings };
    const onEvent = handlerFunction(this, 'OnEventHandler', {
      ...common,
      handler: 'index.onEvent',
      description: 'cdk-mq-user: reboots an Amazon MQ broker to apply its users\' pending changes',
    });
    const isComplete = handlerFunction(this, 'IsCompleteHandler', {
      ...common,
      handler: 'index.isComplete',
      description: 'cdk-mq-user: tells whether a rebooted Amazon MQ broker is RUNNING with its users applied',
    });

    const frameworkLogs = new logs.LogGroup(this, 'FrameworkLogs', { retention });
    const provider = new cr.Provider(this, 'Provider', {
      onEventHandler: onEvent,
      isCompleteHandler: isComplete,
      // Each MqBrokerReboot enforces its own timeout; the framework's is only the outer bound (its maximum).
      totalTimeout: Duration.hours(2),
      queryInterval: Duration.seconds(15),
      // Two roles: with one, the onEvent role's grant on the waiter and the waiter's grant on isComplete
      // would form a dependency cycle.
      frameworkOnEventRole: lambdaRole(this, 'FrameworkOnEventRole', frameworkLogs),
      frameworkCompleteAndTimeoutRole: lambdaRole(this, 'FrameworkWaiterRole', frameworkLogs),
      logGroup: frameworkLogs,
      vpc: settings.vpc,
      vpcSubnets: settings.vpcSubnets,
      securityGroups: settings.securityGroups,
    });
    this.serviceToken = provider.serviceToken;
  }
}
