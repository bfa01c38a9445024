/**
 * One HTTP/2-over-TLS session to the relay, with the relay's certificate pinned.
 *
 * The certificate is checked in 'secureConnect', BEFORE the HTTP/2 session exists, so no byte of the
 * user's token (or anything else) reaches a server whose certificate is not the pinned one:
 *   - pinned fingerprint (given or stored) must match SHA256(DER of the leaf certificate);
 *   - a stored pin that no longer matches is accepted only when the new certificate is valid for the
 *     relay's name under the system CAs (a renewed public certificate); the caller then updates the pin;
 *   - no pin at all: first use; the caller decides whether that is allowed (only `mssh login`).
 * A self-signed relay certificate never reaches checkServerIdentity, so we connect with
 * rejectUnauthorized: false and make the decision ourselves; `socket.authorized` still says whether the
 * chain and name verified against the CAs.
 *
 * The CA store is only consulted when it can change the outcome: first use (no pin), and a stored pin
 * that no longer matches (then the handshake is made again, with the CAs). A connection whose pin
 * matches, which is every command after login, never builds the store: that took ~30 ms of every `mssh`
 * command's start-up (bench/README.md, finding 11).
 */
import http2 from 'node:http2';
import tls from 'node:tls';
import { isIP } from 'node:net';
import { X509Certificate } from 'node:crypto';
import { certFingerprint, H2_SETTINGS, publicKeyPin } from '@mssh/protocol';
import { decoupleWrites, sizeWindowsToPath } from '@mssh/protocol/transport';
import { cliError, type CliError } from '../errors.js';
import { relayHostPort } from '../config/relay-url.js';
import { markRetryable, retryReason, RETRYABLE_CONNECT_CODES } from './retry.js';

export interface RelayTrust {
  /** Fingerprint the relay must present, or null for first use. */
  pin: string | null;
  /** The pin was given on this command line: a CA-valid certificate does not override it. */
  explicit: boolean;
}

export interface ConnectRelayOptions {
  /** Normalised relay URL, `https://host:port`. */
  url: string;
  trust: RelayTrust;
  /** Limit for the relay to accept the TCP connection ("unreachable" after it). Default 10 s. */
  timeoutMs?: number;
  /**
   * Limit for the TLS handshake once the relay accepted the connection. Default 30 s (as long as an API
   * answer may take): a relay that accepted is reachable, and when 200 OpenSSH connections start at once on
   * two cores (each starting a `mssh proxy`), the handshakes wait their turn for CPU on both sides; they
   * were cut at 10 s and reported as an unreachable relay (issue 21, item 4).
   */
  handshakeTimeoutMs?: number;
  /** Extra CA certificates to trust (besides the system ones). */
  ca?: string | Buffer | Array<string | Buffer>;
  /** PING the relay this often and drop the session if a PING is not answered within the same time. 0 = off. */
  keepaliveMs?: number;
}

export interface RelayConnection {
  url: string;
  session: http2.ClientHttp2Session;
  /** Fingerprint of the certificate the relay presented (equal to the pin, unless `pinReplaced`). */
  fingerprint: string;
  /** sha256//... of that certificate's public key (curl --pinnedpubkey, for the one-line agent install). */
  publicKeyPin: string;
  /**
   * The certificate chain and name verified against the trusted CAs. Only checked when it matters (no pin,
   * or a stored pin that did not match); false for a connection whose pin matched.
   */
  caTrusted: boolean;
  /** No pin was given: the fingerprint was trusted on first use (only when not caTrusted). */
  firstUse: boolean;
  /** A stored pin did not match but the new certificate is CA-valid: the caller should store `fingerprint`. */
  pinReplaced: boolean;
  /** Close gracefully (waits for open streams) and resolve when the socket is gone. */
  close(): Promise<void>;
}

const NET_REASONS: Record<string, string> = {
  ECONNREFUSED: 'connection refused',
  ECONNRESET: 'connection reset',
  ENOTFOUND: 'unknown host name',
  EAI_AGAIN: 'name lookup failed',
  ETIMEDOUT: 'timed out',
  EHOSTUNREACH: 'host unreachable',
  ENETUNREACH: 'network unreachable',
  EADDRNOTAVAIL: 'address not available',
  EPIPE: 'connection closed',
};

function networkError(url: string, e: NodeJS.ErrnoException): CliError {
  const code = e.code ?? '';
  if (code in NET_REASONS) {
    const err = cliError(
      'CLI_ERR_RELAY_UNREACHABLE',
      `cannot reach the relay at ${url} (${NET_REASONS[code]})`,
      'Check the URL and your network, and that `mssh-relay serve` is running there.',
      e,
    );
    // A relay that stopped or restarts: another one behind the same address may take a new connection.
    return RETRYABLE_CONNECT_CODES.has(code) ? markRetryable(err, NET_REASONS[code]!) : err;
  }
  return cliError(
    'CLI_ERR_RELAY_TLS',
    `TLS handshake with ${url} failed (${code || e.message})`,
    'Check that the URL points at an mssh relay (https://HOST:PORT of `mssh-relay serve`).',
    e,
  );
}

export function certMismatch(url: string, pinned: string, presented: string, explicit: boolean): CliError {
  return cliError(
    'CLI_ERR_RELAY_CERT_MISMATCH',
    `the relay at ${url} presented certificate ${presented}, but ${explicit ? 'you asked for' : 'the pinned one is'} ${pinned}; nothing was sent`,
    explicit
      ? 'Check the fingerprint with `mssh-relay info` on the relay.'
      : `If the relay's certificate was replaced on purpose, check the new fingerprint with \`mssh-relay info\` there and run \`mssh login --relay ${url} --user NAME --relay-fingerprint SHA256:...\`.`,
  );
}

/** TCP connect limit when the caller gives none. */
export const DEFAULT_CONNECT_TIMEOUT_MS = 10_000;
/** TLS handshake limit, once TCP is connected, when the caller gives none. */
export const DEFAULT_HANDSHAKE_TIMEOUT_MS = 30_000;

export function connectRelay(opts: ConnectRelayOptions): Promise<RelayConnection> {
  return connectOnce(opts, opts.trust.pin === null);
}

/**
 * connect(opts), and once more when the first attempt was refused or reset (retry.ts: a relay that is
 * stopping, another one behind the same address), telling onRetry. The second attempt's failure is the one
 * reported.
 */
export async function connectWithRetry(
  connect: (opts: ConnectRelayOptions) => Promise<RelayConnection>,
  opts: ConnectRelayOptions,
  onRetry?: (line: string) => void,
): Promise<RelayConnection> {
  const started = Date.now();
  try {
    return await connect(opts);
  } catch (e) {
    const why = retryReason(e);
    // Both attempts share the one connect time limit.
    const left = (opts.timeoutMs ?? DEFAULT_CONNECT_TIMEOUT_MS) - (Date.now() - started);
    if (!why || left <= 0) throw e;
    onRetry?.(`connecting to ${opts.url}: ${why}; trying once more on a new connection`);
    return connect({ ...opts, timeoutMs: left });
  }
}

/** One handshake; `withCAs`: load the system CAs (and `opts.ca`) so that `socket.authorized` means something. */
function connectOnce(opts: ConnectRelayOptions, withCAs: boolean): Promise<RelayConnection> {
  const { url, trust } = opts;
  const { host, port } = relayHostPort(url);
  const timeoutMs = opts.timeoutMs ?? DEFAULT_CONNECT_TIMEOUT_MS;
  return new Promise<RelayConnection>((resolve, reject) => {
    const socket = tls.connect({
      host,
      port,
      servername: isIP(host) ? undefined : host,
      ALPNProtocols: ['h2'],
      rejectUnauthorized: false,
      // An empty list: no CA store is built (the pin decides); undefined: Node's default store.
      ca: !withCAs
        ? []
        : opts.ca
          ? [...tls.rootCertificates, ...(Array.isArray(opts.ca) ? opts.ca : [opts.ca])]
          : undefined,
    });
    let settled = false;
    /** Give this handshake up (false if it was already settled). */
    const abandon = (): boolean => {
      if (settled) return false;
      settled = true;
      clearTimeout(timer);
      socket.destroy();
      return true;
    };
    const fail = (err: CliError) => {
      if (abandon()) reject(err);
    };
    let timer = setTimeout(() => {
      fail(
        cliError(
          'CLI_ERR_RELAY_UNREACHABLE',
          `cannot reach the relay at ${url} (no answer within ${Math.round(timeoutMs / 1000)} s)`,
          'Check the URL and your network, and that `mssh-relay serve` is running there.',
        ),
      );
    }, timeoutMs);
    // TCP is up: the relay is reachable; its TLS handshake gets a limit of its own.
    const handshakeMs = opts.handshakeTimeoutMs ?? Math.max(timeoutMs, DEFAULT_HANDSHAKE_TIMEOUT_MS);
    socket.once('connect', () => {
      if (settled) return;
      clearTimeout(timer);
      timer = setTimeout(() => {
        fail(
          cliError(
            'CLI_ERR_RELAY_UNREACHABLE',
            `the relay at ${url} accepted the connection but did not finish the TLS handshake within ${Math.round(handshakeMs / 1000)} s`,
            'The relay (or this machine) may be overloaded: try again; check the relay with `mssh-relay` there.',
          ),
        );
      }, handshakeMs);
    });
    const onError = (e: NodeJS.ErrnoException) => fail(networkError(url, e));
    socket.on('error', onError);
    const onEarlyClose = () =>
      fail(
        // What a TCP balancer does when the relay it picked refuses (e.g. it stopped): worth a new connection.
        markRetryable(
          cliError(
            'CLI_ERR_RELAY_TLS',
            `the relay at ${url} closed the connection during the TLS handshake`,
            'Check that the URL points at an mssh relay.',
          ),
          'the connection was closed during the TLS handshake',
        ),
      );
    socket.once('close', onEarlyClose);
    socket.once('secureConnect', () => {
      if (settled) return;
      const cert = socket.getPeerCertificate();
      if (!cert || !cert.raw)
        return fail(
          cliError(
            'CLI_ERR_RELAY_TLS',
            `the relay at ${url} presented no certificate`,
            'Check that the URL points at an mssh relay.',
          ),
        );
      const fingerprint = certFingerprint(cert.raw);
      const caTrusted = socket.authorized === true;
      let pinReplaced = false;
      if (trust.pin !== null && fingerprint !== trust.pin) {
        if (!trust.explicit && !withCAs) {
          // Only a CA-valid certificate may replace a stored pin: ask again, this time with the CAs.
          if (abandon()) resolve(connectOnce(opts, true));
          return;
        }
        if (trust.explicit || !caTrusted) return fail(certMismatch(url, trust.pin, fingerprint, trust.explicit));
        pinReplaced = true;
      }
      if (socket.alpnProtocol !== 'h2') {
        return fail(
          cliError(
            'CLI_ERR_RELAY_TLS',
            `the server at ${url} does not speak HTTP/2`,
            'Check that the URL points at an mssh relay (`mssh-relay serve`).',
          ),
        );
      }
      settled = true;
      clearTimeout(timer);
      socket.removeListener('error', onError);
      socket.removeListener('close', onEarlyClose);
      socket.setKeepAlive(true, 15_000);
      // Both ends of this link are Node: keep reading while our writes wait (libs/protocol decoupled-socket.ts),
      // or a session saturated in both directions can freeze the link.
      const session = http2.connect(url, {
        createConnection: () => decoupleWrites(socket),
        settings: { ...H2_SETTINGS },
        // Like the relay's and the agent's ends: queued frames of up to 16 MiB windows count against this (MB).
        maxSessionMemory: 64,
      });
      // Errors surface on the streams that use the session; keep the process alive through them.
      session.on('error', () => {});
      // Receive windows follow the path's bandwidth-delay product (libs/protocol window-sizing.ts).
      sizeWindowsToPath(session);
      if (opts.keepaliveMs && opts.keepaliveMs > 0) startKeepalive(session, opts.keepaliveMs);
      const closed = new Promise<void>((res) => session.once('close', () => res()));
      resolve({
        url,
        session,
        fingerprint,
        publicKeyPin: publicKeyPin(new X509Certificate(cert.raw).publicKey.export({ type: 'spki', format: 'der' })),
        caTrusted,
        firstUse: trust.pin === null && !caTrusted,
        pinReplaced,
        close: async () => {
          if (!session.closed) session.close();
          const t = setTimeout(() => session.destroy(), 2_000);
          await closed;
          clearTimeout(t);
        },
      });
    });
  });
}

/**
 * HTTP/2 PING watchdog: a link that froze (or a relay that vanished without a FIN) is torn down instead of
 * hanging the user's session forever. Timers are unref'd and stop with the session.
 */
function startKeepalive(session: http2.ClientHttp2Session, everyMs: number): void {
  let waiting = false;
  let deadline: NodeJS.Timeout | undefined;
  const interval = setInterval(() => {
    if (waiting || session.closed || session.destroyed) return;
    waiting = true;
    // Judged after this loop turn's I/O (setImmediate): a process starved of CPU for longer than the limit
    // runs its timers before it reads the answer already waiting in the socket.
    deadline = setTimeout(
      () =>
        setImmediate(() => {
          if (waiting) session.destroy(new Error('the relay stopped answering (PING timeout)'));
        }),
      everyMs,
    );
    deadline.unref();
    try {
      session.ping((err) => {
        waiting = false;
        clearTimeout(deadline);
        if (err && !session.destroyed) session.destroy(err);
      });
    } catch {
      waiting = false;
      clearTimeout(deadline);
    }
  }, everyMs);
  interval.unref();
  session.once('close', () => {
    clearInterval(interval);
    clearTimeout(deadline);
  });
}
