/**
 * Environment variables the construct library sets on the handler functions and the handlers read. No imports:
 * the handler bundles include this file.
 */

/**
 * The ID of the stack whose functions these are (`AWS::StackId`): the handlers refuse any event whose `StackId`
 * is another stack's. That stops another stack given the service token, not a principal who may invoke the
 * functions directly (a stack's ID is no secret): invoke rights stay the fence (README, "Security").
 */
export const STACK_ID_ENV = 'CDK_MQ_USER_STACK_ID';
