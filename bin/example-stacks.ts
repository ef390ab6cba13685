/**
 * The example app's stacks, kept apart from `app.ts` so that tests can build them in-process.
 */
import {
  Duration,
  SecretValue,
  Stack,
  StackProps,
  Validations,
  aws_amazonmq as amazonmq,
  aws_secretsmanager as secretsmanager,
} from 'aws-cdk-lib';
import { Construct } from 'constructs';
import { MqAuthorizationMap, MqBroker, MqBrokerReboot, MqDestination, MqUser } from '../lib';

export class BrokerStack extends Stack {
  constructor(scope: Construct, id: string, props?: StackProps) {
    super(scope, id, props);

    // The broker's own admin user is created with the broker; its password comes from a generated secret
    // through a dynamic reference, which CloudFormation resolves for native resources (never plaintext).
    const adminSecret = new secretsmanager.Secret(this, 'AdminSecret', {
      generateSecretString: { passwordLength: 32, excludePunctuation: true },
    });
    Validations.of(adminSecret).acknowledge({
      id: 'AwsSolutions::AwsSolutions-SMG4',
      reason:
        "The broker's own admin user (its users list, not an MqUser, so addRotation does not apply): Amazon MQ " +
        'applies a changed password only at the next reboot or maintenance window, and nothing here rotates it.',
    });
    const broker = new amazonmq.CfnBroker(this, 'Broker', {
      brokerName: 'orders',
      engineType: 'ACTIVEMQ',
      engineVersion: '5.18',
      deploymentMode: 'SINGLE_INSTANCE',
      hostInstanceType: 'mq.t3.micro',
      publiclyAccessible: false,
      autoMinorVersionUpgrade: true,
      authenticationStrategy: 'SIMPLE',
      logs: { general: true, audit: true },
      users: [
        {
          username: 'admin',
          password: SecretValue.secretsManager(adminSecret.secretArn).unsafeUnwrap(),
          consoleAccess: true,
          // The web console's group: with an authorization map, the console works for its members only, and they
          // administer every destination.
          groups: ['activemq-webconsole'],
        },
      ],
    });

    // A service user with a generated password (in its own secret, `user.secret`), rotated every 30 days without
    // a reboot: the broker's maintenance window applies each new password before clients are handed it. Its
    // clients read the secret again at least every 30 days (README, "Rotating passwords").
    const ordersService = new MqUser(this, 'OrdersService', {
      broker,
      username: 'orders-service',
      groups: ['orders-producers', 'orders-consumers'],
    });
    ordersService.addRotation();

    // An operator who may use the ActiveMQ Web Console. A person signs in with it, so its password is not
    // rotated under them: the owner says so to cdk-nag, rather than the library on their behalf.
    const operator = new MqUser(this, 'Operator', {
      broker,
      username: 'operator',
      groups: ['operators'],
      consoleAccess: true,
    });
    Validations.of(operator.secret).acknowledge({
      id: 'AwsSolutions::AwsSolutions-SMG4',
      reason:
        'A person signs in to the web console with this user: its password is changed on request with ' +
        'passwordVersion, not rotated under them (addRotation would).',
    });

    // A user whose password lives in a secret managed elsewhere, as JSON {"password": "..."}.
    const billingSecret = secretsmanager.Secret.fromSecretNameV2(this, 'BillingSecret', 'billing/mq-password');
    new MqUser(this, 'BillingService', {
      broker,
      username: 'billing-service',
      groups: ['billing'],
      passwordSecret: billingSecret,
      passwordField: 'password',
      passwordVersion: '1',
    });

    // Who may use which queue: the broker's configuration, written from these rules. Destinations no rule names
    // are refused to everyone but the web console group (README, "Who may use which queue").
    const access = new MqAuthorizationMap(this, 'Access', { broker });
    // The orders service sends orders and creates their queues on first use (admin), and consumes them.
    access.allow(MqDestination.queue('ORDERS.>'), {
      write: ['orders-producers'],
      read: ['orders-consumers'],
      admin: ['orders-producers'],
    });
    // Billing owns its queues (it creates them, admin); the orders service may only send invoices there.
    access.allow(MqDestination.queue('BILLING.>'), {
      read: ['billing'],
      admin: ['billing'],
      write: ['orders-producers'],
    });
    // Order events: published by the orders service, followed by billing and the operators.
    access.allow(MqDestination.topic('EVENTS.ORDERS.*'), {
      write: ['orders-producers'],
      admin: ['orders-producers'],
      read: ['billing', 'operators'],
    });
    // Billing asks the orders service over temporary reply queues: billing creates and reads them, orders replies.
    access.allow(MqDestination.temporary(), { admin: ['billing'], read: ['billing'], write: ['orders-producers'] });

    // Apply this stack's user changes within the deploy: one reboot of the broker when a user changed.
    new MqBrokerReboot(this, 'ApplyUsers', { broker });
  }
}

export class ExistingBrokerStack extends Stack {
  constructor(scope: Construct, id: string, brokerArn: string, props?: StackProps) {
    super(scope, id, props);
    const broker = MqBroker.fromBrokerArn(this, 'SharedBroker', brokerArn);
    const reporting = new MqUser(this, 'ReportingService', {
      broker,
      username: 'reporting-service',
      groups: ['reporting'],
    });
    // A policy of "a new password every 30 days": with MAINTENANCE_WINDOW the credentials change every second
    // rotation, so rotate every 15 days (README, "Rotating passwords").
    reporting.addRotation({ automaticallyAfter: Duration.days(15) });
  }
}
