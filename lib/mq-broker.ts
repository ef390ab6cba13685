import { Annotations, Fn, Resource, Stack, Token, aws_amazonmq as amazonmq } from 'aws-cdk-lib';
import { Construct } from 'constructs';

// arn:${Partition}:mq:${Region}:${Account}:broker:${BrokerName}:${BrokerId}
const BROKER_ARN = /^arn:[a-z0-9-]+:mq:([a-z0-9-]+):(\d{12}):broker:[A-Za-z0-9_-]{1,50}:([A-Za-z0-9-]+)$/;
const BROKER_ARN_FORMAT = 'arn:<partition>:mq:<region>:<account>:broker:<broker name>:<broker id>';

/**
 * Imports brokers that MqUser can manage users on.
 *
 * Any `aws_amazonmq.IBrokerRef` works (a `CfnBroker` is one); this class imports a broker by its ARN: one that
 * lives outside the app, or one that another construct library models without implementing `IBrokerRef`.
 */
export class MqBroker {
  /**
   * Refers to an existing Amazon MQ broker by its ARN.
   *
   * The broker ID is the ARN's eighth colon-separated field, also when the ARN is a token
   * (`Fn::Select` 7 of `Fn::Split`). A literal ARN must be a broker ARN of the stack's own account and
   * region: the handler calls the Amazon MQ API of the region it is deployed to. In a stack without an
   * explicit account or region, a literal ARN adds the warning `cdk-mq-user:brokerArnEnvironment`.
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
    // Checked before Resource reads the ARN, whose own error names neither the construct nor the fix.
    super(scope, id, { environmentFromArn: checkBrokerArn(scope, id, brokerArn) });
    const brokerId = Token.isUnresolved(brokerArn)
      ? Fn.select(7, Fn.split(':', brokerArn))
      : parseBrokerId(this, brokerArn);
    this.brokerRef = { brokerArn, brokerId };
  }
}

/** `brokerArn` if it is a token or an Amazon MQ broker ARN; else an error naming the construct and the fix. */
function checkBrokerArn(scope: Construct, id: string, brokerArn: string): string {
  if (Token.isUnresolved(brokerArn) || BROKER_ARN.test(brokerArn)) return brokerArn;
  const path = [scope.node.path, id].filter((part) => part !== '').join('/');
  const hint = /^b-[0-9a-z-]+$/i.test(brokerArn)
    ? `"${brokerArn}" looks like a broker ID: pass the broker's ARN (its Arn attribute, or the ARN in the Amazon MQ ` +
      'console), or the CfnBroker itself as `broker`, which needs no import'
    : "pass the broker's Arn attribute, or the ARN in the Amazon MQ console";
  throw new Error(
    `MqBroker.fromBrokerArn ${path}: brokerArn "${brokerArn}" is not an Amazon MQ broker ARN: expected ` +
      `${BROKER_ARN_FORMAT}; ${hint}`,
  );
}

function parseBrokerId(scope: Construct, brokerArn: string): string {
  const path = scope.node.path;
  // checkBrokerArn let it through: it matches.
  const [, region, account, brokerId] = BROKER_ARN.exec(brokerArn)!;
  const stack = Stack.of(scope);
  const fix =
    "MqUser manages users of brokers in its own stack's account and region only: declare the MqUser in a stack of the broker's account and region";
  if (!Token.isUnresolved(stack.account) && stack.account !== account) {
    throw new Error(
      `MqBroker.fromBrokerArn ${path}: brokerArn "${brokerArn}" is in account ${account} but stack ${stack.stackName} ` +
        `deploys to account ${stack.account}: ${fix}`,
    );
  }
  if (!Token.isUnresolved(stack.region) && stack.region !== region) {
    throw new Error(
      `MqBroker.fromBrokerArn ${path}: brokerArn "${brokerArn}" is in region ${region} but stack ${stack.stackName} ` +
        `deploys to region ${stack.region}: ${fix}`,
    );
  }
  const unknown = [
    Token.isUnresolved(stack.account) ? `account ${account}` : undefined,
    Token.isUnresolved(stack.region) ? `region ${region}` : undefined,
  ].filter((part) => part !== undefined);
  if (unknown.length > 0) {
    Annotations.of(scope).addWarningV2(
      'cdk-mq-user:brokerArnEnvironment',
      `brokerArn "${brokerArn}" is in ${unknown.join(' and ')}, but stack ${stack.stackName} does not say where it ` +
        'deploys (no env): deployed anywhere else, its MqUsers fail (the handler calls Amazon MQ in its own account ' +
        `and region). Set the stack's env to the broker's ${unknown.join(' and ')}, or pass the ARN as a parameter.`,
    );
  }
  return brokerId;
}
