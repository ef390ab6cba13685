export * from './mq-broker';
export * from './mq-user';
export * from './mq-user-rotation';
export * from './mq-user-provider';
export * from './mq-broker-reboot';
export * from './mq-destination';
export * from './mq-authorization-map';
