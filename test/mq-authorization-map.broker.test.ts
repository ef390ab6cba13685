/**
 * The example app's authorization map on a real ActiveMQ broker (Debian's 5.17.2; Amazon MQ runs 5.18/5.19).
 *
 * The map is the `<authorizationMap>` the construct synthesizes into the example's template, used as written.
 * The users are the template's: each `Custom::MqUser` and the broker's own users list, with their groups, set up
 * through `simpleAuthenticationPlugin` as Amazon MQ sets up the users of its user API (passwords are made up
 * here; Amazon MQ takes them from the secrets). A real STOMP client then signs in as each of them.
 */
import { randomBytes } from 'crypto';
import { App } from 'aws-cdk-lib';
import { Template } from 'aws-cdk-lib/assertions';
import { BrokerStack } from '../bin/example-stacks';
import { extractAuthorizationMap } from '../lib/private/authorization';
import { ActiveMq, BrokerUser, missingAdvisoryLibraries, startActiveMq } from './support/activemq';
import { StompClient, StompFrame } from './support/stomp';

type Resource = { Type: string; Properties: Record<string, any> };

/** The example's users as Amazon MQ would hold them, each with a password made up for this run. */
function exampleUsers(template: Template): BrokerUser[] {
  const password = () => randomBytes(18).toString('base64url');
  const mqUsers = Object.values(template.findResources('Custom::MqUser')) as Resource[];
  const [broker] = Object.values(template.findResources('AWS::AmazonMQ::Broker')) as Resource[];
  return [
    ...mqUsers.map((user) => ({
      username: user.Properties.Username as string,
      password: password(),
      groups: (user.Properties.Groups as string[] | undefined) ?? [],
    })),
    ...(broker.Properties.Users as Array<{ Username: string; Groups?: string[] }>).map((user) => ({
      username: user.Username,
      password: password(),
      groups: user.Groups ?? [],
    })),
  ];
}

function exampleMap(template: Template): string {
  const [configuration] = Object.values(template.findResources('AWS::AmazonMQ::Configuration')) as Resource[];
  const map = extractAuthorizationMap(configuration.Properties.Data['Fn::Base64'] as string);
  if (!map) throw new Error('the example configuration holds no <authorizationMap>');
  return map;
}

const template = Template.fromStack(new BrokerStack(new App(), 'MqUserExample'));
// And a user made outside the stack (users may exist outside it), whose group no rule names.
const users = [
  ...exampleUsers(template),
  { username: 'outsider', password: randomBytes(18).toString('base64url'), groups: ['reporting'] },
];
let broker: ActiveMq;
jest.setTimeout(30_000);
const open: StompClient[] = [];

beforeAll(async () => {
  broker = await startActiveMq({ users, authorizationMap: exampleMap(template) });
}, 90_000);

afterAll(async () => {
  await Promise.all(open.map((client) => client.disconnect()));
  await broker?.stop();
});

/** A fresh connection signed in as `username` (over TLS when asked). */
async function as(username: string, tls = false): Promise<StompClient> {
  const user = users.find((u) => u.username === username)!;
  const { client, frame } = await StompClient.connect({
    ...(tls ? { port: broker.stompSslPort, tls: { ca: broker.ca } } : { port: broker.stompPort }),
    login: user.username,
    passcode: user.password,
  });
  open.push(client);
  if (frame.command !== 'CONNECTED') throw new Error(`${username} could not sign in: ${frame.headers.message}`);
  return client;
}

let serial = 0;
/** A name segment of its own for each check: a destination that exists already no longer tests creation. */
const tag = () => `t${++serial}p${process.pid}`;

const refusal = (frame: StompFrame) => `${frame.command} ${frame.headers.message ?? ''}`;

test('the example users are those of the template, the rotation alternate and the broker admin included', () => {
  expect(users.map((u) => `${u.username}:${u.groups.join('+')}`).sort()).toEqual([
    'admin:activemq-webconsole',
    'billing-service:billing',
    'operator:operators',
    'orders-service:orders-consumers+orders-producers',
    'orders-service_clone:orders-consumers+orders-producers',
    'outsider:reporting',
  ]);
});

describe('signing in', () => {
  test.each([false, true])('a wrong password is refused, the right one accepted (TLS: %s)', async (tls) => {
    const endpoint = tls ? { port: broker.stompSslPort, tls: { ca: broker.ca } } : { port: broker.stompPort };
    const wrong = await StompClient.connect({ ...endpoint, login: 'orders-service', passcode: 'not-the-password-1' });
    open.push(wrong.client);
    expect(wrong.frame.command).toBe('ERROR');
    const user = users.find((u) => u.username === 'orders-service')!;
    const right = await StompClient.connect({ ...endpoint, login: user.username, passcode: user.password });
    open.push(right.client);
    expect(right.frame.command).toBe('CONNECTED');
  });
});

describe('sending', () => {
  test('a group with write (and admin) sends to a new queue of its pattern', async () => {
    const orders = await as('orders-service');
    expect(refusal(await orders.send(`/queue/${`ORDERS.eu.${tag()}`}`, 'order 1'))).toBe('RECEIPT ');
  });

  test('a group without write on the pattern is refused', async () => {
    const billing = await as('billing-service');
    const frame = await billing.send(`/queue/${`ORDERS.eu.${tag()}`}`, 'order 1');
    expect(refusal(frame)).toMatch(/^ERROR User billing-service is not authorized to (write|create)/);
  });

  test('a destination no rule names is refused to every group but the web console', async () => {
    const name = `/queue/${`UNNAMED.${tag()}`}`;
    for (const username of ['orders-service', 'billing-service', 'operator']) {
      const client = await as(username);
      expect(refusal(await client.send(name, 'x'))).toMatch(new RegExp(`^ERROR User ${username} is not authorized`));
    }
    const admin = await as('admin');
    expect(refusal(await admin.send(name, 'x'))).toBe('RECEIPT ');
  });

  test('the default entry is added to every destination, not a fallback: the web console group sends to named ones too', async () => {
    const admin = await as('admin');
    expect(refusal(await admin.send(`/queue/ORDERS.eu.${tag()}`, 'x'))).toBe('RECEIPT ');
    expect(refusal(await admin.send(`/queue/BILLING.${tag()}`, 'x'))).toBe('RECEIPT ');
  });

  test('`>` also matches no further segment: ORDERS.> covers ORDERS itself', async () => {
    const orders = await as('orders-service');
    expect(refusal(await orders.send('/queue/ORDERS', 'x'))).toBe('RECEIPT ');
  });

  test('publishing to a topic follows its rule too', async () => {
    const topic = `/topic/EVENTS.ORDERS.${tag()}`;
    const orders = await as('orders-service');
    expect(refusal(await orders.send(topic, 'event'))).toBe('RECEIPT ');
    const operator = await as('operator');
    expect(refusal(await operator.send(topic, 'event'))).toMatch(/^ERROR User operator is not authorized to write/);
  });
});

describe('reading', () => {
  test('a group with read receives what a writer sent; a group without read is refused', async () => {
    const queue = `/queue/${`ORDERS.eu.${tag()}`}`;
    const producer = await as('orders-service');
    expect(refusal(await producer.send(queue, 'order 42'))).toBe('RECEIPT ');

    const billing = await as('billing-service');
    expect(refusal(await billing.subscribe(queue))).toMatch(/^ERROR User billing-service is not authorized to read/);

    const consumer = await as('orders-service_clone');
    expect(refusal(await consumer.subscribe(queue))).toBe('RECEIPT ');
    const message = await consumer.receive();
    expect(message.command).toBe('MESSAGE');
    expect(message.body).toBe('order 42');
  });

  test('`*` covers one segment only: EVENTS.ORDERS.* does not reach EVENTS.ORDERS.<name>.paid', async () => {
    const name = tag();
    const orders = await as('orders-service'); // orders-producers administer the topics: they create them
    expect(refusal(await orders.send(`/topic/EVENTS.ORDERS.${name}`, 'event'))).toBe('RECEIPT ');
    const operator = await as('operator');
    expect(refusal(await operator.subscribe(`/topic/EVENTS.ORDERS.${name}`))).toBe('RECEIPT ');
    const deeper = await as('operator');
    expect(refusal(await deeper.subscribe(`/topic/EVENTS.ORDERS.${name}.paid`))).toMatch(
      /^ERROR User operator is not authorized to read from: topic:\/\/EVENTS\.ORDERS\./,
    );
  });
});

describe('creating on first use', () => {
  test('write without admin cannot create a queue; once its admin group created it, the send goes through', async () => {
    const queue = `/queue/${`BILLING.invoices.${tag()}`}`;
    const orders = await as('orders-service');
    expect(refusal(await orders.send(queue, 'invoice 1'))).toMatch(
      /^ERROR User orders-service is not authorized to create: queue:\/\/BILLING\.invoices/,
    );

    const billing = await as('billing-service');
    expect(refusal(await billing.subscribe(queue))).toBe('RECEIPT '); // billing has admin: the queue now exists

    const again = await as('orders-service');
    expect(refusal(await again.send(queue, 'invoice 2'))).toBe('RECEIPT ');
    expect((await billing.receive()).body).toBe('invoice 2');
  });

  test('read without admin cannot create a topic either', async () => {
    // operators read EVENTS.ORDERS.*, but only orders-producers administer it: a subscription to a topic that
    // does not exist yet would create it.
    const operator = await as('operator');
    expect(refusal(await operator.subscribe(`/topic/EVENTS.ORDERS.${tag()}`))).toMatch(
      /^ERROR User operator is not authorized to create: topic:\/\/EVENTS\.ORDERS\./,
    );
  });
});

describe('advisory topics', () => {
  test('every group a rule names reads the advisories: it learns of a new queue', async () => {
    // Without them the broker drops advisory messages for STOMP: run scripts/ensure-activemq.sh.
    expect(missingAdvisoryLibraries()).toEqual([]);
    const billing = await as('billing-service');
    expect(refusal(await billing.subscribe('/topic/ActiveMQ.Advisory.Queue'))).toBe('RECEIPT ');
    const orders = await as('orders-service');
    const queue = `ORDERS.advised.${tag()}`;
    expect(refusal(await orders.send(`/queue/${queue}`, 'x'))).toBe('RECEIPT ');
    // A new subscriber first gets an advisory for each queue that exists already, then one for ours.
    const advisories: StompFrame[] = [];
    while (!advisories.some((frame) => frame.body.includes(`"string":"${queue}"`))) {
      const frame = await billing.receive();
      expect(frame.command).toBe('MESSAGE');
      expect(frame.headers.destination).toBe('/topic/ActiveMQ.Advisory.Queue');
      advisories.push(frame);
    }
  });

  test('a user whose groups no rule names reads no advisory (nor anything else)', async () => {
    const outsider = await as('outsider');
    expect(refusal(await outsider.subscribe('/topic/ActiveMQ.Advisory.Queue'))).toMatch(
      /^ERROR User outsider is not authorized to read from: topic:\/\/ActiveMQ\.Advisory\.Queue/,
    );
    const again = await as('outsider');
    expect(refusal(await again.send(`/queue/ORDERS.eu.${tag()}`, 'x'))).toMatch(
      /^ERROR User outsider is not authorized/,
    );
  });
});

describe('temporary destinations', () => {
  test('only groups of the temporary rule may create them', async () => {
    const billing = await as('billing-service');
    expect(refusal(await billing.subscribe('/temp-queue/replies'))).toBe('RECEIPT ');
    const operator = await as('operator');
    expect(refusal(await operator.subscribe('/temp-queue/replies'))).toMatch(/^ERROR User operator is not authorized/);
  });
});

describe('why the defaults matter (the hostile case, on a broker of its own)', () => {
  let bare: ActiveMq;
  beforeAll(async () => {
    // The same map without its temporary destination entry: what a hand-written map often looks like.
    const map = exampleMap(template).replace(
      /\s*<tempDestinationAuthorizationEntry>[\s\S]*<\/tempDestinationAuthorizationEntry>/,
      '',
    );
    expect(map).not.toContain('tempDestinationAuthorizationEntry');
    bare = await startActiveMq({ users, authorizationMap: map });
  }, 90_000);
  afterAll(async () => {
    await bare?.stop();
  });

  test('without the temporary entry, any signed-in user may create temporary queues', async () => {
    const operator = users.find((u) => u.username === 'operator')!;
    const { client, frame } = await StompClient.connect({
      port: bare.stompPort,
      login: operator.username,
      passcode: operator.password,
    });
    open.push(client);
    expect(frame.command).toBe('CONNECTED');
    expect(refusal(await client.subscribe('/temp-queue/replies'))).toBe('RECEIPT ');
  });
});
