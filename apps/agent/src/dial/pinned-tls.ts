/**
 * TLS to the relay with its certificate pinned by SHA-256 fingerprint (the relay's certificate is
 * usually self-signed, so CA validation cannot work and `checkServerIdentity` is never called).
 *
 *   tls.connect({ rejectUnauthorized: false, ALPNProtocols, servername })
 *     -> 'secureConnect': sha256(getPeerCertificate().raw) === pin ?  else destroy, no byte sent
 *     -> only then hand the socket to HTTP/2: http2.connect(url, { createConnection: () => socket })
 *
 * The same idea works for any client of the relay (the `mssh` client can copy this file, together with
 * libs/protocol decoupled-socket.ts, which any Node HTTP/2 client of the relay should put between socket and session).
 */
import http2, { type ClientHttp2Session } from 'node:http2';
import tls, { type TLSSocket } from 'node:tls';
import { certFingerprint, H2_SETTINGS } from '@mssh/protocol';
import { AgentError, errnoOf } from '../errors.js';
import { decoupleWrites, sizeWindowsToPath } from '@mssh/protocol/transport';
import { formatHostPort, serverNameFor, urlHostPort, type HostPort } from './endpoint.js';

export const DEFAULT_TLS_TIMEOUT_MS = 10_000;

/**
 * Canonical form of a certificate fingerprint: "SHA256:<base64, no padding>". Accepts that form (with
 * or without padding, any case of the prefix) and hex (with or without colons). Null when malformed.
 */
export function normalizeFingerprint(input: string): string | null {
  const s = input.trim();
  const b64 = s.match(/^sha256:([A-Za-z0-9+/]{43})=?$/i);
  if (b64) return `SHA256:${b64[1]}`;
  const hex = s.replace(/^sha256:/i, '').replace(/:/g, '');
  if (/^[0-9a-fA-F]{64}$/.test(hex)) return 'SHA256:' + Buffer.from(hex, 'hex').toString('base64').replace(/=+$/, '');
  return null;
}

export interface PinnedConnectOptions extends HostPort {
  /**
   * The address to dial, when `host` is a name resolved beforehand (one of its addresses); `host` stays
   * the TLS server name (SNI). Default: `host` itself.
   */
  address?: string;
  /** ALPN protocols to offer. */
  alpn: string[];
  /** Pinned fingerprint (canonical form); null = trust on first use (the caller prints what it got). */
  fingerprint: string | null;
  timeoutMs?: number;
  /** Abort the attempt (agent shutting down). */
  signal?: AbortSignal;
}

export interface PinnedSocket {
  socket: TLSSocket;
  /** The fingerprint the relay presented (equal to the pin when one was given). */
  fingerprint: string;
}

function connectError(err: Error, where: string): AgentError {
  const code = errnoOf(err);
  if (code === 'ERR_SSL_TLSV1_ALERT_NO_APPLICATION_PROTOCOL') {
    return new AgentError(
      'AGT_ERR_RELAY_NO_AGENT_ALPN',
      `the relay at ${where} refused the offered protocol (no matching ALPN); check the relay address and version`,
      { cause: err },
    );
  }
  const detail = code ?? err.message;
  return new AgentError('AGT_ERR_RELAY_UNREACHABLE', `cannot reach the relay at ${where} (${detail})`, { cause: err });
}

/** "host:port", and the address dialled when it is not the host itself: "relay.example:8443 (10.0.0.2)". */
export function describeDial(d: HostPort & { address?: string }): string {
  const hp = formatHostPort(d);
  return d.address && d.address !== d.host ? `${hp} (${d.address})` : hp;
}

/** Open a TLS connection and verify the pin before anything is written on it. */
export function connectPinned(opts: PinnedConnectOptions): Promise<PinnedSocket> {
  const where = describeDial(opts);
  const timeoutMs = opts.timeoutMs ?? DEFAULT_TLS_TIMEOUT_MS;
  return new Promise((resolve, reject) => {
    let settled = false;
    const socket = tls.connect({
      host: opts.address ?? opts.host,
      port: opts.port,
      servername: serverNameFor(opts.host),
      ALPNProtocols: opts.alpn,
      rejectUnauthorized: false,
      minVersion: 'TLSv1.2',
    });
    // Interactive traffic: no Nagle delay (it interacts badly with delayed ACKs).
    socket.setNoDelay(true);
    const fail = (e: AgentError): void => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      opts.signal?.removeEventListener('abort', onAbort);
      socket.destroy();
      reject(e);
    };
    const timer = setTimeout(
      () =>
        fail(
          new AgentError(
            'AGT_ERR_RELAY_UNREACHABLE',
            `cannot reach the relay at ${where} (no TLS handshake within ${timeoutMs} ms)`,
          ),
        ),
      timeoutMs,
    );
    timer.unref();
    const onAbort = (): void =>
      fail(new AgentError('AGT_ERR_RELAY_UNREACHABLE', `connection to the relay at ${where} abandoned`));
    if (opts.signal?.aborted) queueMicrotask(onAbort);
    else opts.signal?.addEventListener('abort', onAbort, { once: true });
    socket.on('error', (err) => fail(connectError(err, where)));
    const onEarlyClose = (): void =>
      fail(
        new AgentError(
          'AGT_ERR_RELAY_UNREACHABLE',
          `the relay at ${where} closed the connection during the TLS handshake`,
        ),
      );
    socket.once('close', onEarlyClose);
    socket.once('secureConnect', () => {
      if (settled) return;
      const cert = socket.getPeerCertificate();
      if (!cert || !cert.raw) {
        fail(new AgentError('AGT_ERR_RELAY_BAD_ANSWER', `the relay at ${where} presented no certificate`));
        return;
      }
      const fingerprint = certFingerprint(cert.raw);
      if (opts.fingerprint !== null && fingerprint !== opts.fingerprint) {
        fail(
          new AgentError(
            'AGT_ERR_RELAY_FINGERPRINT_MISMATCH',
            `the relay at ${where} presented certificate ${fingerprint}, but ${opts.fingerprint} is pinned; ` +
              'if the relay certificate was replaced on purpose, enrol again with the new --relay-fingerprint',
          ),
        );
        return;
      }
      settled = true;
      clearTimeout(timer);
      opts.signal?.removeEventListener('abort', onAbort);
      socket.off('close', onEarlyClose);
      resolve({ socket, fingerprint });
    });
  });
}

/** An HTTP/2 session (h2 ALPN) to a relay URL over a pinned TLS connection. */
export async function http2ConnectPinned(
  url: URL,
  fingerprint: string | null,
  timeoutMs = DEFAULT_TLS_TIMEOUT_MS,
): Promise<{ session: ClientHttp2Session; fingerprint: string }> {
  const hp = urlHostPort(url);
  const { socket, fingerprint: got } = await connectPinned({ ...hp, alpn: ['h2'], fingerprint, timeoutMs });
  if (socket.alpnProtocol !== 'h2') {
    socket.destroy();
    throw new AgentError(
      'AGT_ERR_RELAY_BAD_ANSWER',
      `the server at ${formatHostPort(hp)} does not speak HTTP/2; is it an mssh relay?`,
    );
  }
  // A write-decoupled view of the socket keeps the session reading while its writes wait (see
  // decoupled-socket.ts): Node-to-Node HTTP/2 links can otherwise freeze under load in both directions.
  const session = http2.connect(url.origin, {
    createConnection: () => decoupleWrites(socket),
    settings: { ...H2_SETTINGS },
    // Like the relay's and the agent's ends: queued frames of up to 16 MiB windows count against this (MB).
    maxSessionMemory: 64,
  });
  session.on('error', () => {
    /* surfaced through the requests made on it */
  });
  sizeWindowsToPath(session);
  return { session, fingerprint: got };
}
