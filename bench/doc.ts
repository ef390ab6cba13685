/**
 * docs/BENCHMARKS.md is written by several scripts: `bench.ts` (synth, template, handler) owns the file and keeps
 * the blocks of the others, each of which rewrites only its own: `deploy.ts` (between the markers below),
 * `pacing.ts` and `authorization-map.ts` (named blocks).
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

/** The block named `name` of `doc` (`<!-- bench:name -->` … `<!-- /bench:name -->`), or '' when it has none. */
export function readBlock(doc: string, name: string): string {
  const start = doc.indexOf(`<!-- bench:${name} -->`);
  const endMarker = `<!-- /bench:${name} -->`;
  const end = doc.indexOf(endMarker);
  return start >= 0 && end > start ? doc.slice(start, end + endMarker.length) : '';
}

/** Writes `content` as the block named `name` of the file at `file`, appending the block if it has none. */
export function writeBlock(file: string, name: string, content: string): void {
  const doc = fs.existsSync(file) ? fs.readFileSync(file, 'utf8') : '';
  const block = `<!-- bench:${name} -->\n${content.trim()}\n<!-- /bench:${name} -->`;
  const old = readBlock(doc, name);
  fs.writeFileSync(file, old ? doc.replace(old, block) : `${doc.trimEnd()}\n\n${block}\n`);
}
