/**
 * A minimal STOMP 1.2 client for tests, over `net` or `tls`, no client library: CONNECT with login and passcode
 * (answered by CONNECTED or ERROR), SEND and SUBSCRIBE with a receipt (answered by RECEIPT or ERROR), receive one
 * MESSAGE, DISCONNECT. Every call resolves with the frame the broker answered, so a test can assert on ERROR as
 * well as on success; only a silent broker (timeout) or a transport failure rejects.
 */
import * as net from 'net';
import * as tls from 'tls';

export interface StompFrame {
  readonly command: string;
  readonly headers: Readonly<Record<string, string>>;
  readonly body: string;
}

export interface StompConnectOptions {
  readonly host?: string;
  readonly port: number;
  /** Connect over TLS, trusting this CA (PEM). */
  readonly tls?: { readonly ca: string };
  readonly login: string;
  readonly passcode: string;
  /** Default 10 s. */
  readonly timeoutMs?: number;
}

function escapeHeader(value: string): string {
  return value.replace(/\\/g, '\\\\').replace(/\r/g, '\\r').replace(/\n/g, '\\n').replace(/:/g, '\\c');
}

function unescapeHeader(value: string): string {
  return value.replace(/\\(.)/g, (_, c: string) => ({ r: '\r', n: '\n', c: ':', '\\': '\\' })[c] ?? `\\${c}`);
}

export function encodeFrame(command: string, headers: Record<string, string>, body = '', escape = true): Buffer {
  const lines = Object.entries(headers).map(
    ([key, value]) => `${escape ? escapeHeader(key) : key}:${escape ? escapeHeader(value) : value}`,
  );
  const bodyBytes = Buffer.from(body, 'utf8');
  if (body) lines.push(`content-length:${bodyBytes.length}`);
  return Buffer.concat([Buffer.from(`${command}\n${lines.join('\n')}\n\n`, 'utf8'), bodyBytes, Buffer.from([0])]);
}

/**
 * Reads frames off a byte stream. Returns the frames complete in `buffer` and what is left over.
 * Heart-beat EOLs between frames are skipped.
 */
export function decodeFrames(buffer: Buffer): { frames: StompFrame[]; rest: Buffer } {
  const frames: StompFrame[] = [];
  let offset = 0;
  for (;;) {
    while (offset < buffer.length && (buffer[offset] === 0x0a || buffer[offset] === 0x0d)) offset++;
    const headerEnd = buffer.indexOf('\n\n', offset);
    if (headerEnd < 0) break;
    const head = buffer
      .subarray(offset, headerEnd)
      .toString('utf8')
      .split('\n')
      .map((line) => line.replace(/\r$/, ''));
    const command = head[0];
    const headers: Record<string, string> = {};
    for (const line of head.slice(1)) {
      const colon = line.indexOf(':');
      const key = unescapeHeader(line.slice(0, colon));
      // STOMP 1.2: the first occurrence of a repeated header wins.
      if (!(key in headers)) headers[key] = unescapeHeader(line.slice(colon + 1));
    }
    const bodyStart = headerEnd + 2;
    let bodyEnd: number;
    if (headers['content-length'] !== undefined) {
      bodyEnd = bodyStart + Number(headers['content-length']);
      if (buffer.length < bodyEnd + 1) break;
    } else {
      bodyEnd = buffer.indexOf(0, bodyStart);
      if (bodyEnd < 0) break;
    }
    frames.push({ command, headers, body: buffer.subarray(bodyStart, bodyEnd).toString('utf8') });
    offset = bodyEnd + 1;
  }
  return { frames, rest: buffer.subarray(offset) };
}

/** One STOMP connection. Open it with {@link StompClient.connect}. */
export class StompClient {
  /**
   * Opens a connection and sends CONNECT. Resolves with the client and the broker's answer (CONNECTED or
   * ERROR); after ERROR the broker closes the connection.
   */
  static async connect(options: StompConnectOptions): Promise<{ client: StompClient; frame: StompFrame }> {
    const host = options.host ?? '127.0.0.1';
    const socket: net.Socket = options.tls
      ? tls.connect({ host, port: options.port, ca: options.tls.ca, servername: 'localhost' })
      : net.connect({ host, port: options.port });
    const client = new StompClient(socket, options.timeoutMs ?? 10_000);
    await new Promise<void>((resolve, reject) => {
      socket.once(options.tls ? 'secureConnect' : 'connect', () => resolve());
      socket.once('error', reject);
    });
    // CONNECT headers are not escaped (STOMP 1.2).
    socket.write(
      encodeFrame(
        'CONNECT',
        {
          'accept-version': '1.2',
          host: 'localhost',
          login: options.login,
          passcode: options.passcode,
          'heart-beat': '0,0',
        },
        '',
        false,
      ),
    );
    const frame = await client.next(['CONNECTED', 'ERROR']);
    return { client, frame };
  }

  private buffer: Buffer = Buffer.alloc(0);
  private readonly frames: StompFrame[] = [];
  private waiter?: () => void;
  private closed = false;
  private receipts = 0;
  private subscriptions = 0;

  private constructor(
    private readonly socket: net.Socket,
    private readonly timeoutMs: number,
  ) {
    socket.on('data', (chunk: Buffer) => {
      const { frames, rest } = decodeFrames(Buffer.concat([this.buffer, chunk]));
      this.buffer = rest;
      this.frames.push(...frames);
      this.waiter?.();
    });
    const end = () => {
      this.closed = true;
      this.waiter?.();
    };
    socket.on('close', end);
    socket.on('error', end);
  }

  /** Sends a message and waits for the broker's RECEIPT or ERROR. */
  async send(destination: string, body: string, headers: Record<string, string> = {}): Promise<StompFrame> {
    const receipt = `send-${++this.receipts}`;
    this.socket.write(encodeFrame('SEND', { destination, receipt, 'content-type': 'text/plain', ...headers }, body));
    return this.next(['RECEIPT', 'ERROR'], receipt);
  }

  /**
   * Subscribes (auto ack) and waits for the broker's RECEIPT or ERROR. `headers` adds to the frame (ActiveMQ's
   * `transformation: jms-advisory-json` turns advisory messages into JSON).
   */
  async subscribe(destination: string, headers: Record<string, string> = {}): Promise<StompFrame> {
    const receipt = `subscribe-${++this.receipts}`;
    this.socket.write(
      encodeFrame('SUBSCRIBE', { id: `sub-${++this.subscriptions}`, destination, ack: 'auto', receipt, ...headers }),
    );
    return this.next(['RECEIPT', 'ERROR'], receipt);
  }

  /** The next MESSAGE (or ERROR) the broker delivers. */
  async receive(timeoutMs?: number): Promise<StompFrame> {
    return this.next(['MESSAGE', 'ERROR'], undefined, timeoutMs);
  }

  /** Sends DISCONNECT with a receipt, waits for it when the connection is still open, and closes the socket. */
  async disconnect(): Promise<void> {
    if (!this.closed) {
      try {
        this.socket.write(encodeFrame('DISCONNECT', { receipt: 'disconnect' }));
        await this.next(['RECEIPT', 'ERROR'], 'disconnect', 2_000);
      } catch {
        // The broker may close first; closing is what we want.
      }
    }
    this.socket.destroy();
  }

  /** Whether the broker has closed the connection. */
  get isClosed(): boolean {
    return this.closed;
  }

  /**
   * The first queued frame whose command is in `commands` (and, for RECEIPT, whose receipt-id is `receipt`;
   * an ERROR matches whether or not it names the receipt). Frames before it that do not match stay queued.
   */
  private async next(commands: string[], receipt?: string, timeoutMs = this.timeoutMs): Promise<StompFrame> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const index = this.frames.findIndex(
        (frame) =>
          commands.includes(frame.command) &&
          (frame.command !== 'RECEIPT' || receipt === undefined || frame.headers['receipt-id'] === receipt),
      );
      if (index >= 0) return this.frames.splice(index, 1)[0];
      if (this.closed) throw new Error(`STOMP connection closed while waiting for ${commands.join(' or ')}`);
      const left = deadline - Date.now();
      if (left <= 0) throw new Error(`no ${commands.join(' or ')} from the broker within ${timeoutMs} ms`);
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, left);
        this.waiter = () => {
          clearTimeout(timer);
          resolve();
        };
      });
      this.waiter = undefined;
    }
  }
}
