import { readFileSync } from 'fs';
import * as path from 'path';
import * as ts from 'typescript';
import { App, Resource, Stack, aws_amazonmq as amazonmq } from 'aws-cdk-lib';
import { Match, Template } from 'aws-cdk-lib/assertions';
import { Construct } from 'constructs';
import { activeMq } from './fixtures/brokers';

const ROOT = path.join(__dirname, '..');
const README = readFileSync(path.join(ROOT, 'README.md'), 'utf8');
const LIB = path.join(ROOT, 'lib');

/** The first ```ts block of the README after `marker`, as written. */
function snippetAfter(marker: string): string {
  const start = README.indexOf(marker);
  expect(start).toBeGreaterThanOrEqual(0);
  const match = /```ts\n([\s\S]*?)```/.exec(README.slice(start));
  expect(match).not.toBeNull();
  return match![1];
}

/** Declaration files parsed by earlier snippets' programs (they do not change during the run). */
const PARSED = new Map<string, ts.SourceFile>();

/**
 * Type checks `snippet` as the body of a stack's constructor (`this` is the stack, `broker` is given, with the
 * type `brokerType`), then runs it on `stack`. Its own imports stay imports, `from 'cdk-mq-user'` resolved to the
 * library's sources; `MqBroker` and `MqUser` are imported for it when it does not import them itself.
 */
function compileAndRun(snippet: string, brokerType: string, stack: Stack, broker: unknown): void {
  const lines = snippet.split('\n');
  const imports = lines
    .filter((line) => line.startsWith('import '))
    .map((line) => line.replace(/from 'cdk-mq-user';$/, `from ${JSON.stringify(LIB)};`));
  const ownNames = imports
    .filter((line) => line.includes(JSON.stringify(LIB)))
    .flatMap((line) =>
      /\{([^}]*)\}/
        .exec(line)![1]
        .split(',')
        .map((name) => name.trim()),
    );
  const given = ['MqBroker', 'MqUser'].filter((name) => !ownNames.includes(name));
  const body = lines.filter((line) => !line.startsWith('import ')).join('\n');
  const source = [
    `import { aws_amazonmq as amazonmq, Stack } from 'aws-cdk-lib';`,
    `import { Node } from 'constructs';`,
    ...(given.length ? [`import { ${given.join(', ')} } from ${JSON.stringify(LIB)};`] : []),
    ...imports,
    `export function run(this: Stack, broker: ${brokerType}): void {`,
    body,
    '}',
  ].join('\n');

  const file = path.join(ROOT, '.test-out', 'readme-snippet.ts');
  const options: ts.CompilerOptions = {
    target: ts.ScriptTarget.ES2022,
    module: ts.ModuleKind.CommonJS,
    moduleResolution: ts.ModuleResolutionKind.Node10,
    strict: true,
    skipLibCheck: true,
    esModuleInterop: true,
    noEmit: true,
    types: [],
  };
  const host = ts.createCompilerHost(options);
  // Parse aws-cdk-lib's thousands of declaration files once for all snippets, not once per snippet.
  const getSourceFile = host.getSourceFile.bind(host);
  host.getSourceFile = (name, languageVersion, ...rest) => {
    if (path.resolve(name) === file) return getSourceFile(name, languageVersion, ...rest);
    const cached = PARSED.get(name) ?? getSourceFile(name, languageVersion, ...rest);
    if (cached) PARSED.set(name, cached);
    return cached;
  };
  const readFile = host.readFile.bind(host);
  host.readFile = (name) => (path.resolve(name) === file ? source : readFile(name));
  const fileExists = host.fileExists.bind(host);
  host.fileExists = (name) => path.resolve(name) === file || fileExists(name);
  const program = ts.createProgram([file], options, host);
  const problems = ts
    .getPreEmitDiagnostics(program)
    .filter((d) => d.file?.fileName && path.resolve(d.file.fileName) === file)
    .map((d) => ts.flattenDiagnosticMessageText(d.messageText, '\n'));
  expect(problems).toEqual([]);

  const js = ts.transpileModule(source, { compilerOptions: { ...options, noEmit: false } }).outputText;
  const module = { exports: {} as { run?: (this: Stack, broker: unknown) => void } };
  new Function('require', 'module', 'exports', js)(require, module, module.exports);
  module.exports.run!.call(stack, broker);
}

function newStack(): Stack {
  return new Stack(new App(), 'Stack', { env: { account: '111111111111', region: 'us-east-1' } });
}

/**
 * The shape of `@cdklabs/cdk-amazonmq`'s ActiveMQ brokers that the README relies on: a `Resource` whose
 * `CfnBroker` is its child `Resource`, with `arn` its `Arn` attribute. It does not implement `IBrokerRef`.
 */
class ActiveMqBrokerStandIn extends Resource {
  public readonly arn: string;
  constructor(scope: Construct, id: string) {
    super(scope, id);
    this.arn = activeMq(this, 'Resource').attrArn;
  }
}

describe('the README', () => {
  test("the recipe that keeps a moved user's logical ID compiles, runs and keeps it", () => {
    const stack = newStack();
    compileAndRun(
      snippetAfter('Within one stack you can instead keep the logical ID'),
      'amazonmq.IBrokerRef',
      stack,
      activeMq(stack, 'Broker'),
    );
    const resources = Template.fromStack(stack).toJSON().Resources;
    expect(resources.OrdersService1A2B3C4D).toMatchObject({
      Type: 'Custom::MqUser',
      Properties: { Username: 'orders-service' },
    });
  });

  test('both ways to use a broker of @cdklabs/cdk-amazonmq compile and reach the broker', () => {
    const stack = newStack();
    const broker = new ActiveMqBrokerStandIn(stack, 'OrdersBrokerL2');
    compileAndRun(snippetAfter('### Brokers of `@cdklabs/cdk-amazonmq`'), '{ node: Node; arn: string }', stack, broker);
    const template = Template.fromStack(stack);
    const cfnBroker = stack.getLogicalId(broker.node.defaultChild as amazonmq.CfnBroker);
    template.hasResourceProperties('Custom::MqUser', { Username: 'orders-service', BrokerId: { Ref: cfnBroker } });
    template.hasResourceProperties('Custom::MqUser', {
      Username: 'billing-service',
      BrokerId: { 'Fn::Select': [7, { 'Fn::Split': [':', { 'Fn::GetAtt': [cfnBroker, 'Arn'] }] }] },
    });
  });
});

describe('the README on rotation', () => {
  test('the addRotation example compiles, runs and rotates every 30 days by the maintenance window', () => {
    const stack = newStack();
    compileAndRun(snippetAfter('## Rotating passwords'), 'amazonmq.IBrokerRef', stack, activeMq(stack, 'Broker'));
    const template = Template.fromStack(stack);
    template.hasResourceProperties('Custom::MqUser', { Username: 'orders-service', RotationEnabled: true });
    template.hasResourceProperties('Custom::MqUser', { Username: 'orders-service_clone', RotationEnabled: true });
    template.hasResourceProperties('AWS::SecretsManager::RotationSchedule', {
      RotationRules: { ScheduleExpression: 'rate(30 days)' },
    });
    template.hasResourceProperties('AWS::SecretsManager::Secret', {
      Tags: Match.arrayWith([{ Key: 'cdk-mq-user:rotation', Value: 'MAINTENANCE_WINDOW' }]),
    });
  });

  test('states the rules that synth enforces, with the numbers the library uses', () => {
    const section = README.slice(README.indexOf('## Rotating passwords'), README.indexOf('## Moving a user'));
    expect(section).toMatch(/at most 94 characters/);
    expect(section).toMatch(/`_clone`/);
    expect(section).toMatch(/\*\*9 days\*\*/);
    expect(section).toMatch(/```mermaid\nsequenceDiagram/);
    expect(section).toMatch(/every second rotation/);
    // The table of what each construct adds matches test/footprint.test.ts.
    expect(README).toMatch(/\| password rotation \(`CdkMqUserRotation`.*\| 6, fixed:.*In a VPC: 8/);
    expect(README).toMatch(/\| each rotated MqUser \(`addRotation`\) \| 3 more/);
  });
});

describe('API.md', () => {
  test('every public doc comment starts with a complete sentence, which jsii takes as the summary', () => {
    // `.jsii` is what API.md is generated from (`npm run jsii` runs before jest in `npm test`).
    const assembly = JSON.parse(readFileSync(path.join(ROOT, '.jsii'), 'utf8')) as {
      types: Record<string, JsiiType>;
    };
    const summaries: Array<[string, string | undefined]> = [];
    for (const [fqn, type] of Object.entries(assembly.types)) {
      summaries.push([fqn, type.docs?.summary]);
      for (const member of [...(type.properties ?? []), ...(type.methods ?? [])]) {
        summaries.push([`${fqn}.${member.name}`, member.docs?.summary]);
      }
    }
    expect(summaries.length).toBeGreaterThan(30);
    const cut = summaries.filter(([, summary]) => !summary || !/[^;:,]\.$/.test(summary) || summary.endsWith(' - .'));
    expect(cut).toEqual([]);
  });
});

interface JsiiType {
  readonly docs?: { readonly summary?: string };
  readonly properties?: Array<{ readonly name: string; readonly docs?: { readonly summary?: string } }>;
  readonly methods?: Array<{ readonly name: string; readonly docs?: { readonly summary?: string } }>;
}

describe('the README on authorization maps', () => {
  test('the MqAuthorizationMap example compiles, runs and writes its rules into the broker configuration', () => {
    const stack = newStack();
    const broker = activeMq(stack, 'Broker');
    compileAndRun(snippetAfter('## Who may use which queue'), 'amazonmq.CfnBroker', stack, broker);
    const template = Template.fromStack(stack);
    template.hasResourceProperties('AWS::AmazonMQ::Configuration', {
      Data: {
        'Fn::Base64': Match.stringLikeRegexp(
          '<authorizationEntry queue="ORDERS.>" read="orders-consumers" write="orders-producers"/>[\\s\\S]*' +
            '<authorizationEntry topic="EVENTS.\\*" read="audit" admin="platform"/>[\\s\\S]*' +
            '<tempDestinationAuthorizationEntry read="activemq-webconsole,requesters" ' +
            'write="activemq-webconsole,responders" admin="activemq-webconsole,requesters"/>',
        ),
      },
    });
    template.hasResourceProperties('AWS::AmazonMQ::Broker', { Configuration: Match.objectLike({}) });
  });

  test('names every warning id the construct can raise', () => {
    const source = readFileSync(path.join(LIB, 'mq-authorization-map.ts'), 'utf8');
    const ids = [...source.matchAll(/'(cdk-mq-user:[A-Za-z]+)'/g)].map((match) => match[1]);
    expect(ids.length).toBeGreaterThanOrEqual(4);
    const section = README.slice(README.indexOf('## Who may use which queue'), README.indexOf('## Security'));
    for (const id of ids) expect(section).toContain(`\`${id}\``);
  });
});
