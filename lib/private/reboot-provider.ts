import {
  Duration,
  Stack,
  aws_amazonmq as amazonmq,
  aws_iam as iam,
  aws_logs as logs,
  custom_resources as cr,
} from 'aws-cdk-lib';
import { Construct, IDependable } from 'constructs';
import { MqUserProvider } from '../mq-user-provider';
import { INVOKE_REASON, acknowledgeNag, functionVersionsFinding } from './acknowledge';
import { grantOwnStack, handlerFunction, lambdaRole, logRetention, useNodeRuntimeOfOurs } from './functions';
import { acknowledgeWaiter, waiterLogGroup, waiterLogOptions } from './waiter';

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

  private readonly rebootStatement = new iam.PolicyStatement({
    actions: ['mq:RebootBroker', 'mq:DescribeBroker', 'mq:ListUsers'],
  });
  private readonly rebootGrant: IDependable;
  private readonly brokerArns = new Set<string>();

  private constructor(scope: Stack, id: string) {
    super(scope, id);
    const settings = MqUserProvider.getOrCreate(scope)._settings;
    const retention = logRetention(settings);

    const logGroup = new logs.LogGroup(this, 'HandlerLogs', { retention });
    const role = lambdaRole(this, 'HandlerRole', logGroup, settings);
    // Only the opted-in brokers (`_allowReboot`): this permission takes a broker offline, and no cleanup
    // or rollback ever needs it on a broker that is no longer declared.
    this.rebootGrant = role.addToPrincipalPolicy(this.rebootStatement).policyDependable!;
    grantOwnStack(role, { listResources: false });
    const common = { asset: 'mq-broker-reboot-handler', role, logGroup, timeout: Duration.minutes(1), settings };
    const onEvent = handlerFunction(this, 'OnEventHandler', {
      ...common,
      handler: 'index.onEvent',
      description: "cdk-mq-user: reboots an Amazon MQ broker to apply its users' pending changes",
    });
    const isComplete = handlerFunction(this, 'IsCompleteHandler', {
      ...common,
      handler: 'index.isComplete',
      description: 'cdk-mq-user: tells whether a rebooted Amazon MQ broker is RUNNING with its users applied',
    });

    const frameworkLogs = new logs.LogGroup(this, 'FrameworkLogs', { retention });
    // Two roles: with one, the onEvent role's grant on the waiter and the waiter's grant on isComplete
    // would form a dependency cycle.
    const frameworkRoles = [
      lambdaRole(this, 'FrameworkOnEventRole', frameworkLogs, settings),
      lambdaRole(this, 'FrameworkWaiterRole', frameworkLogs, settings),
    ];
    const waiterLogs = waiterLogGroup(this, 'WaiterLogs', 'cdk-mq-user-reboot', retention);
    const provider = new cr.Provider(this, 'Provider', {
      onEventHandler: onEvent,
      isCompleteHandler: isComplete,
      // Each MqBrokerReboot enforces its own timeout; the framework's is only the outer bound (its maximum).
      totalTimeout: Duration.hours(2),
      queryInterval: Duration.seconds(15),
      frameworkOnEventRole: frameworkRoles[0],
      frameworkCompleteAndTimeoutRole: frameworkRoles[1],
      logGroup: frameworkLogs,
      disableWaiterStateMachineLogging: false,
      waiterStateMachineLogOptions: waiterLogOptions(waiterLogs),
      vpc: settings.vpc,
      vpcSubnets: settings.vpcSubnets,
      securityGroups: settings.securityGroups,
    });
    useNodeRuntimeOfOurs(provider);

    for (const frameworkRole of frameworkRoles) {
      for (const fn of [onEvent, isComplete]) acknowledgeNag(frameworkRole, functionVersionsFinding(fn), INVOKE_REASON);
    }
    acknowledgeWaiter(provider, 'during a reboot');
    this.serviceToken = provider.serviceToken;
  }

  /** Lets the handler reboot `broker`; what reboots it must wait for this grant. */
  allowReboot(broker: amazonmq.IBrokerRef): IDependable {
    const arn = broker.brokerRef.brokerArn;
    const key = JSON.stringify(Stack.of(this).resolve(arn));
    if (!this.brokerArns.has(key)) {
      this.brokerArns.add(key);
      this.rebootStatement.addResources(arn);
    }
    return this.rebootGrant;
  }
}
