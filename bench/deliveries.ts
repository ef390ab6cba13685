/**
 * `npm run bench:deliveries`: what the users' table of deliveries costs per event, and what a
 * second delivery in another Lambda environment costs. One user, no throttling: the bundled handler through the
 * CloudFormation emulator, the fake Amazon MQ and the DynamoDB double of the lifecycle tests. Prints a markdown table
 * of DynamoDB calls (by operation) and Amazon MQ calls per event. Nothing calls AWS.
 */
import { type DeployOptions } from '../test/support/cloudformation';
import { BROKER, MQ_OPERATIONS, startBenchDoubles } from './doubles';

async function main(): Promise<void> {
  const { mq, cfn, synth, stop } = await startBenchDoubles();
  const rows: string[] = [];
  const app = (stackName: string, username: string, groups: string[], adoptExisting = false) =>
    synth(stackName, [username], groups, adoptExisting);
  try {
    const measure = async (name: string, run: () => Promise<{ status: string }>) => {
      const mqFrom = mq.calls.length;
      const tableFrom = cfn.dynamodb.calls.length;
      const started = performance.now();
      const result = await run();
      const ms = performance.now() - started;
      const tableCalls = cfn.dynamodb.calls.slice(tableFrom);
      const count = (op: string) => tableCalls.filter((c) => c.operation === op).length;
      const mqCalls = mq.calls.slice(mqFrom).filter((c) => MQ_OPERATIONS.includes(c.operation));
      const byOp = MQ_OPERATIONS.map((op) => [op, mqCalls.filter((c) => c.operation === op).length] as const)
        .filter(([, k]) => k > 0)
        .map(([op, k]) => `${op} ${k}`)
        .join(', ');
      rows.push(
        `| ${name} | ${count('GetItem')} | ${count('UpdateItem')} | ${mqCalls.length} (${byOp || 'none'}) | ` +
          `${ms.toFixed(0)} ms | ${result.status} |`,
      );
      mq.applyPendingChanges(BROKER);
    };
    const lostElsewhere = (type: string): DeployOptions => ({
      redeliver: (event) => (event.RequestType === type ? 'answerLostElsewhere' : false),
    });

    const single = cfn.stack('Single');
    await measure('create', () => single.deploy(app('Single', 'user-1', ['a-group'])));
    await measure('update (groups)', () => single.deploy(app('Single', 'user-1', ['b-group'])));
    await measure('update (no change reaches the broker)', () =>
      single.deploy(app('Single', 'user-1', ['b-group'], true)),
    );
    await measure('update (rename)', () => single.deploy(app('Single', 'user-2', ['b-group'], true)));
    await measure('delete', () => single.destroy());
    const twice = cfn.stack('Twice');
    await measure('create, delivered twice (answer lost, second in another environment)', () =>
      twice.deploy(app('Twice', 'user-3', ['a-group']), lostElsewhere('Create')),
    );
    await measure('rename, delivered twice (answer lost, second in another environment)', () =>
      twice.deploy(app('Twice', 'user-4', ['a-group']), lostElsewhere('Update')),
    );
    console.log(
      [
        '| event (one user) | GetItem | UpdateItem | Amazon MQ calls | wall time | outcome |',
        '| --- | --- | --- | --- | --- | --- |',
        ...rows,
      ].join('\n'),
    );
  } finally {
    await stop();
  }
}

main().catch((error) => {
  console.error(error);
  process.exitCode = 1;
});
