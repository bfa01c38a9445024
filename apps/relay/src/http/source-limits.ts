/**
 * Per-source limits on the API side of the shared port, so that one address cannot make the relay hold
 * memory without bound (issue 16 item 3):
 *
 *   TCP accept   --more than 2 x maxConnectionsPerAddress sockets of that address--> destroyed at once
 *   TLS up (API) --more than maxConnectionsPerAddress API connections-->  h2: GOAWAY ENHANCE_YOUR_CALM
 *                                                                         http/1.1: 429 RLY_ERR_SOURCE_LIMIT
 *   request      --more than maxPendingPerAddress unanswered requests-->  h2: RST_STREAM REFUSED_STREAM
 *                                                                         http/1.1: 429 RLY_ERR_SOURCE_LIMIT
 *   h2 session   --refusalsBeforeGoaway refused or timed-out streams-->   GOAWAY ENHANCE_YOUR_CALM
 *
 * The per-connection stream cap itself (SETTINGS_MAX_CONCURRENT_STREAMS) is nghttp2's: streams beyond it
 * are refused (REFUSED_STREAM) or the connection closed (PROTOCOL_ERROR) without reaching JavaScript.
 *
 * Addresses are counted by limitKey (no port; IPv6 by /64). Connections: by the socket's peer address;
 * a trusted proxy's connections are not counted (it carries many clients). Requests: by the client's
 * address (behind a trusted proxy, the forwarded one). An "unanswered" request is a stream whose answer
 * headers have not been sent: an established tunnel no longer counts. Agent links (ALPN mssh-agent/1) are
 * counted only while their TLS handshake runs, so many agents behind one NAT address are fine.
 */
import {
  constants as h2c,
  type Http2SecureServer,
  type Http2ServerRequest,
  type Http2ServerResponse,
  type Http2Session,
  type ServerHttp2Session,
} from 'node:http2';
import type { Socket } from 'node:net';
import type { TLSSocket } from 'node:tls';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { AGENT_ALPN, HEADERS, WIRE_ERRORS } from '@mssh/protocol';
import { clientSource, limitKey, normaliseForwardedFor } from '../limits/source-address.js';

export interface SourceLimitOptions {
  /** API connections per address (0: no limit). Sockets still in their TLS handshake may number twice that. */
  maxConnectionsPerAddress: number;
  /** Requests per client address whose answer has not started (0: no limit). */
  maxPendingPerAddress: number;
  /** Streams one h2 connection may have refused before it is closed with ENHANCE_YOUR_CALM. */
  refusalsBeforeGoaway: number;
  isTrustedProxy: (address: string) => boolean;
  /** Called at most once per reportEveryMs while refusals happen, with what was refused since. */
  onRefusals?: (r: RefusalReport) => void;
  reportEveryMs?: number;
  /** Each refused connection or request, as it happens (the metrics' RLY_ERR_SOURCE_LIMIT count). Must not throw. */
  onRefused?: () => void;
}

export interface RefusalReport {
  connections: number;
  streams: number;
  sessionsClosed: number;
  /** The address refused most often, as its limit key. */
  top: string;
}

interface Counts {
  /** Sockets that are API connections or still handshaking. */
  sockets: number;
  api: number;
  pending: number;
}

type AnyRequest = (Http2ServerRequest | IncomingMessage) & { stream?: Http2ServerRequest['stream'] };
type AnyResponse = Http2ServerResponse | ServerResponse;

const SOURCE_LIMIT_BODY = JSON.stringify({
  statusCode: 429,
  code: 'RLY_ERR_SOURCE_LIMIT',
  error: 'Too Many Requests',
  message: WIRE_ERRORS.RLY_ERR_SOURCE_LIMIT.message,
});

export class SourceLimits {
  private readonly counts = new Map<string, Counts>();
  private readonly refusedBySession = new WeakMap<Http2Session, number>();
  /** session.socket is a proxy that throws on destroy(): the raw socket, from 'secureConnection'. */
  private readonly socketOf = new WeakMap<Http2Session, TLSSocket>();
  private readonly tcpKey = new Map<string, string>();
  private refused = { connections: 0, streams: 0, sessionsClosed: 0 };
  private readonly refusedKeys = new Map<string, number>();
  private reportTimer: NodeJS.Timeout | null = null;

  constructor(private readonly opts: SourceLimitOptions) {}

  /** Addresses with live connections or unanswered requests (for /healthz). */
  get size(): number {
    return this.counts.size;
  }

  /** Wire into the server: TCP and TLS counting. Requests go through admit() (the server factory's handler). */
  install(server: Http2SecureServer, sessionOf: (socket: TLSSocket) => ServerHttp2Session | null): void {
    server.on('connection', (socket: Socket) => this.onTcp(socket));
    server.on('secureConnection', (socket: TLSSocket) => this.onSecure(socket, sessionOf(socket)));
  }

  private entry(key: string): Counts {
    let e = this.counts.get(key);
    if (!e) {
      e = { sockets: 0, api: 0, pending: 0 };
      this.counts.set(key, e);
    }
    return e;
  }

  private drop(key: string, e: Counts): void {
    if (e.sockets <= 0 && e.api <= 0 && e.pending <= 0) this.counts.delete(key);
  }

  private onTcp(socket: Socket): void {
    const max = this.opts.maxConnectionsPerAddress;
    const peer = socket.remoteAddress;
    if (max <= 0 || !peer || this.opts.isTrustedProxy(peer)) return;
    const key = limitKey(peer);
    const e = this.entry(key);
    if (e.sockets >= 2 * max) {
      // Nothing is negotiated yet that could carry a code; dropping is the cheapest answer.
      this.noteRefused('connections', key);
      this.drop(key, e);
      socket.destroy();
      return;
    }
    e.sockets++;
    const id = `${peer}|${socket.remotePort}`;
    this.tcpKey.set(id, key);
    socket.once('close', () => {
      if (this.tcpKey.get(id) === key) {
        this.tcpKey.delete(id);
        e.sockets--;
        this.drop(key, e);
      }
    });
  }

  private onSecure(socket: TLSSocket, session: ServerHttp2Session | null): void {
    if (session) this.socketOf.set(session, socket);
    const peer = socket.remoteAddress;
    if (!peer) return;
    const id = `${peer}|${socket.remotePort}`;
    const key = this.tcpKey.get(id);
    if (key === undefined) return; // not counted (trusted proxy, limit off)
    const e = this.entry(key);
    if (socket.alpnProtocol === AGENT_ALPN) {
      // Agent links are limited by --max-agents and their own proof; they stop counting here.
      this.tcpKey.delete(id);
      e.sockets--;
      this.drop(key, e);
      return;
    }
    if (e.api >= this.opts.maxConnectionsPerAddress) {
      this.noteRefused('connections', key);
      if (session) closeSession(session, socket);
      else if (socket.alpnProtocol === 'h2') socket.destroy();
      else {
        socket.end(
          `HTTP/1.1 429 Too Many Requests\r\ncontent-type: application/json; charset=utf-8\r\n${HEADERS.errorCode}: RLY_ERR_SOURCE_LIMIT\r\nconnection: close\r\ncontent-length: ${Buffer.byteLength(SOURCE_LIMIT_BODY)}\r\n\r\n${SOURCE_LIMIT_BODY}`,
        );
        setTimeout(() => socket.destroy(), 1_000).unref();
      }
      return;
    }
    e.api++;
    socket.once('close', () => {
      e.api--;
      this.drop(key, e);
    });
  }

  /**
   * Before fastify sees a request: normalise X-Forwarded-For in place (so request.ip is a bare address,
   * see limits/source-address.ts), then count it against its client address. false: refused and answered.
   */
  admit(req: AnyRequest, res: AnyResponse): boolean {
    const peer = req.socket?.remoteAddress ?? '';
    const xff = req.headers['x-forwarded-for'];
    let forwarded = '';
    if (xff !== undefined) {
      forwarded = normaliseForwardedFor(xff);
      if (forwarded) req.headers['x-forwarded-for'] = forwarded;
      else delete req.headers['x-forwarded-for'];
    }
    const max = this.opts.maxPendingPerAddress;
    if (max <= 0 || !peer) return true;
    const key = limitKey(clientSource(peer, forwarded, this.opts.isTrustedProxy));
    const e = this.entry(key);
    if (e.pending >= max) {
      this.noteRefused('streams', key);
      this.drop(key, e);
      this.refuse(req, res);
      return false;
    }
    e.pending++;
    let released = false;
    const release = () => {
      if (released) return;
      released = true;
      e.pending--;
      this.drop(key, e);
    };
    const stream = req.stream;
    if (stream) {
      // The answer starts with respond() (fastify's replies and the tunnel route's raw streams alike).
      // eslint-disable-next-line @typescript-eslint/unbound-method -- wrapped below and called with .apply(this)
      const respond = stream.respond;
      stream.respond = function (this: typeof stream, ...args: Parameters<typeof respond>) {
        release();
        return respond.apply(this, args);
      };
      stream.once('close', release);
    } else {
      res.once('close', release);
      res.once('finish', release);
    }
    return true;
  }

  /**
   * A stream of this h2 connection was answered for misbehaving (its body never came: 408). It counts
   * toward refusalsBeforeGoaway like a refused stream, so a connection that keeps its streams open
   * without bodies is closed after one round instead of being answered 128 streams at a time for ever.
   */
  strike(stream: Http2ServerRequest['stream'] | undefined): void {
    const session = stream?.session;
    if (session) this.countStrike(session);
  }

  private countStrike(session: Http2Session): void {
    const n = (this.refusedBySession.get(session) ?? 0) + 1;
    this.refusedBySession.set(session, n);
    if (n === this.opts.refusalsBeforeGoaway) {
      this.refused.sessionsClosed++;
      closeSession(session, this.socketOf.get(session));
    }
  }

  private refuse(req: AnyRequest, res: AnyResponse): void {
    const stream = req.stream;
    if (!stream) {
      const r = res as ServerResponse;
      r.writeHead(429, {
        'content-type': 'application/json; charset=utf-8',
        [HEADERS.errorCode]: 'RLY_ERR_SOURCE_LIMIT',
        connection: 'close',
        'retry-after': '1',
      });
      r.end(SOURCE_LIMIT_BODY);
      return;
    }
    try {
      stream.close(h2c.NGHTTP2_REFUSED_STREAM);
    } catch {
      // already gone
    }
    if (stream.session) this.countStrike(stream.session);
  }

  private noteRefused(kind: 'connections' | 'streams', key: string): void {
    this.refused[kind]++;
    this.opts.onRefused?.();
    if (this.refusedKeys.size < 1_000 || this.refusedKeys.has(key))
      this.refusedKeys.set(key, (this.refusedKeys.get(key) ?? 0) + 1);
    if (!this.reportTimer && this.opts.onRefusals) {
      this.reportTimer = setTimeout(() => this.report(), this.opts.reportEveryMs ?? 10_000);
      this.reportTimer.unref();
    }
  }

  private report(): void {
    this.reportTimer = null;
    let top = '';
    let most = 0;
    for (const [k, n] of this.refusedKeys)
      if (n > most) {
        most = n;
        top = k;
      }
    const r = { ...this.refused, top };
    this.refused = { connections: 0, streams: 0, sessionsClosed: 0 };
    this.refusedKeys.clear();
    this.opts.onRefusals?.(r);
  }

  close(): void {
    if (this.reportTimer) {
      clearTimeout(this.reportTimer);
      this.report();
    }
  }
}

/**
 * GOAWAY with ENHANCE_YOUR_CALM, then the session and socket go. The GOAWAY is sent first on its own:
 * destroying the session at once drops its open streams and the frame was lost with them. The socket
 * goes after a grace period (a peer that never reads cannot keep it).
 */
export function closeSession(session: Http2Session, socket: TLSSocket | undefined): void {
  try {
    session.goaway(h2c.NGHTTP2_ENHANCE_YOUR_CALM);
  } catch {
    // already closing
  }
  setTimeout(() => {
    try {
      session.destroy();
    } catch {
      // already gone
    }
  }, 200).unref();
  if (socket) {
    setTimeout(() => {
      try {
        socket.destroy();
      } catch {
        // already gone
      }
    }, 1_000).unref();
  }
}
