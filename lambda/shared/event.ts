import { STACK_ID_ENV } from '../../lib/private/env';
import type { Raw } from '../../lib/private/handler-props';

/** The part of the Provider framework's event our handlers read, for properties of type `P`. */
export interface ProviderEvent<P> {
  readonly RequestType: 'Create' | 'Update' | 'Delete';
  readonly ResourceProperties: Raw<P>;
  readonly OldResourceProperties?: Raw<P>;
  readonly PhysicalResourceId?: string;
  readonly StackId: string;
  readonly LogicalResourceId?: string;
  /** CloudFormation's ID of the request: a second delivery of the same event carries the same one. */
  readonly RequestId?: string;
}

/** Lambda's context, reduced to what we use: the time left before the function is killed. */
export interface HandlerContext {
  getRemainingTimeInMillis(): number;
}

/**
 * Our functions serve their own stack only (the construct sets `CDK_MQ_USER_STACK_ID` to it): whoever else can
 * invoke them, another stack given the service token included, must not drive them against users or brokers
 * that stack does not own. A function without the variable refuses every event (fail closed): one
 * UpdateFunctionConfiguration must not turn the fence off. Returns the stack ID the function serves.
 */
export function ownStackId(event: { readonly StackId?: string }): string {
  const own = process.env[STACK_ID_ENV];
  if (!own) throw new ForeignStackError(event.StackId ?? '', undefined);
  if (event.StackId !== own) throw new ForeignStackError(event.StackId ?? '', own);
  return own;
}

/** `ownStackId` for callers that need no value. */
export function refuseForeignStack(event: { readonly StackId: string }): void {
  ownStackId(event);
}

export class ForeignStackError extends Error {
  constructor(received: string, own: string | undefined) {
    super(
      own === undefined
        ? `refused an event of stack ${received}: this function has no ${STACK_ID_ENV} in its environment, so it ` +
            'serves no stack (redeploy the stack to restore it)'
        : `refused an event of stack ${received}: this function serves only stack ${own}`,
    );
    this.name = 'ForeignStackError';
  }
}
