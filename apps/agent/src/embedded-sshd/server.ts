/**
 * The agent's embedded SSH server ("rescue mode"): ssh2's Server, fed one Duplex per SSH connection (an
 * HTTP/2 stream from the relay in production, a TCP socket in tests), so a machine with no sshd, or a
 * broken one, stays reachable.
 *
 *   mssh ssh / ssh -> relay -> agent tunnel stream -> handleConnection(stream) -> pty | exec | sftp
 *
 * Public-key authentication only, against <stateDir>/authorized_keys read afresh for every connection
 * (plus optional extra keys, e.g. from the relay). Everything runs as the agent's own user whatever SSH
 * user name the client gives. Forwarding is refused unless allowForwarding (then direct-tcpip only).
 */
import { existsSync } from 'node:fs';
import { connect as netConnect, type Socket } from 'node:net';
import { homedir, userInfo } from 'node:os';
import type { Duplex } from 'node:stream';
import type { Logger } from 'pino';
import ssh2 from 'ssh2';
import type { AuthContext, Connection, ServerChannel, Session, TcpipRequestInfo } from 'ssh2';
import { fingerprintBlob } from '@mssh/protocol';
import { parseSshKey } from '@mssh/protocol/ssh2-keys';
import { listAuthorizedKeys, parseAuthorizedKeysLine, type AuthorizedKey, type KeyOptions } from './authorized-keys.js';
import { loadOrCreateHostKey } from './host-key.js';
import { duplexPair } from './duplex-pair.js';
import { KILL_GRACE_MS } from './process-session.js';
import { SessionRunner } from './session.js';

const { Server } = ssh2;

export interface EmbeddedSshdOptions {
  /** Host key at <stateDir>/ssh_host_ed25519_key (created once), authorized_keys at <stateDir>/authorized_keys. */
  stateDir: string;
  /** Default false: direct-tcpip, tcpip-forward, agent forwarding and X11 are refused. True allows direct-tcpip. */
  allowForwarding?: boolean;
  logger: Logger;
  /** Extra OpenSSH public key lines accepted besides authorized_keys (e.g. users granted this host on the relay). */
  extraAuthorizedKeys?: () => Promise<string[]>;
  /** Login shell; default $SHELL, else /bin/sh. */
  shell?: string;
  /** OpenSSH sftp-server binary; default: the first one found in the usual places; null: built-in SFTP server. */
  sftpServerPath?: string | null;
  /** Time between SIGHUP and SIGKILL when a running session is torn down, in ms. Default 1000. */
  killGraceMs?: number;
  /** Unauthenticated connections are dropped after this long (ms). Default 120000. */
  loginGraceMs?: number;
}

export interface EmbeddedSshd {
  /** Host public keys as OpenSSH lines without comment ("ssh-ed25519 AAAA..."), for host-key attestation. */
  hostPublicKeys(): string[];
  /** Serve one SSH connection over any Duplex. Never throws; errors are logged and the stream destroyed. */
  handleConnection(sock: Duplex, info?: { sessionId?: string; user?: string }): void;
  /**
   * Serve one SSH connection and return the client's end of it: an in-memory Duplex to splice with the
   * relay's session stream (for a SessionTarget whose open() returns a Duplex). Destroying it ends the
   * connection and kills its sessions.
   */
  openSession(info?: { sessionId?: string; user?: string }): Duplex;
  /** Number of connections being served. */
  connectionCount(): number;
  /** End every connection and kill every child's process session; resolves when they are gone. */
  close(): Promise<void>;
}

export const SFTP_SERVER_CANDIDATES = [
  '/usr/lib/openssh/sftp-server',
  '/usr/libexec/openssh/sftp-server',
  '/usr/libexec/sftp-server',
  '/usr/lib/ssh/sftp-server',
  '/usr/libexec/ssh/sftp-server',
];

const MAX_AUTH_FAILURES = 10;
const NO_OPTIONS: KeyOptions = { noPty: false, noPortForwarding: false, noAgentForwarding: false, noX11Forwarding: false };

interface Conn {
  id: number;
  sock: Duplex;
  log: Logger;
  sessionId?: string;
  client?: Connection;
  authenticated: boolean;
  keyOptions: KeyOptions;
  keys?: Promise<AuthorizedKey[]>;
  authFailures: number;
  sessions: Set<SessionRunner>;
  forwards: Set<Socket>;
  loginTimer?: NodeJS.Timeout;
  done: boolean;
}

export function loginBanner(user: string): string {
  return (
    'mssh embedded SSH server (agent rescue mode).\r\n' +
    `Every session runs as local user "${user}", the user the mssh agent runs as; the SSH user name you give is ignored.\r\n`
  );
}

export async function createEmbeddedSshd(opts: EmbeddedSshdOptions): Promise<EmbeddedSshd> {
  const logger = opts.logger.child({ component: 'agent.embedded-sshd' });
  const hostKey = await loadOrCreateHostKey(opts.stateDir, logger);
  const user = userInfo().username;
  const home = (() => {
    try {
      return homedir() || '/';
    } catch {
      return '/';
    }
  })();
  const shell = opts.shell || process.env.SHELL || '/bin/sh';
  const sftpServerPath = opts.sftpServerPath === undefined
    ? (SFTP_SERVER_CANDIDATES.find((p) => existsSync(p)) ?? null)
    : opts.sftpServerPath;
  const killGraceMs = opts.killGraceMs ?? KILL_GRACE_MS;
  const loginGraceMs = opts.loginGraceMs ?? 120_000;
  const allowForwarding = opts.allowForwarding === true;

  const server = new Server({
    hostKeys: [hostKey.privateKey],
    banner: loginBanner(user),
    ident: 'mssh_embedded',
    keepaliveInterval: 30_000,
    keepaliveCountMax: 3,
  });
  server.on('error', (e: Error) => logger.warn({ err: e }, 'ssh server error'));

  const connections = new Set<Conn>();
  const bySocket = new WeakMap<object, Conn>();
  let nextId = 1;
  let closing = false;
  logger.info(
    { hostKey: hostKey.fingerprint, user, shell, sftp: sftpServerPath ?? 'built-in', allowForwarding },
    'embedded SSH server ready',
  );

  async function loadKeys(conn: Conn): Promise<AuthorizedKey[]> {
    const keys: AuthorizedKey[] = [];
    try {
      const { keys: fileKeys, skipped } = await listAuthorizedKeys(opts.stateDir);
      keys.push(...fileKeys);
      for (const s of skipped) conn.log.warn({ line: s.lineNo, reason: s.reason }, 'authorized_keys line skipped');
    } catch (e) {
      conn.log.warn({ err: e }, 'could not read authorized_keys');
    }
    if (opts.extraAuthorizedKeys) {
      try {
        for (const line of await opts.extraAuthorizedKeys()) {
          const p = parseAuthorizedKeysLine(line);
          if (p.kind === 'key') keys.push(p.key);
        }
      } catch (e) {
        conn.log.warn({ err: e }, 'could not get the extra authorized keys');
      }
    }
    return keys;
  }

  async function authenticate(conn: Conn, ctx: AuthContext): Promise<void> {
    if (ctx.method !== 'publickey') {
      if (ctx.method !== 'none') conn.log.info({ method: ctx.method }, 'authentication method refused (public keys only)');
      return ctx.reject(['publickey']);
    }
    conn.keys ??= loadKeys(conn);
    const keys = await conn.keys;
    const blob = ctx.key?.data;
    const match = Buffer.isBuffer(blob) ? keys.find((k) => k.blob.equals(blob)) : undefined;
    const fp = Buffer.isBuffer(blob) ? fingerprintBlob(blob) : undefined;
    const fail = (why: string) => {
      conn.log.info({ key: fp, sshUser: ctx.username, reason: why }, 'public key refused');
      if (++conn.authFailures >= MAX_AUTH_FAILURES) {
        conn.log.warn('too many authentication failures: disconnecting');
        ctx.reject(['publickey']);
        conn.client?.end();
        return;
      }
      ctx.reject(['publickey']);
    };
    if (!match) return fail('not in authorized_keys');
    if (!ctx.signature || !ctx.blob) return ctx.accept(); // the client only asks whether this key would do
    const key = parseSshKey(match.keyLine);
    if (!key) return fail('key cannot be parsed');
    if (key.verify(ctx.blob, ctx.signature, ctx.hashAlgo) !== true) return fail('bad signature');
    conn.keyOptions = { ...match.options };
    conn.log.info({ key: match.fingerprint, comment: match.comment, sshUser: ctx.username }, 'authenticated');
    ctx.accept();
  }

  function teardown(conn: Conn, why: string): Promise<void> {
    if (!conn.done) {
      conn.done = true;
      connections.delete(conn);
      if (conn.loginTimer) clearTimeout(conn.loginTimer);
      conn.log.info({ why, sessions: conn.sessions.size }, 'connection ended');
      for (const f of conn.forwards) f.destroy();
      const s = conn.sock;
      if (!s.destroyed) {
        s.end();
        setTimeout(() => s.destroy(), 5000).unref();
      }
    }
    return Promise.all([...conn.sessions].map((r) => r.terminate())).then(() => undefined);
  }

  function onTcpip(conn: Conn, accept: () => ServerChannel, reject: () => void, info: TcpipRequestInfo): void {
    const dest = `${info?.destIP}:${info?.destPort}`;
    if (!allowForwarding || conn.keyOptions.noPortForwarding || typeof info?.destIP !== 'string' || !(info.destPort > 0 && info.destPort < 65536)) {
      conn.log.info({ dest }, 'TCP forwarding refused');
      return reject();
    }
    const sock = netConnect({ host: info.destIP, port: info.destPort });
    conn.forwards.add(sock);
    sock.setTimeout(15_000, () => sock.destroy(new Error('connect timeout')));
    let channel: ServerChannel | undefined;
    sock.once('connect', () => {
      sock.setTimeout(0);
      if (conn.done) return sock.destroy();
      channel = accept();
      if (!channel) return sock.destroy();
      conn.log.info({ dest }, 'TCP forwarding opened');
      channel.on('error', () => undefined);
      channel.on('close', () => sock.destroy());
      sock.pipe(channel);
      channel.pipe(sock);
    });
    sock.on('error', (e) => conn.log.debug({ err: e, dest }, 'forwarded connection error'));
    sock.once('close', () => {
      conn.forwards.delete(sock);
      if (!channel) reject();
      else channel.destroy();
    });
  }

  server.on('connection', (client: Connection) => {
    const conn = bySocket.get((client as unknown as { _sock: object })._sock);
    if (!conn) {
      client.on('error', () => undefined);
      client.end();
      return;
    }
    conn.client = client;
    client.on('error', (e: Error & { level?: string }) => conn.log.debug({ err: e.message, level: e.level }, 'ssh connection error'));
    client.on('authentication', (ctx: AuthContext) => {
      authenticate(conn, ctx).catch((e: unknown) => {
        conn.log.warn({ err: e }, 'authentication failed unexpectedly');
        try {
          ctx.reject(['publickey']);
        } catch {
          // the connection is already gone
        }
      });
    });
    client.on('ready', () => {
      conn.authenticated = true;
      if (conn.loginTimer) clearTimeout(conn.loginTimer);
    });
    client.on('session', (accept: () => Session, reject: () => void) => {
      if (conn.done) return reject();
      const session = accept();
      if (!session) return;
      const runner = new SessionRunner(session, {
        logger: conn.log,
        shell,
        home,
        user,
        keyOptions: conn.keyOptions,
        sftpServerPath,
        sessionId: conn.sessionId,
        killGraceMs,
      });
      conn.sessions.add(runner);
      session.on('close', () => {
        void runner.terminate().then(() => conn.sessions.delete(runner));
      });
    });
    client.on('tcpip', (accept: () => ServerChannel, reject: () => void, info: TcpipRequestInfo) => {
      try {
        onTcpip(conn, accept, reject, info);
      } catch (e) {
        conn.log.warn({ err: e }, 'forwarding request failed');
        reject();
      }
    });
    client.on('request', (_accept: unknown, reject: (() => void) | undefined, name: string) => {
      conn.log.info({ request: name }, 'remote forwarding refused');
      reject?.();
    });
    client.on('end', () => void teardown(conn, 'ssh connection ended'));
    client.on('close', () => void teardown(conn, 'ssh connection closed'));
  });

  function handleConnection(sock: Duplex, info?: { sessionId?: string; user?: string }): void {
    const id = nextId++;
    const log = logger.child({ conn: id, ...(info?.sessionId ? { sessionId: info.sessionId } : {}) });
    if (closing) {
      sock.destroy();
      return;
    }
    const conn: Conn = {
      id,
      sock,
      log,
      sessionId: info?.sessionId,
      authenticated: false,
      keyOptions: { ...NO_OPTIONS },
      authFailures: 0,
      sessions: new Set(),
      forwards: new Set(),
      done: false,
    };
    connections.add(conn);
    bySocket.set(sock, conn);
    log.info({ relayUser: info?.user }, 'connection');
    sock.on('error', (e: Error) => {
      log.debug({ err: e.message }, 'stream error');
      void teardown(conn, 'stream error');
    });
    sock.once('end', () => void teardown(conn, 'stream ended'));
    sock.once('close', () => void teardown(conn, 'stream closed'));
    conn.loginTimer = setTimeout(() => {
      if (!conn.authenticated) {
        log.info('not authenticated in time: disconnecting');
        sock.destroy();
      }
    }, loginGraceMs);
    conn.loginTimer.unref();
    try {
      server.injectSocket(sock as unknown as Socket);
    } catch (e) {
      log.warn({ err: e }, 'could not start the SSH protocol on this stream');
      sock.destroy();
      void teardown(conn, 'inject failed');
    }
  }

  async function close(): Promise<void> {
    closing = true;
    const all = [...connections];
    const pending: Promise<void>[] = [];
    for (const conn of all) {
      try {
        conn.client?.end();
      } catch {
        // already gone
      }
      pending.push(teardown(conn, 'agent shutting down'));
      for (const r of conn.sessions) pending.push(r.kill());
    }
    await Promise.all(pending);
    for (const conn of all) conn.sock.destroy();
  }

  function openSession(info?: { sessionId?: string; user?: string }): Duplex {
    const [serverEnd, clientEnd] = duplexPair();
    handleConnection(serverEnd, info);
    return clientEnd;
  }

  return {
    hostPublicKeys: () => [hostKey.publicLine],
    handleConnection,
    openSession,
    connectionCount: () => connections.size,
    close,
  };
}
