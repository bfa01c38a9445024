/**
 * The part of an ssh2 server that the relay's jump listener and the agent's embedded server share:
 *
 *   sock (TCP socket or any Duplex) --accept()--> registry --injectSocket--> ssh2 --'connection'--> onClient
 *     deadlines   handshake (optional), then login; a connection that is not authenticated in time is cut
 *     auth        public keys only: findKey() names the registered key, the core verifies the signature
 *                 and cuts the connection after maxAuthTries refusals
 *     teardown    end() once: onEnd(), log, socket end, destroy TEARDOWN_DESTROY_DELAY_MS later
 *
 * What a connection may then do (channels, requests) is the caller's, in onClient. Per-connection state
 * of the caller's own is merged into the connection record (ConnOf<S>).
 */
import type { Duplex } from 'node:stream';
import type { Socket } from 'node:net';
import type { Logger } from 'pino';
import ssh2 from 'ssh2';
import type { AuthContext, Connection } from 'ssh2';
import { fingerprintBlob, sanitizeForTerminal } from '@mssh/protocol';
import { parseSshKey } from '@mssh/protocol/ssh2-keys';
import { socketOf } from './ssh2-internals.js';
import { disconnectWith } from './ssh-wire.js';

const { Server } = ssh2;

/**
 * How long an ended connection's socket may stay half-closed before it is destroyed. end() first, so
 * that what was written last (an exit-status, a disconnect with its reason) reaches the peer, which
 * normally closes its side at once; the destroy only bounds a peer (or a relay stream) that does not.
 */
export const TEARDOWN_DESTROY_DELAY_MS = 5_000;
/** Refused authentication attempts per connection before it is cut (OpenSSH's MaxAuthTries is 6). */
export const DEFAULT_MAX_AUTH_TRIES = 10;
/** At most this many key fingerprints are remembered per connection (for the audit trail). */
const MAX_TRIED_KEYS = 5;

export interface SshConn {
  readonly id: number;
  readonly sock: Duplex;
  log: Logger;
  /** ssh2's connection, once ssh2 has read the client's version line. */
  client?: Connection;
  /** ssh2 reported the client authenticated ('ready'). */
  authenticated: boolean;
  /** The client tried a method other than "none" (or was refused by admit()). */
  triedAuth: boolean;
  /** Refused authentication attempts so far. */
  authFailures: number;
  /** The last user name tried, why the last attempt was refused, the key fingerprints tried. */
  tried?: { user: string; reason: string; keys: string[] };
  done: boolean;
}

/** A connection with the caller's own per-connection fields (given to accept()) merged in. */
export type ConnOf<S extends object> = SshConn & S;

/** A refusal sent as SSH_MSG_DISCONNECT (RFC 4253 11.1 reason code, description shown by OpenSSH). */
export interface DisconnectReason {
  reason: number;
  description: string;
}

export type KeyLookup<S extends object> = (
  conn: ConnOf<S>,
  attempt: { user: string; blob: Buffer; fingerprint: string },
) => Promise<{ publicKey: string; accepted(): void } | { refused: string }>;

export interface SshServerCoreOptions<S extends object> {
  hostKeys: Array<string | Buffer>;
  ident: string;
  banner?: string;
  /** The component's logger; each connection logs through a child with { conn: id, ...logFields }. */
  logger: Logger;
  /**
   * Deadline for the SSH handshake (version and key exchange); the login deadline then starts after it.
   * Absent: one login deadline from accept() on covers the handshake too.
   */
  handshakeTimeoutMs?: number;
  /** Deadline for authentication. */
  loginGraceMs: number;
  maxAuthTries?: number;
  /**
   * The registered public key (an OpenSSH public key line) for this user name and key blob, and what to
   * do once its signature is verified; or why there is none. The core verifies the signature.
   */
  findKey: KeyLookup<S>;
  /** Asked before each authentication attempt: a reason refuses it with a disconnect (e.g. rate limits). */
  admit?(conn: ConnOf<S>, user: string): DisconnectReason | null;
  /** An attempt threw: a reason disconnects with it; null rejects the attempt as usual. */
  onAuthError?(conn: ConnOf<S>, err: unknown): DisconnectReason | null;
  /** A deadline passed (before the connection is ended). */
  onDeadline?(conn: ConnOf<S>, which: 'handshake' | 'login'): void;
  /** ssh2 took the connection: register the channel and request handlers. */
  onClient(conn: ConnOf<S>, client: Connection): void;
  /** The connection ends (called once); the fields returned go into the "ssh connection ended" log line. */
  onEnd?(conn: ConnOf<S>, why: string): Record<string, unknown> | void;
}

export interface SshServerCore<S extends object> {
  /** Serve SSH on `sock`. Null when the server is closing (the socket is destroyed). */
  accept(sock: Duplex, state: S, logFields?: Record<string, unknown>): ConnOf<S> | null;
  /** End a connection (once): its socket is ended, and destroyed TEARDOWN_DESTROY_DELAY_MS later. */
  end(conn: ConnOf<S>, why: string): void;
  /** The connections being served, a copy. */
  connections(): Array<ConnOf<S>>;
  readonly size: number;
  /**
   * Refuse new connections, end every one, wait for `drain` of each (e.g. killing its processes), then
   * destroy their sockets.
   */
  close(why: string, drain?: (conn: ConnOf<S>) => Promise<unknown> | void): Promise<void>;
}

export function createSshServerCore<S extends object>(opts: SshServerCoreOptions<S>): SshServerCore<S> {
  const { logger, loginGraceMs, handshakeTimeoutMs } = opts;
  const maxTries = opts.maxAuthTries ?? DEFAULT_MAX_AUTH_TRIES;
  const live = new Set<ConnOf<S>>();
  const bySocket = new WeakMap<object, ConnOf<S>>();
  const deadlines = new WeakMap<ConnOf<S>, NodeJS.Timeout>();
  let nextId = 1;
  let closing = false;

  const ssh = new Server({
    hostKeys: opts.hostKeys,
    ident: opts.ident,
    ...(opts.banner === undefined ? {} : { banner: opts.banner }),
    keepaliveInterval: 30_000,
    keepaliveCountMax: 3,
  });
  ssh.on('error', (e: Error) => logger.warn({ err: e }, 'ssh server error'));

  function setDeadline(conn: ConnOf<S>, which: 'handshake' | 'login', ms: number): void {
    clearTimeout(deadlines.get(conn));
    const t = setTimeout(() => {
      if (conn.done) return;
      conn.log.info(
        which === 'handshake'
          ? 'SSH handshake not done in time: disconnecting'
          : 'not authenticated in time: disconnecting',
      );
      opts.onDeadline?.(conn, which);
      end(conn, `${which} timeout`);
      conn.sock.destroy();
    }, ms);
    t.unref();
    deadlines.set(conn, t);
  }

  function end(conn: ConnOf<S>, why: string): void {
    if (conn.done) return;
    conn.done = true;
    live.delete(conn);
    clearTimeout(deadlines.get(conn));
    const fields = opts.onEnd?.(conn, why);
    conn.log.info({ why, ...fields }, 'ssh connection ended');
    const s = conn.sock;
    if (!s.destroyed) {
      s.end();
      setTimeout(() => s.destroy(), TEARDOWN_DESTROY_DELAY_MS).unref();
    }
  }

  /** Refuse one attempt; after maxTries of them, cut the connection. */
  function refuse(conn: ConnOf<S>, ctx: AuthContext, why: string, fingerprint?: string): void {
    const keys = conn.tried?.keys ?? [];
    if (fingerprint && !keys.includes(fingerprint) && keys.length < MAX_TRIED_KEYS) keys.push(fingerprint);
    conn.tried = { user: String(ctx.username).slice(0, 128), reason: why, keys };
    conn.log.info(
      {
        sshUser: sanitizeForTerminal(String(ctx.username)).slice(0, 64),
        method: ctx.method,
        key: fingerprint,
        reason: why,
      },
      'ssh authentication refused',
    );
    ctx.reject(['publickey']);
    if (++conn.authFailures >= maxTries) {
      conn.log.warn('too many failed authentication attempts: disconnecting');
      conn.client?.end();
    }
  }

  async function authenticate(conn: ConnOf<S>, ctx: AuthContext): Promise<void> {
    const barred = opts.admit?.(conn, String(ctx.username));
    if (barred) {
      conn.triedAuth = true;
      conn.tried = { user: String(ctx.username).slice(0, 128), reason: barred.description, keys: [] };
      conn.log.info(
        { sshUser: sanitizeForTerminal(String(ctx.username)).slice(0, 64), reason: barred.description },
        'ssh authentication refused: disconnecting',
      );
      disconnectWith(conn.client, barred.reason, barred.description);
      return;
    }
    if (ctx.method === 'none') return ctx.reject(['publickey']);
    conn.triedAuth = true;
    if (ctx.method !== 'publickey') return refuse(conn, ctx, 'public keys only');
    const blob = ctx.key?.data;
    if (!Buffer.isBuffer(blob)) return refuse(conn, ctx, 'no key');
    const fingerprint = fingerprintBlob(blob);
    const found = await opts.findKey(conn, { user: ctx.username, blob, fingerprint });
    if ('refused' in found) return refuse(conn, ctx, found.refused, fingerprint);
    if (!ctx.signature || !ctx.blob) return ctx.accept(); // the client only asks whether this key would do
    const key = parseSshKey(found.publicKey);
    if (!key) return refuse(conn, ctx, 'registered key cannot be parsed', fingerprint);
    if (key.verify(ctx.blob, ctx.signature, ctx.hashAlgo) !== true)
      return refuse(conn, ctx, 'bad signature', fingerprint);
    found.accepted();
    ctx.accept();
  }

  ssh.on('connection', (client: Connection) => {
    const sock = socketOf(client);
    const conn = sock ? bySocket.get(sock) : undefined;
    if (!conn) {
      if (!sock) logger.error('ssh2 no longer exposes the connection socket (Connection._sock): refusing connections');
      client.on('error', () => undefined);
      client.end();
      return;
    }
    conn.client = client;
    client.on('error', (e: Error & { level?: string }) =>
      conn.log.debug({ err: e.message, level: e.level }, 'ssh connection error'),
    );
    // 'handshake' comes again on every re-key: only the first one starts the login deadline.
    if (handshakeTimeoutMs !== undefined) client.once('handshake', () => setDeadline(conn, 'login', loginGraceMs));
    client.on('authentication', (ctx: AuthContext) => {
      authenticate(conn, ctx).catch((e: unknown) => {
        conn.log.warn({ err: e }, 'authentication failed unexpectedly');
        const d = opts.onAuthError?.(conn, e);
        if (d) return disconnectWith(conn.client, d.reason, d.description);
        try {
          ctx.reject(['publickey']);
        } catch {
          // already gone
        }
      });
    });
    client.on('ready', () => {
      conn.authenticated = true;
      clearTimeout(deadlines.get(conn));
    });
    opts.onClient(conn, client);
    client.on('end', () => end(conn, 'ssh connection ended'));
    client.on('close', () => end(conn, 'ssh connection closed'));
  });

  function accept(sock: Duplex, state: S, logFields: Record<string, unknown> = {}): ConnOf<S> | null {
    const id = nextId++;
    const log = logger.child({ conn: id, ...logFields });
    if (closing) {
      sock.on('error', () => {});
      sock.destroy();
      return null;
    }
    const base: SshConn = { id, sock, log, authenticated: false, triedAuth: false, authFailures: 0, done: false };
    const c: ConnOf<S> = Object.assign(state, base);
    sock.on('error', (e: Error) => {
      log.debug({ err: e.message }, 'stream error');
      end(c, 'stream error');
    });
    live.add(c);
    bySocket.set(sock, c);
    sock.once('end', () => end(c, 'stream ended'));
    sock.once('close', () => end(c, 'stream closed'));
    if (handshakeTimeoutMs !== undefined) setDeadline(c, 'handshake', handshakeTimeoutMs);
    else setDeadline(c, 'login', loginGraceMs);
    try {
      ssh.injectSocket(sock as unknown as Socket);
    } catch (e) {
      log.warn({ err: e }, 'could not start SSH on this connection');
      end(c, 'inject failed');
      sock.destroy();
    }
    return c;
  }

  return {
    accept,
    end,
    connections: () => [...live],
    get size() {
      return live.size;
    },
    async close(why, drain) {
      closing = true;
      const all = [...live];
      const pending: Array<Promise<unknown>> = [];
      for (const conn of all) {
        try {
          conn.client?.end();
        } catch {
          // already gone
        }
        end(conn, why);
        if (drain) pending.push(Promise.resolve(drain(conn)));
      }
      await Promise.all(pending);
      for (const conn of all) conn.sock.destroy();
    },
  };
}
