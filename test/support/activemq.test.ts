/**
 * The real-broker harness itself: a private ActiveMQ signs users in over plain STOMP and STOMP over TLS with
 * the passwords it was given, refuses a wrong one, and carries a message from a sender to a subscriber.
 */
import { ActiveMq, startActiveMq } from './activemq';
import { StompClient } from './stomp';

let broker: ActiveMq;

beforeAll(async () => {
  broker = await startActiveMq({
    users: [
      { username: 'alice', password: 'right-password-1', groups: ['producers'] },
      { username: 'bob', password: 'other-password-2', groups: ['consumers', 'audit'] },
    ],
  });
}, 90_000);

afterAll(async () => {
  await broker?.stop();
});

const plain = () => ({ port: broker.stompPort });
const overTls = () => ({ port: broker.stompSslPort, tls: { ca: broker.ca } });

describe.each([
  ['plain STOMP', plain],
  ['STOMP over TLS', overTls],
])('%s', (_name, endpoint) => {
  test('the right password is CONNECTED', async () => {
    const { client, frame } = await StompClient.connect({
      ...endpoint(),
      login: 'alice',
      passcode: 'right-password-1',
    });
    expect(frame.command).toBe('CONNECTED');
    expect(frame.headers.version).toBe('1.2');
    await client.disconnect();
  });

  test('a wrong password gets ERROR', async () => {
    const { client, frame } = await StompClient.connect({
      ...endpoint(),
      login: 'alice',
      passcode: 'other-password-2',
    });
    expect(frame.command).toBe('ERROR');
    expect(frame.headers.message ?? frame.body).toMatch(/password|authenticat|credentials|not valid/i);
    await client.disconnect();
  });

  test('an unknown user gets ERROR', async () => {
    const { client, frame } = await StompClient.connect({
      ...endpoint(),
      login: 'mallory',
      passcode: 'right-password-1',
    });
    expect(frame.command).toBe('ERROR');
    await client.disconnect();
  });
});

test('the TLS connector presents a certificate the client verifies against the given CA only', async () => {
  await expect(
    StompClient.connect({ port: broker.stompSslPort, tls: { ca: '' }, login: 'alice', passcode: 'right-password-1' }),
  ).rejects.toThrow(/certificate/i);
});

test('a message sent to a queue reaches its subscriber (no authorization map: anyone signed in may)', async () => {
  const { client: consumer } = await StompClient.connect({ ...overTls(), login: 'bob', passcode: 'other-password-2' });
  expect((await consumer.subscribe('/queue/HARNESS.roundtrip')).command).toBe('RECEIPT');
  const { client: producer } = await StompClient.connect({ ...plain(), login: 'alice', passcode: 'right-password-1' });
  expect((await producer.send('/queue/HARNESS.roundtrip', 'hello: world\n')).command).toBe('RECEIPT');
  const message = await consumer.receive();
  expect(message.command).toBe('MESSAGE');
  expect(message.body).toBe('hello: world\n');
  await producer.disconnect();
  await consumer.disconnect();
});

test('stop() kills the broker process', async () => {
  const other = await startActiveMq({ users: [{ username: 'x', password: 'y', groups: [] }] });
  const pid = other.pid;
  expect(() => process.kill(pid, 0)).not.toThrow();
  await other.stop();
  expect(() => process.kill(pid, 0)).toThrow();
  await other.stop();
}, 90_000);
