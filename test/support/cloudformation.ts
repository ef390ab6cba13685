/**
 * A small CloudFormation for lifecycle tests: it deploys synthesized cloud assemblies against the local
 * Amazon MQ endpoint (./mq-endpoint), driving the *bundled* handlers found in the assembly's assets the way
 * the CDK Provider framework does, with the events CloudFormation sends on create, update, replacement,
 * rollback and delete.
 *
 * What it models (from ../../../shared/reference/custom-resource-contract.md):
 * - properties are resolved (Ref, Fn::GetAtt, Fn::Join, Fn::Select, Fn::Split) and every scalar stringified;
 * - resources run in dependency order (DependsOn and references), independent ones concurrently;
 * - an Update that returns a new physical ID is a replacement: the old ID is deleted in the cleanup phase,
 *   after the whole deploy succeeded (and never with UpdateReplacePolicy Retain);
 * - a failure rolls back: created resources are deleted, updated ones get an Update with old and new swapped;
 *   the stack status (DescribeStacks, served here) says *_ROLLBACK_IN_PROGRESS meanwhile;
 * - the Provider framework answers a failed Create with its CREATE_FAILED marker and answers the Delete that
 *   follows without calling the handler; a thrown error or a timeout is FAILED with its message as reason;
 * - an isComplete handler is polled until it says complete, or the framework's total timeout.
 * Native resources it knows: AWS::AmazonMQ::Broker and AWS::SecretsManager::Secret (made in the fake);
 * every other native resource is taken as created.
 */
import { randomBytes, randomUUID } from 'node:crypto';
import * as fs from 'node:fs';
import * as http from 'node:http';
import type { AddressInfo } from 'node:net';
import * as path from 'node:path';
import type { FakeMq } from './mq-endpoint';

export const CREATE_FAILED_MARKER = 'AWSCDK::CustomResourceProviderFramework::CREATE_FAILED';

type Json = any; // template fragments

interface Template {
  Resources: Record<
    string,
    {
      Type: string;
      Properties?: Json;
      DependsOn?: string | string[];
      DeletionPolicy?: string;
      UpdateReplacePolicy?: string;
    }
  >;
}

/** A custom resource as deployed: what the next deploy compares against. */
interface Deployed {
  readonly type: string;
  readonly properties: Record<string, unknown>;
  readonly physicalId: string;
  readonly data: Record<string, string>;
  readonly serviceToken: Handlers;
  readonly deletionPolicy?: string;
  readonly dependsOn: string[];
}

/** Our handler functions behind one service token, loaded from the assembly's asset folder. */
interface Handlers {
  readonly onEvent: (event: Json, context: Json) => Promise<Json>;
  readonly isComplete?: (event: Json, context: Json) => Promise<Json>;
  readonly timeoutMs: number;
}

export interface Invocation {
  readonly logicalId: string;
  readonly requestType: string;
  readonly physicalId?: string;
  readonly outcome: 'SUCCESS' | 'FAILED' | 'SKIPPED';
  readonly reason?: string;
}

export interface DeployResult {
  readonly status: string;
  /** The first failure's reason, as CloudFormation would show it. */
  readonly reason?: string;
}

export interface EmulatorOptions {
  /** Overrides each handler function's timeout (its Lambda `Timeout`), e.g. to test giving up before it. */
  readonly handlerTimeoutMs?: number;
  /** How long the Provider framework polls isComplete before failing (the real default is 30 minutes). */
  readonly totalTimeoutMs?: number;
  /** Between isComplete polls (really 5 to 15 seconds). */
  readonly queryIntervalMs?: number;
}

const ACCOUNT = '123456789012';

/** Serves CloudFormation's DescribeStacks (query protocol, XML) with the emulated stacks' statuses. */
export class CloudFormation {
  static async start(mq: FakeMq, options: EmulatorOptions = {}): Promise<CloudFormation> {
    const cfn = new CloudFormation(mq, options);
    await new Promise<void>((resolve) => cfn.server.listen(0, '127.0.0.1', resolve));
    const url = `http://127.0.0.1:${(cfn.server.address() as AddressInfo).port}`;
    Object.assign(process.env, mq.env(), { AWS_ENDPOINT_URL_CLOUDFORMATION: url });
    return cfn;
  }

  /** Every log line, response and failure reason of the handlers: tests check that no secret is in here. */
  readonly transcript: string[] = [];
  readonly invocations: Invocation[] = [];
  /** The secret strings of the secrets it generated (AWS::SecretsManager::Secret with GenerateSecretString). */
  readonly generatedSecrets: string[] = [];
  private readonly statuses = new Map<string, string>();
  private readonly server = http.createServer((req, res) => {
    let body = '';
    req
      .on('data', (chunk) => (body += chunk))
      .on('end', () => {
        const stackId = new URLSearchParams(body).get('StackName') ?? '';
        res
          .writeHead(200, { 'content-type': 'text/xml' })
          .end(
            '<DescribeStacksResponse xmlns="http://cloudformation.amazonaws.com/doc/2010-05-15/"><DescribeStacksResult>' +
              `<Stacks><member><StackId>${stackId}</StackId><StackName>${stackId.split('/')[1] ?? stackId}</StackName>` +
              `<StackStatus>${this.statuses.get(stackId) ?? 'UPDATE_IN_PROGRESS'}</StackStatus>` +
              '<CreationTime>2026-01-01T00:00:00Z</CreationTime></member></Stacks>' +
              '</DescribeStacksResult><ResponseMetadata><RequestId>1</RequestId></ResponseMetadata></DescribeStacksResponse>',
          );
      });
  });

  private constructor(
    readonly mq: FakeMq,
    readonly options: EmulatorOptions,
  ) {}

  stack(name: string): EmulatedStack {
    return new EmulatedStack(this, name);
  }

  async stop(): Promise<void> {
    this.server.closeAllConnections();
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
  }

  /** @internal */
  setStatus(stackId: string, status: string): void {
    this.statuses.set(stackId, status);
  }
}

export class EmulatedStack {
  readonly stackId: string;
  status = 'NONE';
  /** Physical IDs of native resources (brokers, secrets) by logical ID. */
  private readonly natives = new Map<
    string,
    { type: string; physicalId: string; arn?: string; deletionPolicy?: string; properties?: Json }
  >();
  private deployed = new Map<string, Deployed>();

  constructor(
    private readonly cfn: CloudFormation,
    readonly name: string,
  ) {
    this.stackId = `arn:aws:cloudformation:us-east-1:${ACCOUNT}:stack/${name}/${randomUUID()}`;
  }

  /** Physical IDs of the native resources of one type, by logical ID. */
  physicalIdsOf(type: string): Record<string, string> {
    return Object.fromEntries(
      [...this.natives].filter(([, n]) => n.type === type).map(([id, n]) => [id, n.physicalId]),
    );
  }

  /** The physical ID of a resource: a broker's ID, a secret's ARN, a custom resource's ID. */
  physicalId(logicalId: string): string | undefined {
    return this.natives.get(logicalId)?.physicalId ?? this.deployed.get(logicalId)?.physicalId;
  }

  /**
   * Deploys `<assemblyDir>/<stack name>.template.json`: create, update, replace, delete, or roll back.
   * `options` override the emulator's for this deploy (e.g. a short handler timeout).
   */
  async deploy(assemblyDir: string, options: EmulatorOptions = {}): Promise<DeployResult> {
    const template: Template = JSON.parse(
      fs.readFileSync(path.join(assemblyDir, `${this.name}.template.json`), 'utf8'),
    );
    const creating = this.status === 'NONE';
    this.setStatus(creating ? 'CREATE_IN_PROGRESS' : 'UPDATE_IN_PROGRESS');
    const nativeChanges = this.applyNatives(template);

    const wanted = new Map<
      string,
      {
        logicalId: string;
        type: string;
        raw: Json;
        dependsOn: string[];
        token: Handlers;
        policy?: string;
        replacePolicy?: string;
      }
    >();
    for (const [logicalId, resource] of Object.entries(template.Resources)) {
      if (!resource.Type.startsWith('Custom::')) continue;
      const { ServiceToken, ...raw } = resource.Properties ?? {};
      wanted.set(logicalId, {
        logicalId,
        type: resource.Type,
        raw,
        dependsOn: dependencies(resource).filter((id) => template.Resources[id]?.Type.startsWith('Custom::')),
        token: loadHandlers(assemblyDir, template, ServiceToken, { ...this.cfn.options, ...options }),
        policy: resource.DeletionPolicy,
        replacePolicy: resource.UpdateReplacePolicy,
      });
    }

    const before = new Map(this.deployed);
    const done: Array<{ logicalId: string; kind: 'create' | 'update'; previous?: Deployed }> = [];
    const cleanup: Deployed[] = [];
    let failure: string | undefined;

    await inDependencyOrder([...wanted.values()], async (w) => {
      if (failure) return false;
      const properties = this.resolve(w.raw) as Record<string, unknown>;
      const previous = this.deployed.get(w.logicalId);
      if (previous && JSON.stringify(previous.properties) === JSON.stringify(properties)) {
        // Same properties: no event, but a new DeletionPolicy still takes effect.
        this.record(w, properties, previous.physicalId, previous.data);
        return true;
      }
      const requestType = previous ? 'Update' : 'Create';
      const result = await this.invoke(w.token, {
        RequestType: requestType,
        LogicalResourceId: w.logicalId,
        ResourceType: w.type,
        ResourceProperties: properties,
        ...(previous ? { OldResourceProperties: previous.properties, PhysicalResourceId: previous.physicalId } : {}),
      });
      done.push({ logicalId: w.logicalId, kind: previous ? 'update' : 'create', previous });
      if (result.failed) {
        failure ??= `${w.logicalId}: ${result.reason}`;
        if (!previous) this.record(w, properties, CREATE_FAILED_MARKER, {});
        return false;
      }
      if (previous && previous.physicalId !== result.physicalId && w.replacePolicy !== 'Retain') cleanup.push(previous);
      this.record(w, properties, result.physicalId, result.data);
      return true;
    });

    if (!failure) {
      // Cleanup phase: replaced physical resources, then resources removed from the template.
      const removed = [...before.entries()].filter(([id]) => !wanted.has(id));
      for (const old of cleanup) await this.deleteResource('(replaced)', old);
      for (const [logicalId, old] of reverseDependencyOrder(removed)) {
        this.deployed.delete(logicalId);
        if (old.deletionPolicy !== 'Retain') await this.deleteResource(logicalId, old);
      }
      for (const [logicalId, native] of [...this.natives]) {
        if (template.Resources[logicalId]) continue;
        this.natives.delete(logicalId);
        if (native.type === 'AWS::SecretsManager::Secret' && native.deletionPolicy !== 'Retain') {
          this.cfn.mq.deleteSecret(native.physicalId);
        }
      }
      this.setStatus(creating ? 'CREATE_COMPLETE' : 'UPDATE_COMPLETE');
      return { status: this.status };
    }

    this.setStatus(creating ? 'ROLLBACK_IN_PROGRESS' : 'UPDATE_ROLLBACK_IN_PROGRESS');
    let rollbackFailed: string | undefined;
    for (const step of done.reverse()) {
      const current = this.deployed.get(step.logicalId)!;
      if (step.kind === 'create') {
        this.deployed.delete(step.logicalId);
        if (current.deletionPolicy !== 'Retain') await this.deleteResource(step.logicalId, current);
        continue;
      }
      const previous = step.previous!;
      const result = await this.invoke(previous.serviceToken, {
        RequestType: 'Update',
        LogicalResourceId: step.logicalId,
        ResourceType: previous.type,
        ResourceProperties: previous.properties,
        OldResourceProperties: current.properties,
        PhysicalResourceId: current.physicalId,
      });
      if (result.failed) {
        rollbackFailed ??= `${step.logicalId}: ${result.reason}`;
        continue;
      }
      this.deployed.set(step.logicalId, { ...previous, physicalId: result.physicalId, data: result.data });
      // The physical resource the failed deploy made is deleted once the rollback is done.
      if (current.physicalId !== result.physicalId && current.physicalId !== previous.physicalId) {
        await this.deleteResource(step.logicalId, current);
      }
    }
    // Native resources roll back after the custom resources that depend on them.
    for (const change of nativeChanges.reverse()) {
      const native = this.natives.get(change.logicalId)!;
      if (change.previous === undefined) {
        this.natives.delete(change.logicalId);
        this.cfn.mq.deleteSecret(native.physicalId);
      } else {
        this.generateSecret(change.logicalId, change.previous, native.physicalId);
      }
    }
    if (rollbackFailed) {
      this.setStatus(creating ? 'ROLLBACK_FAILED' : 'UPDATE_ROLLBACK_FAILED');
      return { status: this.status, reason: `${failure}; rollback: ${rollbackFailed}` };
    }
    this.setStatus(creating ? 'ROLLBACK_COMPLETE' : 'UPDATE_ROLLBACK_COMPLETE');
    return { status: this.status, reason: failure };
  }

  /** Deletes the whole stack: custom resources in reverse dependency order, then native ones. */
  async destroy(): Promise<DeployResult> {
    this.setStatus('DELETE_IN_PROGRESS');
    let failure: string | undefined;
    for (const [logicalId, resource] of reverseDependencyOrder([...this.deployed.entries()])) {
      if (resource.deletionPolicy === 'Retain') continue;
      const result = await this.deleteResource(logicalId, resource);
      failure ??= result.failed ? `${logicalId}: ${result.reason}` : undefined;
    }
    if (failure) {
      this.setStatus('DELETE_FAILED');
      return { status: this.status, reason: failure };
    }
    this.deployed.clear();
    for (const native of this.natives.values()) {
      if (native.type === 'AWS::SecretsManager::Secret' && native.deletionPolicy !== 'Retain')
        this.cfn.mq.deleteSecret(native.physicalId);
    }
    this.natives.clear();
    this.setStatus('DELETE_COMPLETE');
    return { status: this.status };
  }

  private async deleteResource(logicalId: string, resource: Deployed) {
    // The Provider framework answers the Delete of a failed Create itself.
    if (resource.physicalId === CREATE_FAILED_MARKER) {
      this.cfn.invocations.push({
        logicalId,
        requestType: 'Delete',
        physicalId: CREATE_FAILED_MARKER,
        outcome: 'SKIPPED',
      });
      return { failed: false, physicalId: CREATE_FAILED_MARKER, data: {} };
    }
    return this.invoke(resource.serviceToken, {
      RequestType: 'Delete',
      LogicalResourceId: logicalId,
      ResourceType: resource.type,
      ResourceProperties: resource.properties,
      PhysicalResourceId: resource.physicalId,
    });
  }

  private record(
    w: { logicalId: string; type: string; dependsOn: string[]; token: Handlers; policy?: string },
    properties: Record<string, unknown>,
    physicalId: string,
    data: Record<string, string>,
  ) {
    this.deployed.set(w.logicalId, {
      type: w.type,
      properties,
      physicalId,
      data,
      serviceToken: w.token,
      deletionPolicy: w.policy,
      dependsOn: w.dependsOn,
    });
  }

  /** Calls the handler as the Provider framework does; never throws: a failure is FAILED with a reason. */
  private async invoke(
    handlers: Handlers,
    request: Json,
  ): Promise<{ failed: boolean; reason?: string; physicalId: string; data: Record<string, string> }> {
    const event = {
      ...request,
      ResourceProperties: stringify(request.ResourceProperties),
      ...(request.OldResourceProperties ? { OldResourceProperties: stringify(request.OldResourceProperties) } : {}),
      StackId: this.stackId,
      RequestId: randomUUID(),
      ResponseURL: '...', // the framework hides the pre-signed URL from user handlers
    };
    const transcript = this.cfn.transcript;
    const restore = captureConsole(transcript);
    try {
      const response = await withTimeout(handlers.onEvent(event, contextFor(handlers.timeoutMs)), handlers.timeoutMs);
      const physicalId: string = response?.PhysicalResourceId ?? event.PhysicalResourceId ?? event.RequestId;
      let data: Record<string, string> = response?.Data ?? {};
      if (handlers.isComplete && event.RequestType !== 'Delete') {
        const deadline = Date.now() + (this.cfn.options.totalTimeoutMs ?? 30 * 60_000);
        for (;;) {
          const poll = await withTimeout(
            handlers.isComplete(
              { ...event, PhysicalResourceId: physicalId, Data: data },
              contextFor(handlers.timeoutMs),
            ),
            handlers.timeoutMs,
          );
          if (poll?.IsComplete) {
            data = { ...data, ...(poll.Data ?? {}) };
            break;
          }
          if (Date.now() > deadline) throw new Error('Operation timed out');
          await new Promise((resolve) => setTimeout(resolve, this.cfn.options.queryIntervalMs ?? 20));
        }
      }
      transcript.push(JSON.stringify(response));
      this.cfn.invocations.push({
        logicalId: event.LogicalResourceId,
        requestType: event.RequestType,
        physicalId,
        outcome: 'SUCCESS',
      });
      return { failed: false, physicalId, data };
    } catch (error) {
      const reason = (error as Error).message;
      transcript.push(reason);
      this.cfn.invocations.push({
        logicalId: event.LogicalResourceId,
        requestType: event.RequestType,
        physicalId: event.PhysicalResourceId,
        outcome: 'FAILED',
        reason,
      });
      return { failed: true, reason, physicalId: event.PhysicalResourceId ?? CREATE_FAILED_MARKER, data: {} };
    } finally {
      restore();
    }
  }

  private setStatus(status: string) {
    this.status = status;
    this.cfn.setStatus(this.stackId, status);
  }

  /**
   * Brokers are made in the fake once. Secrets are made, and made again when their properties change: like
   * CloudFormation, which regenerates a generated secret in place when its template changes (and again when
   * that change rolls back). Every other native resource is taken as created. Returns the secret changes, for
   * the rollback.
   */
  private applyNatives(template: Template): Array<{ logicalId: string; previous?: Json }> {
    const changes: Array<{ logicalId: string; previous?: Json }> = [];
    for (const [logicalId, resource] of Object.entries(template.Resources)) {
      if (resource.Type.startsWith('Custom::')) continue;
      const props = resource.Properties ?? {};
      const existing = this.natives.get(logicalId);
      if (resource.Type === 'AWS::SecretsManager::Secret') {
        if (!existing) {
          const arn = this.generateSecret(logicalId, props);
          this.natives.set(logicalId, {
            type: resource.Type,
            physicalId: arn,
            deletionPolicy: resource.DeletionPolicy,
            properties: props,
          });
          changes.push({ logicalId });
        } else if (JSON.stringify(existing.properties) !== JSON.stringify(props)) {
          changes.push({ logicalId, previous: existing.properties });
          this.generateSecret(logicalId, props, existing.physicalId);
          existing.properties = props;
        }
      } else if (existing) {
        continue;
      } else if (resource.Type === 'AWS::AmazonMQ::Broker') {
        const brokerId = `b-${randomUUID()}`;
        const arn = this.cfn.mq.addBroker({
          brokerId,
          brokerName: props.BrokerName,
          engineType: props.EngineType,
          authenticationStrategy: props.AuthenticationStrategy,
        });
        this.natives.set(logicalId, { type: resource.Type, physicalId: brokerId, arn });
      } else {
        this.natives.set(logicalId, { type: resource.Type, physicalId: logicalId });
      }
    }
    return changes;
  }

  /** A new random value for a generated secret (at `arn`, or a new secret); returns its ARN. */
  private generateSecret(logicalId: string, props: Json, arn?: string): string {
    const generate = props.GenerateSecretString;
    const password = randomPassword(generate?.PasswordLength ?? 32);
    const value = generate?.SecretStringTemplate
      ? JSON.stringify({
          ...JSON.parse(String(this.resolve(generate.SecretStringTemplate))),
          [generate.GenerateStringKey]: password,
        })
      : password;
    this.cfn.generatedSecrets.push(password, value);
    return this.cfn.mq.putSecret(arn ?? `${this.name}-${logicalId}`, value);
  }

  /** Resolves the intrinsic functions our templates use. */
  private resolve(value: Json): Json {
    if (Array.isArray(value)) return value.map((v) => this.resolve(v));
    if (value === null || typeof value !== 'object') return value;
    const [key] = Object.keys(value);
    const arg = value[key];
    switch (key) {
      case 'Ref':
        return this.ref(arg);
      case 'Fn::GetAtt': {
        const [logicalId, attribute] = arg as [string, string];
        const native = this.natives.get(logicalId);
        if (native)
          return attribute === 'Arn' ? (native.arn ?? native.physicalId) : `${native.physicalId}.${attribute}`;
        return this.deployed.get(logicalId)?.data[attribute];
      }
      case 'Fn::Join':
        return (this.resolve(arg[1]) as unknown[]).join(arg[0]);
      case 'Fn::Select':
        return (this.resolve(arg[1]) as unknown[])[Number(arg[0])];
      case 'Fn::Split':
        return String(this.resolve(arg[1])).split(arg[0]);
      default:
        return Object.fromEntries(Object.entries(value).map(([k, v]) => [k, this.resolve(v)]));
    }
  }

  private ref(name: string): string {
    const pseudo: Record<string, string> = {
      'AWS::StackId': this.stackId,
      'AWS::StackName': this.name,
      'AWS::Region': 'us-east-1',
      'AWS::AccountId': ACCOUNT,
      'AWS::Partition': 'aws',
      'AWS::URLSuffix': 'amazonaws.com',
    };
    const resolved = pseudo[name] ?? this.physicalId(name);
    if (resolved === undefined) throw new Error(`cannot resolve Ref ${name}`);
    return resolved;
  }
}

/** Finds the handler(s) behind a service token: framework function → its USER_* environment → our asset. */
function loadHandlers(assemblyDir: string, template: Template, serviceToken: Json, options: EmulatorOptions): Handlers {
  const frameworkId = serviceToken?.['Fn::GetAtt']?.[0];
  const env = template.Resources[frameworkId]?.Properties?.Environment?.Variables ?? {};
  const load = (variable: string) => {
    const logicalId = env[variable]?.['Fn::GetAtt']?.[0];
    if (!logicalId) return undefined;
    const fn = template.Resources[logicalId].Properties;
    const assetHash = String(fn.Code.S3Key).replace(/\.zip$/, '');
    const [file, exported] = String(fn.Handler).split('.');
    const bundle = path.join(assemblyDir, `asset.${assetHash}`, `${file}.js`);
    // eslint-disable-next-line @typescript-eslint/no-require-imports
    const handler = require(bundle)[exported];
    if (typeof handler !== 'function') throw new Error(`${bundle} exports no function ${exported}`);
    return { handler, timeoutMs: options.handlerTimeoutMs ?? Number(fn.Timeout ?? 3) * 1000 };
  };
  const onEvent = load('USER_ON_EVENT_FUNCTION_ARN');
  if (!onEvent) throw new Error(`no handler behind service token ${JSON.stringify(serviceToken)}`);
  return {
    onEvent: onEvent.handler,
    isComplete: load('USER_IS_COMPLETE_FUNCTION_ARN')?.handler,
    timeoutMs: onEvent.timeoutMs,
  };
}

/** CloudFormation hands custom resources every scalar as a string. */
function stringify(value: Json): Json {
  if (Array.isArray(value)) return value.map(stringify);
  if (value !== null && typeof value === 'object')
    return Object.fromEntries(Object.entries(value).map(([k, v]) => [k, stringify(v)]));
  return value === undefined || value === null ? value : String(value);
}

function contextFor(timeoutMs: number) {
  const end = Date.now() + timeoutMs;
  return { getRemainingTimeInMillis: () => Math.max(0, end - Date.now()) };
}

/** Lambda kills a function at its timeout; the framework then reports the failure. */
async function withTimeout<T>(promise: Promise<T>, ms: number): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const killed = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`Task timed out after ${(ms / 1000).toFixed(2)} seconds`)), ms);
  });
  try {
    return await Promise.race([promise, killed]);
  } finally {
    clearTimeout(timer);
  }
}

function captureConsole(into: string[]): () => void {
  const originals = { log: console.log, warn: console.warn, error: console.error, info: console.info };
  for (const level of Object.keys(originals) as Array<keyof typeof originals>) {
    console[level] = (...args: unknown[]) => void into.push(args.map(String).join(' '));
  }
  return () => Object.assign(console, originals);
}

function dependencies(resource: Template['Resources'][string]): string[] {
  const found = new Set<string>([resource.DependsOn ?? []].flat());
  const walk = (value: Json) => {
    if (Array.isArray(value)) return value.forEach(walk);
    if (value === null || typeof value !== 'object') return;
    if (typeof value.Ref === 'string') found.add(value.Ref);
    if (Array.isArray(value['Fn::GetAtt'])) found.add(value['Fn::GetAtt'][0]);
    Object.values(value).forEach(walk);
  };
  walk(resource.Properties);
  return [...found];
}

/** Runs `work` per item once its dependencies are done, independent items concurrently, as CloudFormation does. */
async function inDependencyOrder<T extends { logicalId: string; dependsOn: string[] }>(
  items: T[],
  work: (item: T) => Promise<boolean>,
): Promise<void> {
  const pending = new Map(items.map((item) => [item.logicalId, item]));
  const finished = new Set<string>();
  while (pending.size > 0) {
    const ready = [...pending.values()].filter((item) =>
      item.dependsOn.every((id) => finished.has(id) || !pending.has(id)),
    );
    if (ready.length === 0) throw new Error(`dependency cycle among ${[...pending.keys()].join(', ')}`);
    const results = await Promise.all(ready.map(async (item) => [item.logicalId, await work(item)] as const));
    for (const [id, ok] of results) {
      pending.delete(id);
      if (ok) finished.add(id);
    }
    if (results.some(([, ok]) => !ok)) return; // CloudFormation starts nothing new after a failure
  }
}

function reverseDependencyOrder(entries: Array<[string, Deployed]>): Array<[string, Deployed]> {
  const ordered: Array<[string, Deployed]> = [];
  const remaining = new Map(entries);
  while (remaining.size > 0) {
    // A resource goes once nothing remaining depends on it.
    const free = [...remaining.entries()].filter(
      ([id]) => ![...remaining.values()].some((r) => r.dependsOn.includes(id)),
    );
    if (free.length === 0) throw new Error('dependency cycle');
    for (const [id, resource] of free) {
      ordered.push([id, resource]);
      remaining.delete(id);
    }
  }
  return ordered;
}

function randomPassword(length: number): string {
  const alphabet = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789';
  return [...randomBytes(length)].map((byte) => alphabet[byte % alphabet.length]).join('');
}
