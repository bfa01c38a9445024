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
import type { Connection, ServerChannel, Session, TcpipRequestInfo } from 'ssh2';
import { createSshServerCore, type ConnOf } from '@mssh/ssh-server';
import { listAuthorizedKeys, parseAuthorizedKeysLine, type AuthorizedKey, type KeyOptions } from './authorized-keys.js';
import { loadOrCreateHostKey } from './host-key.js';
import { duplexPair } from './duplex-pair.js';
import { KILL_GRACE_MS } from './process-session.js';
import { SessionRunner } from './session.js';

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

const NO_OPTIONS: KeyOptions = {
  noPty: false,
  noPortForwarding: false,
  noAgentForwarding: false,
  noX11Forwarding: false,
};

/** The embedded server's own part of a connection record (the rest is @mssh/ssh-server's). */
interface EmbeddedConnState {
  sessionId?: string;
  keyOptions: KeyOptions;
  keys?: Promise<AuthorizedKey[]>;
  sessions: Set<SessionRunner>;
  forwards: Set<Socket>;
}
type Conn = ConnOf<EmbeddedConnState>;

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
  const sftpServerPath =
    opts.sftpServerPath === undefined
      ? (SFTP_SERVER_CANDIDATES.find((p) => existsSync(p)) ?? null)
      : opts.sftpServerPath;
  const killGraceMs = opts.killGraceMs ?? KILL_GRACE_MS;
  const loginGraceMs = opts.loginGraceMs ?? 120_000;
  const allowForwarding = opts.allowForwarding === true;

  const core = createSshServerCore<EmbeddedConnState>({
    hostKeys: [hostKey.privateKey],
    banner: loginBanner(user),
    ident: 'mssh_embedded',
    logger,
    loginGraceMs,
    // authorized_keys (and the extra keys) are read once per connection, at its first attempt.
    async findKey(conn, { user: sshUser, blob }) {
      conn.keys ??= loadKeys(conn);
      const match = (await conn.keys).find((k) => k.blob.equals(blob));
      if (!match) return { refused: 'not in authorized_keys' };
      return {
        publicKey: match.keyLine,
        accepted: () => {
          conn.keyOptions = { ...match.options };
          conn.log.info({ key: match.fingerprint, comment: match.comment, sshUser }, 'authenticated');
        },
      };
    },
    onClient,
    onEnd(conn) {
      for (const f of conn.forwards) f.destroy();
      return { sessions: conn.sessions.size };
    },
  });
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

  /** End the connection (once) and terminate its sessions; resolves when they are gone. */
  function teardown(conn: Conn, why: string): Promise<void> {
    core.end(conn, why);
    return Promise.all([...conn.sessions].map((r) => r.terminate())).then(() => undefined);
  }

  function onTcpip(conn: Conn, accept: () => ServerChannel, reject: () => void, info: TcpipRequestInfo): void {
    const dest = `${info?.destIP}:${info?.destPort}`;
    if (
      !allowForwarding ||
      conn.keyOptions.noPortForwarding ||
      typeof info?.destIP !== 'string' ||
      !(info.destPort > 0 && info.destPort < 65536)
    ) {
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

  /** What an authenticated connection may ask for: sessions, direct-tcpip when allowed, nothing else. */
  function onClient(conn: Conn, client: Connection): void {
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
  }

  function handleConnection(sock: Duplex, info?: { sessionId?: string; user?: string }): void {
    const state: EmbeddedConnState = {
      sessionId: info?.sessionId,
      keyOptions: { ...NO_OPTIONS },
      sessions: new Set(),
      forwards: new Set(),
    };
    const conn = core.accept(sock, state, info?.sessionId ? { sessionId: info.sessionId } : {});
    if (!conn) return;
    conn.log.info({ relayUser: info?.user }, 'connection');
    // The stream ending also ends the connection's sessions.
    for (const ev of ['end', 'close', 'error']) sock.once(ev, () => void teardown(conn, `stream ${ev}`));
  }

  /** End every connection and kill every process session; resolves when they are gone. */
  function close(): Promise<void> {
    return core.close('agent shutting down', (conn) =>
      Promise.all([teardown(conn, 'agent shutting down'), ...[...conn.sessions].map((r) => r.kill())]),
    );
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
    connectionCount: () => core.size,
    close,
  };
}
