import { execFileSync } from 'child_process';
import { copyFileSync, existsSync, mkdirSync, mkdtempSync, readdirSync, rmSync, symlinkSync } from 'fs';
import { tmpdir } from 'os';
import * as path from 'path';

const ROOT = path.join(__dirname, '..');

interface Packed {
  /** Paths inside the tarball, without the `package/` prefix. */
  readonly files: string[];
  readonly sizes: Map<string, number>;
  readonly manifest: { scripts?: Record<string, string> };
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
});
