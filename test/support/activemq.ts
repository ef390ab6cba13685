/**
 * A real ActiveMQ broker for tests: Debian's `activemq` package (5.17.2 here; `scripts/ensure-activemq.sh`, the
 * `pretest` script, installs it), started as a private process with its own temporary base folder, connectors on
 * 127.0.0.1 and free ports, nothing persistent. Start one per test file in `beforeAll` and `stop()` it in
 * `afterAll`; a process-exit hook stops it too when a test file dies first.
 *
 * Users and groups go into `simpleAuthenticationPlugin`, standing in for the users Amazon MQ writes into its
 * brokers from its user API (a customer configuration may not hold that plugin on Amazon MQ). The optional
 * authorization map is the `<authorizationMap>` element of an Amazon MQ configuration, used as written.
 */
import { ChildProcess, execFile, spawn } from 'child_process';
import {
  closeSync,
  existsSync,
  mkdirSync,
  mkdtempSync,
  openSync,
  readFileSync,
  rmSync,
  symlinkSync,
  writeFileSync,
} from 'fs';
import * as net from 'net';
import { tmpdir } from 'os';
import * as path from 'path';
import { promisify } from 'util';
import { StompClient } from './stomp';

const run = promisify(execFile);

/** A user as Amazon MQ injects it into the broker: name, password, groups. */
export interface BrokerUser {
  readonly username: string;
  readonly password: string;
  readonly groups: readonly string[];
}

export interface ActiveMqOptions {
  readonly users: readonly BrokerUser[];
  /**
   * An `<authorizationMap>…</authorizationMap>` element (its children in ActiveMQ's core namespace, as in an
   * Amazon MQ configuration). Without it the broker has no authorization plugin: every signed-in user may do
   * anything, as on Amazon MQ without a map.
   */
  readonly authorizationMap?: string;
  /** How long to wait for STOMP to answer. Default 60 s (the broker needs about 3 s alone). */
  readonly startTimeoutMs?: number;
}

export interface ActiveMq {
  readonly host: string;
  /** Plain `stomp://` port. */
  readonly stompPort: number;
  /** `stomp+ssl://` port (TLS, certificate for `localhost` and 127.0.0.1, signed by itself). */
  readonly stompSslPort: number;
  /** The broker's certificate (PEM), which clients trust as their CA. */
  readonly ca: string;
  readonly pid: number;
  /** The broker's log so far (for a failing test's message). */
  log(): string;
  /** Kills the broker by its process ID and removes its folder. Safe to call twice. */
  stop(): Promise<void>;
}

/** Where the package keeps `bin/activemq.jar`; `ACTIVEMQ_HOME` overrides. */
export function activeMqHome(): string {
  return process.env.ACTIVEMQ_HOME ?? '/usr/share/activemq';
}

// The flags Debian's /usr/bin/activemq passes on Java 9+ (ActiveMQ 5.17 reflects into these packages).
const JAVA17_FLAGS = [
  '--add-reads=java.xml=java.logging',
  '--add-opens=java.base/java.security=ALL-UNNAMED',
  '--add-opens=java.base/java.net=ALL-UNNAMED',
  '--add-opens=java.base/java.lang=ALL-UNNAMED',
  '--add-opens=java.base/java.util=ALL-UNNAMED',
  '--add-opens=java.naming/javax.naming.spi=ALL-UNNAMED',
  '--add-opens=java.rmi/sun.rmi.transport.tcp=ALL-UNNAMED',
  '--add-opens=java.base/java.util.concurrent=ALL-UNNAMED',
  '--add-opens=java.base/java.util.concurrent.atomic=ALL-UNNAMED',
  '--add-exports=java.base/sun.net.www.protocol.http=ALL-UNNAMED',
  '--add-exports=java.base/sun.net.www.protocol.https=ALL-UNNAMED',
  '--add-exports=java.base/sun.net.www.protocol.jar=ALL-UNNAMED',
  '--add-exports=jdk.xml.dom/org.w3c.dom.html=ALL-UNNAMED',
  '--add-exports=jdk.naming.rmi/com.sun.jndi.url.rmi=ALL-UNNAMED',
];

/** Debian's libxstream-java, libxpp3-java and libjettison-java (scripts/ensure-activemq.sh installs them). */
const OPTIONAL_JARS = ['xstream.jar', 'xpp3.jar', 'jettison.jar'];

/**
 * The libraries STOMP needs to hand out advisory messages that are missing here (Debian's `activemq` only
 * recommends them; scripts/ensure-activemq.sh installs them). Empty with `ACTIVEMQ_HOME` (upstream ships them).
 */
export function missingAdvisoryLibraries(): string[] {
  if (process.env.ACTIVEMQ_HOME !== undefined) return [];
  return OPTIONAL_JARS.filter((name) => !existsSync(path.join('/usr/share/java', name)));
}

const running = new Set<ChildProcess>();
let exitHookInstalled = false;

function installExitHook(): void {
  if (exitHookInstalled) return;
  exitHookInstalled = true;
  process.on('exit', () => {
    for (const child of running) {
      try {
        child.kill('SIGKILL');
      } catch {
        // already gone
      }
    }
  });
}

export function xmlAttr(value: string): string {
  return value.replace(/&/g, '&amp;').replace(/"/g, '&quot;').replace(/</g, '&lt;').replace(/>/g, '&gt;');
}

async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = net.createServer();
    server.unref();
    server.on('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address() as net.AddressInfo;
      server.close(() => resolve(port));
    });
  });
}

function brokerXml(options: ActiveMqOptions, base: string, ports: { stomp: number; ssl: number }, storePass: string) {
  const users = options.users
    .map(
      (user) =>
        `          <authenticationUser username="${xmlAttr(user.username)}" password="${xmlAttr(user.password)}" groups="${xmlAttr(user.groups.join(','))}"/>`,
    )
    .join('\n');
  const authorization = options.authorizationMap
    ? `      <authorizationPlugin>\n        <map>\n${options.authorizationMap}\n        </map>\n      </authorizationPlugin>\n`
    : '';
  return `<?xml version="1.0" encoding="UTF-8"?>
<beans xmlns="http://www.springframework.org/schema/beans"
       xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance"
       xsi:schemaLocation="http://www.springframework.org/schema/beans http://www.springframework.org/schema/beans/spring-beans.xsd
                           http://activemq.apache.org/schema/core http://activemq.apache.org/schema/core/activemq-core.xsd">
  <broker xmlns="http://activemq.apache.org/schema/core" brokerName="test" persistent="false" useJmx="false"
          schedulerSupport="false" advisorySupport="true" dataDirectory="${xmlAttr(path.join(base, 'data'))}">
    <plugins>
      <simpleAuthenticationPlugin anonymousAccessAllowed="false">
        <users>
${users}
        </users>
      </simpleAuthenticationPlugin>
${authorization}    </plugins>
    <sslContext>
      <sslContext keyStore="file:${xmlAttr(path.join(base, 'conf', 'broker.p12'))}" keyStorePassword="${storePass}" keyStoreType="PKCS12"/>
    </sslContext>
    <systemUsage>
      <systemUsage>
        <memoryUsage><memoryUsage limit="64 mb"/></memoryUsage>
        <storeUsage><storeUsage limit="100 mb"/></storeUsage>
        <tempUsage><tempUsage limit="100 mb"/></tempUsage>
      </systemUsage>
    </systemUsage>
    <transportConnectors>
      <transportConnector name="stomp" uri="stomp://127.0.0.1:${ports.stomp}"/>
      <transportConnector name="stomp+ssl" uri="stomp+ssl://127.0.0.1:${ports.ssl}"/>
    </transportConnectors>
  </broker>
</beans>
`;
}

// Debian's build logs through log4j 1.2 (log4j.properties); the upstream one through log4j2. Both go to stdout.
const LOG4J1 = `log4j.rootLogger=INFO, stdout
log4j.logger.org.springframework=WARN
log4j.logger.org.apache.xbean=WARN
log4j.appender.stdout=org.apache.log4j.ConsoleAppender
log4j.appender.stdout.layout=org.apache.log4j.PatternLayout
log4j.appender.stdout.layout.ConversionPattern=%d{HH:mm:ss.SSS} %5p | %m%n
`;

const LOG4J = `rootLogger.level=INFO
rootLogger.appenderRef.console.ref=Console
logger.spring.name=org.springframework
logger.spring.level=WARN
logger.xbean.name=org.apache.xbean
logger.xbean.level=WARN
appender.console.type=Console
appender.console.name=Console
appender.console.layout.type=PatternLayout
appender.console.layout.pattern=%d{HH:mm:ss.SSS} %5p | %m%n
`;

/**
 * Whether STOMP answers on `port`: a CONNECT (with a login no broker here knows) gets a frame back, CONNECTED or
 * ERROR. A listening socket alone is not enough: the connector may accept before the broker serves it.
 */
async function stompAnswers(port: number, ca?: string): Promise<boolean> {
  try {
    const { client } = await StompClient.connect({
      port,
      ...(ca === undefined ? {} : { tls: { ca } }),
      login: 'cdk-mq-user-readiness-probe',
      passcode: 'not-a-password',
      timeoutMs: 2_000,
    });
    await client.disconnect();
    return true;
  } catch {
    return false;
  }
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/** Starts a private broker; resolves once STOMP answers a CONNECT on both connectors. */
export async function startActiveMq(options: ActiveMqOptions): Promise<ActiveMq> {
  const home = activeMqHome();
  const jar = path.join(home, 'bin', 'activemq.jar');
  if (!existsSync(jar)) {
    throw new Error(
      `ActiveMQ is not installed (${jar} is missing): run scripts/ensure-activemq.sh, or as root ` +
        `"apt-get update && apt-get install -y --no-install-recommends activemq"`,
    );
  }
  const base = mkdtempSync(path.join(tmpdir(), 'cdk-mq-user-activemq-'));
  const conf = path.join(base, 'conf');
  const data = path.join(base, 'data');
  const logFile = path.join(base, 'broker.log');
  let child: ChildProcess | undefined;
  const readLog = () => (existsSync(logFile) ? readFileSync(logFile, 'utf8') : '');
  try {
    mkdirSync(conf);
    mkdirSync(data);
    // The libraries upstream ActiveMQ (and so Amazon MQ) ships that Debian only recommends: STOMP needs XStream
    // (and Jettison for JSON) to hand out advisory messages. ActiveMQ loads the jars of <base>/lib.
    mkdirSync(path.join(base, 'lib'));
    for (const jar of OPTIONAL_JARS) {
      const file = path.join('/usr/share/java', jar);
      if (existsSync(file)) symlinkSync(file, path.join(base, 'lib', jar));
    }

    // A fresh key pair per broker, never committed: a self-signed certificate for localhost and 127.0.0.1.
    const storePass = `test-${process.pid}-${Date.now()}`;
    const keystore = path.join(conf, 'broker.p12');
    await run('keytool', [
      '-genkeypair',
      '-keystore',
      keystore,
      '-storetype',
      'PKCS12',
      '-storepass',
      storePass,
      '-alias',
      'broker',
      '-keyalg',
      'EC',
      '-groupname',
      'secp256r1',
      '-dname',
      'CN=localhost',
      '-ext',
      'SAN=dns:localhost,ip:127.0.0.1',
      '-validity',
      '2',
    ]);
    const { stdout: ca } = await run('keytool', [
      '-exportcert',
      '-rfc',
      '-keystore',
      keystore,
      '-storetype',
      'PKCS12',
      '-storepass',
      storePass,
      '-alias',
      'broker',
    ]);

    const ports = { stomp: await freePort(), ssl: await freePort() };
    writeFileSync(path.join(conf, 'activemq.xml'), brokerXml(options, base, ports, storePass));
    writeFileSync(path.join(conf, 'log4j2.properties'), LOG4J);
    writeFileSync(path.join(conf, 'log4j.properties'), LOG4J1);

    const out = openSync(logFile, 'a');
    child = spawn(
      'java',
      [
        '-Xmx256m',
        '-Xss512k',
        '-XX:+UseSerialGC',
        '-XX:TieredStopAtLevel=1',
        ...JAVA17_FLAGS,
        `-Dlog4j2.configurationFile=${path.join(conf, 'log4j2.properties')}`,
        `-Dlog4j.configuration=file:${path.join(conf, 'log4j.properties')}`,
        `-Dactivemq.home=${home}`,
        `-Dactivemq.base=${base}`,
        `-Dactivemq.conf=${conf}`,
        `-Dactivemq.data=${data}`,
        '-jar',
        jar,
        'start',
        `xbean:file:${path.join(conf, 'activemq.xml')}`,
      ],
      { cwd: base, stdio: ['ignore', out, out] },
    );
    closeSync(out);
    const proc = child;
    running.add(proc);
    installExitHook();
    let exited: string | undefined;
    proc.once('exit', (code, signal) => {
      exited = `exited (code ${code}, signal ${signal})`;
      running.delete(proc);
    });

    const deadline = Date.now() + (options.startTimeoutMs ?? 60_000);
    for (;;) {
      if (exited) throw new Error(`ActiveMQ ${exited} before STOMP answered`);
      if ((await stompAnswers(ports.stomp)) && (await stompAnswers(ports.ssl, ca))) break;
      if (Date.now() > deadline) throw new Error(`ActiveMQ did not open STOMP within the timeout`);
      await sleep(200);
    }

    let stopped = false;
    return {
      host: '127.0.0.1',
      stompPort: ports.stomp,
      stompSslPort: ports.ssl,
      ca,
      pid: proc.pid!,
      log: readLog,
      async stop() {
        if (stopped) return;
        stopped = true;
        await killAndWait(proc);
        rmSync(base, { recursive: true, force: true });
      },
    };
  } catch (error) {
    const log = readLog();
    if (child) await killAndWait(child);
    rmSync(base, { recursive: true, force: true });
    throw new Error(`${(error as Error).message}\n--- broker log ---\n${log.slice(-4000)}`);
  }
}

async function killAndWait(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) {
    running.delete(child);
    return;
  }
  const gone = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  // Nothing is persistent: no need for a graceful shutdown.
  child.kill('SIGKILL');
  await gone;
  running.delete(child);
}
