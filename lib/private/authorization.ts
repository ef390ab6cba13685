/**
 * The decisions of MqAuthorizationMap as pure functions: destination patterns, the rules merged into ActiveMQ's
 * authorization map (with its safe defaults), and the synth-time notes about groups and first use.
 *
 * ActiveMQ's map, as measured on a real ActiveMQ 5.17.2 (test/mq-authorization-map.broker.test.ts):
 * - the groups of every entry whose pattern matches a destination are added together, and those of the
 *   `defaultEntry` are added to every destination (it is not a fallback for unnamed destinations);
 * - a destination no entry matches is refused to everyone but the default entry's groups;
 * - without a `tempDestinationAuthorizationEntry` everyone may use temporary destinations;
 * - `*` matches one name segment, `>` the rest (also none: `ORDERS.>` matches `ORDERS`);
 * - creating a destination on first use needs `admin`.
 */
import { NAME_PATTERN, NAME_RULE, WEB_CONSOLE_GROUP } from './rules';
import type { XmlElement } from './activemq-schema';

export type DestinationKind = 'queue' | 'topic' | 'temporary';

/** One `allow` call, validated. */
export interface AccessRule {
  readonly kind: DestinationKind;
  /** The destination pattern; empty for temporary destinations. */
  readonly pattern: string;
  readonly read: readonly string[];
  readonly write: readonly string[];
  readonly admin: readonly string[];
  /** How messages name the rule: `rule 2 (queue "ORDERS.>")`. */
  readonly label: string;
}

/** The advisory topics ActiveMQ clients read (and create) to learn about destinations and consumers. */
export const ADVISORY_TOPICS = 'ActiveMQ.Advisory.>';

/** The rules a destination pattern breaks; empty when ActiveMQ reads it as the wildcards it appears to say. */
export function destinationPatternProblems(pattern: string): string[] {
  if (pattern.length === 0) return ['it is empty'];
  if (/\s/.test(pattern) || [...pattern].some((c) => c.charCodeAt(0) < 0x20 || c.charCodeAt(0) === 0x7f)) {
    return ['it contains white space or a control character'];
  }
  if (pattern.startsWith('/')) {
    return ['it starts with "/": write the destination name without a STOMP prefix such as /queue/ or /topic/'];
  }
  if (pattern.includes('://')) {
    return ['it contains "://": write the destination name without a queue:// or topic:// prefix'];
  }
  if (/[$#]\{/.test(pattern)) {
    return ['it contains "${" or "#{", a Spring expression or placeholder that Amazon MQ removes from a configuration'];
  }
  const problems: string[] = [];
  for (const element of pattern.split(',')) {
    if (element.length === 0) {
      problems.push('a list element is empty ("," separates destinations, with nothing around it)');
      continue;
    }
    const segments = element.split('.');
    segments.forEach((segment, index) => {
      if (segment.length === 0) {
        problems.push(`"${element}" has an empty name segment ("." separates segments)`);
      } else if (/[*>]/.test(segment) && segment !== '*' && segment !== '>') {
        problems.push(`"${element}": "*" and ">" must be a whole segment ("${segment}" is not)`);
      } else if (segment === '>' && index !== segments.length - 1) {
        problems.push(`"${element}": ">" matches the rest of the name and must be the last segment`);
      }
    });
  }
  return [...new Set(problems)];
}

/** The rules a group name breaks (Amazon MQ's group names); empty when it is valid. */
export function groupProblems(group: string): string[] {
  return NAME_PATTERN.test(group) ? [] : [`group "${group}" must be ${NAME_RULE}`];
}

/** Whether every destination `narrow` matches is matched by `broad` (both single patterns, no lists). */
function coversOne(broad: string[], narrow: string[]): boolean {
  if (broad.length === 0) return narrow.length === 0;
  if (broad[0] === '>') return true;
  if (narrow.length === 0 || narrow[0] === '>') return false;
  if (broad[0] === '*' || broad[0] === narrow[0]) return coversOne(broad.slice(1), narrow.slice(1));
  return false;
}

/** Whether every destination `narrow` matches is matched by `broad` (patterns may be `,` lists). */
export function patternCovers(broad: string, narrow: string): boolean {
  const broadElements = broad.split(',').map((element) => element.split('.'));
  return narrow
    .split(',')
    .every((element) => broadElements.some((candidate) => coversOne(candidate, element.split('.'))));
}

interface MergedEntry {
  readonly kind: DestinationKind;
  readonly pattern: string;
  readonly read: Set<string>;
  readonly write: Set<string>;
  readonly admin: Set<string>;
  readonly labels: string[];
}

/** Rules on the same destination pattern, merged in the order of their first declaration. */
function mergeRules(rules: readonly AccessRule[]): MergedEntry[] {
  const merged = new Map<string, MergedEntry>();
  for (const rule of rules) {
    const key = `${rule.kind}:${rule.pattern}`;
    let entry = merged.get(key);
    if (!entry) {
      entry = {
        kind: rule.kind,
        pattern: rule.pattern,
        read: new Set(),
        write: new Set(),
        admin: new Set(),
        labels: [],
      };
      merged.set(key, entry);
    }
    rule.read.forEach((group) => entry.read.add(group));
    rule.write.forEach((group) => entry.write.add(group));
    rule.admin.forEach((group) => entry.admin.add(group));
    entry.labels.push(rule.label);
  }
  return [...merged.values()];
}

/** The groups any rule names, sorted. */
export function ruleGroups(rules: readonly AccessRule[]): string[] {
  return [...new Set(rules.flatMap((rule) => [...rule.read, ...rule.write, ...rule.admin]))].sort();
}

function aclAttributes(read: Iterable<string>, write: Iterable<string>, admin: Iterable<string>) {
  const attributes: Array<readonly [string, string]> = [];
  for (const [name, groups] of [
    ['read', read],
    ['write', write],
    ['admin', admin],
  ] as const) {
    const list = [...new Set(groups)].sort();
    // An absent attribute grants nothing; an empty one would name a group "".
    if (list.length > 0) attributes.push([name, list.join(',')]);
  }
  return attributes;
}

const element = (
  name: string,
  children: XmlElement[] = [],
  attributes: Array<readonly [string, string]> = [],
  origin?: string,
): XmlElement => ({
  name,
  attributes,
  children,
  origin,
});

/**
 * The `<broker>` element of the configuration: the rules' entries, then the safe defaults:
 * - `ActiveMQ.Advisory.>` topics: read, write and admin for every group a rule names (clients subscribe to
 *   advisories and create them on first use); a rule of its own on those topics adds to it;
 * - temporary destinations: only the groups of `MqDestination.temporary()` rules, and the web console group;
 *   the entry is always written, because without it everyone may use temporary destinations;
 * - the default entry: `activemq-webconsole` only. ActiveMQ adds it to every destination, so destinations
 *   no rule names are refused to everyone else.
 */
export function authorizationMapElement(rules: readonly AccessRule[]): XmlElement {
  const merged = mergeRules(rules.filter((rule) => rule.kind !== 'temporary'));
  const groups = ruleGroups(rules).filter((group) => group !== WEB_CONSOLE_GROUP);
  const advisory = merged.find((entry) => entry.kind === 'topic' && entry.pattern === ADVISORY_TOPICS);
  const entries: XmlElement[] = merged.map((entry) => {
    const isAdvisory = entry === advisory;
    const extra = isAdvisory ? groups : [];
    return element(
      'authorizationEntry',
      [],
      [
        [entry.kind, entry.pattern],
        ...aclAttributes([...entry.read, ...extra], [...entry.write, ...extra], [...entry.admin, ...extra]),
      ],
      isAdvisory ? `the advisory topics and ${entry.labels.join(', ')}` : entry.labels.join(', '),
    );
  });
  if (!advisory && groups.length > 0) {
    entries.push(
      element(
        'authorizationEntry',
        [],
        [['topic', ADVISORY_TOPICS], ...aclAttributes(groups, groups, groups)],
        'the advisory topics',
      ),
    );
  }
  const temporary = rules.filter((rule) => rule.kind === 'temporary');
  const temporaryOrigin = temporary.length
    ? `the temporary destinations (${temporary.map((rule) => rule.label).join(', ')})`
    : 'the temporary destinations';
  const webConsole = [WEB_CONSOLE_GROUP];
  const map = element('authorizationMap', [
    ...(entries.length > 0 ? [element('authorizationEntries', entries)] : []),
    element(
      'defaultEntry',
      [element('authorizationEntry', [], aclAttributes(webConsole, webConsole, webConsole), 'the default entry')],
      [],
      'the default entry',
    ),
    element(
      'tempDestinationAuthorizationEntry',
      [
        element(
          'tempDestinationAuthorizationEntry',
          [],
          aclAttributes(
            [...temporary.flatMap((rule) => rule.read), ...webConsole],
            [...temporary.flatMap((rule) => rule.write), ...webConsole],
            [...temporary.flatMap((rule) => rule.admin), ...webConsole],
          ),
          temporaryOrigin,
        ),
      ],
      [],
      temporaryOrigin,
    ),
  ]);
  return element('broker', [element('plugins', [element('authorizationPlugin', [element('map', [map])])])]);
}

/** The `<authorizationMap>` element of a configuration document, as written (for tests and tools). */
export function extractAuthorizationMap(configuration: string): string | undefined {
  const match = /<authorizationMap[\s>][\s\S]*?<\/authorizationMap>/.exec(configuration);
  return match?.[0];
}

/**
 * Rules that let groups send to or receive from destinations no rule lets anyone create: ActiveMQ creates a
 * destination on its first use only for a group with `admin` on it, so their first use is refused unless the
 * destination exists already. Returns one note per such rule.
 */
export function firstUseNotes(rules: readonly AccessRule[]): string[] {
  const notes: string[] = [];
  for (const rule of rules) {
    if (rule.kind === 'temporary' || (rule.write.length === 0 && rule.read.length === 0)) continue;
    const creatable = rules.some(
      (other) =>
        other.kind === rule.kind &&
        other.admin.some((group) => group !== WEB_CONSOLE_GROUP) &&
        patternCovers(other.pattern, rule.pattern),
    );
    if (creatable) continue;
    const users = [...new Set([...rule.write, ...rule.read])].sort().join(', ');
    notes.push(
      `${rule.label} lets ${users} use ${rule.kind}s that no rule lets anyone create: ActiveMQ creates a ` +
        `${rule.kind} on its first use only for a group with admin on it, so that first send or subscription is ` +
        `refused ("not authorized to create") unless the ${rule.kind} exists already. Grant admin on the pattern ` +
        'to the group that uses it first, or make sure the destinations are created elsewhere (and acknowledge this warning).',
    );
  }
  return notes;
}
