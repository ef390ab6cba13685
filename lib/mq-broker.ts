import { Fn, Resource, Stack, Token, aws_amazonmq as amazonmq } from 'aws-cdk-lib';
import { Construct } from 'constructs';

// arn:${Partition}:mq:${Region}:${Account}:broker:${BrokerName}:${BrokerId}
const BROKER_ARN = /^arn:[a-z0-9-]+:mq:([a-z0-9-]+):(\d{12}):broker:[A-Za-z0-9_-]{1,50}:([A-Za-z0-9-]+)$/;
const BROKER_ARN_FORMAT = 'arn:<partition>:mq:<region>:<account>:broker:<broker name>:<broker id>';

/**
 * Brokers that MqUser can manage users on. Any `aws_amazonmq.IBrokerRef` works (a `CfnBroker` is one);
 * this class imports a broker that lives outside the app.
 */
export class MqBroker {
  /**
   * Refers to an existing Amazon MQ broker by its ARN.
   *
   * The broker ID is the ARN's eighth colon-separated field, also when the ARN is a token
   * (`Fn::Select` 7 of `Fn::Split`). A literal ARN must be a broker ARN of the stack's own account and
   * region: the handler calls the Amazon MQ API of the region it is deployed to.
   *
   * @param scope the scope of the imported broker
   * @param id the construct id of the imported broker
   * @param brokerArn `arn:<partition>:mq:<region>:<account>:broker:<name>:<id>`
   */
  public static fromBrokerArn(scope: Construct, id: string, brokerArn: string): amazonmq.IBrokerRef {
    return new ImportedBroker(scope, id, brokerArn);
  }

  private constructor() {}
}

class ImportedBroker extends Resource implements amazonmq.IBrokerRef {
  public readonly brokerRef: amazonmq.BrokerReference;

  constructor(scope: Construct, id: string, brokerArn: string) {
    super(scope, id, { environmentFromArn: brokerArn });
    const brokerId = Token.isUnresolved(brokerArn)
      ? Fn.select(7, Fn.split(':', brokerArn))
      : parseBrokerId(this, brokerArn);
    this.brokerRef = { brokerArn, brokerId };
  }
}

function parseBrokerId(scope: Construct, brokerArn: string): string {
  const match = BROKER_ARN.exec(brokerArn);
  if (!match) {
    throw new Error(`brokerArn "${brokerArn}" is not an Amazon MQ broker ARN: expected ${BROKER_ARN_FORMAT}`);
  }
  const [, region, account, brokerId] = match;
  const stack = Stack.of(scope);
  if (!Token.isUnresolved(stack.account) && stack.account !== account) {
    throw new Error(
      `brokerArn "${brokerArn}" is in account ${account} but stack ${stack.stackName} deploys to account ${stack.account}: ` +
        "MqUser manages users of brokers in its own stack's account and region only",
    );
  }
  if (!Token.isUnresolved(stack.region) && stack.region !== region) {
    throw new Error(
      `brokerArn "${brokerArn}" is in region ${region} but stack ${stack.stackName} deploys to region ${stack.region}: ` +
        "MqUser manages users of brokers in its own stack's account and region only",
    );
  }
  return brokerId;
}
