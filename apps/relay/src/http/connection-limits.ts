/**
 * Deadlines on the API side of the shared port, so that connections and streams that never start
 * anything do not pin memory and sockets:
 *
 *   TCP accept --TLS handshake > handshakeTimeoutMs--> dropped (server option handshakeTimeout)
 *   TLS up (h2) --no stream within handshakeTimeoutMs--> session destroyed
 *   TLS up (http/1.1) --no request within handshakeTimeoutMs--> socket destroyed
 *   stream open --no response headers within responseStartTimeoutMs--> stream reset (CANCEL)
 *
 * A session that has started (an idle SSH tunnel included) is never cut by these. Agent sockets (ALPN
 * mssh-agent/1) have their own handshake deadlines in tunnel/agent-link.ts.
 */
import {
  constants as h2c,
  type Http2SecureServer,
  type Http2ServerRequest,
  type ServerHttp2Session,
  type ServerHttp2Stream,
} from 'node:http2';
import type { TLSSocket } from 'node:tls';
import { AGENT_ALPN } from '@mssh/protocol';
import { DEFAULT_MAX_CONTROL_FRAMES_PER_SECOND } from './h2-flood-guard.js';

export interface ConnectionLimits {
  /** TLS handshake, then the first HTTP request on the connection (default 10 s). */
  handshakeTimeoutMs: number;
  /** From a stream's headers to the relay's answer headers (default 30 s). */
  responseStartTimeoutMs: number;
  /** Largest request header block, HTTP/2 and HTTP/1.1 (default 16 KiB). */
  maxHeaderBytes: number;
  /**
   * SETTINGS_MAX_CONCURRENT_STREAMS on API connections (default 128). A client multiplexes its tunnels
   * (one stream each) and API calls over one connection; agent links set their own on the agent side.
   */
  maxStreamsPerConnection: number;
  /** API connections per source address; twice as many may be in their TLS handshake (default 32, 0: off). */
  maxConnectionsPerAddress: number;
  /** Requests per client address not yet answered (default 128, 0: off). See source-limits.ts. */
  maxPendingPerAddress: number;
  /**
   * PING or SETTINGS frames a peer may send on one connection in one second; beyond, the connection is
   * closed with GOAWAY ENHANCE_YOUR_CALM (default 1000, 0: off). See h2-flood-guard.ts.
   */
  maxControlFramesPerSecond: number;
}

export const DEFAULT_CONNECTION_LIMITS: ConnectionLimits = {
  handshakeTimeoutMs: 10_000,
  responseStartTimeoutMs: 30_000,
  maxHeaderBytes: 16 * 1024,
  maxStreamsPerConnection: 128,
  maxConnectionsPerAddress: 32,
  maxPendingPerAddress: 128,
  maxControlFramesPerSecond: DEFAULT_MAX_CONTROL_FRAMES_PER_SECOND,
};

/**
 * Returns sessionOf(socket): the HTTP/2 session of an API socket, valid inside 'secureConnection'
 * listeners registered after this call.
 */
export function applyConnectionLimits(
  server: Http2SecureServer,
  limits: ConnectionLimits,
): (socket: TLSSocket) => ServerHttp2Session | null {
  // HTTP/1.1 fallback: node's HTTP/1 parser reads this property of the server.
  (server as unknown as { maxHeaderSize: number }).maxHeaderSize = limits.maxHeaderBytes;

  // node creates a socket's HTTP/2 session and emits 'session' synchronously inside its own
  // 'secureConnection' listener, which runs before ours below: that is how a raw socket finds its session.
  // The raw socket is what gets destroyed (session.destroy() only half-closes, and a peer that never
  // reads would keep it open).
  let justCreated: ServerHttp2Session | null = null;
  let current: { socket: TLSSocket; session: ServerHttp2Session | null } | null = null;
  server.on('session', (session: ServerHttp2Session) => {
    justCreated = session;
  });
  server.on('stream', (stream: ServerHttp2Stream) => {
    const timer = setTimeout(() => {
      if (!stream.destroyed && !stream.closed && !stream.headersSent) {
        try {
          stream.close(h2c.NGHTTP2_CANCEL);
        } catch {
          // already gone
        }
      }
    }, limits.responseStartTimeoutMs);
    timer.unref();
    stream.once('close', () => clearTimeout(timer));
  });

  const started = new WeakSet<object>();
  server.on('request', (req: Http2ServerRequest) => {
    if (req.httpVersionMajor === 1) started.add(req.socket);
  });
  server.on('secureConnection', (socket: TLSSocket) => {
    const created = justCreated;
    justCreated = null;
    if (socket.alpnProtocol === AGENT_ALPN) return;
    // The session's socket is a proxy of this one: same peer (a mismatch would mean node changed how it
    // emits 'session'; then h2 connections get no deadline rather than a wrong one).
    const session =
      created &&
      created.socket?.remotePort === socket.remotePort &&
      created.socket?.remoteAddress === socket.remoteAddress
        ? created
        : null;
    current = { socket, session };
    if (socket.alpnProtocol === 'h2' && !session) return;
    const timer = setTimeout(() => {
      if (!started.has(socket) && !socket.destroyed) socket.destroy();
    }, limits.handshakeTimeoutMs);
    timer.unref();
    socket.once('close', () => clearTimeout(timer));
    if (session) {
      session.once('stream', () => {
        started.add(socket);
        clearTimeout(timer);
      });
    }
  });
  return (socket) => (current && current.socket === socket ? current.session : null);
}
