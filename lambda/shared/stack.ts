/**
 * What a function reads of its own stack's resources: the user handler (who holds a user) and the rotation
 * function (whether a secret and its users are the stack's) both read it this way.
 */
import { ListStackResourcesCommand } from '@aws-sdk/client-cloudformation';
import { Deadline, withRetry } from './retry';
import { sdk } from './sdk';

/** A resource of the stack, as ListStackResources shows it now. */
export interface StackResource {
  readonly logicalId: string;
  readonly physicalId?: string;
  readonly type: string;
  readonly status: string;
}

/** The stack's resources as CloudFormation holds them now (ListStackResources, all pages). */
export async function listStackResources(deadline: Deadline, stackId: string): Promise<StackResource[]> {
  const resources: StackResource[] = [];
  let nextToken: string | undefined;
  do {
    const token = nextToken;
    const out = await withRetry({ operation: 'ListStackResources' }, deadline, (abortSignal) =>
      sdk().cloudFormation.send(new ListStackResourcesCommand({ StackName: stackId, NextToken: token }), {
        abortSignal,
      }),
    );
    for (const summary of out.StackResourceSummaries ?? []) {
      resources.push({
        logicalId: summary.LogicalResourceId ?? '',
        physicalId: summary.PhysicalResourceId,
        type: summary.ResourceType ?? '',
        status: summary.ResourceStatus ?? '',
      });
    }
    nextToken = out.NextToken;
  } while (nextToken);
  return resources;
}
