/**
 * An in-process fake of the DynamoDB operations the users' handler makes on its table of deliveries (GetItem,
 * UpdateItem), served over HTTP to the real AWS SDK v3 client (endpoint override, dummy credentials): the JSON 1.0
 * protocol (`X-Amz-Target: DynamoDB_20120810.<Operation>`, `application/x-amz-json-1.0`), errors as DynamoDB answers
 * them (`__type` and `message`, HTTP 400 for client errors and throttling, 5xx for the service's own).
 *
 * Where DynamoDB's documentation speaks, it is followed:
 * - a condition that fails is 400 `ConditionalCheckFailedException`, carrying the item as it was when the request
 *   asked for it (`ReturnValuesOnConditionCheckFailure: ALL_OLD`), and writes nothing;
 * - a read without `ConsistentRead: true` is eventually consistent: it may miss the latest write. With `staleReads`
 *   (on by default) such a read returns the item as it was before its last write (nothing, after its first);
 * - throttling is 400 `ProvisionedThroughputExceededException` or `ThrottlingException`, and 500/503 are the
 *   service's own failures (`inject`); a 500 may come after the write was made (`internalAfterWrite`);
 * - an unknown table is 400 `ResourceNotFoundException`.
 * - a name in `ExpressionAttributeNames` or a value in `ExpressionAttributeValues` that no expression of the request
 *   uses is 400 `ValidationException` ("Value provided in ExpressionAttributeNames unused in expressions"), as is
 *   one that an expression uses but the request does not define.
 * Expressions: only what the handler sends (`SET #a = :v, ...` optionally followed by `REMOVE #b, ...`, and a
 * condition of `attribute_not_exists(#a)` / `attribute_exists(#a)` terms joined by `AND`); anything else is a 400
 * `ValidationException` saying the double does not model it, so that the handler cannot silently depend on something
 * unmodelled. TTL deletion is not modelled (it takes days).
 */
import * as http from 'node:http';
import type { AddressInfo } from 'node:net';

export type DynamoDbOperation = 'GetItem' | 'UpdateItem';

type AttributeValue = Record<string, unknown>;
type Item = Record<string, AttributeValue>;

export type DynamoDbFault = 'provisionedThroughput' | 'throttling' | 'internal' | 'internalAfterWrite' | 'unavailable';

export interface DynamoDbInjection {
  /** Without it, every operation. */
  readonly operation?: DynamoDbOperation;
  /** How many matching calls fail (default 1; Infinity for all). */
  times?: number;
  readonly fault: DynamoDbFault;
}

export interface DynamoDbCall {
  readonly operation: string;
  readonly table?: string;
  readonly status: number;
  /** GetItem: whether it asked for a strongly consistent read. */
  readonly consistentRead?: boolean;
  /** The answer was an eventually consistent read that missed the latest write. */
  readonly stale?: boolean;
}

interface Table {
  readonly keyAttribute: string;
  readonly items: Map<string, Item>;
  /** Each item as it was before its last write (`undefined`: it did not exist): what a stale read sees. */
  readonly before: Map<string, Item | undefined>;
}

export interface FakeDynamoDbOptions {
  /** Eventually consistent reads miss the latest write of the item (default true; false: every read is current). */
  readonly staleReads?: boolean;
}

export class FakeDynamoDb {
  static async start(options: FakeDynamoDbOptions = {}): Promise<FakeDynamoDb> {
    const fake = new FakeDynamoDb(options);
    await new Promise<void>((resolve) => fake.server.listen(0, '127.0.0.1', resolve));
    return fake;
  }

  /** Every call, answered or failed, in order. */
  readonly calls: DynamoDbCall[] = [];
  /** See `FakeDynamoDbOptions.staleReads`. */
  staleReads: boolean;
  private readonly tables = new Map<string, Table>();
  private injections: DynamoDbInjection[] = [];
  private readonly server = http.createServer((req, res) => {
    let body = '';
    req
      .on('data', (chunk) => (body += chunk))
      .on('end', () => {
        const target = String(req.headers['x-amz-target'] ?? '');
        const [status, payload] = this.answer(target.replace(/^DynamoDB_20120810\./, ''), body);
        res.writeHead(status, { 'content-type': 'application/x-amz-json-1.0' }).end(JSON.stringify(payload));
      });
  });

  private constructor(options: FakeDynamoDbOptions) {
    this.staleReads = options.staleReads ?? true;
  }

  get url(): string {
    return `http://127.0.0.1:${(this.server.address() as AddressInfo).port}`;
  }

  /** The environment that points the SDK's DynamoDB client here. */
  env(): Record<string, string> {
    return { AWS_ENDPOINT_URL_DYNAMODB: this.url };
  }

  async stop(): Promise<void> {
    this.server.closeAllConnections();
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
  }

  createTable(name: string, keyAttribute: string): void {
    if (this.tables.has(name)) throw new Error(`table ${name} already exists`);
    this.tables.set(name, { keyAttribute, items: new Map(), before: new Map() });
  }

  deleteTable(name: string): void {
    this.tables.delete(name);
  }

  tableNames(): string[] {
    return [...this.tables.keys()];
  }

  /** The items of a table (plain DynamoDB JSON), e.g. to check that no secret is stored. */
  items(name: string): Item[] {
    return [...(this.tables.get(name)?.items.values() ?? [])];
  }

  /** Writes an item as someone else would (a test's forged or foreign record). */
  putItem(name: string, item: Item): void {
    const table = this.table(name);
    const key = keyOf(table, { [table.keyAttribute]: item[table.keyAttribute] });
    table.before.set(key, table.items.get(key));
    table.items.set(key, structuredClone(item));
  }

  inject(injection: DynamoDbInjection): void {
    this.injections.push({ times: 1, ...injection });
  }

  clearInjections(): void {
    this.injections = [];
  }

  private table(name: string): Table {
    const table = this.tables.get(name);
    if (!table) throw new DynamoDbError(400, 'ResourceNotFoundException', 'Requested resource not found');
    return table;
  }

  private answer(operation: string, body: string): [number, unknown] {
    let input: Record<string, any> = {};
    let record: Omit<DynamoDbCall, 'status'> = { operation };
    try {
      input = JSON.parse(body || '{}');
      record = {
        operation,
        table: input.TableName,
        ...(operation === 'GetItem' ? { consistentRead: input.ConsistentRead === true } : {}),
      };
      const injected = this.takeInjection(operation);
      if (injected === 'provisionedThroughput')
        throw new DynamoDbError(
          400,
          'ProvisionedThroughputExceededException',
          'The level of configured provisioned throughput for the table was exceeded.',
        );
      if (injected === 'throttling')
        throw new DynamoDbError(400, 'ThrottlingException', 'Rate of requests exceeds the allowed throughput.');
      if (injected === 'internal') throw new DynamoDbError(500, 'InternalServerError', 'Internal server error');
      if (injected === 'unavailable') throw new DynamoDbError(503, 'ServiceUnavailable', 'Service unavailable');
      let result: [unknown, Partial<DynamoDbCall>];
      if (operation === 'GetItem') result = this.getItem(input);
      else if (operation === 'UpdateItem') result = this.updateItem(input);
      else throw new DynamoDbError(400, 'UnknownOperationException', `the double does not model ${operation}`);
      if (injected === 'internalAfterWrite')
        throw new DynamoDbError(500, 'InternalServerError', 'Internal server error');
      this.calls.push({ ...record, ...result[1], status: 200 });
      return [200, result[0]];
    } catch (error) {
      const e =
        error instanceof DynamoDbError ? error : new DynamoDbError(400, 'SerializationException', String(error));
      this.calls.push({ ...record, status: e.status });
      return [e.status, { __type: `com.amazonaws.dynamodb.v20120810#${e.type}`, message: e.message, ...e.extra }];
    }
  }

  private takeInjection(operation: string): DynamoDbFault | undefined {
    const match = this.injections.find((i) => (i.operation ?? operation) === operation && (i.times ?? 1) > 0);
    if (!match) return undefined;
    match.times = (match.times ?? 1) - 1;
    return match.fault;
  }

  private getItem(input: Record<string, any>): [unknown, Partial<DynamoDbCall>] {
    if (input.ProjectionExpression !== undefined) throw unmodelled('ProjectionExpression');
    const table = this.table(input.TableName);
    const key = keyOf(table, input.Key ?? {});
    const consistentRead = input.ConsistentRead === true;
    const stale = !consistentRead && this.staleReads && table.before.has(key);
    const item = stale ? table.before.get(key) : table.items.get(key);
    return [item ? { Item: structuredClone(item) } : {}, { consistentRead, stale }];
  }

  private updateItem(input: Record<string, any>): [unknown, Partial<DynamoDbCall>] {
    const table = this.table(input.TableName);
    const key = keyOf(table, input.Key ?? {});
    const names: Record<string, string> = input.ExpressionAttributeNames ?? {};
    const values: Record<string, AttributeValue> = input.ExpressionAttributeValues ?? {};
    const name = (token: string) => {
      if (!token.startsWith('#')) return token;
      if (!(token in names))
        throw new DynamoDbError(
          400,
          'ValidationException',
          `An expression attribute name used in the document path is not defined; attribute name: ${token}`,
        );
      return names[token];
    };
    refuseUnused(input, names, values);
    const current = table.items.get(key);
    if (input.ConditionExpression !== undefined) {
      const terms = String(input.ConditionExpression)
        .split(/\s+AND\s+/)
        .map((term) => /^\s*(attribute_not_exists|attribute_exists)\(\s*(#?\w+)\s*\)\s*$/.exec(term));
      if (terms.some((term) => !term)) throw unmodelled(`ConditionExpression ${input.ConditionExpression}`);
      const holds = terms.every((term) => {
        const exists = current !== undefined && name(term![2]) in current;
        return (term![1] === 'attribute_exists') === exists;
      });
      if (!holds) {
        const old =
          input.ReturnValuesOnConditionCheckFailure === 'ALL_OLD' && current ? { Item: structuredClone(current) } : {};
        throw new DynamoDbError(400, 'ConditionalCheckFailedException', 'The conditional request failed', old);
      }
    }
    const set = /^\s*SET\s+(.+?)(?:\s+REMOVE\s+(.+))?$/i.exec(input.UpdateExpression ?? '');
    if (!set) throw unmodelled(`UpdateExpression ${input.UpdateExpression}`);
    const removed = (set[2] ?? '').split(',').filter((part) => part.trim() !== '');
    for (const path of removed) {
      if (!/^\s*#?\w+\s*$/.test(path)) throw unmodelled(`REMOVE clause ${path}`);
    }
    const next: Item = { ...structuredClone(current ?? {}), [table.keyAttribute]: { S: key } };
    for (const assignment of set[1].split(',')) {
      const parts = /^\s*(#?\w+)\s*=\s*(:\w+)\s*$/.exec(assignment);
      if (!parts) throw unmodelled(`SET clause ${assignment}`);
      if (!(parts[2] in values))
        throw new DynamoDbError(
          400,
          'ValidationException',
          `An expression attribute value used in expression is not defined; attribute value: ${parts[2]}`,
        );
      const attribute = name(parts[1]);
      if (attribute === table.keyAttribute)
        throw new DynamoDbError(400, 'ValidationException', 'Cannot update attribute of the key');
      next[attribute] = structuredClone(values[parts[2]]);
    }
    for (const path of removed) {
      const attribute = name(path.trim());
      if (attribute === table.keyAttribute)
        throw new DynamoDbError(400, 'ValidationException', 'Cannot update attribute of the key');
      delete next[attribute];
    }
    table.before.set(key, current);
    table.items.set(key, next);
    return [{}, {}];
  }
}

/** DynamoDB refuses names and values that no expression of the request uses. */
function refuseUnused(
  input: Record<string, any>,
  names: Record<string, string>,
  values: Record<string, unknown>,
): void {
  const expressions = [input.UpdateExpression, input.ConditionExpression, input.ProjectionExpression]
    .filter((e) => typeof e === 'string')
    .join(' ');
  const used = new Set(expressions.match(/[#:]\w+/g) ?? []);
  const unusedNames = Object.keys(names).filter((n) => !used.has(n));
  if (unusedNames.length > 0)
    throw new DynamoDbError(
      400,
      'ValidationException',
      `Value provided in ExpressionAttributeNames unused in expressions: keys: {${unusedNames.join(', ')}}`,
    );
  const unusedValues = Object.keys(values).filter((v) => !used.has(v));
  if (unusedValues.length > 0)
    throw new DynamoDbError(
      400,
      'ValidationException',
      `Value provided in ExpressionAttributeValues unused in expressions: keys: {${unusedValues.join(', ')}}`,
    );
}

function keyOf(table: Table, key: Item): string {
  const value = key[table.keyAttribute]?.S;
  if (typeof value !== 'string' || Object.keys(key).length !== 1) {
    throw new DynamoDbError(400, 'ValidationException', 'The provided key element does not match the schema');
  }
  return value;
}

function unmodelled(what: string): DynamoDbError {
  return new DynamoDbError(400, 'ValidationException', `the DynamoDB double does not model ${what}`);
}

class DynamoDbError extends Error {
  constructor(
    readonly status: number,
    readonly type: string,
    message: string,
    readonly extra: Record<string, unknown> = {},
  ) {
    super(message);
  }
}
