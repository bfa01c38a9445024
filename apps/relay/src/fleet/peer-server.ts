/**
 * The holding relay's side of the peer links: a TLS listener (--peer-listen, never the public port) that
 * asks every connection for a client certificate and keeps it only when a LIVE fleet member's `relays`
 * row names that certificate's fingerprint. On an accepted link, each POST /mssh/peer/session opens a
 * session stream to one of THIS relay's agent links (by name; nothing else can be named) and splices the
 * two. The entry relay has admitted and recorded the session: here only the per-agent cap applies.
 */
import http2, { type Http2Session, type IncomingHttpHeaders, type ServerHttp2Stream } from 'node:http2';
import { createServer as createTlsServer, type Server as TlsServer, type TLSSocket } from 'node:tls';
import type { AddressInfo } from 'node:net';
import type { Logger } from 'pino';
import { certFingerprint, H2_SETTINGS, HEADERS, isValidHostName } from '@mssh/protocol';
import { decoupleWrites, sizeWindowsToPath } from '@mssh/protocol/transport';
import { RelayError, relayError } from '../errors.js';
import type { TunnelRouter } from '../tunnel/types.js';
import type { PeerIdentity } from './peer-identity.js';
import { PEER_ALPN, PEER_HEADERS, PEER_SESSION_PATH } from './peer-protocol.js';

export interface PeerServerOptions {
  identity: PeerIdentity;
  /** The live member presenting this certificate fingerprint, or null (fleet/store.ts). */
  memberByFingerprint(fingerprint: string): Promise<string | null>;
  router: Pick<TunnelRouter, 'isOnline' | 'openSession' | 'spliceSession'>;
  logger: Logger;
  /** A connection must finish TLS and be found a member within this (default 10 s). */
  handshakeTimeoutMs?: number;
  /** Told about a refused peer connection (audit/log). */
  onRefused?(e: { source: string; fingerprint: string | null; why: string }): void;
}

export interface PeerServer {
  listen(host: string, port: number): Promise<{ host: string; port: number }>;
  /** Forwarded sessions carried now (this relay holds their agent). */
  carried(): number;
  /** Stop accepting; with `force`, also end the links (and their sessions). */
  close(force?: boolean): Promise<void>;
}

const USER_RE = /^[a-z0-9][a-z0-9._-]{0,63}$/i;
const UUID_RE = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

export function createPeerServer(opts: PeerServerOptions): PeerServer {
  const log = opts.logger.child({ component: 'relay.fleet.peer-server' });
  const sockets = new Set<TLSSocket>();
  let carried = 0;
  const h2 = http2.createServer({ settings: { ...H2_SETTINGS }, maxSessionMemory: 64 });
  /** The member id of each accepted link's HTTP/2 session ('session' is emitted inside emit('connection')). */
  const memberOf = new WeakMap<Http2Session, string>();
  let connecting: string | null = null;
  h2.on('session', (s) => {
    if (connecting) memberOf.set(s, connecting);
    sizeWindowsToPath(s);
  });
  h2.on('sessionError', (err: Error) => log.debug({ err: err.message }, 'peer link HTTP/2 error'));

  const tls: TlsServer = createTlsServer({
    key: opts.identity.key,
    cert: opts.identity.cert,
    ALPNProtocols: [PEER_ALPN],
    minVersion: 'TLSv1.3',
    requestCert: true,
    // Peer certificates are self-signed; membership is checked below against the relays table.
    rejectUnauthorized: false,
    handshakeTimeout: opts.handshakeTimeoutMs ?? 10_000,
  });
  tls.on('tlsClientError', (err) => log.debug({ err: err.message }, 'peer TLS handshake failed'));
  tls.on('secureConnection', (socket: TLSSocket) => {
    sockets.add(socket);
    socket.once('close', () => sockets.delete(socket));
    socket.on('error', (err) => log.debug({ err: err.message }, 'peer socket error'));
    const source = `${socket.remoteAddress ?? '?'}:${socket.remotePort ?? '?'}`;
    const refuse = (fingerprint: string | null, why: string): void => {
      log.warn({ source, fingerprint, why }, `refused a peer link from ${source}: ${why}`);
      try {
        opts.onRefused?.({ source, fingerprint, why });
      } catch {
        /* the observer's problem */
      }
      socket.destroy();
    };
    if (socket.alpnProtocol !== PEER_ALPN) return refuse(null, `it does not speak ${PEER_ALPN}`);
    const raw = socket.getPeerCertificate()?.raw;
    if (!raw) return refuse(null, 'it presented no client certificate');
    const fingerprint = certFingerprint(raw);
    socket.pause();
    const deadline = setTimeout(() => refuse(fingerprint, 'membership check timed out'), 10_000);
    deadline.unref();
    opts.memberByFingerprint(fingerprint).then(
      (member) => {
        clearTimeout(deadline);
        if (socket.destroyed) return;
        if (!member) return refuse(fingerprint, 'its certificate is not that of a live fleet member');
        log.info({ peer: member, source }, `peer link from ${member} accepted`);
        connecting = member;
        try {
          h2.emit('connection', decoupleWrites(socket));
        } finally {
          connecting = null;
        }
        socket.resume();
      },
      (err: unknown) => {
        clearTimeout(deadline);
        refuse(fingerprint, `membership could not be checked: ${(err as Error).message}`);
      },
    );
  });

  h2.on('stream', (stream: ServerHttp2Stream, headers: IncomingHttpHeaders) => {
    stream.on('error', (err) => log.debug({ err: err.message }, 'forwarded stream error'));
    const member = stream.session ? (memberOf.get(stream.session) ?? null) : null;
    handle(stream, headers, member).catch((err: unknown) => {
      log.error({ err }, 'forwarded session failed');
      answerError(stream, relayError('RLY_ERR_INTERNAL', undefined, err));
    });
  });

  async function handle(stream: ServerHttp2Stream, h: IncomingHttpHeaders, member: string | null): Promise<void> {
    if (h[':method'] !== 'POST' || h[':path'] !== PEER_SESSION_PATH) {
      answerError(stream, relayError('RLY_ERR_NOT_FOUND', 'no such peer route'));
      return;
    }
    const host = str(h[PEER_HEADERS.host]);
    const user = str(h[HEADERS.user]);
    const sessionId = str(h[HEADERS.sessionId]);
    const entry = str(h[PEER_HEADERS.entry]);
    if (!member || entry !== member) {
      answerError(stream, relayError('RLY_ERR_BAD_REQUEST', 'the entry relay named is not the peer of this link'));
      return;
    }
    if (!isValidHostName(host) || !USER_RE.test(user) || !UUID_RE.test(sessionId)) {
      answerError(stream, relayError('RLY_ERR_BAD_REQUEST', 'malformed forwarded session headers'));
      return;
    }
    if (!opts.router.isOnline(host)) {
      answerError(stream, relayError('RLY_ERR_AGENT_OFFLINE', `${host} is not connected to this relay`));
      return;
    }
    let agentStream;
    try {
      agentStream = await opts.router.openSession(host, { sessionId, user, caps: 'holding' });
    } catch (err) {
      answerError(stream, err instanceof RelayError ? err : relayError('RLY_ERR_INTERNAL', undefined, err));
      return;
    }
    if (stream.destroyed || stream.closed) {
      agentStream.close(http2.constants.NGHTTP2_CANCEL);
      return;
    }
    stream.respond({ ':status': 200 });
    carried++;
    try {
      await opts.router.spliceSession(stream, agentStream, {
        sessionId,
        user,
        host,
        source: `relay:${member}`,
        authAt: performance.now(),
      });
    } finally {
      carried--;
    }
  }

  return {
    listen(host: string, port: number) {
      return new Promise((resolve, reject) => {
        const onError = (err: Error) => reject(err);
        tls.once('error', onError);
        tls.listen(port, host, () => {
          tls.off('error', onError);
          tls.on('error', (err) => log.error({ err }, 'peer listener error'));
          const a = tls.address() as AddressInfo;
          resolve({ host: a.address, port: a.port });
        });
      });
    },
    carried: () => carried,
    async close(force = false) {
      await new Promise<void>((resolve) => {
        if (!tls.listening) return resolve();
        tls.close(() => resolve());
        if (force) for (const s of sockets) s.destroy();
      });
      if (force) for (const s of sockets) s.destroy();
    },
  };
}

function str(v: string | string[] | undefined): string {
  return typeof v === 'string' ? v : '';
}

function answerError(stream: ServerHttp2Stream, err: RelayError): void {
  if (stream.destroyed || stream.closed || stream.headersSent) {
    if (!stream.destroyed) stream.close(http2.constants.NGHTTP2_CANCEL);
    return;
  }
  stream.respond({ ':status': err.statusCode, [HEADERS.errorCode]: err.code, 'content-type': 'application/json' });
  stream.end(JSON.stringify({ code: err.code, message: err.message }));
}
