/**
 * `npm run bench:map [-- --write] [--runs 5]`: the synth cost of an MqAuthorizationMap with 50 rules over a
 * broker with 100 MqUsers, side by side with the same stack without the map, and the size of the configuration
 * it writes. Each sample is a fresh `node` process (this file with `--child`); variants alternate round by round.
 * Prints a markdown block; `--write` puts it into docs/BENCHMARKS.md between its markers. Nothing calls AWS.
 */
import { spawnSync } from 'child_process';
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { App, Stack, aws_amazonmq as amazonmq } from 'aws-cdk-lib';
import { readBlock, writeBlock } from './doc';
import { MqAuthorizationMap, MqDestination, MqUser } from '../lib';

const ROOT = path.resolve(__dirname, '..');
const DOC = path.join(ROOT, 'docs', 'BENCHMARKS.md');
const BLOCK = 'authorization-map';
const USERS = 100;
const RULES = 50;
const VARIANTS = ['without map', 'with map'] as const;
type Variant = (typeof VARIANTS)[number];

interface ChildResult {
  readonly constructMs: number;
  readonly synthMs: number;
  /** CPU time (user + system) of the same spans: less sensitive than wall time to a loaded machine. */
  readonly constructCpuMs: number;
  readonly synthCpuMs: number;
  readonly templateBytes: number;
  readonly resources: number;
  readonly configurationXmlBytes?: number;
  readonly configurationBase64Bytes?: number;
  readonly configurationXml?: string;
}

function child(variant: Variant): ChildResult {
  const started = performance.now();
  const cpuStarted = process.cpuUsage();
  const app = new App({ outdir: fs.mkdtempSync(path.join(os.tmpdir(), 'cdk-mq-user-bench-map-')) });
  const stack = new Stack(app, 'MqMapBench', { env: { account: '123456789012', region: 'us-east-1' } });
  const broker = new amazonmq.CfnBroker(stack, 'Broker', {
    brokerName: 'shared',
    engineType: 'ACTIVEMQ',
    engineVersion: '5.18',
    deploymentMode: 'SINGLE_INSTANCE',
    hostInstanceType: 'mq.m5.large',
    publiclyAccessible: false,
    users: [],
  });
  // 100 users in 50 teams: each team produces on its queues, everyone consumes.
  for (let i = 1; i <= USERS; i++) {
    new MqUser(stack, `User${i}`, {
      broker,
      username: `service-${String(i).padStart(3, '0')}`,
      groups: [`team-${String(i % RULES).padStart(2, '0')}`, 'consumers'],
    });
  }
  if (variant === 'with map') {
    const access = new MqAuthorizationMap(stack, 'Access', { broker });
    for (let k = 0; k < RULES; k++) {
      const team = `team-${String(k).padStart(2, '0')}`;
      access.allow(MqDestination.queue(`TEAM${String(k).padStart(2, '0')}.>`), {
        write: [team],
        admin: [team],
        read: ['consumers'],
      });
    }
  }
  const constructed = performance.now();
  const cpuConstructed = process.cpuUsage();
  const assembly = app.synth();
  const synthesized = performance.now();
  const cpuSynthesized = process.cpuUsage();
  const cpuMs = (from: NodeJS.CpuUsage, to: NodeJS.CpuUsage) => (to.user - from.user + to.system - from.system) / 1000;
  const template = assembly.getStackByName('MqMapBench').template as {
    Resources: Record<string, { Type: string; Properties: { Data?: { 'Fn::Base64'?: string } } }>;
  };
  const configuration = Object.values(template.Resources).find((r) => r.Type === 'AWS::AmazonMQ::Configuration');
  const xml = configuration?.Properties.Data?.['Fn::Base64'];
  fs.rmSync(assembly.directory, { recursive: true, force: true });
  return {
    constructMs: constructed - started,
    synthMs: synthesized - constructed,
    constructCpuMs: cpuMs(cpuStarted, cpuConstructed),
    synthCpuMs: cpuMs(cpuConstructed, cpuSynthesized),
    templateBytes: Buffer.byteLength(JSON.stringify(template, undefined, 1)),
    resources: Object.keys(template.Resources).length,
    configurationXmlBytes: xml === undefined ? undefined : Buffer.byteLength(xml),
    configurationBase64Bytes: xml === undefined ? undefined : Buffer.from(xml).toString('base64').length,
    configurationXml: xml,
  };
}

const median = (values: number[]) => [...values].sort((a, b) => a - b)[Math.floor(values.length / 2)];
const fmt = (value: number) => Math.round(value).toLocaleString('en-US');

function main(): void {
  const args = process.argv.slice(2);
  if (args[0] === '--child') {
    console.log(JSON.stringify(child(args[1] as Variant)));
    return;
  }
  const write = args.includes('--write');
  const runsAt = args.indexOf('--runs');
  const runs = runsAt >= 0 ? Number(args[runsAt + 1]) : 5;
  if (!fs.existsSync(path.join(ROOT, 'assets', 'mq-user-handler', 'index.js'))) {
    throw new Error('the handler bundles are missing: run npm run bundle first');
  }
  const results: Record<Variant, ChildResult[]> = { 'without map': [], 'with map': [] };
  const loadBefore = os.loadavg()[0];
  for (let round = 0; round < runs; round++) {
    for (const variant of VARIANTS) {
      const run = spawnSync(
        process.execPath,
        ['-r', 'ts-node/register/transpile-only', __filename, '--child', variant],
        { cwd: ROOT, encoding: 'utf8', maxBuffer: 64 * 1024 * 1024 },
      );
      if (run.status !== 0) throw new Error(`sample ${variant} failed: ${run.stderr}`);
      results[variant].push(JSON.parse(run.stdout.trim().split('\n').pop()!) as ChildResult);
      process.stderr.write('.');
    }
  }
  process.stderr.write('\n');
  const withMap = results['with map'][0];
  const rows = VARIANTS.map((variant) => {
    const samples = results[variant];
    const spread = (values: number[]) =>
      `${fmt(median(values))} (${fmt(Math.min(...values))} to ${fmt(Math.max(...values))})`;
    return (
      `| ${variant} | ${samples[0].resources} | ${spread(samples.map((s) => s.constructCpuMs))} | ` +
      `${spread(samples.map((s) => s.synthCpuMs))} | ${spread(samples.map((s) => s.synthMs))} | ` +
      `${fmt(samples[0].templateBytes)} |`
    );
  });
  const entries = (withMap.configurationXml?.match(/<authorizationEntry /g) ?? []).length;
  const block = [
    `## Authorization map: ${RULES} rules, ${USERS} users`,
    '',
    `\`npm run bench:map\` (${runs} samples per variant, each a fresh \`node\` process, variants alternating; the median ` +
      `is shown; load average ${loadBefore.toFixed(1)} before, ${os.loadavg()[0].toFixed(1)} after, on ${os.cpus().length} ` +
      `shared cores). One stack: a \`CfnBroker\` (ActiveMQ 5.18), ${USERS} \`MqUser\`s in ${RULES} teams, and with the map ` +
      `one rule per team (\`TEAMnn.>\`: write and admin for the team, read for everyone). Each cell is the median ` +
      "(min to max); construct and synth exclude node's start-up and the import of aws-cdk-lib. CPU time (user and " +
      'system, all threads) says more than wall time on a loaded machine.',
    '',
    '| stack | resources | construct, CPU ms | synth, CPU ms | synth, wall ms | template (bytes) |',
    '|---|---|---|---|---|---|',
    ...rows,
    '',
    'Where the ranges of the two variants overlap, the difference between their medians is noise of the shared ' +
      'machine, not a cost of the map.',
    '',
    `The configuration: ${entries} \`authorizationEntry\` elements (${RULES} rules, the advisory topics and the default entry), ` +
      `${fmt(withMap.configurationXmlBytes!)} bytes of XML, ${fmt(withMap.configurationBase64Bytes!)} bytes once ` +
      'base64-encoded as Amazon MQ stores it. The template carries it as `Fn::Base64` of the XML.',
    '',
    "Against the limits: Amazon MQ's quotas page names no size limit for a configuration's data (it limits the " +
      'configuration name, 1 to 150 characters, and the revisions per configuration, 300). The limit that binds ' +
      "is CloudFormation's: a template of at most 1 MB (uploaded through S3, as `cdk deploy` does), which the whole " +
      `stack above stays far below; the map adds about ${fmt(withMap.configurationXmlBytes! / RULES)} bytes per rule. ` +
      'The 300 revisions are the limit to watch: every deploy that changes a rule makes one revision, and a ' +
      'configuration at 300 takes no more.',
  ].join('\n');
  console.log(block);
  if (write) {
    writeBlock(DOC, BLOCK, block);
    console.error(`wrote the ${BLOCK} block of ${path.relative(ROOT, DOC)}`);
  } else if (fs.existsSync(DOC) && !readBlock(fs.readFileSync(DOC, 'utf8'), BLOCK)) {
    console.error('(run with --write to add it to docs/BENCHMARKS.md)');
  }
}

main();
