/**
 * The entry relay's side of the peer links: at most ONE HTTP/2 connection per peer relay, dialled on
 * demand at the address that relay's own `relays` row gives (never an address from a request), its
 * certificate pinned to the fingerprint of that row, ours presented as the client certificate. Session
 * streams are opened on it like the agent link's (tunnel/agent-link.ts openStream).
 */
import http2, { constants as h2c, type ClientHttp2Session, type ClientHttp2Stream } from 'node:http2';
import { connect as tlsConnect, type TLSSocket } from 'node:tls';
import { isIP } from 'node:net';
import type { Logger } from 'pino';
import { certFingerprint, H2_SETTINGS, HEADERS, WIRE_ERRORS, type WireErrorCode } from '@mssh/protocol';
import { readBody, sizeWindowsToPath } from '@mssh/protocol/transport';
import { relayError, type RelayError } from '../errors.js';
import type { PeerIdentity } from './peer-identity.js';
import { PEER_ALPN, PEER_ERROR_BODY_MAX, PEER_HEADERS, PEER_SESSION_PATH } from './peer-protocol.js';
import type { Holder } from './store.js';

export interface PeerLinksOptions {
  identity: PeerIdentity;
  relayId: string;
  logger: Logger;
  /** TCP + TLS to a peer (default 5 s). */
  connectTimeoutMs?: number;
  /** A peer's answer to a session open (default 10 s: it waits for its agent's answer). */
  openTimeoutMs?: number;
  /** PING on idle links; a link whose PING is not answered in time is dropped (default 10 s / 5 s). */
  pingIntervalMs?: number;
}

interface Link {
  key: string;
  session: Promise<ClientHttp2Session>;
  live: ClientHttp2Session | null;
}

export interface ForwardMeta {
  sessionId: string;
  user: string;
  host: string;
}

export class PeerLinks {
  private readonly links = new Map<string, Link>();
  private readonly log: Logger;
  private closed = false;
  private readonly pinger: NodeJS.Timeout;

  constructor(private readonly o: PeerLinksOptions) {
    this.log = o.logger.child({ component: 'relay.fleet.peer' });
    this.pinger = setInterval(() => this.pingAll(), o.pingIntervalMs ?? 10_000);
    this.pinger.unref();
  }

  /** Peer links open now (relay ids). */
  connected(): string[] {
    return [...this.links.entries()].filter(([, l]) => l.live && !l.live.destroyed).map(([id]) => id);
  }

  /**
   * Open a session stream on the holding relay. Resolves once it answered 200 (its agent's target
   * accepted); rejects with the holding relay's RelayError, or RLY_ERR_AGENT_OFFLINE when the peer
   * cannot be reached at all (the caller tries the next holder).
   */
  async open(h: Holder, meta: ForwardMeta): Promise<ClientHttp2Stream> {
    const session = await this.session(h);
    return new Promise((resolve, reject) => {
      let stream: ClientHttp2Stream;
      try {
        stream = session.request(
          {
            ':method': 'POST',
            ':path': PEER_SESSION_PATH,
            [HEADERS.sessionId]: meta.sessionId,
            [HEADERS.user]: meta.user,
            [PEER_HEADERS.host]: meta.host,
            [PEER_HEADERS.entry]: this.o.relayId,
          },
          { endStream: false },
        );
      } catch (err) {
        this.drop(h.relayId);
        reject(relayError('RLY_ERR_AGENT_OFFLINE', `relay ${h.relayId} holding ${meta.host} cannot be reached`, err));
        return;
      }
      let settled = false;
      const settle = (err: RelayError | null): void => {
        if (settled) return;
        settled = true;
        clearTimeout(timer);
        if (err) {
          if (!stream.destroyed) stream.close(h2c.NGHTTP2_CANCEL);
          reject(err);
        } else resolve(stream);
      };
      const timer = setTimeout(
        () =>
          settle(
            relayError(
              'RLY_ERR_AGENT_FAILED',
              `relay ${h.relayId} holding ${meta.host} did not answer within ${this.o.openTimeoutMs ?? 10_000} ms`,
            ),
          ),
        this.o.openTimeoutMs ?? 10_000,
      );
      timer.unref();
      stream.on('error', (err) => this.log.debug({ err: err.message, sessionId: meta.sessionId }, 'peer stream error'));
      let responded = false;
      stream.once('close', () => {
        if (!responded)
          settle(relayError('RLY_ERR_AGENT_OFFLINE', `relay ${h.relayId} holding ${meta.host} reset the session`));
      });
      stream.once('response', (headers) => {
        responded = true;
        const status = Number(headers[':status']);
        if (status === 200) {
          settle(null);
          return;
        }
        const raw = headers[HEADERS.errorCode];
        const code = typeof raw === 'string' ? raw : '';
        readBody(stream, PEER_ERROR_BODY_MAX, 5_000)
          .then((buf) => {
            let message = '';
            try {
              const m = (JSON.parse(buf.toString('utf8')) as { message?: unknown }).message;
              message = typeof m === 'string' ? m : '';
            } catch {
              /* no body */
            }
            settle(peerError(code, message, h.relayId));
          })
          .catch(() => settle(peerError(code, '', h.relayId)));
      });
    });
  }

  /** Close every link (shutdown): running forwarded sessions end with them. */
  close(): void {
    this.closed = true;
    clearInterval(this.pinger);
    for (const id of [...this.links.keys()]) this.drop(id);
  }

  private drop(relayId: string): void {
    const l = this.links.get(relayId);
    if (!l) return;
    this.links.delete(relayId);
    l.live?.destroy();
    l.session.then((s) => s.destroy()).catch(() => {});
  }

  private pingAll(): void {
    for (const [id, l] of this.links) {
      const s = l.live;
      if (!s || s.destroyed) continue;
      const t = setTimeout(() => {
        this.log.warn({ peer: id }, `peer link to ${id} does not answer PING; dropping it`);
        this.drop(id);
      }, 5_000);
      t.unref();
      try {
        s.ping(() => clearTimeout(t));
      } catch {
        clearTimeout(t);
        this.drop(id);
      }
    }
  }

  private session(h: Holder): Promise<ClientHttp2Session> {
    if (this.closed) return Promise.reject(relayError('RLY_ERR_AGENT_OFFLINE', 'the relay is shutting down'));
    const key = `${h.peerUrl} ${h.peerFingerprint}`;
    const cur = this.links.get(h.relayId);
    if (cur && cur.key === key && (!cur.live || (!cur.live.destroyed && !cur.live.closed))) return cur.session;
    if (cur) this.drop(h.relayId);
    const link: Link = { key, live: null, session: Promise.resolve(null as unknown as ClientHttp2Session) };
    link.session = this.dial(h).then(
      (s) => {
        link.live = s;
        s.once('close', () => {
          if (this.links.get(h.relayId) === link) this.links.delete(h.relayId);
        });
        return s;
      },
      (err: unknown) => {
        if (this.links.get(h.relayId) === link) this.links.delete(h.relayId);
        throw err;
      },
    );
    this.links.set(h.relayId, link);
    return link.session;
  }

  private dial(h: Holder): Promise<ClientHttp2Session> {
    let url: URL;
    try {
      url = new URL(h.peerUrl);
    } catch (err) {
      return Promise.reject(relayError('RLY_ERR_AGENT_OFFLINE', `relay ${h.relayId} has a malformed peer URL`, err));
    }
    const host = url.hostname.replace(/^\[(.*)\]$/, '$1');
    const port = Number(url.port || 443);
    const timeoutMs = this.o.connectTimeoutMs ?? 5_000;
    return new Promise((resolve, reject) => {
      const holder: { socket?: TLSSocket } = {};
      const fail = (why: string, err?: unknown): void => {
        clearTimeout(timer);
        holder.socket?.destroy();
        this.log.warn({ peer: h.relayId, url: h.peerUrl, why }, `cannot open a peer link to ${h.relayId}: ${why}`);
        reject(relayError('RLY_ERR_AGENT_OFFLINE', `relay ${h.relayId} cannot be reached (${why})`, err));
      };
      const timer = setTimeout(() => fail(`no TLS connection within ${timeoutMs} ms`), timeoutMs);
      timer.unref();
      const socket = tlsConnect({
        host,
        port,
        servername: isIP(host) === 0 ? host : undefined,
        key: this.o.identity.key,
        cert: this.o.identity.cert,
        ALPNProtocols: [PEER_ALPN],
        minVersion: 'TLSv1.3',
        // The peer's certificate is self-signed: it is checked below against the pin of its relays row.
        rejectUnauthorized: false,
      });
      holder.socket = socket;
      socket.once('error', (err) => fail(err.message, err));
      socket.once('secureConnect', () => {
        const raw = socket.getPeerCertificate()?.raw;
        const fp = raw ? certFingerprint(raw) : '';
        if (fp !== h.peerFingerprint) {
          fail(`its certificate ${fp || '(none)'} is not the one its relays row names (${h.peerFingerprint})`);
          return;
        }
        if (socket.alpnProtocol !== PEER_ALPN) {
          fail(`it does not speak ${PEER_ALPN}`);
          return;
        }
        clearTimeout(timer);
        socket.removeAllListeners('error');
        socket.on('error', (err) => this.log.debug({ peer: h.relayId, err: err.message }, 'peer socket error'));
        const session = http2.connect('https://peer.mssh.invalid', {
          createConnection: () => socket,
          settings: { ...H2_SETTINGS },
          maxSessionMemory: 64,
        });
        session.on('error', (err) => this.log.debug({ peer: h.relayId, err: err.message }, 'peer link error'));
        session.on('stream', (s) => s.close(h2c.NGHTTP2_REFUSED_STREAM));
        sizeWindowsToPath(session);
        session.once('close', () => this.log.info({ peer: h.relayId }, `peer link to ${h.relayId} closed`));
        this.log.info({ peer: h.relayId, url: h.peerUrl }, `peer link to ${h.relayId} open`);
        resolve(session);
      });
    });
  }
}

/** The holding relay's coded answer as our RelayError (its own code when it is one we know). */
function peerError(code: string, message: string, relayId: string): RelayError {
  if (code && code in WIRE_ERRORS)
    return relayError(code as WireErrorCode, message || `relay ${relayId} refused the session (${code})`);
  return relayError('RLY_ERR_AGENT_FAILED', message || `relay ${relayId} refused the session`);
}
