import * as net from 'node:net';
import { scrubbed, signInOptions, stompEndpoints, stompSignIn } from '../lambda/rotation/sign-in';

describe('stompEndpoints: the stomp+ssl:// endpoints DescribeBroker reports', () => {
  test.each<[string, string[], Array<{ host: string; port: number }>]>([
    [
      'one instance, every wire protocol',
      [
        'ssl://b-1-1.mq.us-east-1.amazonaws.com:61617',
        'amqp+ssl://b-1-1.mq.us-east-1.amazonaws.com:5671',
        'stomp+ssl://b-1-1.mq.us-east-1.amazonaws.com:61614',
        'mqtt+ssl://b-1-1.mq.us-east-1.amazonaws.com:8883',
        'wss://b-1-1.mq.us-east-1.amazonaws.com:61619',
      ],
      [{ host: 'b-1-1.mq.us-east-1.amazonaws.com', port: 61614 }],
    ],
    [
      'active/standby: both instances, in order',
      ['stomp+ssl://b-1-1.mq.example:61614', 'stomp+ssl://b-1-2.mq.example:61614'],
      [
        { host: 'b-1-1.mq.example', port: 61614 },
        { host: 'b-1-2.mq.example', port: 61614 },
      ],
    ],
    ['another casing, a trailing slash', ['STOMP+SSL://host.example:61614/'], [{ host: 'host.example', port: 61614 }]],
    ['plain stomp is never used (no TLS)', ['stomp://host.example:61613'], []],
    ['nothing reported', [], []],
  ])('%s', (_case, endpoints, expected) => {
    expect(stompEndpoints(endpoints)).toEqual(expected);
  });
});

describe('scrubbed: what of an ERROR frame may reach an error message', () => {
  const password = 'Abcdefgh12345678Zyxwvuts87654321';
  test.each<[string, string, string]>([
    ['the password itself', `bad passcode ${password}`, 'bad passcode ***'],
    ['a part of the password', 'bad passcode Abcdefgh1234 here', 'bad passcode *** here'],
    [
      'ActiveMQ wording kept',
      'User name [orders] or password is invalid.',
      'User name [orders] or password is invalid.',
    ],
    ['one line', 'line one\nline two\r\0', 'line one line two  '],
    ['at most 120 characters', 'x'.repeat(200), `${'x'.repeat(117)}...`],
  ])('%s', (_case, message, expected) => {
    expect(scrubbed(message, password)).toBe(expected);
  });
});

describe('stompSignIn, when nothing answers', () => {
  // Accepted, right and wrong passwords are signed in with on a real ActiveMQ broker (rotation-handler.test.ts).
  test('fails, naming the endpoint, when the server accepts and stays silent (no TLS handshake)', async () => {
    const silent = net.createServer(() => undefined);
    await new Promise<void>((resolve) => silent.listen(0, '127.0.0.1', resolve));
    const port = (silent.address() as { port: number }).port;
    const timeout = signInOptions.timeoutMs;
    signInOptions.timeoutMs = 200;
    try {
      await expect(stompSignIn({ host: '127.0.0.1', port }, 'orders', 'Abcdefgh12345678')).rejects.toThrow(
        `no STOMP answer from 127.0.0.1:${port} within 200 ms`,
      );
    } finally {
      signInOptions.timeoutMs = timeout;
      silent.close();
    }
  });
});
