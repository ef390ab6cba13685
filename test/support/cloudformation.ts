/**
 * A small CloudFormation for lifecycle tests: it deploys synthesized cloud assemblies against the local
 * Amazon MQ endpoint (./mq-endpoint), driving the *bundled* handlers found in the assembly's assets the way
 * the CDK Provider framework does, with the events CloudFormation sends on create, update, replacement,
 * rollback and delete.
 *
 * What it models (from ../../../shared/reference/custom-resource-contract.md):
 * - parameters (`String`, `CommaDelimitedList`, `AWS::SSM::Parameter::Value<String>` read from its own
 *   parameter store at every deploy) and properties are resolved (Ref, Fn::GetAtt of native resources and of
 *   custom resources' `Data` (a missing attribute fails the resource, as CloudFormation does), Fn::Join,
 *   Fn::Select, Fn::Split, Fn::Sub) and every scalar stringified;
 * - resources run in dependency order (DependsOn and references), independent ones concurrently;
 * - an Update that returns a new physical ID is a replacement: the old ID is deleted in the cleanup phase
 *   (`UPDATE_COMPLETE_CLEANUP_IN_PROGRESS`), after the whole deploy succeeded (never with UpdateReplacePolicy
 *   Retain);
 * - a failure rolls back: created resources are deleted (not with DeletionPolicy Retain; RetainExceptOnCreate
 *   is deleted), updated ones, the failed one included, get an Update with old and new swapped (its
 *   `OldResourceProperties` are the failed new ones); physical resources made by the failed deploy are deleted
 *   in the rollback's cleanup phase (`UPDATE_ROLLBACK_COMPLETE_CLEANUP_IN_PROGRESS`); a cleanup Delete, forward or
 *   after a rollback, that fails is recorded (its invocation says FAILED) and never retried, and the stack still
 *   ends complete; a stack deletion deletes a resource once nothing left depends on it, independent ones at once,
 *   keeps what a resource that failed to delete depends on, and a retried deletion asks only what is left;
 * - DescribeStacks, ListStackResources, DescribeStackResource (with the resource's resolved `Metadata`) and
 *   DescribeStackEvents (query protocol, XML, paginated by NextToken) are served with what CloudFormation would show
 *   at that moment (where the reference is silent, `cleanupView` and `rollbackResourceStatus` offer each answer); by default the status says *_ROLLBACK_IN_PROGRESS as soon as a
 *   resource fails, while siblings already started are still running (`rollbackStatus`); CancelUpdateStack
 *   (`cancelUpdateOnStart`); both APIs can be made to fail (`inject`);
 * - nested stacks (`AWS::CloudFormation::Stack` of a CDK NestedStack): deployed from their template in the
 *   assembly, DescribeStacks shows ParentId and RootId; a nested stack whose creation the parent rolls back is
 *   deleted (DELETE_IN_PROGRESS) while the root says *_ROLLBACK_IN_PROGRESS;
 * - the Provider framework answers a failed Create with its CREATE_FAILED marker and answers the Delete that
 *   follows without calling the handler; a thrown error or a timeout is FAILED with its message as reason;
 * - an isComplete handler is polled after every event (Delete included, as the framework starts its waiter for
 *   each), with the event and every field onEvent answered, until it says complete (its physical ID and Data win),
 *   or the framework's total timeout;
 * - each Lambda function runs with its own resolved environment variables (per invocation, so that
 *   concurrent stacks do not see each other's) and its own module instance per stack;
 * - an event delivered twice (`redeliver`): after a first delivery that succeeded (its answer wins), whose answer
 *   was lost (the second's wins), or that never reached the handler; the second delivery may land in another Lambda
 *   environment (a fresh load of the bundle), after the first ran or while it runs.
 * Native resources it knows: AWS::AmazonMQ::Configuration (an ID, a revision that each update of its properties
 * but Tags raises by one, `Ref` and `Fn::GetAtt Id/Revision/Arn`; a broker created with one gets it as the fake's
 * `configurationAtCreate` says, a broker whose `Configuration` changes gets that revision pending, as UpdateBroker
 * does; `configurationRollback`), AWS::AmazonMQ::Broker and AWS::SecretsManager::Secret (made in the fake, with the
 * template's Tags; a change of Tags alone updates them in place, any other change regenerates the value, as
 * CloudFormation does), AWS::Lambda::Function (given an ARN; `lambdaFunction()` loads its bundle for a caller that
 * plays another service, e.g. Secrets Manager's rotation), and AWS::SecretsManager::RotationSchedule (turns rotation
 * on for the secret with the function's ARN and rules, and, like Secrets Manager with RotateImmediatelyOnUpdate's
 * default, asks for an immediate rotation: queued in `rotationRequests` once the deploy succeeded, for the rotation
 * driver to run, since Secrets Manager rotates asynchronously after the resource is created),
 * AWS::DynamoDB::Table (made in `cfn.dynamodb`, ./dynamodb-endpoint, under a generated name; deleted with the stack);
 * every other native
 * resource is taken as created.
 */
import { AsyncLocalStorage } from 'node:async_hooks';
import { randomBytes, randomUUID } from 'node:crypto';
import * as fs from 'node:fs';
import * as http from 'node:http';
import type { AddressInfo } from 'node:net';
import * as path from 'node:path';
import type { CallRecord, FakeMq } from './mq-endpoint';
import { FakeDynamoDb } from './dynamodb-endpoint';

export const CREATE_FAILED_MARKER = 'AWSCDK::CustomResourceProviderFramework::CREATE_FAILED';
const NESTED_STACK = 'AWS::CloudFormation::Stack';
const MQ_CONFIGURATION = 'AWS::AmazonMQ::Configuration';

type Json = any; // template fragments

interface Template {
  Parameters?: Record<string, { Type: string; Default?: string }>;
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

/** A custom resource (or nested stack) as deployed: what the next deploy compares against. */
interface Deployed {
  readonly type: string;
  readonly properties: Record<string, unknown>;
  readonly physicalId: string;
  readonly data: Record<string, string>;
  readonly serviceToken?: Handlers;
  readonly deletionPolicy?: string;
  readonly dependsOn: string[];
  /** Nested stacks: the template file deployed. */
  readonly templateFile?: string;
}

/** Our handler functions behind one service token, loaded from the assembly's asset folder. */
interface Handlers {
  readonly onEvent: (event: Json, context: Json) => Promise<Json>;
  readonly isComplete?: (event: Json, context: Json) => Promise<Json>;
  readonly onEventEnv: Record<string, string>;
  readonly isCompleteEnv: Record<string, string>;
  readonly timeoutMs: number;
  /**
   * onEvent in another Lambda environment: a fresh load of the same bundle (no module state shared with any other),
   * with `timings` set on it.
   */
  readonly onEventElsewhere?: (timings: EmulatorOptions['timings']) => (event: Json, context: Json) => Promise<Json>;
}

export interface Invocation {
  readonly stackName: string;
  readonly logicalId: string;
  readonly resourceType?: string;
  readonly requestType: string;
  readonly physicalId?: string;
  readonly outcome: 'SUCCESS' | 'FAILED' | 'SKIPPED';
  readonly reason?: string;
  /** The answer's physical ID (SUCCESS only). */
  readonly returnedPhysicalId?: string;
  /** Every Amazon MQ call (GetSecretValue excluded) made while this invocation (isComplete polls included) ran. */
  readonly mqCalls: CallRecord[];
  /** Another invocation ran at the same time: `mqCalls` may hold some of its calls. */
  readonly overlapped: boolean;
  /** The second delivery of an event that already succeeded. */
  readonly redelivered: boolean;
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
  /**
   * When DescribeStacks starts saying *_ROLLBACK_IN_PROGRESS after a resource failed: at once, while resources
   * already started still run ('onFirstFailure', the default: what CloudFormation shows), or only once they
   * finished ('afterInFlight').
   */
  readonly rollbackStatus?: 'onFirstFailure' | 'afterInFlight';
  /**
   * Timing knobs of the bundles: for each object a bundle exports under one of these names (`retryTiming`,
   * `rebootTiming`, `rotationTiming`, `deliveryTiming`), these values are set on it before the deploy (the rest keeps the bundle's own values).
   * A bundle that does not export the object is left alone.
   */
  readonly timings?: Record<string, Record<string, number>>;
  /** ListStackResources page size (CloudFormation's is 100). */
  readonly listPageSize?: number;
  /**
   * What ListStackResources shows for a resource while its replaced physical resource is deleted in the cleanup
   * phase (the reference is silent): its new physical ID as `UPDATE_COMPLETE` ('current', the default), the new
   * physical ID as `DELETE_IN_PROGRESS` ('deleting'), or the replaced (old) physical ID as `DELETE_IN_PROGRESS`
   * ('old'). Cleanup deletes run concurrently, as CloudFormation runs them. The same view holds for
   * DescribeStackResource, and for the cleanup after a rollback.
   */
  readonly cleanupView?: 'current' | 'deleting' | 'old';
  /**
   * What a resource's status says while a rollback updates or deletes it (CloudFormation's enumeration has resource
   * statuses `UPDATE_ROLLBACK_IN_PROGRESS` and `ROLLBACK_IN_PROGRESS`, and its documentation does not say when a
   * custom resource shows them): `UPDATE_IN_PROGRESS` / `DELETE_IN_PROGRESS` ('plain', the default), or
   * `UPDATE_ROLLBACK_IN_PROGRESS` / `ROLLBACK_IN_PROGRESS` ('rollback').
   */
  readonly rollbackResourceStatus?: 'plain' | 'rollback';
  /**
   * What the rollback of an `AWS::AmazonMQ::Configuration` update does (undocumented; a revision can never be
   * changed or removed): `newRevision` (the default: its update runs again with the old properties, and
   * UpdateConfiguration makes one more revision holding the old data) or `previousRevision` (its `Revision` is the
   * previous one again). Either way the broker's rollback update points it at that revision, pending.
   */
  readonly configurationRollback?: 'newRevision' | 'previousRevision';
}

export interface DeployOptions extends EmulatorOptions {
  /** Parameter values; a parameter not given keeps its previous value, else its Default. */
  readonly parameters?: Record<string, string>;
  /**
   * CancelUpdateStack as soon as this resource's event is sent: DescribeStacks says UPDATE_ROLLBACK_IN_PROGRESS
   * while that event runs, nothing new starts, then the stack rolls back.
   */
  readonly cancelUpdateOnStart?: string;
  /**
   * Delivers the matching events twice, as the Provider framework does when its invoke of the handler throws (it
   * waits until the function is active and invokes it again with the same event):
   * - `true`: a second time once the first succeeded; CloudFormation keeps the first answer;
   * - `'answerLost'`: the handler ran (onEvent) but the framework's invoke threw, so its answer is lost; the second
   *   delivery's answer is CloudFormation's;
   * - `'beforeRun'`: the first invoke threw before the handler ran; only the second delivery runs it;
   * - `'answerLostElsewhere'`: as `'answerLost'`, and the second delivery lands in another Lambda environment (a
   *   fresh load of the bundle: nothing of the first delivery's module state);
   * - `'whileRunningElsewhere'`: the framework's invoke threw while the handler still runs (its answer is lost), and
   *   the second delivery starts in another Lambda environment as soon as the first has sent its first CreateUser or
   *   UpdateUser (or finished without one); both run to their end, and the second's answer is CloudFormation's.
   */
  readonly redeliver?: (event: {
    RequestType: string;
    LogicalResourceId: string;
    PhysicalResourceId?: string;
  }) => boolean | 'answerLost' | 'beforeRun' | 'answerLostElsewhere' | 'whileRunningElsewhere';
}

export type StackApi = 'DescribeStacks' | 'ListStackResources' | 'DescribeStackEvents' | 'DescribeStackResource';
const STACK_APIS: readonly string[] = [
  'DescribeStacks',
  'ListStackResources',
  'DescribeStackEvents',
  'DescribeStackResource',
];

export interface StackApiInjection {
  /** Without it, every API. */
  readonly operation?: StackApi;
  /** Stack ID (or name); without it, every stack. */
  readonly stack?: string;
  /** How many matching calls fail (default 1; Infinity for all). */
  times?: number;
  readonly fault: 'internal' | 'throttle' | 'accessDenied';
}

export interface StackApiCall {
  readonly operation: string;
  readonly stack?: string;
  readonly status: number;
}

const ACCOUNT = '123456789012';

/** The view ListStackResources gives of one resource. */
interface ResourceView {
  type: string;
  physicalId?: string;
  status: string;
}

/** A rotation Secrets Manager would start now: a RotationSchedule was created (or updated, RotateImmediatelyOnUpdate). */
export interface RotationRequest {
  readonly stack: EmulatedStack;
  readonly secretArn: string;
  readonly lambdaArn: string;
  readonly reason: 'created' | 'updated';
}

/** A Lambda function of a deployed stack, loaded from its asset (one module instance per stack). */
export interface EmulatedFunction {
  readonly logicalId: string;
  readonly arn: string;
  readonly module: Json;
  readonly handler: (event: Json, context: Json) => Promise<Json>;
  readonly env: Record<string, string>;
  /** The function's `Timeout`, in ms. */
  readonly timeoutMs: number;
}

/** Per invocation: the Lambda function's environment, and where its console output goes. */
const invocationContext = new AsyncLocalStorage<{ env: Record<string, string>; transcript: string[] }>();

/** Serves CloudFormation's DescribeStacks and ListStackResources (query protocol, XML) for the emulated stacks. */
export class CloudFormation {
  static async start(mq: FakeMq, options: EmulatorOptions = {}): Promise<CloudFormation> {
    const cfn = new CloudFormation(mq, options, await FakeDynamoDb.start());
    await new Promise<void>((resolve) => cfn.server.listen(0, '127.0.0.1', resolve));
    const url = `http://127.0.0.1:${(cfn.server.address() as AddressInfo).port}`;
    Object.assign(process.env, mq.env(), cfn.dynamodb.env(), { AWS_ENDPOINT_URL_CLOUDFORMATION: url });
    cfn.installPerInvocationGlobals();
    return cfn;
  }

  /** Every log line, response and failure reason of the handlers: tests check that no secret is in here. */
  readonly transcript: string[] = [];
  readonly invocations: Invocation[] = [];
  /** Deliveries whose answer the framework lost or that never reached the handler (`redeliver`). */
  lostDeliveries = 0;
  /** Every call of an isComplete handler (the framework calls it after every event of a provider that has one). */
  isCompleteCalls = 0;
  /** The secret strings of the secrets it generated (AWS::SecretsManager::Secret with GenerateSecretString). */
  readonly generatedSecrets: string[] = [];
  /** DescribeStacks and ListStackResources calls, answered or failed. */
  readonly calls: StackApiCall[] = [];
  /** SSM parameter store, for `AWS::SSM::Parameter::Value<String>` parameters. */
  readonly ssm = new Map<string, string>([['/cdk-bootstrap/hnb659fds/version', '30']]);
  /** Immediate rotations asked for by RotationSchedules of successful deploys, oldest first (a driver takes them). */
  readonly rotationRequests: RotationRequest[] = [];
  private readonly stacks = new Map<string, EmulatedStack>();
  private injections: StackApiInjection[] = [];
  private readonly active = new Set<{ overlapped: boolean }>();
  private restoreGlobals?: () => void;
  private readonly server = http.createServer((req, res) => {
    let body = '';
    req
      .on('data', (chunk) => (body += chunk))
      .on('end', () => {
        const [status, xml] = this.answer(new URLSearchParams(body));
        res.writeHead(status, { 'content-type': 'text/xml' }).end(xml);
      });
  });

  private constructor(
    readonly mq: FakeMq,
    readonly options: EmulatorOptions,
    /** DynamoDB, for the `AWS::DynamoDB::Table` resources of the stacks (the users' table of deliveries). */
    readonly dynamodb: FakeDynamoDb,
  ) {}

  stack(name: string): EmulatedStack {
    return this.register(new EmulatedStack(this, name));
  }

  /** Makes a CloudFormation read fail (500 InternalFailure, 400 Throttling, 403 AccessDenied). */
  inject(injection: StackApiInjection): void {
    this.injections.push({ times: 1, ...injection });
  }

  clearInjections(): void {
    this.injections = [];
  }

  async stop(): Promise<void> {
    this.restoreGlobals?.();
    await this.dynamodb.stop();
    this.server.closeAllConnections();
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
  }

  /** @internal */
  register(stack: EmulatedStack): EmulatedStack {
    this.stacks.set(stack.stackId, stack);
    return stack;
  }

  /**
   * Runs `fn` as one invocation of a Lambda function: `process.env` answers with `env` first and console output goes
   * to the transcript (for callers that invoke functions themselves, e.g. the rotation driver).
   */
  runAs<T>(env: Record<string, string>, fn: () => Promise<T>): Promise<T> {
    return invocationContext.run({ env, transcript: this.transcript }, fn);
  }

  /** @internal Marks the start of an invocation; the returned flag says whether another ran meanwhile. */
  begin(): { overlapped: boolean; end: () => void } {
    const me = { overlapped: this.active.size > 0 };
    for (const other of this.active) other.overlapped = true;
    this.active.add(me);
    return Object.assign(me, { end: () => void this.active.delete(me) });
  }

  /**
   * `process.env` and `console` answer per invocation: a handler sees its own function's environment variables
   * (e.g. the stack ID the construct library gives it), and its log lines go to the transcript.
   */
  private installPerInvocationGlobals(): void {
    const env = process.env;
    process.env = new Proxy(env, {
      get: (target, key) => {
        const own = invocationContext.getStore()?.env;
        return typeof key === 'string' && own && key in own ? own[key] : Reflect.get(target, key);
      },
      has: (target, key) => {
        const own = invocationContext.getStore()?.env;
        return (typeof key === 'string' && own !== undefined && key in own) || Reflect.has(target, key);
      },
    });
    const originals = { log: console.log, warn: console.warn, error: console.error, info: console.info };
    for (const level of Object.keys(originals) as Array<keyof typeof originals>) {
      console[level] = (...args: unknown[]) => {
        const context = invocationContext.getStore();
        if (context) context.transcript.push(args.map(String).join(' '));
        else originals[level](...args);
      };
    }
    this.restoreGlobals = () => {
      process.env = env;
      Object.assign(console, originals);
    };
  }

  private answer(params: URLSearchParams): [number, string] {
    const action = params.get('Action') ?? '';
    const stackName = params.get('StackName') ?? undefined;
    const record = (status: number) => this.calls.push({ operation: action, stack: stackName, status });
    if (!STACK_APIS.includes(action)) {
      record(400);
      return [400, errorXml('Sender', 'InvalidAction', `Could not find operation ${action}`)];
    }
    const injection = this.injections.find(
      (i) =>
        (i.operation === undefined || i.operation === action) &&
        (i.stack === undefined || i.stack === stackName || this.find(i.stack) === this.find(stackName ?? '')),
    );
    if (injection) {
      injection.times = (injection.times ?? 1) - 1;
      if (injection.times <= 0) this.injections = this.injections.filter((i) => i !== injection);
      const [status, type, code, message] =
        injection.fault === 'throttle'
          ? [400, 'Sender', 'Throttling', 'Rate exceeded']
          : injection.fault === 'accessDenied'
            ? [
                403,
                'Sender',
                'AccessDenied',
                `User: arn:aws:sts::${ACCOUNT}:assumed-role/handler/fake is not authorized to perform: cloudformation:${action}`,
              ]
            : [500, 'Receiver', 'InternalFailure', 'An internal error occurred.'];
      record(status);
      return [status, errorXml(type, code, message)];
    }
    const stack = stackName === undefined ? undefined : this.find(stackName);
    if (!stack) {
      record(400);
      return [400, errorXml('Sender', 'ValidationError', `Stack with id ${stackName} does not exist`)];
    }
    if (action === 'DescribeStackResource') {
      const answer = stack.describeResourceXml(params.get('LogicalResourceId') ?? '');
      record(answer[0]);
      return answer;
    }
    record(200);
    if (action === 'DescribeStacks') return [200, stack.describeXml()];
    if (action === 'DescribeStackEvents') {
      return [200, stack.eventsXml(params.get('NextToken') ?? undefined, this.options.listPageSize ?? 100)];
    }
    return [200, stack.listResourcesXml(params.get('NextToken') ?? undefined, this.options.listPageSize ?? 100)];
  }

  /** By stack ID, or by name (the stack of that name not deleted, as CloudFormation resolves names). */
  private find(nameOrId: string): EmulatedStack | undefined {
    return (
      this.stacks.get(nameOrId) ??
      [...this.stacks.values()].reverse().find((s) => s.name === nameOrId && s.status !== 'DELETE_COMPLETE')
    );
  }
}

export class EmulatedStack {
  readonly stackId: string;
  status = 'NONE';
  /** What DescribeStacks answers instead of the real status while set (e.g. a status CloudFormation shows early). */
  statusOverride?: string;
  /** Physical IDs of native resources (brokers, secrets) by logical ID. */
  private readonly natives = new Map<
    string,
    { type: string; physicalId: string; arn?: string; deletionPolicy?: string; properties?: Json; revision?: number }
  >();
  /** This deploy's changes of configurations and of brokers' `Configuration`, for its rollback. */
  private configurationChanges: Array<{ logicalId: string; previous?: Json }> = [];
  private brokerConfigurationChanges: Array<{ logicalId: string; previousRaw: Json }> = [];
  private deployed = new Map<string, Deployed>();
  private readonly view = new Map<string, ResourceView>();
  /** Each resource's `Metadata`, resolved, as the last deploy (or its rollback) left it. */
  private metadata = new Map<string, Json>();
  /** The stack's events, oldest first, as DescribeStackEvents shows them (newest first). */
  private readonly events: Array<{ logicalId: string; physicalId?: string; type: string; status: string; at: number }> =
    [];
  private readonly nestedStacks = new Map<string, EmulatedStack>();
  private readonly parameterValues = new Map<string, { given: string; value?: string | string[] }>();
  private readonly handlerCache = new Map<string, Handlers & { modules: Json[] }>();
  private readonly functionCache = new Map<string, EmulatedFunction>();
  /** The assembly and template of the last deploy that succeeded (for `lambdaFunction`). */
  private lastDeployed?: { dir: string; template: Template };
  private deployOptions: DeployOptions = {};
  private cancelled = false;

  constructor(
    private readonly cfn: CloudFormation,
    readonly name: string,
    readonly parent?: EmulatedStack,
  ) {
    this.stackId = `arn:aws:cloudformation:us-east-1:${ACCOUNT}:stack/${name}/${randomUUID()}`;
  }

  get root(): EmulatedStack {
    return this.parent ? this.parent.root : this;
  }

  /** The nested stack deployed for a logical ID of this stack (an `AWS::CloudFormation::Stack`). */
  nestedStack(logicalId: string): EmulatedStack | undefined {
    return this.nestedStacks.get(logicalId);
  }

  /** Every nested stack this stack ever made (deleted ones included), by logical ID. */
  allNestedStacks(): Record<string, EmulatedStack> {
    return Object.fromEntries(this.nestedStacks);
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

  /** The custom resources' physical IDs by logical ID (what ListStackResources shows for them now). */
  customResources(type?: string): Record<string, string | undefined> {
    return Object.fromEntries(
      [...this.view]
        .filter(([, v]) => (type ? v.type === type : v.type.startsWith('Custom::')))
        .map(([id, v]) => [id, v.physicalId]),
    );
  }

  /** The Data a custom resource returned. */
  data(logicalId: string): Record<string, string> | undefined {
    return this.deployed.get(logicalId)?.data;
  }

  /**
   * Deploys `<assemblyDir>/<stack name>.template.json`: create, update, replace, delete, or roll back.
   * `options` override the emulator's for this deploy (e.g. a short handler timeout, parameter values).
   */
  async deploy(assemblyDir: string, options: DeployOptions = {}): Promise<DeployResult> {
    return this.deployTemplate(assemblyDir, path.join(assemblyDir, `${this.name}.template.json`), options);
  }

  private async deployTemplate(
    assemblyDir: string,
    templateFile: string,
    options: DeployOptions,
  ): Promise<DeployResult> {
    const template: Template = JSON.parse(fs.readFileSync(templateFile, 'utf8'));
    this.deployOptions = options;
    this.cancelled = false;
    const creating = this.status === 'NONE';
    this.setStatus(creating ? 'CREATE_IN_PROGRESS' : 'UPDATE_IN_PROGRESS');
    const rollbackStatus = creating ? 'ROLLBACK_IN_PROGRESS' : 'UPDATE_ROLLBACK_IN_PROGRESS';
    try {
      this.resolveParameters(template, options.parameters ?? {});
    } catch (error) {
      this.setStatus(creating ? 'ROLLBACK_COMPLETE' : 'UPDATE_ROLLBACK_COMPLETE');
      return { status: this.status, reason: (error as Error).message };
    }
    const metadataBefore = this.metadata;
    this.metadata = this.resolveMetadata(template);
    const nativeChanges = this.applyNatives(template);
    const merged = { ...this.cfn.options, ...options };
    const rollbackView = (plain: string) =>
      merged.rollbackResourceStatus === 'rollback'
        ? plain === 'UPDATE_IN_PROGRESS'
          ? 'UPDATE_ROLLBACK_IN_PROGRESS'
          : 'ROLLBACK_IN_PROGRESS'
        : plain;

    const wanted = new Map<
      string,
      {
        logicalId: string;
        type: string;
        raw: Json;
        dependsOn: string[];
        token?: Handlers;
        policy?: string;
        replacePolicy?: string;
      }
    >();
    for (const [logicalId, resource] of Object.entries(template.Resources)) {
      const nested = resource.Type === NESTED_STACK;
      if (!resource.Type.startsWith('Custom::') && !nested) continue;
      const { ServiceToken, ...raw } = resource.Properties ?? {};
      wanted.set(logicalId, {
        logicalId,
        type: resource.Type,
        raw,
        dependsOn: dependencies(resource).filter((id) => {
          const type = template.Resources[id]?.Type;
          return type !== undefined && (type.startsWith('Custom::') || type === NESTED_STACK);
        }),
        token: nested ? undefined : this.handlers(assemblyDir, template, ServiceToken, merged),
        policy: resource.DeletionPolicy,
        replacePolicy: resource.UpdateReplacePolicy,
      });
    }

    const before = new Map(this.deployed);
    const done: Array<{
      logicalId: string;
      kind: 'create' | 'update';
      previous?: Deployed;
      attempted: Record<string, unknown>;
    }> = [];
    const cleanup: Array<[string, Deployed]> = [];
    let failure: string | undefined;
    const fail = (reason: string) => {
      failure ??= reason;
      if ((merged.rollbackStatus ?? 'onFirstFailure') === 'onFirstFailure') this.setStatus(rollbackStatus);
    };

    await inDependencyOrder([...wanted.values()], async (w) => {
      if (failure || this.cancelled) return false;
      if (options.cancelUpdateOnStart === w.logicalId) {
        this.cancelled = true;
        failure ??= 'Resource update cancelled (CancelUpdateStack)';
        this.setStatus(rollbackStatus);
      }
      const previous = this.deployed.get(w.logicalId);
      let properties: Record<string, unknown>;
      try {
        properties = this.resolve(w.raw) as Record<string, unknown>;
      } catch (error) {
        this.view.set(w.logicalId, {
          type: w.type,
          physicalId: previous?.physicalId,
          status: previous ? 'UPDATE_FAILED' : 'CREATE_FAILED',
        });
        fail(`${w.logicalId}: ${(error as Error).message}`);
        return false;
      }
      if (w.type === NESTED_STACK) return this.deployNested(assemblyDir, w, properties, previous, done, fail, options);
      if (previous && JSON.stringify(previous.properties) === JSON.stringify(properties)) {
        // Same properties: no event, but a new DeletionPolicy still takes effect.
        this.record(w, properties, previous.physicalId, previous.data);
        return true;
      }
      const requestType = previous ? 'Update' : 'Create';
      this.view.set(w.logicalId, {
        type: w.type,
        physicalId: previous?.physicalId,
        status: previous ? 'UPDATE_IN_PROGRESS' : 'CREATE_IN_PROGRESS',
      });
      const result = await this.invoke(w.token!, {
        RequestType: requestType,
        LogicalResourceId: w.logicalId,
        ResourceType: w.type,
        ResourceProperties: properties,
        ...(previous ? { OldResourceProperties: previous.properties, PhysicalResourceId: previous.physicalId } : {}),
      });
      done.push({ logicalId: w.logicalId, kind: previous ? 'update' : 'create', previous, attempted: properties });
      if (result.failed) {
        if (!previous) this.record(w, properties, CREATE_FAILED_MARKER, {});
        this.view.set(w.logicalId, {
          type: w.type,
          physicalId: previous?.physicalId ?? CREATE_FAILED_MARKER,
          status: previous ? 'UPDATE_FAILED' : 'CREATE_FAILED',
        });
        fail(`${w.logicalId}: ${result.reason}`);
        return false;
      }
      if (previous && previous.physicalId !== result.physicalId && w.replacePolicy !== 'Retain')
        cleanup.push([w.logicalId, previous]);
      this.record(w, properties, result.physicalId, result.data);
      this.view.set(w.logicalId, {
        type: w.type,
        physicalId: result.physicalId,
        status: previous ? 'UPDATE_COMPLETE' : 'CREATE_COMPLETE',
      });
      return true;
    });

    if (!failure) {
      // Cleanup phase: replaced physical resources, then resources removed from the template.
      const removed = [...before.entries()].filter(([id]) => !wanted.has(id));
      if (!creating && (cleanup.length > 0 || removed.length > 0))
        this.setStatus('UPDATE_COMPLETE_CLEANUP_IN_PROGRESS');
      await Promise.all(
        cleanup.map(async ([logicalId, old]) => this.cleanupDelete(logicalId, old, merged.cleanupView)),
      );
      for (const wave of reverseDependencyWaves(removed)) {
        await Promise.all(
          wave.map(async ([logicalId, old]) => {
            this.deployed.delete(logicalId);
            this.view.set(logicalId, { type: old.type, physicalId: old.physicalId, status: 'DELETE_IN_PROGRESS' });
            if (!retainedOnDelete(old.deletionPolicy)) await this.deleteResource(logicalId, old);
            this.view.delete(logicalId);
          }),
        );
      }
      for (const [logicalId, native] of [...this.natives]) {
        if (template.Resources[logicalId]) continue;
        this.natives.delete(logicalId);
        this.view.delete(logicalId);
        if (native.type === 'AWS::SecretsManager::Secret' && !retainedOnDelete(native.deletionPolicy)) {
          this.cfn.mq.deleteSecret(native.physicalId);
        }
        if (native.type === 'AWS::DynamoDB::Table' && !retainedOnDelete(native.deletionPolicy))
          this.cfn.dynamodb.deleteTable(native.physicalId);
        if (native.type === 'AWS::SecretsManager::RotationSchedule' && this.cfn.mq.secretValue(native.physicalId))
          this.cfn.mq.setRotation(native.physicalId, undefined);
      }
      this.lastDeployed = { dir: assemblyDir, template };
      this.applyRotationSchedules(template);
      this.setStatus(creating ? 'CREATE_COMPLETE' : 'UPDATE_COMPLETE');
      return { status: this.status };
    }

    this.setStatus(rollbackStatus);
    this.metadata = metadataBefore;
    let rollbackFailed: string | undefined;
    const rollbackCleanup: Array<[string, Deployed]> = [];
    for (const step of done.reverse()) {
      const current = this.deployed.get(step.logicalId)!;
      if (step.kind === 'create') {
        this.deployed.delete(step.logicalId);
        this.view.set(step.logicalId, {
          type: current.type,
          physicalId: current.physicalId,
          status: rollbackView('DELETE_IN_PROGRESS'),
        });
        // RetainExceptOnCreate (RemovalPolicy.RETAIN_ON_UPDATE_OR_DELETE) is deleted when its creation rolls back.
        const result =
          current.deletionPolicy === 'Retain' ? undefined : await this.deleteResource(step.logicalId, current);
        if (result?.failed) rollbackFailed ??= `${step.logicalId}: ${result.reason}`;
        if (creating)
          this.view.set(step.logicalId, {
            type: current.type,
            physicalId: current.physicalId,
            status: current.deletionPolicy === 'Retain' ? 'DELETE_SKIPPED' : 'DELETE_COMPLETE',
          });
        else this.view.delete(step.logicalId);
        continue;
      }
      const previous = step.previous!;
      if (previous.type === NESTED_STACK) {
        const child = this.nestedStacks.get(step.logicalId)!;
        this.view.set(step.logicalId, { type: NESTED_STACK, physicalId: child.stackId, status: 'UPDATE_IN_PROGRESS' });
        const result = await child.deployTemplate(assemblyDir, previous.templateFile!, {
          ...this.deployOptions,
          parameters: previous.properties.Parameters as Record<string, string>,
          cancelUpdateOnStart: undefined,
        });
        this.deployed.set(step.logicalId, previous);
        this.view.set(step.logicalId, { type: NESTED_STACK, physicalId: child.stackId, status: 'UPDATE_COMPLETE' });
        if (!/COMPLETE$/.test(result.status) || /ROLLBACK/.test(result.status))
          rollbackFailed ??= `${step.logicalId}: ${result.reason}`;
        continue;
      }
      this.view.set(step.logicalId, {
        type: current.type,
        physicalId: current.physicalId,
        status: rollbackView('UPDATE_IN_PROGRESS'),
      });
      // The rollback's "old" properties are the ones the failed deploy asked for, even where that update failed.
      const result = await this.invoke(previous.serviceToken!, {
        RequestType: 'Update',
        LogicalResourceId: step.logicalId,
        ResourceType: previous.type,
        ResourceProperties: previous.properties,
        OldResourceProperties: step.attempted,
        PhysicalResourceId: current.physicalId,
      });
      if (result.failed) {
        rollbackFailed ??= `${step.logicalId}: ${result.reason}`;
        this.view.set(step.logicalId, { type: current.type, physicalId: current.physicalId, status: 'UPDATE_FAILED' });
        continue;
      }
      this.deployed.set(step.logicalId, { ...previous, physicalId: result.physicalId, data: result.data });
      this.view.set(step.logicalId, { type: current.type, physicalId: result.physicalId, status: 'UPDATE_COMPLETE' });
      // The physical resource the failed deploy made is deleted in the rollback's cleanup phase.
      if (current.physicalId !== result.physicalId && current.physicalId !== previous.physicalId) {
        rollbackCleanup.push([step.logicalId, current]);
      }
    }
    // Native resources roll back after the custom resources that depend on them.
    this.rollBackConfigurations();
    for (const change of nativeChanges.reverse()) {
      const native = this.natives.get(change.logicalId)!;
      if (change.previous === undefined) {
        this.natives.delete(change.logicalId);
        this.view.delete(change.logicalId);
        this.cfn.mq.deleteSecret(native.physicalId);
      } else {
        // As forward: a change of tags only is undone in place; any other change generates the value again.
        const { Tags: _previousTags, ...previousValue } = change.previous;
        const { Tags: _failedTags, ...failedValue } = native.properties ?? {};
        if (JSON.stringify(previousValue) === JSON.stringify(failedValue)) {
          this.cfn.mq.tagSecret(native.physicalId, this.tags(change.previous.Tags));
        } else {
          this.generateSecret(change.logicalId, change.previous, native.physicalId);
        }
        native.properties = change.previous;
      }
    }
    if (!creating && rollbackCleanup.length > 0) this.setStatus('UPDATE_ROLLBACK_COMPLETE_CLEANUP_IN_PROGRESS');
    // As in the forward cleanup: a Delete that fails is reported (its invocation says FAILED) and skipped, never
    // retried, and the rollback still completes.
    await Promise.all(
      rollbackCleanup.map(async ([logicalId, made]) => this.cleanupDelete(logicalId, made, merged.cleanupView)),
    );
    if (rollbackFailed) {
      this.setStatus(creating ? 'ROLLBACK_FAILED' : 'UPDATE_ROLLBACK_FAILED');
      return { status: this.status, reason: `${failure}; rollback: ${rollbackFailed}` };
    }
    this.setStatus(creating ? 'ROLLBACK_COMPLETE' : 'UPDATE_ROLLBACK_COMPLETE');
    return { status: this.status, reason: failure };
  }

  /** An `AWS::CloudFormation::Stack` of the template: its own stack, deployed from the nested template. */
  private async deployNested(
    assemblyDir: string,
    w: { logicalId: string; type: string; dependsOn: string[]; policy?: string },
    properties: Record<string, unknown>,
    previous: Deployed | undefined,
    done: Array<{
      logicalId: string;
      kind: 'create' | 'update';
      previous?: Deployed;
      attempted: Record<string, unknown>;
    }>,
    fail: (reason: string) => void,
    options: DeployOptions,
  ): Promise<boolean> {
    const templateFile = nestedTemplateFile(assemblyDir, String(properties.TemplateURL));
    const fingerprint = { ...properties, Template: fs.readFileSync(templateFile, 'utf8') };
    if (previous && JSON.stringify(previous.properties) === JSON.stringify(fingerprint)) {
      this.deployed.set(w.logicalId, { ...previous, deletionPolicy: w.policy });
      return true;
    }
    let child = this.nestedStacks.get(w.logicalId);
    if (!child) {
      child = this.cfn.register(
        new EmulatedStack(
          this.cfn,
          `${this.name}-${w.logicalId}-${randomBytes(6).toString('hex').toUpperCase()}`,
          this,
        ),
      ) as EmulatedStack;
      this.nestedStacks.set(w.logicalId, child);
    }
    this.view.set(w.logicalId, {
      type: NESTED_STACK,
      physicalId: child.stackId,
      status: previous ? 'UPDATE_IN_PROGRESS' : 'CREATE_IN_PROGRESS',
    });
    const result = await child.deployTemplate(assemblyDir, templateFile, {
      ...options,
      parameters: (properties.Parameters ?? {}) as Record<string, string>,
      cancelUpdateOnStart: undefined,
    });
    done.push({ logicalId: w.logicalId, kind: previous ? 'update' : 'create', previous, attempted: fingerprint });
    this.deployed.set(w.logicalId, {
      type: NESTED_STACK,
      properties: fingerprint,
      physicalId: child.stackId,
      data: {},
      deletionPolicy: w.policy,
      dependsOn: w.dependsOn,
      templateFile,
    });
    const ok = result.status === 'CREATE_COMPLETE' || result.status === 'UPDATE_COMPLETE';
    this.view.set(w.logicalId, {
      type: NESTED_STACK,
      physicalId: child.stackId,
      status: ok ? (previous ? 'UPDATE_COMPLETE' : 'CREATE_COMPLETE') : previous ? 'UPDATE_FAILED' : 'CREATE_FAILED',
    });
    if (!ok)
      fail(
        `${w.logicalId}: Embedded stack ${child.stackId} was not successfully ${previous ? 'updated' : 'created'}: ${result.reason}`,
      );
    return ok;
  }

  /** Deletes the whole stack: custom resources and nested stacks in reverse dependency order, then native ones. */
  async destroy(options: DeployOptions = {}): Promise<DeployResult> {
    this.deployOptions = options;
    this.setStatus('DELETE_IN_PROGRESS');
    let failure: string | undefined;
    // CloudFormation deletes a resource once nothing left depends on it, independent ones concurrently.
    // A resource that failed to delete keeps what it depends on: CloudFormation does not delete those either.
    const kept = new Set<string>();
    const entries = [...this.deployed.entries()];
    for (const wave of reverseDependencyWaves(entries)) {
      await Promise.all(
        wave.map(async ([logicalId, resource]) => {
          if (entries.some(([id, r]) => kept.has(id) && r.dependsOn.includes(logicalId))) {
            kept.add(logicalId);
            return;
          }
          if (retainedOnDelete(resource.deletionPolicy)) {
            this.view.set(logicalId, {
              type: resource.type,
              physicalId: resource.physicalId,
              status: 'DELETE_SKIPPED',
            });
            return;
          }
          this.view.set(logicalId, {
            type: resource.type,
            physicalId: resource.physicalId,
            status: 'DELETE_IN_PROGRESS',
          });
          const result = await this.deleteResource(logicalId, resource);
          this.view.set(logicalId, {
            type: resource.type,
            physicalId: resource.physicalId,
            status: result.failed ? 'DELETE_FAILED' : 'DELETE_COMPLETE',
          });
          if (result.failed) kept.add(logicalId);
          // What is gone is gone from the stack: deleting it again (a retried deletion) asks nothing of it.
          else this.deployed.delete(logicalId);
          failure ??= result.failed ? `${logicalId}: ${result.reason}` : undefined;
        }),
      );
    }
    if (failure) {
      this.setStatus('DELETE_FAILED');
      return { status: this.status, reason: failure };
    }
    this.deployed.clear();
    for (const native of this.natives.values()) {
      if (native.type === 'AWS::SecretsManager::RotationSchedule' && this.cfn.mq.secretValue(native.physicalId))
        this.cfn.mq.setRotation(native.physicalId, undefined);
    }
    for (const native of this.natives.values()) {
      if (native.type === 'AWS::SecretsManager::Secret' && !retainedOnDelete(native.deletionPolicy))
        this.cfn.mq.deleteSecret(native.physicalId);
      if (native.type === 'AWS::DynamoDB::Table' && !retainedOnDelete(native.deletionPolicy))
        this.cfn.dynamodb.deleteTable(native.physicalId);
    }
    this.natives.clear();
    this.setStatus('DELETE_COMPLETE');
    return { status: this.status };
  }

  /** @internal DescribeStacks' answer. */
  describeXml(): string {
    const status = this.statusOverride ?? this.status;
    const nested = this.parent
      ? `<ParentId>${this.parent.stackId}</ParentId><RootId>${this.root.stackId}</RootId>`
      : '';
    return (
      '<DescribeStacksResponse xmlns="http://cloudformation.amazonaws.com/doc/2010-05-15/"><DescribeStacksResult>' +
      `<Stacks><member><StackId>${xml(this.stackId)}</StackId><StackName>${xml(this.name)}</StackName>` +
      `<StackStatus>${status}</StackStatus>${nested}` +
      '<CreationTime>2026-01-01T00:00:00Z</CreationTime></member></Stacks>' +
      `</DescribeStacksResult><ResponseMetadata><RequestId>${randomUUID()}</RequestId></ResponseMetadata></DescribeStacksResponse>`
    );
  }

  /** A replaced physical ID deleted in a cleanup phase, with the resource shown as `cleanupView` says. */
  private async cleanupDelete(logicalId: string, old: Deployed, cleanupView: EmulatorOptions['cleanupView']) {
    const current = this.view.get(logicalId);
    if (current && cleanupView === 'deleting') this.view.set(logicalId, { ...current, status: 'DELETE_IN_PROGRESS' });
    if (current && cleanupView === 'old')
      this.view.set(logicalId, { ...current, physicalId: old.physicalId, status: 'DELETE_IN_PROGRESS' });
    const result = await this.deleteResource(logicalId, old);
    if (current && (cleanupView === 'deleting' || cleanupView === 'old')) this.view.set(logicalId, current);
    return result;
  }

  /** The template's `Metadata` of each resource, resolved (a value naming what does not exist yet stays as written). */
  private resolveMetadata(template: Template): Map<string, Json> {
    const metadata = new Map<string, Json>();
    for (const [logicalId, resource] of Object.entries(template.Resources)) {
      const raw = (resource as { Metadata?: Json }).Metadata;
      if (raw === undefined) continue;
      try {
        metadata.set(logicalId, this.resolve(raw));
      } catch {
        metadata.set(logicalId, raw);
      }
    }
    return metadata;
  }

  /** @internal DescribeStackResource's answer: the resource as it is now, or CloudFormation's ValidationError. */
  describeResourceXml(logicalId: string): [number, string] {
    const v = this.view.get(logicalId);
    if (!v) {
      return [
        400,
        errorXml('Sender', 'ValidationError', `Resource ${logicalId} does not exist for stack ${this.name}`),
      ];
    }
    const metadata = this.metadata.get(logicalId);
    return [
      200,
      '<DescribeStackResourceResponse xmlns="http://cloudformation.amazonaws.com/doc/2010-05-15/">' +
        '<DescribeStackResourceResult><StackResourceDetail>' +
        `<StackId>${xml(this.stackId)}</StackId><StackName>${xml(this.name)}</StackName>` +
        `<LogicalResourceId>${xml(logicalId)}</LogicalResourceId>` +
        (v.physicalId !== undefined ? `<PhysicalResourceId>${xml(v.physicalId)}</PhysicalResourceId>` : '') +
        `<ResourceType>${xml(v.type)}</ResourceType><ResourceStatus>${v.status}</ResourceStatus>` +
        '<LastUpdatedTimestamp>2026-01-01T00:00:00Z</LastUpdatedTimestamp>' +
        (metadata !== undefined ? `<Metadata>${xml(JSON.stringify(metadata))}</Metadata>` : '') +
        '<DriftInformation><StackResourceDriftStatus>NOT_CHECKED</StackResourceDriftStatus></DriftInformation>' +
        '</StackResourceDetail></DescribeStackResourceResult>' +
        `<ResponseMetadata><RequestId>${randomUUID()}</RequestId></ResponseMetadata></DescribeStackResourceResponse>`,
    ];
  }

  /** @internal ListStackResources' answer: one page of the resources as they are now. */
  listResourcesXml(nextToken: string | undefined, pageSize: number): string {
    const all = [...this.view.entries()];
    const start = nextToken ? Number(Buffer.from(nextToken, 'base64').toString('utf8').split('|')[1]) : 0;
    const page = all.slice(start, start + pageSize);
    const more = start + pageSize < all.length;
    const members = page
      .map(
        ([logicalId, v]) =>
          `<member><LogicalResourceId>${xml(logicalId)}</LogicalResourceId>` +
          (v.physicalId !== undefined ? `<PhysicalResourceId>${xml(v.physicalId)}</PhysicalResourceId>` : '') +
          `<ResourceType>${xml(v.type)}</ResourceType><ResourceStatus>${v.status}</ResourceStatus>` +
          '<LastUpdatedTimestamp>2026-01-01T00:00:00Z</LastUpdatedTimestamp>' +
          '<DriftInformation><StackResourceDriftStatus>NOT_CHECKED</StackResourceDriftStatus></DriftInformation></member>',
      )
      .join('');
    const token = more
      ? `<NextToken>${Buffer.from(`${this.stackId}|${start + pageSize}`).toString('base64')}</NextToken>`
      : '';
    return (
      '<ListStackResourcesResponse xmlns="http://cloudformation.amazonaws.com/doc/2010-05-15/"><ListStackResourcesResult>' +
      `<StackResourceSummaries>${members}</StackResourceSummaries>${token}</ListStackResourcesResult>` +
      `<ResponseMetadata><RequestId>${randomUUID()}</RequestId></ResponseMetadata></ListStackResourcesResponse>`
    );
  }

  private async deleteResource(logicalId: string, resource: Deployed) {
    if (resource.type === NESTED_STACK) {
      const child = this.nestedStacks.get(logicalId);
      const result = child ? await child.destroy(this.deployOptions) : { status: 'DELETE_COMPLETE' };
      return {
        failed: result.status !== 'DELETE_COMPLETE',
        reason: result.reason,
        physicalId: resource.physicalId,
        data: {},
      };
    }
    // The Provider framework answers the Delete of a failed Create itself.
    if (resource.physicalId === CREATE_FAILED_MARKER) {
      this.cfn.invocations.push({
        stackName: this.name,
        logicalId,
        requestType: 'Delete',
        physicalId: CREATE_FAILED_MARKER,
        outcome: 'SKIPPED',
        mqCalls: [],
        overlapped: false,
        redelivered: false,
      });
      return { failed: false, physicalId: CREATE_FAILED_MARKER, data: {} };
    }
    return this.invoke(resource.serviceToken!, {
      RequestType: 'Delete',
      LogicalResourceId: logicalId,
      ResourceType: resource.type,
      ResourceProperties: resource.properties,
      PhysicalResourceId: resource.physicalId,
    });
  }

  private record(
    w: { logicalId: string; type: string; dependsOn: string[]; token?: Handlers; policy?: string },
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

  /** Calls the handler as the Provider framework does; never throws. A second delivery if `redeliver` asks. */
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
    // A rollback or cleanup runs the function as this deploy configured it (its timeout).
    const timeoutMs = this.deployOptions.handlerTimeoutMs;
    const run = timeoutMs === undefined ? handlers : { ...handlers, timeoutMs };
    const redelivery = this.deployOptions.redeliver?.(event);
    if (redelivery === 'answerLostElsewhere' || redelivery === 'whileRunningElsewhere') {
      return this.invokeElsewhere(run, event, redelivery);
    }
    if (redelivery === 'answerLost') await this.runLostDelivery(run, event);
    if (redelivery === 'beforeRun') this.cfn.lostDeliveries++;
    const first = await this.invokeOnce(run, event, false);
    if (!first.failed && redelivery === true) await this.invokeOnce(run, event, true);
    return first;
  }

  /**
   * A first delivery whose answer is lost (after it ran, or while it runs) and a second one in another Lambda
   * environment, whose answer is CloudFormation's.
   */
  private async invokeElsewhere(
    handlers: Handlers,
    event: Json,
    how: 'answerLostElsewhere' | 'whileRunningElsewhere',
  ): Promise<{ failed: boolean; reason?: string; physicalId: string; data: Record<string, string> }> {
    if (!handlers.onEventElsewhere) throw new Error('this service token has no bundle to load again');
    const elsewhere = {
      ...handlers,
      onEvent: handlers.onEventElsewhere({ ...this.cfn.options.timings, ...this.deployOptions.timings }),
    };
    if (how === 'answerLostElsewhere') {
      await this.runLostDelivery(handlers, event);
      return this.invokeOnce(elsewhere, event, false);
    }
    const firstCall = this.cfn.mq.calls.length;
    let finished = false;
    const first = this.runLostDelivery(handlers, event).finally(() => (finished = true));
    const wrote = () =>
      this.cfn.mq.calls
        .slice(firstCall)
        .some((call) => call.operation === 'CreateUser' || call.operation === 'UpdateUser');
    while (!finished && !wrote()) await new Promise((resolve) => setTimeout(resolve, 2));
    const [, second] = await Promise.all([first, this.invokeOnce(elsewhere, event, false)]);
    return second;
  }

  /** A delivery whose answer the framework never saw: onEvent runs, whatever it answers or throws is dropped. */
  private async runLostDelivery(handlers: Handlers, event: Json): Promise<void> {
    this.cfn.lostDeliveries++;
    await invocationContext
      .run({ env: handlers.onEventEnv, transcript: this.cfn.transcript }, () =>
        withTimeout(handlers.onEvent(event, contextFor(handlers.timeoutMs)), handlers.timeoutMs),
      )
      .catch(() => undefined);
  }

  private async invokeOnce(
    handlers: Handlers,
    event: Json,
    redelivered: boolean,
  ): Promise<{ failed: boolean; reason?: string; physicalId: string; data: Record<string, string> }> {
    const transcript = this.cfn.transcript;
    const firstCall = this.cfn.mq.calls.length;
    const span = this.cfn.begin();
    const verb = String(event.RequestType).toUpperCase();
    if (!redelivered)
      this.resourceEvent(event.LogicalResourceId, event.ResourceType, `${verb}_IN_PROGRESS`, event.PhysicalResourceId);
    const record = (outcome: 'SUCCESS' | 'FAILED', extra: Partial<Invocation>) => {
      span.end();
      if (!redelivered) {
        this.resourceEvent(
          event.LogicalResourceId,
          event.ResourceType,
          `${verb}_${outcome === 'SUCCESS' ? 'COMPLETE' : 'FAILED'}`,
          extra.returnedPhysicalId ?? event.PhysicalResourceId,
        );
      }
      this.cfn.invocations.push({
        stackName: this.name,
        logicalId: event.LogicalResourceId,
        resourceType: event.ResourceType,
        requestType: event.RequestType,
        physicalId: event.PhysicalResourceId,
        outcome,
        mqCalls: this.cfn.mq.mqCalls(firstCall),
        overlapped: span.overlapped,
        redelivered,
        ...extra,
      });
    };
    const run = <T>(env: Record<string, string>, fn: () => Promise<T>) =>
      invocationContext.run({ env, transcript }, fn);
    try {
      const response = await run(handlers.onEventEnv, () =>
        withTimeout(handlers.onEvent(event, contextFor(handlers.timeoutMs)), handlers.timeoutMs),
      );
      let physicalId: string = response?.PhysicalResourceId ?? event.PhysicalResourceId ?? event.RequestId;
      if (event.RequestType === 'Delete' && physicalId !== event.PhysicalResourceId)
        throw new Error(`DELETE: cannot change the physical resource ID from "${event.PhysicalResourceId}"`);
      let data: Record<string, string> = response?.Data ?? {};
      // The framework starts its waiter for every event, Delete included, with every field onEvent answered.
      if (handlers.isComplete) {
        const deadline = Date.now() + (this.cfn.options.totalTimeoutMs ?? 30 * 60_000);
        for (;;) {
          this.cfn.isCompleteCalls++;
          const poll = await run(handlers.isCompleteEnv, () =>
            withTimeout(
              handlers.isComplete!(
                { ...event, ...response, PhysicalResourceId: physicalId, Data: data },
                contextFor(handlers.timeoutMs),
              ),
              handlers.timeoutMs,
            ),
          );
          if (poll?.IsComplete) {
            // The framework answers with the event, onEvent's and isComplete's fields merged: isComplete's win.
            physicalId = poll.PhysicalResourceId ?? physicalId;
            data = { ...data, ...(poll.Data ?? {}) };
            break;
          }
          if (poll?.Data && Object.keys(poll.Data).length > 0)
            throw new Error('"Data" is not allowed if "IsComplete" is "False"');
          if (Date.now() > deadline) throw new Error('Operation timed out');
          await new Promise((resolve) => setTimeout(resolve, this.cfn.options.queryIntervalMs ?? 20));
        }
      }
      transcript.push(JSON.stringify(response));
      record('SUCCESS', { returnedPhysicalId: physicalId });
      return { failed: false, physicalId, data };
    } catch (error) {
      const reason = (error as Error).message;
      transcript.push(reason);
      record('FAILED', { reason });
      return { failed: true, reason, physicalId: event.PhysicalResourceId ?? CREATE_FAILED_MARKER, data: {} };
    }
  }

  private setStatus(status: string) {
    if (status !== this.status) {
      this.events.push({
        logicalId: this.name,
        physicalId: this.stackId,
        type: 'AWS::CloudFormation::Stack',
        status,
        at: Date.now(),
      });
    }
    this.status = status;
  }

  /** @internal Records a resource event, as CloudFormation does around each handler invocation. */
  resourceEvent(logicalId: string, type: string, status: string, physicalId?: string): void {
    this.events.push({ logicalId, physicalId, type, status, at: Date.now() });
  }

  /** @internal DescribeStackEvents' answer: one page, newest first. */
  eventsXml(nextToken: string | undefined, pageSize: number): string {
    const all = [...this.events].reverse();
    const start = nextToken ? Number(Buffer.from(nextToken, 'base64').toString('utf8').split('|')[1]) : 0;
    const page = all.slice(start, start + pageSize);
    const members = page
      .map(
        (e, i) =>
          `<member><StackId>${xml(this.stackId)}</StackId><EventId>${start + i}</EventId>` +
          `<StackName>${xml(this.name)}</StackName><LogicalResourceId>${xml(e.logicalId)}</LogicalResourceId>` +
          (e.physicalId !== undefined ? `<PhysicalResourceId>${xml(e.physicalId)}</PhysicalResourceId>` : '') +
          `<ResourceType>${xml(e.type)}</ResourceType><Timestamp>${new Date(e.at).toISOString()}</Timestamp>` +
          `<ResourceStatus>${e.status}</ResourceStatus></member>`,
      )
      .join('');
    const token =
      start + pageSize < all.length
        ? `<NextToken>${Buffer.from(`${this.stackId}|${start + pageSize}`).toString('base64')}</NextToken>`
        : '';
    return (
      '<DescribeStackEventsResponse xmlns="http://cloudformation.amazonaws.com/doc/2010-05-15/"><DescribeStackEventsResult>' +
      `<StackEvents>${members}</StackEvents>${token}</DescribeStackEventsResult>` +
      `<ResponseMetadata><RequestId>${randomUUID()}</RequestId></ResponseMetadata></DescribeStackEventsResponse>`
    );
  }

  /**
   * Parameter values for this deploy: given, else the previous value, else the Default. SSM parameter types are
   * read from the emulator's parameter store at every deploy, as CloudFormation does.
   */
  private resolveParameters(template: Template, given: Record<string, string>): void {
    for (const [name, parameter] of Object.entries(template.Parameters ?? {})) {
      const raw = given[name] ?? this.parameterValues.get(name)?.given ?? parameter.Default;
      if (raw === undefined) throw new Error(`Parameters: [${name}] must have values`);
      let value: string | string[] | undefined = raw;
      const ssm = /^AWS::SSM::Parameter::Value<(.*)>$/.exec(parameter.Type);
      if (ssm) {
        value = this.cfn.ssm.get(raw);
        if (value !== undefined && ssm[1] !== 'String') value = value.split(',');
      } else if (parameter.Type === 'CommaDelimitedList' || parameter.Type.startsWith('List<')) {
        value = raw.split(',');
      }
      this.parameterValues.set(name, { given: raw, value });
    }
  }

  /**
   * Brokers are made in the fake once. Secrets are made, and made again when their properties change: like
   * CloudFormation, which regenerates a generated secret in place when its template changes (and again when
   * that change rolls back). Every other native resource is taken as created. Returns the secret changes, for
   * the rollback.
   */
  private applyNatives(template: Template): Array<{ logicalId: string; previous?: Json }> {
    const changes: Array<{ logicalId: string; previous?: Json }> = [];
    this.applyConfigurations(template);
    for (const [logicalId, resource] of Object.entries(template.Resources)) {
      if (resource.Type.startsWith('Custom::') || resource.Type === NESTED_STACK) continue;
      if (resource.Type === MQ_CONFIGURATION) continue; // applyConfigurations
      const props = resource.Properties ?? {};
      const existing = this.natives.get(logicalId);
      if (resource.Type === 'AWS::SecretsManager::Secret') {
        const { Tags: _tags, ...valueProps } = props;
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
          const { Tags: _oldTags, ...oldValueProps } = existing.properties ?? {};
          changes.push({ logicalId, previous: existing.properties });
          // Tags update in place; any other change makes CloudFormation generate the value again.
          if (JSON.stringify(oldValueProps) !== JSON.stringify(valueProps))
            this.generateSecret(logicalId, props, existing.physicalId);
          else this.cfn.mq.tagSecret(existing.physicalId, this.tags(props.Tags));
          existing.properties = props;
        }
      } else if (resource.Type === 'AWS::SecretsManager::RotationSchedule') {
        continue; // after the deploy: see applyRotationSchedules
      } else if (existing && resource.Type === 'AWS::AmazonMQ::Broker') {
        this.updateBrokerConfiguration(logicalId, props.Configuration, existing);
        continue;
      } else if (existing) {
        continue;
      } else if (resource.Type === 'AWS::AmazonMQ::Broker') {
        const brokerId = `b-${randomUUID()}`;
        const configuration = this.brokerConfiguration(props.Configuration);
        const arn = this.cfn.mq.addBroker({
          brokerId,
          brokerName: props.BrokerName,
          engineType: props.EngineType,
          authenticationStrategy: props.AuthenticationStrategy,
          configuration,
        });
        this.natives.set(logicalId, {
          type: resource.Type,
          physicalId: brokerId,
          arn,
          properties: { Configuration: props.Configuration, resolvedConfiguration: configuration },
        });
      } else if (resource.Type === 'AWS::DynamoDB::Table') {
        // CloudFormation generates the name of a table that names none: `<stack>-<logical ID>-<suffix>`.
        const name = props.TableName ?? `${this.name}-${logicalId}-${randomBytes(6).toString('hex').toUpperCase()}`;
        const hashKey = (props.KeySchema ?? []).find((k: Json) => k.KeyType === 'HASH')?.AttributeName;
        this.cfn.dynamodb.createTable(name, hashKey);
        this.natives.set(logicalId, {
          type: resource.Type,
          physicalId: name,
          arn: `arn:aws:dynamodb:us-east-1:${ACCOUNT}:table/${name}`,
          deletionPolicy: resource.DeletionPolicy,
        });
      } else if (resource.Type === 'AWS::Lambda::Function') {
        const arn = `arn:aws:lambda:us-east-1:${ACCOUNT}:function:${this.name}-${logicalId}`.slice(0, 140);
        this.natives.set(logicalId, { type: resource.Type, physicalId: `${this.name}-${logicalId}`, arn });
      } else {
        this.natives.set(logicalId, { type: resource.Type, physicalId: logicalId });
      }
      const native = this.natives.get(logicalId)!;
      this.view.set(logicalId, { type: native.type, physicalId: native.physicalId, status: 'CREATE_COMPLETE' });
    }
    return changes;
  }

  /**
   * `AWS::AmazonMQ::Configuration`, before the other native resources (a broker points at a revision of one): made
   * with a stable ID (`c-` and a UUID) at revision 1; an update that changes anything but its Tags makes the next
   * revision, as UpdateConfiguration does; a new name, engine or authentication strategy replaces it (a new ID).
   */
  private applyConfigurations(template: Template): void {
    this.configurationChanges = [];
    this.brokerConfigurationChanges = [];
    for (const [logicalId, resource] of Object.entries(template.Resources)) {
      if (resource.Type !== MQ_CONFIGURATION) continue;
      const props = this.resolve(resource.Properties ?? {});
      const existing = this.natives.get(logicalId);
      const { Tags: _tags, ...revisionProps } = props;
      const { Tags: _oldTags, ...oldRevisionProps } = existing?.properties ?? {};
      if (existing && JSON.stringify(oldRevisionProps) === JSON.stringify(revisionProps)) {
        existing.properties = props;
        continue;
      }
      this.configurationChanges.push({ logicalId, previous: existing && { ...existing } });
      const replaced =
        !existing ||
        ['Name', 'EngineType', 'EngineVersion', 'AuthenticationStrategy'].some(
          (key) => JSON.stringify(existing.properties?.[key]) !== JSON.stringify(props[key]),
        );
      if (replaced) {
        const id = `c-${randomUUID()}`;
        const arn = `arn:aws:mq:us-east-1:${ACCOUNT}:configuration:${id}`;
        this.natives.set(logicalId, { type: MQ_CONFIGURATION, physicalId: id, arn, properties: props, revision: 1 });
      } else {
        this.natives.set(logicalId, { ...existing, properties: props, revision: existing.revision! + 1 });
      }
      const status = existing ? 'UPDATE_COMPLETE' : 'CREATE_COMPLETE';
      this.view.set(logicalId, { type: MQ_CONFIGURATION, physicalId: this.natives.get(logicalId)!.physicalId, status });
    }
  }

  /** A broker's `Configuration` (`{ Id, Revision }`), resolved, as Amazon MQ takes it. */
  private brokerConfiguration(raw: Json): { id: string; revision: number } | undefined {
    if (raw === undefined) return undefined;
    const resolved = this.resolve(raw);
    return { id: String(resolved.Id), revision: Number(resolved.Revision) };
  }

  /**
   * The broker's update when its `Configuration` resolves to another revision: UpdateBroker makes that revision
   * pending on the broker, until its next reboot or maintenance window.
   */
  private updateBrokerConfiguration(logicalId: string, raw: Json, native: { physicalId: string; properties?: Json }) {
    const configuration = this.brokerConfiguration(raw);
    const before = native.properties?.resolvedConfiguration;
    if (JSON.stringify(configuration) === JSON.stringify(before)) return;
    this.brokerConfigurationChanges.push({ logicalId, previousRaw: native.properties?.Configuration });
    native.properties = { Configuration: raw, resolvedConfiguration: configuration };
    if (configuration) this.cfn.mq.setPendingConfiguration(native.physicalId, configuration);
  }

  /**
   * The rollback of this deploy's configuration changes: a new configuration is removed; an updated one gets its
   * old properties back (`configurationRollback`: in a new revision, or as its previous revision); then each broker
   * whose `Configuration` changed is updated back to its old template, resolved now: that revision is pending.
   */
  private rollBackConfigurations(): void {
    const mode = { ...this.cfn.options, ...this.deployOptions }.configurationRollback ?? 'newRevision';
    for (const { logicalId, previous } of this.configurationChanges.reverse()) {
      const current = this.natives.get(logicalId)!;
      if (!previous) {
        this.natives.delete(logicalId);
        this.view.delete(logicalId);
      } else if (current.physicalId !== previous.physicalId) {
        this.natives.set(logicalId, previous); // replaced: the old configuration is still there
        this.view.set(logicalId, {
          type: MQ_CONFIGURATION,
          physicalId: previous.physicalId,
          status: 'UPDATE_COMPLETE',
        });
      } else {
        const revision = mode === 'previousRevision' ? previous.revision : current.revision! + 1;
        this.natives.set(logicalId, { ...current, properties: previous.properties, revision });
      }
    }
    const brokers = this.brokerConfigurationChanges;
    this.configurationChanges = [];
    this.brokerConfigurationChanges = [];
    for (const { logicalId, previousRaw } of brokers) {
      this.updateBrokerConfiguration(logicalId, previousRaw, this.natives.get(logicalId)!);
    }
    this.brokerConfigurationChanges = [];
  }

  /** `Fn::GetAtt` of an `AWS::AmazonMQ::Configuration`: `Id`, `Revision` (a number, as CloudFormation's schema says) or `Arn`. */
  private configurationAttribute(native: { physicalId: string; arn?: string; revision?: number }, attribute: string) {
    if (attribute === 'Id') return native.physicalId;
    if (attribute === 'Revision') return native.revision!;
    if (attribute === 'Arn') return native.arn!;
    throw new Error(`Template error: AWS::AmazonMQ::Configuration has no attribute ${attribute}`);
  }

  /**
   * RotationSchedules, once the deploy succeeded (they depend on the users they rotate): rotation is turned on with
   * the function's ARN and rules; a new schedule, or a changed one with RotateImmediatelyOnUpdate (default true),
   * asks for an immediate rotation (`cfn.rotationRequests`). A schedule removed from the template turns rotation off.
   */
  private applyRotationSchedules(template: Template): void {
    for (const [logicalId, resource] of Object.entries(template.Resources)) {
      if (resource.Type !== 'AWS::SecretsManager::RotationSchedule') continue;
      const props = this.resolve(resource.Properties ?? {});
      const existing = this.natives.get(logicalId);
      if (existing && JSON.stringify(existing.properties) === JSON.stringify(props)) continue;
      const secretArn = String(props.SecretId);
      const lambdaArn = String(props.RotationLambdaARN);
      const rules = props.RotationRules ?? {};
      const rate = /^rate\((\d+) days?\)$/.exec(String(rules.ScheduleExpression ?? ''));
      this.cfn.mq.setRotation(secretArn, {
        lambdaArn,
        automaticallyAfterDays:
          rules.AutomaticallyAfterDays !== undefined
            ? Number(rules.AutomaticallyAfterDays)
            : rate
              ? Number(rate[1])
              : undefined,
        scheduleExpression: rules.ScheduleExpression,
      });
      this.natives.set(logicalId, { type: resource.Type, physicalId: secretArn, properties: props });
      this.view.set(logicalId, {
        type: resource.Type,
        physicalId: secretArn,
        status: existing ? 'UPDATE_COMPLETE' : 'CREATE_COMPLETE',
      });
      const immediately = String(props.RotateImmediatelyOnUpdate ?? 'true') !== 'false';
      if (!existing || immediately)
        this.cfn.rotationRequests.push({ stack: this, secretArn, lambdaArn, reason: existing ? 'updated' : 'created' });
    }
  }

  /** The template's `Tags` list (`[{Key, Value}]`) as a map, resolved; unresolvable values are left out. */
  private tags(tags: Json): Record<string, string> {
    const result: Record<string, string> = {};
    for (const tag of Array.isArray(tags) ? tags : []) {
      try {
        result[String(this.resolve(tag.Key))] = String(this.resolve(tag.Value));
      } catch {
        // A tag that names a resource not made yet: left out.
      }
    }
    return result;
  }

  /**
   * Loads a Lambda function of the last deployed template (by logical ID or ARN), as Lambda would run it: its own
   * copy of the bundle per stack (module state not shared with other stacks), its resolved `Environment.Variables`,
   * its `Timeout`. The exported timing knobs (`retryTiming`, `rebootTiming`, `rotationTiming`) are set from the
   * emulator's `timings`. `MQ_USER_TEST_BUNDLES=<dir>` runs `<dir>/<asset folder name>/index.js` when it exists.
   */
  lambdaFunction(logicalIdOrArn: string): EmulatedFunction {
    const last = this.lastDeployed;
    if (!last) throw new Error(`${this.name} was never deployed`);
    const logicalId =
      Object.keys(last.template.Resources).find(
        (id) =>
          last.template.Resources[id].Type === 'AWS::Lambda::Function' &&
          (id === logicalIdOrArn || this.natives.get(id)?.arn === logicalIdOrArn),
      ) ?? '';
    if (!logicalId) throw new Error(`no Lambda function ${logicalIdOrArn} in ${this.name}`);
    let loaded = this.functionCache.get(`${last.dir}|${logicalId}`);
    if (!loaded) {
      const fn = last.template.Resources[logicalId].Properties;
      const assetHash = String(fn.Code?.S3Key ?? '').replace(/\.zip$/, '');
      const [file, exported] = String(fn.Handler).split('.');
      const assetDir = path.join(last.dir, `asset.${assetHash}`);
      let source = path.join(assetDir, `${file}.js`);
      const override = process.env.MQ_USER_TEST_BUNDLES;
      if (override) {
        const bundleName = String(fn.Environment?.Variables?.MQ_USER_BUNDLE ?? 'mq-user-rotation');
        const candidate = path.join(override, bundleName, 'index.js');
        if (fs.existsSync(candidate)) source = candidate;
      }
      if (!fs.existsSync(source)) throw new Error(`no bundle ${source} for ${logicalId}`);
      const copy = path.join(assetDir, '.emulated', this.stackId.split('/')[2], `${logicalId}-${file}.js`);
      if (!fs.existsSync(copy)) {
        fs.mkdirSync(path.dirname(copy), { recursive: true });
        fs.copyFileSync(source, copy);
      }
      // eslint-disable-next-line @typescript-eslint/no-require-imports
      const module = require(copy);
      const handler = module[exported];
      if (typeof handler !== 'function') throw new Error(`${source} exports no function ${exported}`);
      loaded = {
        logicalId,
        arn: this.natives.get(logicalId)?.arn ?? logicalId,
        module,
        handler,
        env: this.resolveEnv(fn.Environment?.Variables),
        timeoutMs: Number(fn.Timeout ?? 3) * 1000,
      };
      this.functionCache.set(`${last.dir}|${logicalId}`, loaded);
    }
    applyTimings(loaded.module, { ...this.cfn.options.timings, ...this.deployOptions.timings });
    return loaded;
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
    return this.cfn.mq.putSecret(arn ?? `${this.name}-${logicalId}`, value, { tags: this.tags(props.Tags) });
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
        const [logicalId, attribute] = (typeof arg === 'string' ? arg.split('.') : arg) as [string, string];
        return this.getAtt(logicalId, attribute);
      }
      case 'Fn::Join':
        return (this.resolve(arg[1]) as unknown[]).join(arg[0]);
      case 'Fn::Select':
        return (this.resolve(arg[1]) as unknown[])[Number(arg[0])];
      case 'Fn::Split':
        return String(this.resolve(arg[1])).split(arg[0]);
      case 'Fn::Sub': {
        const [text, vars] = typeof arg === 'string' ? [arg, {}] : [arg[0] as string, this.resolve(arg[1] ?? {})];
        return text.replace(/\$\{([^}]+)\}/g, (_: string, name: string) => {
          if (name in vars) return String(vars[name]);
          const dot = name.indexOf('.');
          return String(
            dot > 0 && !name.startsWith('AWS::')
              ? this.getAtt(name.slice(0, dot), name.slice(dot + 1))
              : this.ref(name),
          );
        });
      }
      default:
        return Object.fromEntries(Object.entries(value).map(([k, v]) => [k, this.resolve(v)]));
    }
  }

  private getAtt(logicalId: string, attribute: string): Json {
    const native = this.natives.get(logicalId);
    if (native?.type === MQ_CONFIGURATION) return this.configurationAttribute(native, attribute);
    if (native) return attribute === 'Arn' ? (native.arn ?? native.physicalId) : `${native.physicalId}.${attribute}`;
    const custom = this.deployed.get(logicalId);
    if (!custom) throw new Error(`Template error: instance of Fn::GetAtt references undefined resource ${logicalId}`);
    const data = custom.data[attribute];
    if (data === undefined) {
      throw new Error(
        `CustomResource attribute error: Vendor response doesn't contain ${attribute} attribute in object ${custom.physicalId}`,
      );
    }
    return data;
  }

  private ref(name: string): Json {
    const pseudo: Record<string, string> = {
      'AWS::StackId': this.stackId,
      'AWS::StackName': this.name,
      'AWS::Region': 'us-east-1',
      'AWS::AccountId': ACCOUNT,
      'AWS::Partition': 'aws',
      'AWS::URLSuffix': 'amazonaws.com',
    };
    const parameter = this.parameterValues.get(name);
    if (parameter) {
      if (parameter.value === undefined) throw new Error(`Parameters: SSM parameter ${parameter.given} does not exist`);
      return parameter.value;
    }
    const resolved = pseudo[name] ?? this.physicalId(name);
    if (resolved === undefined) throw new Error(`cannot resolve Ref ${name}`);
    return resolved;
  }

  /** The handlers behind a service token, one module instance per stack and assembly (as one Lambda each). */
  private handlers(assemblyDir: string, template: Template, serviceToken: Json, options: EmulatorOptions): Handlers {
    const key = `${assemblyDir}|${JSON.stringify(serviceToken)}`;
    let handlers = this.handlerCache.get(key);
    if (!handlers) {
      handlers = loadHandlers(assemblyDir, template, serviceToken, options, this.stackId, (v) => this.resolveEnv(v));
      this.handlerCache.set(key, handlers);
    }
    for (const module of handlers.modules) applyTimings(module, options.timings);
    return { ...handlers, timeoutMs: options.handlerTimeoutMs ?? handlers.timeoutMs };
  }

  private resolveEnv(variables: Json): Record<string, string> {
    const env: Record<string, string> = {};
    for (const [name, value] of Object.entries(variables ?? {})) {
      try {
        env[name] = String(this.resolve(value));
      } catch {
        // A variable that names a resource not made yet: the handlers under test do not read it.
      }
    }
    return env;
  }
}

/** The nested stack's template in the assembly, found by the asset hash at the end of its TemplateURL. */
function nestedTemplateFile(assemblyDir: string, templateUrl: string): string {
  const hash = /([0-9a-f]{64})\.json$/.exec(templateUrl)?.[1];
  for (const file of fs.readdirSync(assemblyDir).filter((f) => f.endsWith('.assets.json'))) {
    const manifest = JSON.parse(fs.readFileSync(path.join(assemblyDir, file), 'utf8'));
    const asset = manifest.files?.[hash ?? ''];
    if (asset) return path.join(assemblyDir, asset.source.path);
  }
  throw new Error(`no nested template for ${templateUrl} in ${assemblyDir}`);
}

/** Retained when the stack deletes it or removes it from the template (not when its own creation rolls back). */
function retainedOnDelete(policy: string | undefined): boolean {
  return policy === 'Retain' || policy === 'RetainExceptOnCreate';
}

function xml(text: string): string {
  return text.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;').replace(/"/g, '&quot;');
}

function errorXml(type: string, code: string, message: string): string {
  return (
    '<ErrorResponse xmlns="http://cloudformation.amazonaws.com/doc/2010-05-15/">' +
    `<Error><Type>${type}</Type><Code>${code}</Code><Message>${xml(message)}</Message></Error>` +
    `<RequestId>${randomUUID()}</RequestId></ErrorResponse>`
  );
}

function applyTimings(module: Json, timings: EmulatorOptions['timings']): void {
  module.__emulatorOriginalTimings ??= Object.fromEntries(
    ['retryTiming', 'rebootTiming', 'rotationTiming', 'deliveryTiming']
      .filter((name) => module[name] && typeof module[name] === 'object')
      .map((name) => [name, { ...module[name] }]),
  );
  for (const [name, original] of Object.entries(module.__emulatorOriginalTimings as Record<string, object>)) {
    Object.assign(module[name], original, timings?.[name] ?? {});
  }
}

/**
 * Finds the handler(s) behind a service token: framework function → its USER_* environment → our asset. Each
 * stack gets its own copy of the bundle (a Lambda function is its own process: module state is not shared
 * between stacks). `MQ_USER_TEST_BUNDLES=<dir>` runs `<dir>/<the asset's bundle name>/index.js`
 * instead of the assembly's bundles, e.g. to check that a scenario fails on an older handler.
 */
function loadHandlers(
  assemblyDir: string,
  template: Template,
  serviceToken: Json,
  options: EmulatorOptions,
  stackId: string,
  resolveEnv: (variables: Json) => Record<string, string>,
): Handlers & { modules: Json[] } {
  const frameworkId = serviceToken?.['Fn::GetAtt']?.[0];
  const env = template.Resources[frameworkId]?.Properties?.Environment?.Variables ?? {};
  const modules: Json[] = [];
  const load = (variable: string) => {
    const logicalId = env[variable]?.['Fn::GetAtt']?.[0];
    if (!logicalId) return undefined;
    const fn = template.Resources[logicalId].Properties;
    const assetHash = String(fn.Code.S3Key).replace(/\.zip$/, '');
    const [file, exported] = String(fn.Handler).split('.');
    const assetDir = path.join(assemblyDir, `asset.${assetHash}`);
    const override = process.env.MQ_USER_TEST_BUNDLES;
    const source = override
      ? path.join(override, bundleName(path.join(assetDir, `${file}.js`)), 'index.js')
      : path.join(assetDir, `${file}.js`);
    const copy = path.join(assetDir, '.emulated', stackId.split('/')[2], `${file}.js`);
    if (!fs.existsSync(copy)) {
      fs.mkdirSync(path.dirname(copy), { recursive: true });
      fs.copyFileSync(source, copy);
    }
    // eslint-disable-next-line @typescript-eslint/no-require-imports
    const module = require(copy);
    let handler = module[exported];
    // An older user handler had no waiter: the framework then answered as soon as onEvent did.
    if (override && handler === undefined && variable === 'USER_IS_COMPLETE_FUNCTION_ARN')
      handler = async () => ({ IsComplete: true });
    if (typeof handler !== 'function') throw new Error(`${source} exports no function ${exported}`);
    modules.push(module);
    /** A fresh load of the same bundle, as another Lambda environment runs it. */
    const elsewhere = (timings: EmulatorOptions['timings']) => {
      const fresh = path.join(path.dirname(copy), `environment-${randomUUID()}`, `${file}.js`);
      fs.mkdirSync(path.dirname(fresh), { recursive: true });
      fs.copyFileSync(source, fresh);
      // eslint-disable-next-line @typescript-eslint/no-require-imports
      const freshModule = require(fresh);
      applyTimings(freshModule, timings);
      return freshModule[exported] as (event: Json, context: Json) => Promise<Json>;
    };
    return {
      handler,
      env: resolveEnv(fn.Environment?.Variables),
      timeoutMs: options.handlerTimeoutMs ?? Number(fn.Timeout ?? 3) * 1000,
      elsewhere,
    };
  };
  const onEvent = load('USER_ON_EVENT_FUNCTION_ARN');
  if (!onEvent) throw new Error(`no handler behind service token ${JSON.stringify(serviceToken)}`);
  const isComplete = load('USER_IS_COMPLETE_FUNCTION_ARN');
  return {
    onEvent: onEvent.handler,
    isComplete: isComplete?.handler,
    onEventEnv: onEvent.env,
    isCompleteEnv: isComplete?.env ?? {},
    timeoutMs: onEvent.timeoutMs,
    onEventElsewhere: onEvent.elsewhere,
    modules,
  };
}

/** Which of this repository's bundles (assets/<name>/index.js) an assembly's asset file is a copy of. */
function bundleName(assetFile: string): string {
  const content = fs.readFileSync(assetFile);
  const assets = path.join(__dirname, '..', '..', 'assets');
  const name = fs.readdirSync(assets).find((dir) => {
    const candidate = path.join(assets, dir, 'index.js');
    return fs.existsSync(candidate) && fs.readFileSync(candidate).equals(content);
  });
  if (!name) throw new Error(`${assetFile} is none of the bundles in ${assets}`);
  return name;
}

/** CloudFormation hands custom resources every scalar as a string. */
function stringify(value: Json): Json {
  if (Array.isArray(value)) return value.map(stringify);
  if (value !== null && typeof value === 'object')
    return Object.fromEntries(Object.entries(value).map(([k, v]) => [k, stringify(v)]));
  return value === undefined || value === null ? value : String(value);
}

export function contextFor(timeoutMs: number) {
  const end = Date.now() + timeoutMs;
  return { getRemainingTimeInMillis: () => Math.max(0, end - Date.now()) };
}

/** Lambda kills a function at its timeout; the framework then reports the failure. */
export async function withTimeout<T>(promise: Promise<T>, ms: number): Promise<T> {
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

/** The resources in waves: each wave is free to go once the waves before it are gone. */
function reverseDependencyWaves(entries: Array<[string, Deployed]>): Array<Array<[string, Deployed]>> {
  const waves: Array<Array<[string, Deployed]>> = [];
  const remaining = new Map(entries);
  while (remaining.size > 0) {
    // A resource goes once nothing remaining depends on it.
    const free = [...remaining.entries()].filter(
      ([id]) => ![...remaining.values()].some((r) => r.dependsOn.includes(id)),
    );
    if (free.length === 0) throw new Error('dependency cycle');
    for (const [id] of free) remaining.delete(id);
    waves.push(free);
  }
  return waves;
}

function randomPassword(length: number): string {
  const alphabet = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789';
  return [...randomBytes(length)].map((byte) => alphabet[byte % alphabet.length]).join('');
}
