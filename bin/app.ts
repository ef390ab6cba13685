#!/usr/bin/env node
/**
 * Example app: `npx cdk synth` synthesizes it offline, with no AWS account.
 *
 * - `MqUserExample`: an ActiveMQ broker and its users, declared next to each other.
 * - `MqUserExistingBroker` (with `-c brokerArn=arn:aws:mq:...`): a user on a broker that lives elsewhere.
 */
import { App } from 'aws-cdk-lib';
import { BrokerStack, ExistingBrokerStack } from './example-stacks';

const app = new App();
new BrokerStack(app, 'MqUserExample');
const brokerArn = app.node.tryGetContext('brokerArn');
if (brokerArn) {
  new ExistingBrokerStack(app, 'MqUserExistingBroker', brokerArn);
}
