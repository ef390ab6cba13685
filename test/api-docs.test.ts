import { readFileSync, readdirSync } from 'fs';
import * as path from 'path';

const LIB = path.join(__dirname, '..', 'lib');

/** The doc comments of `file` that document an exported or public declaration, as lines without the `*`. */
function publicDocComments(file: string): Array<{ line: number; text: string[] }> {
  const source = readFileSync(file, 'utf8');
  const docs: Array<{ line: number; text: string[] }> = [];
  for (const match of source.matchAll(/\/\*\*\n((?:[ \t]*\*.*\n)*?)[ \t]*\*\/\n[ \t]*(\S+)/g)) {
    if (!/^(export|readonly|public|static|constructor|get)\b/.test(match[2])) continue;
    const line = source.slice(0, match.index).split('\n').length;
    docs.push({ line, text: match[1].split('\n').map((l) => l.replace(/^\s*\* ?/, '')) });
  }
  return docs;
}

describe('the doc comments that jsii-docgen renders into API.md', () => {
  const files = readdirSync(LIB)
    .filter((f) => f.endsWith('.ts'))
    .map((f) => path.join(LIB, f));

  test('open with a paragraph of exactly one sentence: jsii takes it as the summary and would cut a longer one', () => {
    const cut: string[] = [];
    let checked = 0;
    for (const file of files) {
      for (const { line, text } of publicDocComments(file)) {
        const end = text.findIndex((l) => l.trim() === '' || l.startsWith('@'));
        const paragraph = text
          .slice(0, end === -1 ? undefined : end)
          .join(' ')
          .trim();
        if (paragraph === '') continue;
        checked++;
        // A sentence ends with . ! or ? followed by a space; `e.g.` and the like are not used in these docs.
        if (/[.!?]\s/.test(paragraph)) cut.push(`${path.basename(file)}:${line}: ${paragraph.slice(0, 80)}`);
      }
    }
    expect(checked).toBeGreaterThan(30);
    expect(cut).toEqual([]);
  });

  test('never open the remarks with a list item, whose dash jsii-docgen drops', () => {
    const assembly = JSON.parse(readFileSync(path.join(__dirname, '..', '.jsii'), 'utf8')) as {
      types: Record<
        string,
        { docs?: { remarks?: string }; properties?: Array<{ name: string; docs?: { remarks?: string } }> }
      >;
    };
    const lists: string[] = [];
    for (const [fqn, type] of Object.entries(assembly.types)) {
      for (const member of [{ name: '', docs: type.docs }, ...(type.properties ?? [])]) {
        if (/^\s*[-*] /.test(member.docs?.remarks ?? '')) lists.push(`${fqn}.${member.name}`);
      }
    }
    expect(lists).toEqual([]);
  });
});
