/**
 * What Amazon MQ keeps of the part of an ActiveMQ configuration that MqAuthorizationMap writes, per engine
 * version. Amazon MQ silently removes every element, attribute or value it does not permit (the deploy succeeds,
 * the rule is gone), so the construct checks its own output against this table at synth time instead.
 *
 * Source: the XSDs Amazon MQ publishes per engine version, as copied under `sources/` of the public repository
 * cdklabs/cdk-amazonmq-activemq-configs (amazon-mq-active-mq-5.15.16.xsd, -5.16.7, -5.17.6, -5.18.4, -5.19.1),
 * read 2026-12-07. Only the elements on the authorization map's path are listed: the construct emits nothing
 * else. The five schemas agree on them except that 5.19's `authorizationMap > tempDestinationAuthorizationEntry`
 * collection must hold exactly one entry (minOccurs 1), where the earlier ones allow it empty.
 */

/** An element the schema permits at a path: its attributes (with their XSD type) and how often it may occur. */
export interface PermittedElement {
  readonly attributes: Readonly<Record<string, 'string' | 'boolean'>>;
  /** Most occurrences under one parent (XSD maxOccurs); unbounded when absent. */
  readonly maxOccurs?: number;
  /** Fewest child elements (the XSD choice's minOccurs); 0 when absent. */
  readonly minChildren?: number;
}

const ENTRY_ATTRIBUTES = {
  admin: 'string',
  queue: 'string',
  read: 'string',
  tempQueue: 'boolean',
  tempTopic: 'boolean',
  topic: 'string',
  write: 'string',
} as const;

const MAP = 'broker/plugins/authorizationPlugin/map/authorizationMap';

function schema(tempCollectionMinChildren: number): Readonly<Record<string, PermittedElement>> {
  return {
    broker: { attributes: {} },
    'broker/plugins': { attributes: {} },
    'broker/plugins/authorizationPlugin': { attributes: {} },
    'broker/plugins/authorizationPlugin/map': { attributes: {}, maxOccurs: 1 },
    [MAP]: { attributes: {}, maxOccurs: 1 },
    [`${MAP}/authorizationEntries`]: { attributes: {} },
    [`${MAP}/authorizationEntries/authorizationEntry`]: { attributes: ENTRY_ATTRIBUTES },
    [`${MAP}/authorizationEntries/tempDestinationAuthorizationEntry`]: { attributes: ENTRY_ATTRIBUTES },
    [`${MAP}/defaultEntry`]: { attributes: {}, maxOccurs: 1 },
    [`${MAP}/defaultEntry/authorizationEntry`]: { attributes: ENTRY_ATTRIBUTES, maxOccurs: 1 },
    [`${MAP}/defaultEntry/tempDestinationAuthorizationEntry`]: { attributes: ENTRY_ATTRIBUTES, maxOccurs: 1 },
    [`${MAP}/tempDestinationAuthorizationEntry`]: {
      attributes: {},
      maxOccurs: 1,
      minChildren: tempCollectionMinChildren,
    },
    [`${MAP}/tempDestinationAuthorizationEntry/tempDestinationAuthorizationEntry`]: {
      attributes: ENTRY_ATTRIBUTES,
      maxOccurs: 1,
    },
  };
}

const UP_TO_5_18 = schema(0);

/** Engine versions (major.minor) with a published schema, and what each permits on the map's path. */
export const PERMITTED_BY_ENGINE_VERSION: Readonly<Record<string, Readonly<Record<string, PermittedElement>>>> = {
  '5.15': UP_TO_5_18,
  '5.16': UP_TO_5_18,
  '5.17': UP_TO_5_18,
  '5.18': UP_TO_5_18,
  '5.19': schema(1),
};

/** `5.18` of `5.18`, `5.18.4` or `5.18.4.1`; `undefined` when the version is not of that form. */
export function engineMinorVersion(engineVersion: string): string | undefined {
  const match = /^(\d+)\.(\d+)(\.\d+)*$/.exec(engineVersion.trim());
  return match ? `${match[1]}.${match[2]}` : undefined;
}

/** An element of the configuration the construct writes; `origin` says which rule or default produced it. */
export interface XmlElement {
  readonly name: string;
  readonly attributes: ReadonlyArray<readonly [string, string]>;
  readonly children: readonly XmlElement[];
  readonly origin?: string;
}

/**
 * The reasons Amazon MQ would sanitize `root` on a broker of `engineVersion`: an element not permitted at its
 * path, an attribute not permitted on it, a value it would remove (a boolean that is not `true`/`false`, a
 * Spring expression or placeholder), too many occurrences, or too few children. Each names the element's
 * origin. Empty when Amazon MQ keeps it all.
 */
export function sanitizationProblems(root: XmlElement, engineVersion: string): string[] {
  const minor = engineMinorVersion(engineVersion);
  const permitted = minor ? PERMITTED_BY_ENGINE_VERSION[minor] : undefined;
  if (!permitted) {
    return [
      `engine version "${engineVersion}" has no Amazon MQ configuration schema known to cdk-mq-user ` +
        `(known: ${Object.keys(PERMITTED_BY_ENGINE_VERSION).join(', ')})`,
    ];
  }
  const problems: string[] = [];
  const visit = (element: XmlElement, parentPath: string | undefined, origin: string) => {
    const where = element.origin ?? origin;
    const path = parentPath === undefined ? element.name : `${parentPath}/${element.name}`;
    const rule = permitted[path];
    if (!rule) {
      problems.push(`${where}: element <${element.name}> is not permitted at ${path} on ActiveMQ ${minor}`);
      return;
    }
    for (const [name, value] of element.attributes) {
      const type = rule.attributes[name];
      if (!type) {
        problems.push(`${where}: attribute ${name} of <${element.name}> is not permitted on ActiveMQ ${minor}`);
      } else if (type === 'boolean' && value !== 'true' && value !== 'false') {
        problems.push(`${where}: attribute ${name}="${value}" of <${element.name}> must be true or false`);
      } else if (/[$#]\{/.test(value)) {
        problems.push(
          `${where}: attribute ${name}="${value}" of <${element.name}> holds a Spring expression or placeholder, ` +
            'which Amazon MQ removes',
        );
      }
    }
    const counts = new Map<string, number>();
    for (const child of element.children) counts.set(child.name, (counts.get(child.name) ?? 0) + 1);
    for (const [name, count] of counts) {
      const max = permitted[`${path}/${name}`]?.maxOccurs;
      if (max !== undefined && count > max) {
        problems.push(
          `${where}: <${element.name}> holds ${count} <${name}> elements; ActiveMQ ${minor} permits ${max}`,
        );
      }
    }
    if (rule.minChildren !== undefined && element.children.length < rule.minChildren) {
      problems.push(`${where}: <${element.name}> must hold at least ${rule.minChildren} element on ActiveMQ ${minor}`);
    }
    for (const child of element.children) visit(child, path, where);
  };
  visit(root, undefined, 'the configuration');
  return problems;
}

/** Attribute values are double-quoted; `>` stays as written (legal there, and how ActiveMQ's docs write `queue=">"`). */
function escapeXml(value: string): string {
  return value.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/"/g, '&quot;');
}

/** The configuration document: an XML declaration and `root` in ActiveMQ's core namespace, indented by two. */
export function renderConfiguration(root: XmlElement): string {
  const lines = ['<?xml version="1.0" encoding="UTF-8" standalone="yes"?>'];
  const render = (element: XmlElement, depth: number, extra: string) => {
    const indent = '  '.repeat(depth);
    const attributes = element.attributes.map(([name, value]) => ` ${name}="${escapeXml(value)}"`).join('');
    if (element.children.length === 0) {
      lines.push(`${indent}<${element.name}${extra}${attributes}/>`);
      return;
    }
    lines.push(`${indent}<${element.name}${extra}${attributes}>`);
    for (const child of element.children) render(child, depth + 1, '');
    lines.push(`${indent}</${element.name}>`);
  };
  render(root, 0, ' xmlns="http://activemq.apache.org/schema/core"');
  return `${lines.join('\n')}\n`;
}
