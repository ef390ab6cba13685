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

/**
 * The name of the stack's table of deliveries (the users' handler only): what the handler did for each delivery of
 * a Create or Update, so that a second delivery of the same event, in any Lambda environment, gets the same answer.
 * Without it the handler records nothing, and a second delivery is handled as a first one.
 */
export const DELIVERIES_TABLE_ENV = 'CDK_MQ_USER_DELIVERIES_TABLE';

/** The table's partition key: a digest of the delivery (stack, logical ID, RequestId, the whole event). */
export const DELIVERY_KEY_ATTRIBUTE = 'delivery';

/** The table's TTL attribute: seconds since the epoch after which DynamoDB may delete the record. */
export const DELIVERY_TTL_ATTRIBUTE = 'expiresAt';
