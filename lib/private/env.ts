/**
 * Environment variables the construct library sets on the handler functions and the handlers read. No imports:
 * the handler bundles include this file.
 */

/**
 * The ID of the stack whose functions these are (`AWS::StackId`): the handlers refuse any event whose `StackId`
 * is another stack's, so that whoever can invoke them cannot use them on users this stack does not declare.
 */
export const STACK_ID_ENV = 'CDK_MQ_USER_STACK_ID';
