/**
 * `verifySignIn`: the rotation function signs in to the broker with the new credentials before it promotes them.
 * One STOMP `CONNECT` frame over TLS on the `stomp+ssl://` endpoint DescribeBroker reports, answered `CONNECTED`
 * (the broker accepts the credentials) or `ERROR` (it refuses them). No client library: Node's `tls`.
 *
 * Nothing here ever puts the password into a log line or an error: an `ERROR` frame may echo what it was sent, so
 * only its `message` header is kept, with anything that looks like a part of the password removed, and cut short.
 */
import * as net from 'node:net';
import * as tls from 'node:tls';

/** Options, exported so tests can shorten the timeout and trust their own broker's certificate. */
export const signInOptions: { timeoutMs: number; ca?: string } = {
  /** One sign-in attempt: connecting, TLS and the broker's answer. */
  timeoutMs: 10_000,
  /** A PEM certificate to trust instead of the system's (tests only: Amazon MQ's certificates are public). */
  ca: undefined,
};

export interface Endpoint {
  readonly host: string;
  readonly port: number;
}

/** The `stomp+ssl://host:port` endpoints among a broker's wire endpoints (DescribeBroker), in order. */
export function stompEndpoints(endpoints: readonly string[]): Endpoint[] {
  const found: Endpoint[] = [];
  for (const endpoint of endpoints) {
    const match = /^stomp\+ssl:\/\/([^:/\s]+):(\d{1,5})\/?$/i.exec(endpoint.trim());
    if (match) found.push({ host: match[1], port: Number(match[2]) });
  }
  return found;
}

export type SignInAnswer = { readonly accepted: true } | { readonly accepted: false; readonly reason: string };

/**
 * Sends one CONNECT frame and reads the answer. Resolves with the broker's verdict; rejects when the broker cannot
 * be reached or does not answer in time (then nothing is known about the credentials).
 */
export function stompSignIn(endpoint: Endpoint, username: string, password: string): Promise<SignInAnswer> {
  return new Promise<SignInAnswer>((resolve, reject) => {
    let settled = false;
    let received = Buffer.alloc(0);
    const socket = tls.connect({
      host: endpoint.host,
      port: endpoint.port,
      servername: net.isIP(endpoint.host) ? undefined : endpoint.host,
      ca: signInOptions.ca,
    });
    const finish = (outcome: () => void) => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      socket.destroy();
      outcome();
    };
    const timer = setTimeout(
      () =>
        finish(() =>
          reject(
            new Error(`no STOMP answer from ${endpoint.host}:${endpoint.port} within ${signInOptions.timeoutMs} ms`),
          ),
        ),
      signInOptions.timeoutMs,
    );
    socket.once('secureConnect', () => {
      // CONNECT frames are never escaped (STOMP 1.2); usernames and generated passwords hold no ':' or newline.
      socket.write(`CONNECT\naccept-version:1.2\nhost:${endpoint.host}\nlogin:${username}\npasscode:${password}\n\n\0`);
    });
    socket.on('data', (chunk: Buffer) => {
      received = Buffer.concat([received, chunk]);
      const end = received.indexOf(0);
      if (end < 0) return;
      const frame = received
        .subarray(0, end)
        .toString('utf8')
        .replace(/^(\r?\n)+/, '');
      const [command, ...lines] = frame.split(/\r?\n/);
      if (command === 'CONNECTED') {
        socket.write('DISCONNECT\n\n\0');
        finish(() => resolve({ accepted: true }));
      } else if (command === 'ERROR') {
        const header = lines.find((line) => line.startsWith('message:'))?.slice('message:'.length) ?? '';
        finish(() => resolve({ accepted: false, reason: scrubbed(header, password) }));
      } else {
        finish(() => reject(new Error(`unexpected STOMP answer from ${endpoint.host}:${endpoint.port}`)));
      }
    });
    socket.once('error', (error: Error & { code?: string }) =>
      finish(() =>
        reject(new Error(`could not reach ${endpoint.host}:${endpoint.port} (${error.code ?? error.name})`)),
      ),
    );
    socket.once('close', () =>
      finish(() => reject(new Error(`${endpoint.host}:${endpoint.port} closed the connection without answering`))),
    );
  });
}

/** The broker's message without the password (it may echo what it was sent), one line, at most 120 characters. */
export function scrubbed(message: string, password: string): string {
  let text = message.replace(/[\r\n\0]/g, ' ');
  if (password) text = text.split(password).join('***');
  // Even a part of the password must not leak: drop any long run of letters and digits that appears in it.
  text = text.replace(/[A-Za-z0-9]{8,}/g, (run) => (password.includes(run) ? '***' : run));
  return text.length > 120 ? `${text.slice(0, 117)}...` : text;
}
