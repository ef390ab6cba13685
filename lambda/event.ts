import type { Raw } from '../lib/private/handler-props';

/** The part of the Provider framework's event our handlers read, for properties of type `P`. */
export interface ProviderEvent<P> {
  readonly RequestType: 'Create' | 'Update' | 'Delete';
  readonly ResourceProperties: Raw<P>;
  readonly OldResourceProperties?: Raw<P>;
  readonly PhysicalResourceId?: string;
  readonly StackId: string;
  readonly LogicalResourceId?: string;
}

/** Lambda's context, reduced to what we use: the time left before the function is killed. */
export interface HandlerContext {
  getRemainingTimeInMillis(): number;
}
