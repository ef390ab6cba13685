import { execFileSync } from 'child_process';
import {
  copyFileSync,
  cpSync,
  existsSync,
  mkdirSync,
  mkdtempSync,
  readFileSync,
  readdirSync,
  rmSync,
  symlinkSync,
  writeFileSync,
} from 'fs';
import { tmpdir } from 'os';
import * as path from 'path';

const ROOT = path.join(__dirname, '..');

interface Packed {
  /** Paths inside the tarball, without the `package/` prefix. */
  readonly files: string[];
  readonly sizes: Map<string, number>;
  readonly manifest: { scripts?: Record<string, string>; version?: string };
  readonly tarball: string;
  /** The templates `npx cdk synth` wrote in the fresh clone, before packing. */
  readonly synthesized: string[];
}

/**
 * Packs a fresh clone the way a release would: the repository's files as git sees them (tracked and new, never
 * ignored build output such as dist/, assets/ or .jsii), the installed node_modules, then a real `npm pack`
 * with its lifecycle scripts. Returns what the tarball it wrote holds.
 */
function packFreshClone(work: string): Packed {
  const clone = path.join(work, 'clone');
  const listed = execFileSync('git', ['ls-files', '--cached', '--others', '--exclude-standard', '-z'], {
    cwd: ROOT,
    encoding: 'utf8',
  })
    .split('\0')
    .filter((file) => file !== '' && existsSync(path.join(ROOT, file)));
  for (const file of listed) {
    mkdirSync(path.dirname(path.join(clone, file)), { recursive: true });
    copyFileSync(path.join(ROOT, file), path.join(clone, file));
  }
  symlinkSync(path.join(ROOT, 'node_modules'), path.join(clone, 'node_modules'), 'dir');
  expect(existsSync(path.join(clone, '.jsii'))).toBe(false);
  expect(existsSync(path.join(clone, 'dist'))).toBe(false);
  expect(existsSync(path.join(clone, 'assets'))).toBe(false);

  // The README's quick start after `npm ci`, which runs no script of ours: `npx cdk synth` bundles what it needs.
  execFileSync('npx', ['cdk', 'synth', '--quiet', '--output', path.join(work, 'cdk.out')], {
    cwd: clone,
    stdio: ['ignore', 'pipe', 'pipe'],
    env: { ...process.env, AWS_ACCESS_KEY_ID: '', AWS_SECRET_ACCESS_KEY: '', AWS_EC2_METADATA_DISABLED: 'true' },
  });
  const synthesized = readdirSync(path.join(work, 'cdk.out')).filter((f) => f.endsWith('.template.json'));

  const out = path.join(work, 'out');
  mkdirSync(out);
  execFileSync('npm', ['pack', '--pack-destination', out, '--loglevel=error'], {
    cwd: clone,
    stdio: ['ignore', 'pipe', 'pipe'],
    env: { ...process.env, JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION: '20' },
  });
  const [tarball] = readdirSync(out).filter((f) => f.endsWith('.tgz'));
  const tgz = path.join(out, tarball);
  const listing = execFileSync('tar', ['tzvf', tgz], { encoding: 'utf8' }).trim().split('\n');
  const sizes = new Map<string, number>();
  for (const line of listing) {
    // -rw-r--r-- 0/0   1234 1985-10-26 08:15 package/dist/index.js
    const fields = line.trim().split(/\s+/);
    sizes.set(fields[fields.length - 1].replace(/^package\//, ''), Number(fields[2]));
  }
  const manifest = JSON.parse(execFileSync('tar', ['xzOf', tgz, 'package/package.json'], { encoding: 'utf8' }));
  return { files: [...sizes.keys()], sizes, manifest, tarball: tgz, synthesized };
}

describe('a fresh clone: `npx cdk synth`, then the npm package that `npm pack` writes', () => {
  let work: string;
  let packed: Packed;

  beforeAll(() => {
    work = mkdtempSync(path.join(tmpdir(), 'cdk-mq-user-pack-'));
    packed = packFreshClone(work);
  }, 240_000);

  afterAll(() => rmSync(work, { recursive: true, force: true }));

  test('ships the compiled library with its types, the prebuilt handler bundles, the jsii assembly and docs', () => {
    expect(packed.files).toEqual(
      expect.arrayContaining([
        'dist/index.js',
        'dist/index.d.ts',
        'dist/mq-user.js',
        'dist/mq-user.d.ts',
        'dist/mq-broker-reboot.js',
        'dist/private/functions.js',
        'assets/mq-user-handler/index.js',
        'assets/mq-broker-reboot-handler/index.js',
        'assets/mq-user-rotation/index.js',
        '.jsii',
        'README.md',
        'LICENSE',
        'API.md',
        'package.json',
      ]),
    );
    expect(packed.sizes.get('.jsii')).toBeGreaterThan(10_000);
  });

  test('ships no tests, sources, example app, benchmark or build output of tools', () => {
    const unwanted = packed.files.filter(
      (f) =>
        /^(test|lib|lambda|bin|bench|cdk\.out|\.test-out|docs)\/|\.ts$|\.test\.|tsconfig/.test(f) &&
        !f.endsWith('.d.ts'),
    );
    expect(unwanted).toEqual([]);
  });

  test('keeps the handler bundles small: the AWS SDK stays external', () => {
    const bundles = packed.files.filter((f) => f.startsWith('assets/'));
    expect(bundles).toHaveLength(3);
    // Our code is a few tens of KB; one bundled SDK client alone would add hundreds.
    for (const bundle of bundles) expect(packed.sizes.get(bundle)).toBeLessThan(100_000);
    for (const bundle of bundles) {
      const code = execFileSync('tar', ['xzOf', packed.tarball, `package/${bundle}`], { encoding: 'utf8' });
      const required = [...new Set([...code.matchAll(/require\("([^"]+)"\)/g)].map((m) => m[1]))];
      expect(required.filter((name) => !/^(@aws-sdk\/client-[a-z-]+|node:[a-z]+)$/.test(name))).toEqual([]);
      expect(required).toContain('@aws-sdk/client-mq');
    }
  });

  test('lets `npx cdk synth` work on the fresh clone, which has no build output yet', () => {
    expect(packed.synthesized).toEqual(['MqUserExample.template.json']);
  });

  test('has no script that npm runs when a consumer installs it', () => {
    const installScripts = ['preinstall', 'install', 'postinstall', 'prepare'];
    expect(Object.keys(packed.manifest.scripts ?? {}).filter((s) => installScripts.includes(s))).toEqual([]);
  });

  test('ships JavaScript without source maps: jsii would inline the TypeScript sources (issue 17)', () => {
    const scripts = packed.files.filter((f) => f.endsWith('.js'));
    expect(scripts.length).toBeGreaterThan(10);
    expect(packed.files.filter((f) => f.endsWith('.map'))).toEqual([]);
    for (const script of scripts) {
      const code = execFileSync('tar', ['xzOf', packed.tarball, `package/${script}`], { encoding: 'utf8' });
      // An inline map is a sourceMappingURL comment whose data URL carries the TypeScript sources (sourcesContent).
      expect([script, code.includes('sourceMappingURL'), code.includes('sourcesContent')]).toEqual([
        script,
        false,
        false,
      ]);
    }
  });

  test('carries the metadata of a real repository, and a release dry run of the tarball passes offline', () => {
    const manifest = packed.manifest as unknown as Record<string, unknown>;
    expect(manifest.repository).toEqual({ type: 'git', url: 'git+https://github.com/cdk-mq-user/cdk-mq-user.git' });
    expect(manifest.homepage).toBe('https://github.com/cdk-mq-user/cdk-mq-user#readme');
    expect(manifest.bugs).toEqual({ url: 'https://github.com/cdk-mq-user/cdk-mq-user/issues' });
    const out = execFileSync('bash', [path.join(ROOT, 'scripts', 'release.sh')], {
      cwd: ROOT,
      encoding: 'utf8',
      stdio: ['ignore', 'pipe', 'pipe'],
      env: { ...process.env, DRY_RUN: '1', RELEASE_TARBALL: packed.tarball },
    });
    // npm's own line for a publish it would make; a failing check (a bad tarball, a bad manifest) exits non-zero.
    expect(out).toMatch(new RegExp(`^\\+ cdk-mq-user@${packed.manifest.version?.replace(/\./g, '\\.')}$`, 'm'));
  });

  describe("the README's first app and every construct, from this tarball on the newest aws-cdk-lib", () => {
    const CONSUMER = path.join(ROOT, 'test', 'consumer-latest');
    let consumer: string;

    beforeAll(() => {
      consumer = path.join(work, 'consumer');
      cpSync(CONSUMER, consumer, { recursive: true, filter: (src) => !/[/\\](node_modules|out|cdk\.out)$/.test(src) });
      for (const [file, code] of firstAppFiles()) {
        mkdirSync(path.dirname(path.join(consumer, file)), { recursive: true });
        writeFileSync(path.join(consumer, file), code);
      }
      const npm = (...args: string[]) =>
        execFileSync('npm', [...args, '--no-audit', '--no-fund', '--loglevel=error'], { cwd: consumer, stdio: 'pipe' });
      npm('ci');
      npm('install', '--no-save', packed.tarball);
    }, 300_000);

    test('the README gives the stack, the app and the test, and installs what the consumer project holds', () => {
      expect([...firstAppFiles().keys()].sort()).toEqual([
        'bin/orders-mq.ts',
        'lib/orders-mq-stack.ts',
        'test/orders-mq.test.ts',
      ]);
      const readme = readFileSync(path.join(ROOT, 'README.md'), 'utf8');
      const section = readme.slice(readme.indexOf('## Your first app'), readme.indexOf('## Using it'));
      const installed = [...section.matchAll(/^npm install (?:--save-dev )?(.+)$/gm)]
        .flatMap((m) => m[1].split(' '))
        .filter((name) => !name.endsWith('.tgz'))
        .map((name) => name.replace(/(?<=.)@.*$/, ''));
      const manifest = JSON.parse(readFileSync(path.join(CONSUMER, 'package.json'), 'utf8'));
      const declared = Object.keys({ ...manifest.dependencies, ...manifest.devDependencies });
      expect(installed.length).toBeGreaterThanOrEqual(4);
      expect(installed.filter((name) => !declared.includes(name))).toEqual([]);
      expect(manifest.devDependencies.typescript).toBe('~5.9.3');
    });

    test('type-checks against the packed declarations and this aws-cdk-lib', () => {
      // Also writes the JavaScript that the synth below runs (out/), as `cdk synth` would through ts-node.
      execFileSync('npx', ['tsc'], { cwd: consumer, stdio: 'pipe' });
    }, 120_000);

    test("passes its own test and the nag run over every construct (cdk-nag 3, every function's runtime)", () => {
      const result = execFileSync('npx', ['jest', '--ci', '--json'], {
        cwd: consumer,
        encoding: 'utf8',
        stdio: 'pipe',
      });
      const report = JSON.parse(result) as { numFailedTests: number; numPassedTests: number; testResults: unknown[] };
      expect(report.testResults).toHaveLength(2);
      expect(report.numFailedTests).toBe(0);
      expect(report.numPassedTests).toBeGreaterThanOrEqual(4);
    }, 180_000);

    test('synthesizes as `cdk synth` runs it, with cdk-nag, every function on one runtime', () => {
      const cdkOut = path.join(consumer, 'cdk.out');
      execFileSync('node', [path.join(consumer, 'out', 'bin', 'orders-mq.js')], {
        cwd: consumer,
        stdio: 'pipe',
        env: {
          ...process.env,
          CDK_OUTDIR: cdkOut,
          CDK_DEFAULT_ACCOUNT: '111111111111',
          CDK_DEFAULT_REGION: 'us-east-1',
        },
      });
      const template = JSON.parse(readFileSync(path.join(cdkOut, 'OrdersMq.template.json'), 'utf8'));
      const runtimes = Object.values(
        template.Resources as Record<string, { Type: string; Properties: { Runtime?: string } }>,
      )
        .filter((r) => r.Type === 'AWS::Lambda::Function')
        .map((r) => r.Properties.Runtime);
      const lib = JSON.parse(
        readFileSync(path.join(consumer, 'node_modules', 'aws-cdk-lib', 'package.json'), 'utf8'),
      ) as { version: string };
      expect(lib.version).toBe(
        JSON.parse(readFileSync(path.join(CONSUMER, 'package.json'), 'utf8')).devDependencies['aws-cdk-lib'],
      );
      expect(runtimes.length).toBeGreaterThanOrEqual(8);
      expect(new Set(runtimes).size).toBe(1);
    }, 120_000);
  });
});

/** The ```ts blocks of the README's "Your first app", each under the line that names its file. */
function firstAppFiles(): Map<string, string> {
  const readme = readFileSync(path.join(ROOT, 'README.md'), 'utf8');
  const start = readme.indexOf('## Your first app');
  const section = readme.slice(start, readme.indexOf('\n## ', start + 1));
  const files = new Map<string, string>();
  for (const match of section.matchAll(/^`([\w/.-]+\.ts)`[^\n]*:\n\n```ts\n([\s\S]*?)```/gm)) {
    files.set(match[1], match[2]);
  }
  return files;
}
