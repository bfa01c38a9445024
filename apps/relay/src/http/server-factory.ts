/**
 * The relay's one listening port: an HTTP/2 secure server (with HTTP/1.1 fallback) for the API, whose TLS
 * sockets that negotiated ALPN `mssh-agent/1` go to the tunnel router instead (see shared DESIGN.md).
 *
 *   TLS accept --ALPN mssh-agent/1--> router.acceptAgentSocket(socket)   (agent links)
 *              --ALPN h2 / http/1.1--> fastify                          (API, tunnels)
 */
import http2, {
  type Http2SecureServer,
  type Http2ServerRequest,
  type Http2ServerResponse,
  type ServerHttp2Session,
} from 'node:http2';
import type { TLSSocket } from 'node:tls';
import { AGENT_ALPN, H2_SETTINGS } from '@mssh/protocol';
import { sizeWindowsToPath } from '@mssh/protocol/transport';
import { agentAlpnCallback, routeAgentSockets } from '../tunnel/alpn-dispatch.js';
import { applyConnectionLimits, DEFAULT_CONNECTION_LIMITS, type ConnectionLimits } from './connection-limits.js';
import { closeSession, SourceLimits, type RefusalReport } from './source-limits.js';
import { guardControlFrames, isNghttp2Flood, type FloodReport } from './h2-flood-guard.js';

export interface RelayHttpServer {
  server: Http2SecureServer;
  /** Per-address connection and request counts (source-limits.ts). */
  sourceLimits: SourceLimits;
  /** Ask every API connection to finish (GOAWAY), and destroy what is left after graceMs. */
  closeConnections(graceMs: number): Promise<void>;
  /**
   * The relay is draining (issue 19): send GOAWAY on every API connection now, and on each one opened
   * from now on once its first request has arrived (that request is answered). Running streams (tunnels)
   * go on; the client opens its next request on a new connection, which the balancer sends elsewhere.
   * Destroys nothing. Returns how many connections were open.
   */
  goawayAll(): number;
}

export function createRelayHttpServer(
  handler: (req: Http2ServerRequest, res: Http2ServerResponse) => void,
  opts: {
    key: string | Buffer;
    cert: string | Buffer;
    acceptAgentSocket: (socket: TLSSocket) => void;
    onSessionError?: (err: Error) => void;
    /**
     * A connection was closed for a PING/SETTINGS flood (h2-flood-guard.ts), by the guard or by nghttp2's
     * own flood protection; `peer` is the socket's address.
     */
    onFlood?: (r: FloodReport & { peer: string }) => void;
    /** Connection deadlines, header, stream and per-address caps (http/connection-limits.ts); defaults there. */
    limits?: Partial<ConnectionLimits>;
    /** Peers whose X-Forwarded-For is believed (their connections are not counted per address). */
    isTrustedProxy?: (address: string) => boolean;
    /** What the per-address limits refused lately (at most one call per 10 s). */
    onRefusals?: (r: RefusalReport) => void;
    /** Each connection or request the per-address limits refused (metrics). */
    onRefused?: () => void;
  },
): RelayHttpServer {
  const limits = { ...DEFAULT_CONNECTION_LIMITS, ...opts.limits };
  const sourceLimits = new SourceLimits({
    maxConnectionsPerAddress: limits.maxConnectionsPerAddress,
    maxPendingPerAddress: limits.maxPendingPerAddress,
    // A client with its streams refused this often is flooding (a real one waits for its answers); closing it
    // early spares the relay the work of creating and refusing its further streams (issue 16 item 3).
    refusalsBeforeGoaway: Math.max(16, Math.floor(limits.maxStreamsPerConnection / 4)),
    isTrustedProxy: opts.isTrustedProxy ?? (() => false),
    onRefusals: opts.onRefusals,
    onRefused: opts.onRefused,
  });
  const server = http2.createSecureServer(
    {
      key: opts.key,
      cert: opts.cert,
      allowHTTP1: true,
      // A TLS handshake that does not complete in time is dropped (a silent TCP connection included).
      handshakeTimeout: limits.handshakeTimeoutMs,
      // Agent links are not affected: there the agent is the HTTP/2 server and sets its own.
      settings: {
        ...H2_SETTINGS,
        maxHeaderListSize: limits.maxHeaderBytes,
        maxConcurrentStreams: limits.maxStreamsPerConnection,
      },
      // Many concurrent tunnels share one client session; nghttp2's default 10 MB would refuse streams.
      maxSessionMemory: 64,
      ALPNCallback: agentAlpnCallback,
    },
    (req, res) => {
      if (sourceLimits.admit(req, res)) handler(req, res);
    },
  );
  const sessions = new Set<ServerHttp2Session>();
  /** Sessions the flood guard closed: nghttp2's own flood error that may follow is not reported twice. */
  const flooded = new WeakSet<ServerHttp2Session>();
  const sockets = new Set<TLSSocket>();
  let goingAway = false;
  const goaway = (session: ServerHttp2Session) => {
    try {
      if (!session.closed && !session.destroyed) session.close();
    } catch {
      // already closing
    }
  };
  server.on('session', (session: ServerHttp2Session) => {
    sessions.add(session);
    // Draining: the first request on a new connection is answered (its stream id is within the GOAWAY's
    // last stream), any later one is refused (REFUSED_STREAM) and retried by the client elsewhere.
    if (goingAway) session.once('stream', () => goaway(session));
    session.once('close', () => sessions.delete(session));
    // Read now: the socket proxy throws once the session is destroyed.
    const peer = session.socket?.remoteAddress ?? '?';
    session.on('error', (err) => {
      // nghttp2 destroys a session whose peer sends PING/SETTINGS faster than it reads the answers.
      if (isNghttp2Flood(err)) {
        if (!flooded.has(session)) opts.onFlood?.({ kind: 'ack-flood', count: 0, limit: 0, peer });
      } else opts.onSessionError?.(err);
    });
    // Receive windows follow the client's bandwidth-delay product (libs/protocol window-sizing.ts).
    sizeWindowsToPath(session);
  });
  // Registered after createSecureServer's own listener, so it sees every API socket too.
  server.on('secureConnection', (socket: TLSSocket) => {
    if (socket.alpnProtocol === AGENT_ALPN) return;
    sockets.add(socket);
    socket.once('close', () => sockets.delete(socket));
  });
  routeAgentSockets(server, opts.acceptAgentSocket);
  const sessionOf = applyConnectionLimits(server, limits);
  sourceLimits.install(server, sessionOf);
  server.on('secureConnection', (socket: TLSSocket) => {
    const session = socket.alpnProtocol === 'h2' ? sessionOf(socket) : null;
    if (!session) return;
    guardControlFrames(session, limits.maxControlFramesPerSecond, (r) => {
      flooded.add(session);
      opts.onFlood?.({ ...r, peer: socket.remoteAddress ?? '?' });
      closeSession(session, socket);
    });
  });

  return {
    server,
    sourceLimits,
    goawayAll() {
      goingAway = true;
      for (const s of sessions) goaway(s);
      return sessions.size;
    },
    async closeConnections(graceMs: number) {
      for (const s of sessions) {
        try {
          s.close();
        } catch {
          // already closing
        }
      }
      const deadline = Date.now() + graceMs;
      for (let i = 0; i < 1000 && sockets.size > 0 && Date.now() < deadline; i++)
        await new Promise((r) => setTimeout(r, 25));
      for (const s of sessions) s.destroy();
      for (const s of sockets) s.destroy();
      sourceLimits.close();
    },
  };
}
