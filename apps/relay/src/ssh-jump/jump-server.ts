/**
 * The relay's SSH jump listener, for stock OpenSSH with no mssh on the client:
 *
 *   ssh -J alice@relay:2222 bob@laptop
 *     ssh --TCP--> this listener (ssh2 Server; alice = mssh user, her registered public key)
 *         direct-tcpip "laptop:22" --gate.admit(alice, laptop, 'jump', source)--> agent --> laptop's sshd
 *     (the inner SSH session bob@laptop is end to end; the relay moves its ciphertext)
 *
 * Only direct-tcpip to a machine name on port 22 goes to the session gate (session/gate.ts), which admits
 * it as it admits an HTTPS tunnel (grant, enrolled and online, caps, committed session.start) or refuses it
 * with a code this listener sends as the channel-open failure (`CODE: message`); nothing is ever dialled.
 * A shell request (`ssh -p 2222 alice@relay`) prints the machines she may reach and exits 0. exec,
 * subsystems, remote forwards (-R), agent forwarding, X11 and streamlocal are refused.
 * Each authentication attempt re-reads the user and the key from the database, and so does every channel
 * a connection opens (ssh -W or -J through a ControlMaster): the user must still exist, be enabled and
 * have that key, and the admin flag and role are the current ones. A removed key or a changed role
 * closes the connections they authenticated at once (UserChangeSource); a disable with --kill-sessions too.
 */
import { createServer, type Server as NetServer } from 'node:net';
import type { Logger } from 'pino';
import type { Connection, ServerChannel, Session, TcpipRequestInfo } from 'ssh2';
import { WIRE_ERRORS, sanitizeForTerminal } from '@mssh/protocol';
import {
  DISCONNECT,
  OPEN_FAILURE,
  createSshServerCore,
  disconnectWith,
  rejectChannelWith,
  type ConnOf,
} from '@mssh/ssh-server';
import type { AdmittedSession, SessionGate } from '../session/gate.js';
import { RelayError } from '../errors.js';
import type { JumpHostKey } from './host-key.js';
import type { JumpLoginLapse, SshKeyService } from './ssh-key-service.js';
import type { UserChange, UserChangeSource } from '../auth/user-changes.js';
import type { JumpUser, MachineFilter } from './seams.js';
import { decideDestination } from './destination.js';
import { isDatabaseUnavailable } from '../db/database.js';
import { LoginGuard } from '../limits/login-guard.js';

const DB_DOWN = `RLY_ERR_DATABASE_UNAVAILABLE: ${WIRE_ERRORS.RLY_ERR_DATABASE_UNAVAILABLE.message}`;

/** Refusals about what was asked for (OpenSSH: "administratively prohibited"); the rest are "connect failed". */
const PROHIBITED_CODES = new Set<string>(['RLY_ERR_NO_GRANT', 'RLY_ERR_UNKNOWN_HOST', 'RLY_ERR_BAD_REQUEST']);

/** The session gate's refusal as a channel-open failure: the reason code, and `CODE: message` as its description. */
export function channelRefusal(err: RelayError): { reason: number; description: string } {
  return {
    reason: PROHIBITED_CODES.has(err.code) ? OPEN_FAILURE.ADMINISTRATIVELY_PROHIBITED : OPEN_FAILURE.CONNECT_FAILED,
    description: `${err.code}: ${err.message}`,
  };
}

/** The text (CODE: message) a refusal caused by `err` sends to the client. */
function describeFailure(err: unknown): string {
  if (err instanceof RelayError) return `${err.code}: ${err.message}`;
  if (isDatabaseUnavailable(err)) return DB_DOWN;
  return 'RLY_ERR_INTERNAL: the relay could not forward this connection; try again';
}

export interface JumpServerOptions {
  hostKey: JumpHostKey;
  keys: Pick<SshKeyService, 'userForKey' | 'currentLogin'>;
  /** Key removals, role changes and disables, to close the connections they end (absent: per-channel checks only). */
  changes?: UserChangeSource;
  /** Admits every forwarded session (grant, host, caps, agent stream, committed session.start): session/gate.ts. */
  gate: SessionGate;
  /** The machines, for the list a shell request prints. */
  hosts: { list(): Promise<Array<{ name: string; online: boolean }>> };
  /** Which of them the user may reach, for that list. */
  access: MachineFilter;
  logger: Logger;
  /** How the jump host is named in the help text, e.g. "relay.example.org:2222". */
  publicAddress: () => string;
  /** SSH handshake (version exchange and key exchange) deadline. Default 10 s. */
  handshakeTimeoutMs?: number;
  /** Authentication deadline after the handshake. Default 60 s. */
  loginGraceMs?: number;
  /** Failed authentication attempts per connection before it is cut. Default 10. */
  maxAuthTriesPerConnection?: number;
  /**
   * The relay's login limiter (the one POST /v1/auth/login uses, --login-attempts): a connection that
   * ends without authenticating after it tried, or misses the handshake deadline, counts as one failed
   * login; a blocked address or user name is disconnected with RLY_ERR_RATE_LIMITED. Default: its own.
   */
  loginGuard?: LoginGuard;
  /**
   * A connection ended without authenticating after it tried (one call per connection; the limiter
   * bounds how many a source gets): for the audit trail. `code`: the refusal's error code, if it had one.
   */
  onAuthFailure?: (e: {
    user: string;
    source: string;
    attempts: number;
    reason: string;
    keys: string[];
    code?: string;
  }) => void;
}

export interface JumpServer {
  listen(host: string, port: number): Promise<{ host: string; port: number }>;
  connectionCount(): number;
  /**
   * Stop accepting connections (a drain, issue 19); the open ones and their forwarded sessions go on (new
   * channels on them are refused by the session gate). Resolves once the port is closed.
   */
  stopListening(): Promise<void>;
  /** Stop listening and end every connection (and with them their forwarded sessions). */
  close(): Promise<void>;
}

/** The jump listener's own part of a connection record (the rest is @mssh/ssh-server's). */
interface JumpConnState {
  source: string;
  user: JumpUser | null;
  /** The user's id, and the key blob and fingerprint this connection authenticated with. */
  login: { userId: string; blob: Buffer; fingerprint: string } | null;
  /** The login no longer holds: every further channel is refused with this reason until the connection ends. */
  lapsed: JumpLoginLapse | 'role_changed' | null;
  /** Refused by the login limiter: already counted, so its end is not counted again. */
  rateLimited: boolean;
}
type Conn = ConnOf<JumpConnState>;

export function hostListText(user: string, hosts: Array<{ name: string; online: boolean }>, jump: string): string {
  const lines = [
    `mssh relay: hello ${sanitizeForTerminal(user)}. This SSH endpoint only forwards to machines; it has no shell.`,
    '',
  ];
  if (hosts.length === 0) {
    lines.push('You may reach no machines yet; ask an admin for access.');
  } else {
    lines.push(`Machines you may reach (${hosts.length}):`);
    const w = Math.max(...hosts.map((h) => h.name.length));
    for (const h of [...hosts].sort((a, b) => a.name.localeCompare(b.name)))
      lines.push(`  ${sanitizeForTerminal(h.name).padEnd(w)}  ${h.online ? 'online' : 'offline'}`);
    lines.push('', 'Connect with:', `  ssh -J ${sanitizeForTerminal(user)}@${jump} LOGIN@MACHINE`);
  }
  return lines.join('\r\n') + '\r\n';
}

/**
 * What OpenSSH prints after "channel N: open failed: administratively prohibited: " when a connection's
 * login no longer holds (the account-level reasons only: grants keep their one answer for every name).
 */
export const LAPSE_MESSAGES: Record<JumpLoginLapse | 'role_changed', string> = {
  user_gone: 'mssh: your account no longer exists on the relay; this connection is closed',
  user_disabled: 'mssh: your account was disabled by an admin; this connection is closed (AUTH_ERR_USER_DISABLED)',
  key_removed:
    'mssh: the SSH key this connection logged in with was removed from your account; this connection is closed',
  role_changed: 'mssh: your role changed since this connection logged in; connect again (AUTH_ERR_SESSION_ENDED)',
};

/** How long a connection whose login lapsed stays open after refusing a channel (see stillValid). */
const LAPSE_CLOSE_DELAY_MS = 300;

export function createJumpServer(opts: JumpServerOptions): JumpServer {
  const logger = opts.logger.child({ component: 'relay.ssh-jump' });
  const guard = opts.loginGuard ?? new LoginGuard();
  const ownGuard = opts.loginGuard === undefined;

  const core = createSshServerCore<JumpConnState>({
    hostKeys: [opts.hostKey.privateKey],
    ident: 'mssh_relay_jump',
    logger,
    handshakeTimeoutMs: opts.handshakeTimeoutMs ?? 10_000,
    loginGraceMs: opts.loginGraceMs ?? 60_000,
    maxAuthTries: opts.maxAuthTriesPerConnection ?? 10,
    admit(conn, user) {
      const refused = guard.refusal(user, conn.source);
      if (!refused) return null;
      conn.rateLimited = true;
      return { reason: DISCONNECT.NO_MORE_AUTH_METHODS_AVAILABLE, description: `${refused.code}: ${refused.message}` };
    },
    // Each attempt re-reads the user and the key from the database.
    async findKey(conn, { user, blob, fingerprint }) {
      const found = await opts.keys.userForKey(user, blob);
      if (!found) return { refused: 'no such user, user disabled, or key not registered for the user' };
      return {
        publicKey: found.publicKey,
        accepted: () => {
          conn.user = { name: found.name, admin: found.admin, role: found.role };
          conn.login = { userId: found.id, blob: Buffer.from(blob), fingerprint };
          conn.log = conn.log.child({ user: found.name });
          conn.log.info({ key: fingerprint }, 'ssh user authenticated');
          guard.succeeded(found.name);
        },
      };
    },
    // Not the user's fault: say so, instead of a bare "Connection closed" or "Permission denied".
    onAuthError: (_conn, e) =>
      isDatabaseUnavailable(e) ? { reason: DISCONNECT.SERVICE_NOT_AVAILABLE, description: DB_DOWN } : null,
    onDeadline(conn, which) {
      if (which === 'handshake') guard.failed(null, conn.source);
    },
    onClient,
    onEnd(conn) {
      if (!conn.user && conn.triedAuth) {
        if (!conn.rateLimited) guard.failed(conn.tried?.user ?? null, conn.source);
        opts.onAuthFailure?.({
          user: conn.tried?.user ?? '',
          source: conn.source,
          attempts: conn.authFailures,
          reason: conn.tried?.reason ?? 'disconnected before authenticating',
          keys: conn.tried?.keys ?? [],
          ...(conn.rateLimited ? { code: 'RLY_ERR_RATE_LIMITED' } : {}),
        });
      }
      return { user: conn.user?.name ?? null };
    },
  });
  const end = (conn: Conn, why: string) => core.end(conn, why);

  /**
   * Refuse a request. With `wire`, a channel open is refused with that reason code and description
   * (`CODE: message`, shown by OpenSSH as `open failed: ...: CODE: message`).
   */
  function refuseChannel(
    conn: Conn,
    reject: () => void,
    what: string,
    why: string,
    extra: Record<string, unknown> = {},
    wire?: { reason: number; description: string },
  ): void {
    conn.log.info({ what, why, ...extra }, 'ssh request refused');
    if (wire) rejectChannelWith(conn.client, reject, wire.reason, wire.description);
    else reject();
  }
  const prohibited = (description: string) => ({ reason: OPEN_FAILURE.ADMINISTRATIVELY_PROHIBITED, description });

  /**
   * The connection's login judged again, now: the user (same id) enabled, the key still theirs, and the
   * admin flag and role unchanged since the login (else the connection was authorised under privileges
   * the user no longer has). On a lapse the channel is refused with the reason and the connection ends.
   */
  async function stillValid(
    conn: Conn,
    reject: () => void,
    what: string,
    extra: Record<string, unknown> = {},
  ): Promise<JumpUser | null> {
    const login = conn.login!;
    if (conn.lapsed) {
      rejectChannelWith(conn.client, reject, OPEN_FAILURE.ADMINISTRATIVELY_PROHIBITED, LAPSE_MESSAGES[conn.lapsed]);
      return null;
    }
    const now = await opts.keys.currentLogin(conn.user!.name, login.blob, login.userId);
    let lapse: JumpLoginLapse | 'role_changed' | null = now.ok ? null : now.lapse;
    if (now.ok && (now.user.admin !== conn.user!.admin || now.user.role !== conn.user!.role)) lapse = 'role_changed';
    if (lapse === null && now.ok) return { name: now.user.name, admin: now.user.admin, role: now.user.role };
    conn.log.info(
      { what, why: lapse, key: login.fingerprint, ...extra },
      'ssh request refused: the login no longer holds',
    );
    rejectChannelWith(conn.client, reject, OPEN_FAILURE.ADMINISTRATIVELY_PROHIBITED, LAPSE_MESSAGES[lapse!]);
    // Closed a moment later, not at once: an OpenSSH ControlMaster that gets the refusal and the
    // disconnect together exits before passing the refusal on to its mux client (`ssh -S ctl -W` then
    // exits 0 as if it had worked).
    if (!conn.lapsed) {
      conn.lapsed = lapse!;
      setTimeout(() => closeConn(conn, lapse!), LAPSE_CLOSE_DELAY_MS).unref();
    }
    return null;
  }

  /** End a connection whose login lapsed (its forwarded sessions end with it), telling the client why. */
  function closeConn(conn: Conn, why: JumpLoginLapse | 'role_changed'): void {
    if (conn.done) return;
    conn.log.info({ why }, 'closing the ssh connection: its login no longer holds');
    disconnectWith(conn.client, DISCONNECT.BY_APPLICATION, LAPSE_MESSAGES[why]);
    end(conn, why);
  }

  async function forward(
    conn: Conn,
    accept: () => ServerChannel,
    reject: () => void,
    info: TcpipRequestInfo,
  ): Promise<void> {
    const dest = { host: String(info?.destIP ?? '').slice(0, 300), port: info?.destPort };
    const authAt = performance.now();
    const user = await stillValid(conn, reject, 'direct-tcpip', { dest });
    if (!user) return;
    // Only a machine name on port 22 is a destination (addresses are never dialled); the gate does the rest.
    const decision = decideDestination(info?.destIP, info?.destPort);
    if (!decision.ok) {
      return refuseChannel(
        conn,
        reject,
        'direct-tcpip',
        decision.reason,
        { dest },
        prohibited(
          `${decision.code}: ${decision.reason}; the relay forwards only to enrolled machines, by name, on port 22`,
        ),
      );
    }
    const host = decision.host;
    let session: AdmittedSession;
    try {
      session = await opts.gate.admit({ principal: { ...user, authAt }, host, door: 'jump', source: conn.source });
    } catch (err) {
      if (!(err instanceof RelayError)) throw err; // forward()'s caller refuses with RLY_ERR_INTERNAL or the database code
      return refuseChannel(conn, reject, 'direct-tcpip', `${err.code}: ${err.message}`, { dest }, channelRefusal(err));
    }
    const { sessionId } = session;
    if (conn.done) return session.cancel('client_closed');
    const channel = accept();
    if (!channel) return session.cancel('client_closed');
    channel.on('error', (e: Error) => conn.log.debug({ err: e.message, sessionId }, 'jump channel error'));
    conn.log.info({ sessionId, host }, 'jump session opened');
    const summary = await session.splice(channel);
    conn.log.info(
      {
        sessionId,
        host,
        bytesFromClient: summary.bytesFromClient,
        bytesToClient: summary.bytesToClient,
        reason: summary.reason,
      },
      'jump session closed',
    );
  }

  async function hostList(conn: Conn, user: JumpUser): Promise<string> {
    try {
      const all = await opts.hosts.list();
      const reachable = await opts.access.filterReachable(user, all);
      return hostListText(conn.user!.name, reachable, opts.publicAddress());
    } catch (err) {
      conn.log.error({ err }, 'listing machines failed');
      return 'mssh relay: the list of machines is not available right now; try again.\r\n';
    }
  }

  /** The shell request: print the machines the user may reach, exit 0. */
  function onShell(conn: Conn, session: Session, user: JumpUser): void {
    session.once('shell', (accept: () => ServerChannel | undefined) => {
      const ch = accept();
      if (!ch) return;
      ch.on('error', () => undefined);
      void hostList(conn, user).then((text) => {
        ch.write(text);
        ch.exit(0);
        ch.end();
      });
    });
  }

  /** What an SSH connection may ask for: a session (the list of machines), direct-tcpip, nothing else. */
  function onClient(conn: Conn, client: Connection): void {
    client.on('session', (accept: () => Session, reject: () => void) => {
      if (conn.done || !conn.user) return reject();
      stillValid(conn, reject, 'session').then(
        (user) => {
          if (user && !conn.done) openSession(conn, accept, user);
          else if (user) reject();
        },
        (err: unknown) => {
          conn.log.error({ err }, 'checking the login failed');
          try {
            reject();
          } catch {
            // already answered
          }
        },
      );
    });
    client.on('tcpip', (accept: () => ServerChannel, reject: () => void, info: TcpipRequestInfo) => {
      if (conn.done || !conn.user) return reject();
      forward(conn, accept, reject, info).catch((err: unknown) => {
        conn.log.error({ err }, 'forwarding failed unexpectedly');
        try {
          rejectChannelWith(conn.client, reject, OPEN_FAILURE.CONNECT_FAILED, describeFailure(err));
        } catch {
          // already answered
        }
      });
    });
    client.on('openssh.streamlocal', (_accept: unknown, reject: () => void) =>
      refuseChannel(conn, reject, 'direct-streamlocal', 'only machine names on port 22'),
    );
    client.on('request', (_accept: unknown, reject: (() => void) | undefined, name: string) => {
      refuseChannel(
        conn,
        reject ?? (() => undefined),
        `global request ${sanitizeForTerminal(String(name)).slice(0, 64)}`,
        'remote forwarding is not offered',
      );
    });
  }

  /** A session channel: the only thing it runs is the list of machines. */
  function openSession(conn: Conn, accept: () => Session, user: JumpUser): void {
    const session = accept();
    if (!session) return;
    // A terminal and environment are harmless: the only thing we run is the list of machines.
    session.on('pty', (ok?: () => void) => ok?.());
    session.on('window-change', (ok?: () => void) => ok?.());
    session.on('env', (ok?: () => void) => ok?.());
    session.on('exec', (_ok: unknown, no?: () => void, info?: { command?: string }) => {
      conn.log.info(
        { what: 'exec', command: sanitizeForTerminal(String(info?.command ?? '')).slice(0, 200) },
        'ssh request refused',
      );
      no?.();
    });
    session.on('subsystem', (_ok: unknown, no?: () => void, info?: { name?: string }) => {
      conn.log.info(
        { what: 'subsystem', name: sanitizeForTerminal(String(info?.name ?? '')).slice(0, 64) },
        'ssh request refused',
      );
      no?.();
    });
    session.on('auth-agent', (_ok: unknown, no?: () => void) =>
      refuseChannel(conn, no ?? (() => undefined), 'auth-agent', 'agent forwarding is not offered'),
    );
    session.on('x11', (_ok: unknown, no?: () => void) =>
      refuseChannel(conn, no ?? (() => undefined), 'x11', 'X11 forwarding is not offered'),
    );
    session.on('signal', (_ok: unknown, no?: () => void) => no?.());
    onShell(conn, session, user);
  }

  /** Close the connections a change ends: a removed key's, a user's after a role change or a disable with --kill-sessions. */
  function onUserChange(change: UserChange): void {
    let why: JumpLoginLapse | 'role_changed' | null = null;
    let matches: (c: Conn) => boolean = () => false;
    if (change.kind === 'key_removed') {
      why = 'key_removed';
      matches = (c) => c.user?.name === change.user && c.login?.fingerprint === change.fingerprint;
    } else if (change.kind === 'role_changed') {
      why = 'role_changed';
      matches = (c) => c.user?.name === change.user;
    } else if (change.kind === 'disabled' && change.killSessions) {
      why = 'user_disabled';
      matches = (c) => c.user?.name === change.user;
    }
    if (why === null) return;
    for (const conn of core.connections()) if (matches(conn)) closeConn(conn, why);
  }
  const unsubscribe = opts.changes?.subscribe(onUserChange);

  const net: NetServer = createServer((sock) => {
    const source = sock.remoteAddress ?? 'unknown';
    sock.setNoDelay(true);
    core.accept(sock, { source, user: null, login: null, lapsed: null, rateLimited: false }, { source });
  });

  return {
    listen(host, port) {
      return new Promise((resolve, reject) => {
        const onError = (e: Error) => reject(e);
        net.once('error', onError);
        net.listen(port, host, () => {
          net.removeListener('error', onError);
          net.on('error', (e) => logger.warn({ err: e }, 'jump listener error'));
          const a = net.address() as { address: string; port: number };
          resolve({ host: a.address, port: a.port });
        });
      });
    },
    connectionCount: () => core.size,
    async stopListening() {
      if (!net.listening) return;
      // The callback waits for every connection to end; the port itself closes at once.
      net.close();
    },
    async close() {
      unsubscribe?.();
      const closed = new Promise<void>((resolve) => net.close(() => resolve()));
      await core.close('relay shutting down');
      if (ownGuard) guard.close();
      await Promise.race([closed, new Promise<void>((r) => setTimeout(r, 2_000).unref())]);
    },
  };
}
