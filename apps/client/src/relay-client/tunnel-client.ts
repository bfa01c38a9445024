/**
 * The part of the relay client that `mssh proxy` needs: one pinned HTTP/2 connection (relay-connection.ts),
 * requests retried once on a new connection (retry.ts), tunnels, and JSON calls checked by a schema the
 * caller gives. It loads no schema library of its own, so the lean entry (lean-main.ts) stays small;
 * RelayClient (relay-client.ts) adds the API's typed calls on top.
 *
 *   mssh ──HTTP/2 stream POST /v1/tunnel/:host──▶ relay ──▶ agent ──▶ sshd
 *        request body = our bytes, response body = sshd's bytes (one full-duplex stream)
 */
import http2 from 'node:http2';
import { HEADERS, PATHS, PROTOCOL_VERSION, SOFTWARE_VERSION, isWireErrorBody } from '@mssh/protocol';
import { cliError, cliErrorFromWire, notLoggedIn, tunnelEndedByRelay, type CliError } from '../errors.js';
import type { RelayConnection } from './relay-connection.js';
import { markRetryable, retryReason, unansweredReason, within } from './retry.js';

const MAX_BODY = 16 * 1024 * 1024;

/** What `call` checks an answer with (a zod schema has this shape; no zod is loaded here). */
export interface AnswerSchema<T> {
  safeParse(v: unknown): { success: true; data: T } | { success: false };
}

const { NGHTTP2_CANCEL, NGHTTP2_NO_ERROR } = http2.constants;

export interface Tunnel {
  /** Writable side = bytes to the target's sshd; readable side = bytes from it. `end()` half-closes. */
  stream: http2.ClientHttp2Stream;
  /** x-mssh-session from the relay, for support and audit correlation. */
  sessionId: string | null;
}

export interface RelayClientOptions {
  /** Bearer token; null before login. */
  token: string | null;
  /** Stored user name (only for the hint in "log in again" messages). */
  user?: string;
  /** Time limit for an API answer. Default 30 s. */
  requestTimeoutMs?: number;
  /** Time limit for the relay to answer a tunnel open (the session itself has no limit). Default 30 s. */
  tunnelTimeoutMs?: number;
  /**
   * A new connection to the same relay address, with the same pin: a request a draining or refusing relay
   * did not take is retried ONCE on it, within the request's time limit (retry.ts). Absent: no retry.
   */
  reconnect?: () => Promise<RelayConnection>;
  /** Told of each retry, one line (shown at debug level only: MSSH_DEBUG=1, `mssh ssh -v`). */
  onRetry?: (line: string) => void;
  /**
   * The pause before retrying a request a relay refused as draining (503 RLY_ERR_DRAINING): the balancer's
   * next health check takes that relay out of its rotation meanwhile. Default 1000 ms; at most half the time
   * left.
   */
  drainingRetryPauseMs?: number;
}

export class TunnelClient {
  token: string | null;
  private readonly user: string | undefined;
  private readonly requestTimeoutMs: number;
  private readonly tunnelTimeoutMs: number;
  private readonly reconnect: (() => Promise<RelayConnection>) | undefined;
  private readonly onRetry: ((line: string) => void) | undefined;
  private readonly drainingRetryPauseMs: number;
  protected current: RelayConnection;
  /** Connections given up for a new one; they close once their running streams end (and at close()). */
  private readonly retired: RelayConnection[] = [];
  private renewing: Promise<RelayConnection> | null = null;

  constructor(conn: RelayConnection, opts: RelayClientOptions) {
    this.current = conn;
    this.token = opts.token;
    this.user = opts.user;
    this.requestTimeoutMs = opts.requestTimeoutMs ?? 30_000;
    this.tunnelTimeoutMs = opts.tunnelTimeoutMs ?? 30_000;
    this.reconnect = opts.reconnect;
    this.onRetry = opts.onRetry;
    this.drainingRetryPauseMs = opts.drainingRetryPauseMs ?? DRAINING_RETRY_PAUSE_MS;
  }

  /** The connection requests go on now (a retry replaces it). */
  get conn(): RelayConnection {
    return this.current;
  }

  get url(): string {
    return this.current.url;
  }

  async close(): Promise<void> {
    await Promise.all([this.current, ...this.retired].map((c) => c.close()));
  }

  /**
   * The connection to retry on after `failed` let a request down: a new one (shared by the requests that
   * failed on `failed` at the same time), or the current one if another request replaced `failed` already.
   * `failed` is asked to close gracefully: a tunnel still running on it goes on.
   */
  private renew(failed: RelayConnection): Promise<RelayConnection> {
    if (this.current !== failed) return Promise.resolve(this.current);
    this.renewing ??= this.reconnect!()
      .then((c) => {
        this.retired.push(failed);
        try {
          if (!failed.session.closed) failed.session.close();
        } catch {
          // already going
        }
        this.current = c;
        return c;
      })
      .finally(() => {
        this.renewing = null;
      });
    return this.renewing;
  }

  /**
   * Run one request, and once more on a new connection when it failed in a way retry.ts calls retryable,
   * both within timeoutMs from now. The second attempt's error is the one reported.
   */
  private async withRetry<T>(
    what: string,
    timeoutMs: number,
    attempt: (conn: RelayConnection, timeLeftMs: number) => Promise<T>,
  ): Promise<T> {
    const deadline = Date.now() + timeoutMs;
    const first = this.current;
    try {
      return await attempt(first, timeoutMs);
    } catch (e) {
      const why = retryReason(e);
      if (!why || !this.reconnect || Date.now() >= deadline) throw e;
      // A relay that answered "draining" is still in the balancer's rotation until its next health check
      // sees /readyz 503: give the balancer that long, so the new connection reaches another relay.
      const pauseMs = why === DRAINING_WHY ? Math.min(this.drainingRetryPauseMs, (deadline - Date.now()) / 2) : 0;
      this.onRetry?.(
        `${what}: ${why}; trying once more on a new connection${pauseMs > 0 ? ` in ${Math.round(pauseMs)} ms` : ''}`,
      );
      if (pauseMs > 0) await new Promise((r) => setTimeout(r, pauseMs));
      const next = await within(this.renew(first), deadline - Date.now(), () => e as Error);
      return attempt(next, deadline - Date.now());
    }
  }

  /** Why the relay ended this tunnel, when it said so (an admin disabled the account, changed the role); else null. */
  endedByRelay(tunnel: Tunnel, host: string): CliError | null {
    return tunnelEndedByRelay(tunnel.stream.rstCode, host, { relayUrl: this.url, user: this.user });
  }

  private headers(method: string, path: string, auth: boolean): http2.OutgoingHttpHeaders {
    const h: http2.OutgoingHttpHeaders = {
      ':method': method,
      ':path': path,
      accept: 'application/json',
      [HEADERS.protocolVersion]: String(PROTOCOL_VERSION),
      [HEADERS.softwareVersion]: SOFTWARE_VERSION,
    };
    if (auth) {
      if (!this.token) throw notLoggedIn(this.url);
      h.authorization = `Bearer ${this.token}`;
    }
    return h;
  }

  private lost(e: unknown): CliError {
    const msg = (e as Error)?.message ?? String(e);
    return cliError(
      'CLI_ERR_RELAY_CONNECTION_LOST',
      `the connection to the relay at ${this.url} broke (${msg})`,
      'Try again; if it keeps happening, check the network between you and the relay.',
      e,
    );
  }

  private request(
    conn: RelayConnection,
    headers: http2.OutgoingHttpHeaders,
    endStream: boolean,
  ): http2.ClientHttp2Stream {
    try {
      return conn.session.request(headers, { endStream });
    } catch (e) {
      // Nothing was sent: the connection is closing (the relay sent GOAWAY) or gone.
      throw markRetryable(this.lost(e), 'the connection is closing (GOAWAY) or gone');
    }
  }

  /** One JSON request; resolves with the validated answer (undefined for 204 / no schema). */
  call<T>(
    method: string,
    path: string,
    opts: { body?: unknown; schema?: AnswerSchema<T>; auth?: boolean; host?: string } = {},
  ): Promise<T> {
    const headers = this.headers(method, path, opts.auth !== false);
    if (opts.body !== undefined) headers['content-type'] = 'application/json';
    return this.withRetry(`${method} ${path.split('?')[0]}`, this.requestTimeoutMs, (conn, timeLeftMs) =>
      this.callOnce<T>(conn, method, path, { ...headers }, opts, timeLeftMs),
    );
  }

  private callOnce<T>(
    conn: RelayConnection,
    method: string,
    path: string,
    headers: http2.OutgoingHttpHeaders,
    opts: { body?: unknown; schema?: AnswerSchema<T>; host?: string },
    timeoutMs: number,
  ): Promise<T> {
    const req = this.request(conn, headers, opts.body === undefined);
    if (opts.body !== undefined) req.end(JSON.stringify(opts.body));
    // A lost GET can be asked again; a lost POST or DELETE may have been carried out (retry.ts).
    const safeToRepeat = method === 'GET';
    return new Promise<T>((resolve, reject) => {
      let status = 0;
      let size = 0;
      const chunks: Buffer[] = [];
      let done = false;
      const finish = (err: CliError | null, value?: T) => {
        if (done) return;
        done = true;
        clearTimeout(timer);
        if (err) reject(err);
        else resolve(value as T);
      };
      const timer = setTimeout(() => {
        req.close(NGHTTP2_CANCEL);
        finish(
          cliError(
            'CLI_ERR_RELAY_CONNECTION_LOST',
            `the relay at ${this.url} did not answer within ${Math.round(this.requestTimeoutMs / 1000)} s`,
            'Try again later; check that the relay is healthy.',
          ),
        );
      }, timeoutMs);
      /** Failed before any answer byte: retryable when the relay certainly did not take it, or it is safe. */
      const unanswered = (err: CliError, cause: Error | null): CliError => {
        const why = unansweredReason(req, cause, safeToRepeat);
        return why ? markRetryable(err, why) : err;
      };
      req.on('response', (h) => (status = Number(h[':status'])));
      req.on('data', (d: Buffer) => {
        size += d.length;
        if (size > MAX_BODY) {
          req.close(NGHTTP2_CANCEL);
          finish(cliError('CLI_ERR_RELAY_BAD_RESPONSE', `the relay at ${this.url} sent an oversized answer`, ''));
          return;
        }
        chunks.push(d);
      });
      req.on('error', (e) => finish(status === 0 ? unanswered(this.lost(e), e) : this.lost(e)));
      req.on('close', () => {
        if (done) return;
        if (status === 0)
          return finish(unanswered(this.lost(new Error(`stream closed before an answer (code ${req.rstCode})`)), null));
        const text = Buffer.concat(chunks).toString('utf8');
        let json: unknown = undefined;
        if (text.length > 0) {
          try {
            json = JSON.parse(text);
          } catch {
            json = undefined;
          }
        }
        if (status < 200 || status >= 300) {
          const err = cliErrorFromWire(status, json, { relayUrl: this.url, host: opts.host, user: this.user });
          return finish(drainingAnswer(status, json) ? markRetryable(err, DRAINING_WHY) : err);
        }
        if (!opts.schema) return finish(null, undefined);
        const parsed = opts.schema.safeParse(json);
        if (!parsed.success) {
          return finish(
            cliError(
              'CLI_ERR_RELAY_BAD_RESPONSE',
              `the relay at ${this.url} sent an answer this mssh does not understand (${method} ${path})`,
              'Check that mssh and the relay are the same version.',
            ),
          );
        }
        finish(null, parsed.data);
      });
    });
  }

  /**
   * Open a tunnel to the machine `host`. Resolves once the relay answered 200: from then on the stream is
   * the raw TCP byte stream of the machine's sshd. Rejects with the mapped relay error otherwise
   * (unknown host, offline, agent failed, not logged in...). `runId`: the run of `mssh exec` it is part of.
   */
  openTunnel(host: string, opts: { runId?: string } = {}): Promise<Tunnel> {
    const headers = this.headers('POST', PATHS.tunnel(host), true);
    headers['content-type'] = 'application/octet-stream';
    // The many-machine run this session belongs to (mssh exec): the relay audits it with the session.
    if (opts.runId) headers[HEADERS.runId] = opts.runId;
    return this.withRetry(`opening the tunnel to ${host}`, this.tunnelTimeoutMs, (conn, timeLeftMs) =>
      this.openTunnelOnce(conn, host, { ...headers }, timeLeftMs),
    ).then((t) => {
      // The consumer (ssh2, proxy) attaches its own handlers; this one only keeps a late error from
      // becoming an uncaught exception between now and then.
      t.stream.on('error', () => {});
      return t;
    });
  }

  private openTunnelOnce(
    conn: RelayConnection,
    host: string,
    headers: http2.OutgoingHttpHeaders,
    timeoutMs: number,
  ): Promise<Tunnel> {
    const stream = this.request(conn, headers, false);
    return new Promise<Tunnel>((resolve, reject) => {
      let done = false;
      const finish = (err: CliError | null) => {
        if (done) return;
        done = true;
        clearTimeout(timer);
        stream.removeListener('response', onResponse);
        stream.removeListener('error', onError);
        stream.removeListener('close', onClose);
        if (err) {
          if (!stream.closed) stream.close(NGHTTP2_CANCEL);
          reject(err);
        } else {
          resolve({ stream, sessionId: sessionIdOf(headersSeen) });
        }
      };
      let headersSeen: http2.IncomingHttpHeaders = {};
      const timer = setTimeout(() => {
        finish(
          cliError(
            'CLI_ERR_RELAY_CONNECTION_LOST',
            `the relay at ${this.url} did not open the tunnel to ${host} within ${Math.round(this.tunnelTimeoutMs / 1000)} s`,
            'Try again; `mssh ls` shows whether the machine is online.',
          ),
        );
      }, timeoutMs);
      // Before the answer nothing of the session has passed: a tunnel open is safe to ask again.
      const unanswered = (err: CliError, cause: Error | null): CliError => {
        const why = unansweredReason(stream, cause, true);
        return why ? markRetryable(err, why) : err;
      };
      const onError = (e: Error) => finish(unanswered(this.lost(e), e));
      const onClose = () =>
        finish(
          unanswered(this.lost(new Error(`tunnel stream closed before an answer (code ${stream.rstCode})`)), null),
        );
      const onResponse = (h: http2.IncomingHttpHeaders) => {
        headersSeen = h;
        const status = Number(h[':status']);
        if (status === 200) return finish(null);
        // An error: read the (small) JSON body, then map it.
        stream.removeListener('close', onClose);
        const chunks: Buffer[] = [];
        let size = 0;
        stream.on('data', (d: Buffer) => {
          size += d.length;
          if (size <= 64 * 1024) chunks.push(d);
        });
        stream.once('close', () => {
          let json: unknown;
          try {
            json = JSON.parse(Buffer.concat(chunks).toString('utf8'));
          } catch {
            json = undefined;
          }
          const err = cliErrorFromWire(status, json, { relayUrl: this.url, host, user: this.user });
          finish(drainingAnswer(status, json) ? markRetryable(err, DRAINING_WHY) : err);
        });
        stream.end();
      };
      stream.on('response', onResponse);
      stream.on('error', onError);
      stream.on('close', onClose);
    });
  }
}

/** Default pause before the retry of a draining refusal (RelayClientOptions.drainingRetryPauseMs). */
export const DRAINING_RETRY_PAUSE_MS = 1_000;
const DRAINING_WHY = 'the relay is draining (503 RLY_ERR_DRAINING)';

/** The relay's answer says it is draining: a new connection reaches another relay. */
function drainingAnswer(status: number, body: unknown): boolean {
  return status === 503 && isWireErrorBody(body) && body.code === 'RLY_ERR_DRAINING';
}

function sessionIdOf(h: http2.IncomingHttpHeaders): string | null {
  const v = h[HEADERS.sessionId];
  return typeof v === 'string' ? v : null;
}

/** True when a tunnel stream ended cleanly (END_STREAM, no RST with an error code). */
export function endedCleanly(stream: http2.ClientHttp2Stream): boolean {
  return stream.rstCode === undefined || stream.rstCode === NGHTTP2_NO_ERROR;
}
