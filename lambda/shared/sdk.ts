/**
 * The AWS SDK clients of our functions, made on first use and kept for the life of the Lambda environment. Tests
 * replace them underneath (aws-sdk-client-mock) or point them at local endpoints.
 */
import { CloudFormationClient } from '@aws-sdk/client-cloudformation';
import { MqClient } from '@aws-sdk/client-mq';
import { SecretsManagerClient } from '@aws-sdk/client-secrets-manager';

// Our own retry loop (./retry) owns backoff and deadlines; the SDK's would multiply the attempts.
const clientConfig = { maxAttempts: 1 };
let clients: { mq: MqClient; secrets: SecretsManagerClient; cloudFormation: CloudFormationClient } | undefined;

export function sdk() {
  clients ??= {
    mq: new MqClient(clientConfig),
    secrets: new SecretsManagerClient(clientConfig),
    cloudFormation: new CloudFormationClient(clientConfig),
  };
  return clients;
}
