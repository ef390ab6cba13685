/**
 * docs/BENCHMARKS.md is written by two scripts: `bench.ts` (synth, template, handler) owns the file and keeps
 * the block between the markers below; `deploy.ts` rewrites only that block.
 */
import * as fs from 'fs';

const START = '<!-- bench:deploy -->';
const END = '<!-- /bench:deploy -->';

/** The deploy block of `doc` (markers included), or '' when it has none. */
export function deployBlock(doc: string): string {
  const start = doc.indexOf(START);
  const end = doc.indexOf(END);
  return start >= 0 && end > start ? doc.slice(start, end + END.length) : '';
}

/** Writes `content` as the deploy block of the file at `file`, appending the block if it has none. */
export function writeDeployBlock(file: string, content: string): void {
  const doc = fs.existsSync(file) ? fs.readFileSync(file, 'utf8') : '';
  const block = `${START}\n${content.trim()}\n${END}`;
  const old = deployBlock(doc);
  fs.writeFileSync(file, old ? doc.replace(old, block) : `${doc.trimEnd()}\n\n${block}\n`);
}
