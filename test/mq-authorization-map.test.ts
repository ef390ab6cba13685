import { App, CfnParameter, SecretValue, Stack, aws_amazonmq as amazonmq } from 'aws-cdk-lib';
import { Annotations, Match, Template } from 'aws-cdk-lib/assertions';
import { MqAuthorizationMap, MqDestination, MqDestinationKind, MqUser } from '../lib';
import {
  PERMITTED_BY_ENGINE_VERSION,
  XmlElement,
  engineMinorVersion,
  renderConfiguration,
  sanitizationProblems,
} from '../lib/private/activemq-schema';
import {
  AccessRule,
  authorizationMapElement,
  destinationPatternProblems,
  extractAuthorizationMap,
  firstUseNotes,
  patternCovers,
} from '../lib/private/authorization';
import { activeMq } from './fixtures/brokers';

function newStack(app = new App(), id = 'Stack') {
  return new Stack(app, id, { env: { account: '111111111111', region: 'us-east-1' } });
}

/** The configuration document the template carries (Fn::Base64 of the XML as written). */
function configurationXml(stack: Stack): string {
  const [configuration] = Object.values(
    Template.fromStack(stack).findResources('AWS::AmazonMQ::Configuration'),
  ) as Array<{
    Properties: { Data: { 'Fn::Base64': string } };
  }>;
  return configuration.Properties.Data['Fn::Base64'];
}

function rule(kind: AccessRule['kind'], pattern: string, access: Partial<AccessRule>, n = 1): AccessRule {
  return {
    kind,
    pattern,
    read: [],
    write: [],
    admin: [],
    label: `rule ${n} (${kind} "${pattern}")`,
    ...access,
  };
}

function warnings(stack: Stack, id: string): string[] {
  return Annotations.fromStack(stack)
    .findWarning('*', Match.stringLikeRegexp(`\\[ack: ${id}\\]`))
    .map((warning) => String(warning.entry.data));
}

describe('destination patterns', () => {
  test.each([
    'ORDERS',
    'ORDERS.>',
    '>',
    '*',
    'ORDERS.*.paid',
    'ORDERS.>,BILLING.*',
    'ActiveMQ.Advisory.>',
    'orders-eu_1~x',
  ])('%s is valid', (pattern) => {
    expect(destinationPatternProblems(pattern)).toEqual([]);
  });

  test.each([
    ['', /empty/],
    ['ORDERS..paid', /empty name segment/],
    ['.ORDERS', /empty name segment/],
    ['ORDERS.', /empty name segment/],
    ['ORDERS.>.paid', /must be the last segment/],
    ['ORDERS*', /must be a whole segment/],
    ['ORDERS.paid>', /must be a whole segment/],
    ['/queue/ORDERS', /STOMP prefix/],
    ['queue://ORDERS', /queue:\/\/ or topic:\/\/ prefix/],
    ['ORDERS,,BILLING', /list element is empty/],
    ['ORDERS,', /list element is empty/],
    ['ORDERS EU', /white space/],
    ['ORDERS\u0007', /control character/],
    ['ORDERS.${env}', /Spring expression/],
  ])('%j is refused (%s)', (pattern, message) => {
    expect(destinationPatternProblems(pattern).join('; ')).toMatch(message);
  });

  test('MqDestination throws at creation, naming the pattern and the rule it breaks', () => {
    expect(() => MqDestination.queue('ORDERS.>.paid')).toThrow(
      'MqDestination.queue("ORDERS.>.paid"): "ORDERS.>.paid": ">" matches the rest of the name and must be the last segment',
    );
    expect(() => MqDestination.topic('/topic/EVENTS')).toThrow(
      /MqDestination.topic\("\/topic\/EVENTS"\): .*STOMP prefix/,
    );
  });

  test('MqDestination refuses a token pattern: the map is checked at synth', () => {
    const stack = newStack();
    const name = new CfnParameter(stack, 'QueueName').valueAsString;
    expect(() => MqDestination.queue(name)).toThrow(/must be known at synth time/);
  });

  test('MqDestination says what it covers', () => {
    expect(MqDestination.queue('ORDERS.>').kind).toBe(MqDestinationKind.QUEUE);
    expect(MqDestination.topic('EVENTS.*').toString()).toBe('topic "EVENTS.*"');
    expect(MqDestination.temporary().kind).toBe(MqDestinationKind.TEMPORARY);
    expect(MqDestination.temporary().pattern).toBe('');
  });

  test.each([
    ['>', 'ORDERS.eu', true],
    ['ORDERS.>', 'ORDERS', true],
    ['ORDERS.>', 'ORDERS.eu.paid', true],
    ['ORDERS.*', 'ORDERS.eu', true],
    ['ORDERS.*', 'ORDERS.eu.paid', false],
    ['ORDERS.*', 'ORDERS.*', true],
    ['ORDERS.*', 'ORDERS.>', false],
    ['ORDERS.eu', 'ORDERS.*', false],
    ['ORDERS.>', 'BILLING.x', false],
    ['ORDERS.>,BILLING.>', 'BILLING.x', true],
    ['ORDERS.>', 'ORDERS.a,ORDERS.b', true],
    ['ORDERS.>', 'ORDERS.a,BILLING', false],
    ['*.paid', 'ORDERS.paid', true],
    ['*.paid', 'ORDERS.open', false],
  ])('%s covers %s: %s', (broad, narrow, covers) => {
    expect(patternCovers(broad, narrow)).toBe(covers);
  });
});

describe('the authorization map document', () => {
  const rules = [
    rule('queue', 'ORDERS.>', { write: ['orders-producers'], read: ['orders-consumers'], admin: ['orders-producers'] }),
    rule('topic', 'EVENTS.*', { read: ['audit'], admin: ['platform'] }, 2),
    rule('queue', 'ORDERS.>', { read: ['audit', 'orders-consumers'] }, 3),
  ];

  test('merges rules on one pattern, then writes the advisory, default and temporary entries', () => {
    expect(renderConfiguration(authorizationMapElement(rules))).toBe(
      [
        '<?xml version="1.0" encoding="UTF-8" standalone="yes"?>',
        '<broker xmlns="http://activemq.apache.org/schema/core">',
        '  <plugins>',
        '    <authorizationPlugin>',
        '      <map>',
        '        <authorizationMap>',
        '          <authorizationEntries>',
        '            <authorizationEntry queue="ORDERS.>" read="audit,orders-consumers" write="orders-producers" admin="orders-producers"/>',
        '            <authorizationEntry topic="EVENTS.*" read="audit" admin="platform"/>',
        '            <authorizationEntry topic="ActiveMQ.Advisory.>" read="audit,orders-consumers,orders-producers,platform" write="audit,orders-consumers,orders-producers,platform" admin="audit,orders-consumers,orders-producers,platform"/>',
        '          </authorizationEntries>',
        '          <defaultEntry>',
        '            <authorizationEntry read="activemq-webconsole" write="activemq-webconsole" admin="activemq-webconsole"/>',
        '          </defaultEntry>',
        '          <tempDestinationAuthorizationEntry>',
        '            <tempDestinationAuthorizationEntry read="activemq-webconsole" write="activemq-webconsole" admin="activemq-webconsole"/>',
        '          </tempDestinationAuthorizationEntry>',
        '        </authorizationMap>',
        '      </map>',
        '    </authorizationPlugin>',
        '  </plugins>',
        '</broker>',
        '',
      ].join('\n'),
    );
  });

  test('never "everyone may do anything": without rules, only the web console group is named, temporary destinations included', () => {
    const xml = renderConfiguration(authorizationMapElement([]));
    expect(xml).not.toContain('<authorizationEntries>');
    expect(xml).toContain('<defaultEntry>');
    // Without this entry ActiveMQ lets every user create and use temporary destinations.
    expect(xml).toContain(
      '<tempDestinationAuthorizationEntry read="activemq-webconsole" write="activemq-webconsole" admin="activemq-webconsole"/>',
    );
    expect(xml).not.toMatch(/"\*"|"all"|="[^"]*,\*/);
  });

  test('temporary destination rules go into the one temporary entry, with the web console group', () => {
    const xml = renderConfiguration(
      authorizationMapElement([
        rule('temporary', '', { admin: ['requesters'], read: ['requesters'], write: ['responders'] }),
        rule('temporary', '', { write: ['audit'] }, 2),
      ]),
    );
    expect(xml).toContain(
      '<tempDestinationAuthorizationEntry read="activemq-webconsole,requesters" write="activemq-webconsole,audit,responders" admin="activemq-webconsole,requesters"/>',
    );
    // Their groups read advisories too (a requester learns of its temporary queue through them).
    expect(xml).toContain('<authorizationEntry topic="ActiveMQ.Advisory.>" read="audit,requesters,responders"');
  });

  test("a rule of one's own on the advisory topics adds to the default one, in one entry", () => {
    const xml = renderConfiguration(
      authorizationMapElement([
        rule('queue', 'A', { read: ['readers'] }),
        rule('topic', 'ActiveMQ.Advisory.>', { read: ['monitor'] }, 2),
      ]),
    );
    expect(xml.match(/ActiveMQ\.Advisory/g)).toHaveLength(1);
    expect(xml).toContain(
      '<authorizationEntry topic="ActiveMQ.Advisory.>" read="monitor,readers" write="monitor,readers" admin="monitor,readers"/>',
    );
  });

  test('attribute values are escaped for XML', () => {
    const xml = renderConfiguration({
      name: 'broker',
      attributes: [['a', '<&">']],
      children: [],
    });
    expect(xml).toContain('<broker xmlns="http://activemq.apache.org/schema/core" a="&lt;&amp;&quot;>"/>');
  });

  test('extractAuthorizationMap returns the <authorizationMap> element as written', () => {
    const xml = renderConfiguration(authorizationMapElement(rules));
    const map = extractAuthorizationMap(xml)!;
    expect(map.startsWith('<authorizationMap>')).toBe(true);
    expect(map.endsWith('</authorizationMap>')).toBe(true);
    expect(extractAuthorizationMap('<broker/>')).toBeUndefined();
  });
});

describe('what Amazon MQ permits (its published XSDs)', () => {
  const ours = authorizationMapElement([
    rule('queue', 'ORDERS.>', { write: ['p'], read: ['c'], admin: ['p'] }),
    rule('temporary', '', { admin: ['p'] }, 2),
  ]);

  test.each(['5.15', '5.16', '5.17.6', '5.18', '5.18.4', '5.19', '5.19.1'])('the map passes on %s', (version) => {
    expect(sanitizationProblems(ours, version)).toEqual([]);
  });

  test.each(['5.20', '6.0', 'latest', ''])('an engine version without a known schema is refused: %j', (version) => {
    expect(sanitizationProblems(ours, version)).toEqual([
      `engine version "${version}" has no Amazon MQ configuration schema known to cdk-mq-user (known: 5.15, 5.16, 5.17, 5.18, 5.19)`,
    ]);
  });

  test('the versions known are those AWS published a schema for', () => {
    expect(Object.keys(PERMITTED_BY_ENGINE_VERSION)).toEqual(['5.15', '5.16', '5.17', '5.18', '5.19']);
    expect(engineMinorVersion('5.18.4')).toBe('5.18');
    expect(engineMinorVersion('5.x')).toBeUndefined();
  });

  // Hostile documents: what Amazon MQ would remove silently must fail synthesis, naming where it came from.
  const map = (children: XmlElement[], origin?: string): XmlElement => ({
    name: 'broker',
    attributes: [],
    children: [
      {
        name: 'plugins',
        attributes: [],
        children: [
          {
            name: 'authorizationPlugin',
            attributes: [],
            children: [
              {
                name: 'map',
                attributes: [],
                children: [{ name: 'authorizationMap', attributes: [], children, origin }],
              },
            ],
          },
        ],
      },
    ],
  });
  const entries = (...children: XmlElement[]): XmlElement => ({
    name: 'authorizationEntries',
    attributes: [],
    children,
  });
  const entry = (attributes: Array<[string, string]>, origin = 'rule 7 (queue "X")'): XmlElement => ({
    name: 'authorizationEntry',
    attributes,
    children: [],
    origin,
  });

  test.each<[string, XmlElement, string]>([
    [
      'an element not permitted',
      {
        name: 'broker',
        attributes: [],
        children: [
          {
            name: 'plugins',
            attributes: [],
            children: [{ name: 'simpleAuthenticationPlugin', attributes: [], children: [], origin: 'rule 3' }],
          },
        ],
      },
      'rule 3: element <simpleAuthenticationPlugin> is not permitted at broker/plugins/simpleAuthenticationPlugin on ActiveMQ 5.18',
    ],
    [
      'an attribute not permitted',
      map([
        entries(
          entry([
            ['queue', 'X'],
            ['groupClass', 'org.example.Group'],
          ]),
        ),
      ]),
      'rule 7 (queue "X"): attribute groupClass of <authorizationEntry> is not permitted on ActiveMQ 5.18',
    ],
    [
      'a boolean that is not true or false',
      map([entries(entry([['tempQueue', 'yes']]))]),
      'rule 7 (queue "X"): attribute tempQueue="yes" of <authorizationEntry> must be true or false',
    ],
    [
      'a Spring placeholder',
      map([
        entries(
          entry([
            ['queue', 'X'],
            ['read', '${groups}'],
          ]),
        ),
      ]),
      'rule 7 (queue "X"): attribute read="${groups}" of <authorizationEntry> holds a Spring expression or placeholder, which Amazon MQ removes',
    ],
    [
      'two default entries',
      map(
        [
          { name: 'defaultEntry', attributes: [], children: [] },
          { name: 'defaultEntry', attributes: [], children: [] },
        ],
        'the map',
      ),
      'the map: <authorizationMap> holds 2 <defaultEntry> elements; ActiveMQ 5.18 permits 1',
    ],
  ])('%s fails, naming its origin', (_name, document, problem) => {
    expect(sanitizationProblems(document, '5.18')).toEqual([problem]);
  });

  test('5.19 requires an entry in the temporary destination collection, 5.18 does not', () => {
    const document = map([{ name: 'tempDestinationAuthorizationEntry', attributes: [], children: [], origin: 'temp' }]);
    expect(sanitizationProblems(document, '5.18')).toEqual([]);
    expect(sanitizationProblems(document, '5.19')).toEqual([
      'temp: <tempDestinationAuthorizationEntry> must hold at least 1 element on ActiveMQ 5.19',
    ]);
  });
});

describe('first use needs admin', () => {
  test.each<[string, AccessRule[], number]>([
    ['write without admin anywhere', [rule('queue', 'ORDERS.>', { write: ['p'] })], 1],
    ['read without admin anywhere', [rule('topic', 'EVENTS.*', { read: ['c'] })], 1],
    ['admin in the same rule', [rule('queue', 'ORDERS.>', { write: ['p'], admin: ['p'] })], 0],
    [
      'admin of another group on a broader pattern',
      [rule('queue', 'ORDERS.eu', { write: ['p'] }), rule('queue', 'ORDERS.>', { admin: ['ops'] }, 2)],
      0,
    ],
    [
      'admin only on a narrower pattern',
      [rule('queue', 'ORDERS.>', { write: ['p'] }), rule('queue', 'ORDERS.eu', { admin: ['ops'] }, 2)],
      1,
    ],
    [
      'admin on a topic does not create queues',
      [rule('queue', 'ORDERS.>', { write: ['p'] }), rule('topic', 'ORDERS.>', { admin: ['ops'] }, 2)],
      1,
    ],
    [
      'admin only for the web console group',
      [rule('queue', 'ORDERS.>', { write: ['p'], admin: ['activemq-webconsole'] })],
      1,
    ],
    ['admin alone', [rule('queue', 'ORDERS.>', { admin: ['ops'] })], 0],
    ['temporary destinations', [rule('temporary', '', { write: ['p'] })], 0],
  ])('%s: %d note(s)', (_name, rules, count) => {
    expect(firstUseNotes(rules)).toHaveLength(count);
  });

  test('the note names the rule, the groups and what to do', () => {
    expect(firstUseNotes([rule('queue', 'ORDERS.>', { write: ['p'], read: ['c'] })])[0]).toMatch(
      /^rule 1 \(queue "ORDERS.>"\) lets c, p use queues that no rule lets anyone create: .*admin/,
    );
  });
});

describe('MqAuthorizationMap', () => {
  test('writes the configuration the broker points at, for the broker engine, with the map readable in the template', () => {
    const stack = newStack();
    const broker = activeMq(stack, 'Broker', { engineVersion: '5.19' });
    const access = new MqAuthorizationMap(stack, 'Access', { broker });
    access.allow(MqDestination.queue('ORDERS.>'), { write: ['orders-producers'], admin: ['orders-producers'] });

    const template = Template.fromStack(stack);
    template.resourceCountIs('AWS::AmazonMQ::Configuration', 1);
    template.hasResourceProperties('AWS::AmazonMQ::Configuration', {
      EngineType: 'ACTIVEMQ',
      EngineVersion: '5.19',
      AuthenticationStrategy: 'SIMPLE',
      Name: Match.stringLikeRegexp('^Stack-Access-[A-Za-z0-9]+$'),
      Description: 'Authorization map of Stack/Access, written by cdk-mq-user',
      Data: { 'Fn::Base64': Match.stringLikeRegexp('<authorizationEntry queue="ORDERS.>" write="orders-producers"') },
    });
    const logicalId = stack.getLogicalId(access.configuration);
    template.hasResourceProperties('AWS::AmazonMQ::Broker', {
      Configuration: { Id: { 'Fn::GetAtt': [logicalId, 'Id'] }, Revision: { 'Fn::GetAtt': [logicalId, 'Revision'] } },
    });
    expect(access.node.defaultChild).toBe(access.configuration);
  });

  test('a rule added after the broker was used still reaches the configuration (written at synth)', () => {
    const stack = newStack();
    const access = new MqAuthorizationMap(stack, 'Access', { broker: activeMq(stack) });
    access.allow(MqDestination.queue('A'), { admin: ['ops'] });
    access.allow(MqDestination.queue('B'), { admin: ['ops'] });
    expect(configurationXml(stack)).toMatch(/queue="A"[\s\S]*queue="B"/);
  });

  test('takes its configuration name and description when given', () => {
    const stack = newStack();
    new MqAuthorizationMap(stack, 'Access', {
      broker: activeMq(stack),
      configurationName: 'orders-access',
      description: 'who may use the order queues',
    });
    Template.fromStack(stack).hasResourceProperties('AWS::AmazonMQ::Configuration', {
      Name: 'orders-access',
      Description: 'who may use the order queues',
    });
  });

  test.each<[string, (stack: Stack) => amazonmq.CfnBroker, RegExp]>([
    [
      'a broker with a configuration of its own',
      (stack) => activeMq(stack, 'Broker', { configuration: { id: 'c-1234', revision: 3 } }),
      /broker Stack\/Broker already has a configuration \(\{"id":"c-1234","revision":3\}\): an MqAuthorizationMap writes the broker's whole configuration and would drop its settings/,
    ],
    [
      'a RabbitMQ broker',
      (stack) => activeMq(stack, 'Broker', { engineType: 'RABBITMQ', engineVersion: '3.13' }),
      /engineType "RABBITMQ": an authorization map needs ACTIVEMQ/,
    ],
    [
      'a deploy-time engine version',
      (stack) => activeMq(stack, 'Broker', { engineVersion: new CfnParameter(stack, 'Version').valueAsString }),
      /needs a literal engineVersion/,
    ],
    [
      'LDAP authentication',
      (stack) => activeMq(stack, 'Broker', { authenticationStrategy: 'LDAP' }),
      /authenticationStrategy "LDAP"/,
    ],
    [
      'a broker of another stack',
      (stack) => activeMq(new Stack(stack.node.root as App, 'Other')),
      /broker Other\/Broker is in stack Other: declare the MqAuthorizationMap in the broker's stack/,
    ],
  ])('refuses %s, naming the broker', (_name, makeBroker, message) => {
    const stack = newStack();
    const broker = makeBroker(stack);
    expect(() => new MqAuthorizationMap(stack, 'Access', { broker })).toThrow(message);
  });

  test('a second map on one broker is refused: the first one owns its configuration', () => {
    const stack = newStack();
    const broker = activeMq(stack);
    new MqAuthorizationMap(stack, 'Access', { broker });
    expect(() => new MqAuthorizationMap(stack, 'Again', { broker })).toThrow(/already has a configuration/);
  });

  test('refuses an invalid configuration name', () => {
    const stack = newStack();
    expect(
      () => new MqAuthorizationMap(stack, 'Access', { broker: activeMq(stack), configurationName: 'orders access' }),
    ).toThrow('configurationName "orders access" must be 1 to 150 characters of A-Z a-z 0-9 - . _ ~');
  });

  test('fails synthesis when the broker configuration is replaced afterwards', () => {
    const stack = newStack();
    const broker = activeMq(stack);
    new MqAuthorizationMap(stack, 'Access', { broker });
    broker.configuration = { id: 'c-other', revision: 1 };
    expect(() => Template.fromStack(stack)).toThrow(
      /the configuration of broker Stack\/Broker was changed after this MqAuthorizationMap set it/,
    );
  });

  test('fails synthesis on an engine version without a published schema', () => {
    const stack = newStack();
    new MqAuthorizationMap(stack, 'Access', { broker: activeMq(stack, 'Broker', { engineVersion: '5.20' }) });
    expect(() => Template.fromStack(stack)).toThrow(
      /engine version "5.20" has no Amazon MQ configuration schema known/,
    );
  });

  test.each<[string, Parameters<MqAuthorizationMap['allow']>[1], RegExp]>([
    [
      'an invalid group',
      { read: ['orders consumers'] },
      /rule 1 \(queue "ORDERS.>"\): group "orders consumers" must be 2 to 100 characters/,
    ],
    ['a one-letter group', { write: ['x'] }, /group "x" must be/],
    ['no group at all', {}, /rule 1 \(queue "ORDERS.>"\): it names no group/],
    ['empty lists', { read: [], write: [], admin: [] }, /it names no group/],
  ])('allow refuses %s, naming the rule', (_name, access, message) => {
    const stack = newStack();
    const map = new MqAuthorizationMap(stack, 'Access', { broker: activeMq(stack) });
    expect(() => map.allow(MqDestination.queue('ORDERS.>'), access)).toThrow(message);
  });

  test('allow refuses a token group', () => {
    const stack = newStack();
    const map = new MqAuthorizationMap(stack, 'Access', { broker: activeMq(stack) });
    const group = new CfnParameter(stack, 'Group').valueAsString;
    expect(() => map.allow(MqDestination.queue('A'), { read: [group] })).toThrow(/a group is a token/);
  });

  describe('checks the rules against the users of the broker', () => {
    function setUp() {
      const app = new App();
      const stack = newStack(app);
      const broker = activeMq(stack, 'Broker', {
        users: [
          {
            username: 'admin',
            password: SecretValue.secretsManager('admin-password').unsafeUnwrap(),
            groups: ['admins'],
          },
        ],
      });
      new MqUser(stack, 'Producer', { broker, username: 'producer', groups: ['orders-producers', 'unused-group'] });
      new MqUser(stack, 'Console', {
        broker,
        username: 'operator',
        groups: ['activemq-webconsole'],
        consoleAccess: true,
      });
      const map = new MqAuthorizationMap(stack, 'Access', { broker });
      return { app, stack, broker, map };
    }

    test('a group of an MqUser that no rule names, and a rule group no user carries, are warnings', () => {
      const { stack, map } = setUp();
      map.allow(MqDestination.queue('ORDERS.>'), { write: ['orders-producers'], admin: ['orders-producers'] });
      map.allow(MqDestination.queue('ORDERS.>'), { read: ['orders-consumers'] });
      map.allow(MqDestination.queue('ADMIN.>'), { admin: ['admins'] });

      expect(warnings(stack, 'cdk-mq-user:groupWithoutRule')).toEqual([
        expect.stringMatching(
          /^group "unused-group" of MqUser "producer" \(Stack\/Producer\) is named by no rule of this authorization map: its members may use no queue, topic or temporary destination of broker Stack\/Broker/,
        ),
      ]);
      expect(warnings(stack, 'cdk-mq-user:groupWithoutUser')).toEqual([
        expect.stringMatching(
          /^group "orders-consumers" \(rule 2 \(queue "ORDERS.>"\)\) is carried by no MqUser of broker Stack\/Broker in this app/,
        ),
      ]);
      // activemq-webconsole is the map's own default, and "admins" is carried by the broker's own user.
      expect(JSON.stringify(Annotations.fromStack(stack).findWarning('*', Match.anyValue()))).not.toMatch(
        /group "(activemq-webconsole|admins)"/,
      );
    });

    test('users of the broker declared in another stack count', () => {
      const { app, stack, broker, map } = setUp();
      const other = new Stack(app, 'Consumers', { env: { account: '111111111111', region: 'us-east-1' } });
      new MqUser(other, 'Consumer', { broker, username: 'consumer', groups: ['orders-consumers'] });
      map.allow(MqDestination.queue('ORDERS.>'), { read: ['orders-consumers'], admin: ['orders-consumers'] });
      expect(warnings(stack, 'cdk-mq-user:groupWithoutUser')).toEqual([]);
    });

    test('write without admin on destinations no rule lets anyone create is a warning; admin silences it', () => {
      const { stack, map } = setUp();
      map.allow(MqDestination.queue('ORDERS.>'), { write: ['orders-producers'] });
      expect(warnings(stack, 'cdk-mq-user:firstUseNeedsAdmin')).toEqual([
        expect.stringMatching(
          /^rule 1 \(queue "ORDERS.>"\) lets orders-producers use queues that no rule lets anyone create/,
        ),
      ]);

      const fixed = setUp();
      fixed.map.allow(MqDestination.queue('ORDERS.>'), { write: ['orders-producers'], admin: ['orders-producers'] });
      expect(warnings(fixed.stack, 'cdk-mq-user:firstUseNeedsAdmin')).toEqual([]);
    });

    test('a map without rules warns that only the web console may use the broker', () => {
      const { stack } = setUp();
      expect(warnings(stack, 'cdk-mq-user:authorizationMapWithoutRules')).toHaveLength(1);
    });
  });
});

describe('the example app', () => {
  test("declares rules for every group of its users, with no warning of the map's", async () => {
    const { BrokerStack } = await import('../bin/example-stacks');
    const stack = new BrokerStack(new App(), 'MqUserExample');
    Template.fromStack(stack).resourceCountIs('AWS::AmazonMQ::Configuration', 1);
    for (const id of ['groupWithoutRule', 'groupWithoutUser', 'firstUseNeedsAdmin', 'authorizationMapWithoutRules']) {
      expect(warnings(stack, `cdk-mq-user:${id}`)).toEqual([]);
    }
  });
});
