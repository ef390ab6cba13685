/**
 * What a function reads of its own stack: its resources (the user handler: who holds a user; the rotation function:
 * whether a secret and its users are the stack's) and its history (the proof of a cleanup Delete, and of a rename's
 * rollback), each read one way.
 */
import { DescribeStackEventsCommand, ListStackResourcesCommand } from '@aws-sdk/client-cloudformation';
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

/** One entry of the stack's history, as DescribeStackEvents shows it. */
export interface HistoryEvent {
  readonly logicalId?: string;
  readonly physicalId?: string;
  readonly type?: string;
  readonly status?: string;
}

/**
 * The stack's history, newest first (DescribeStackEvents, page by page, at most `maxPages`): a caller stops reading
 * (`break`) once it has what it needs, and no further page is asked for.
 */
export async function* stackHistory(
  deadline: Deadline,
  stackId: string,
  maxPages: number,
): AsyncGenerator<HistoryEvent> {
  let nextToken: string | undefined;
  for (let page = 0; page < maxPages; page++) {
    const token = nextToken;
    const out = await withRetry({ operation: 'DescribeStackEvents' }, deadline, (abortSignal) =>
      sdk().cloudFormation.send(new DescribeStackEventsCommand({ StackName: stackId, NextToken: token }), {
        abortSignal,
      }),
    );
    for (const event of out.StackEvents ?? []) {
      yield {
        logicalId: event.LogicalResourceId,
        physicalId: event.PhysicalResourceId,
        type: event.ResourceType,
        status: event.ResourceStatus,
      };
    }
    nextToken = out.NextToken;
    if (!nextToken) return;
  }
}
