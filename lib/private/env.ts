/**
 * Environment variables the construct library sets on the handler functions and the handlers read. No imports:
 * the handler bundles include this file.
 */

/**
 * The ID of the stack whose functions these are (`AWS::StackId`): the handlers refuse any event whose `StackId`
 * is another stack's, and a function without it refuses every event (fail closed). An event that names this
 * stack must still prove itself against CloudFormation (lambda/shared/proof.ts).
 */
export const STACK_ID_ENV = 'CDK_MQ_USER_STACK_ID';
