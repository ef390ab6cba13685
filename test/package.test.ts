import { execFileSync } from 'child_process';
import * as path from 'path';

/** What `npm publish` would ship, from `npm pack --dry-run` (scripts skipped: `npm test` built everything). */
function packedFiles(): Array<{ path: string; size: number }> {
  const out = execFileSync('npm', ['pack', '--dry-run', '--json', '--ignore-scripts'], {
    cwd: path.join(__dirname, '..'),
    encoding: 'utf8',
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  return (JSON.parse(out) as Array<{ files: Array<{ path: string; size: number }> }>)[0].files;
}

describe('the npm package', () => {
  const packed = packedFiles();
  const files = packed.map((f) => f.path);

  test('ships the compiled library with its types, the prebuilt handler bundles, the jsii assembly and docs', () => {
    expect(files).toEqual(
      expect.arrayContaining([
        'dist/index.js',
        'dist/index.d.ts',
        'dist/mq-user.js',
        'dist/mq-user.d.ts',
        'dist/mq-broker-reboot.js',
        'dist/private/functions.js',
        'assets/mq-user-handler/index.js',
        'assets/mq-broker-reboot-handler/index.js',
        '.jsii',
        'README.md',
        'LICENSE',
        'API.md',
        'package.json',
      ]),
    );
  });

  test('ships no tests, sources, example app, benchmark or build output of tools', () => {
    const unwanted = files.filter(
      (f) =>
        /^(test|lib|lambda|bin|bench|cdk\.out|\.test-out|docs)\/|\.ts$|\.test\.|tsconfig/.test(f) &&
        !f.endsWith('.d.ts'),
    );
    expect(unwanted).toEqual([]);
  });

  test('keeps the handler bundles small: the AWS SDK stays external', () => {
    const sizes = packed.filter((f) => f.path.startsWith('assets/'));
    expect(sizes).toHaveLength(2);
    for (const bundle of sizes) expect(bundle.size).toBeLessThan(25_000);
  });
});
