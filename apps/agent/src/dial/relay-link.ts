/**
 * One connection of the agent to its relay. The agent dials TLS (ALPN mssh-agent/1, relay certificate
 * pinned) and then acts as the HTTP/2 SERVER on that socket; the relay is the HTTP/2 client and opens
 * the streams:
 *
 *   POST /mssh/hello    -> 200 AgentHello (Ed25519 signature over this TLS connection's keying material)
 *   POST /mssh/welcome  -> 204 (body: the relay's verdict and id; refusals are logged, permanent ones end the
 *                          agent); 409 declines a relay another link of this agent already holds
 *   GOAWAY (no error)   -> the relay asks the agent to move (onMove); running sessions go on here
 *   POST /mssh/session  -> connect the configured target; 200 and splice, or 502 AGT_ERR_TARGET_UNREACHABLE
 *
 *   client --> relay ==(this one TLS connection, many HTTP/2 streams)==> agent --> target sshd
 *
 * Named for the side it talks to: the relay's end of the same connection is `AgentLink`
 * (apps/relay/src/tunnel/agent-link.ts).
 */
import { platform, release } from 'node:os';
import http2, {
  type Http2Server,
  type IncomingHttpHeaders,
  type ServerHttp2Session,
  type ServerHttp2Stream,
} from 'node:http2';
import type { TLSSocket } from 'node:tls';
import type pino from 'pino';
import {
  AGENT_ALPN,
  AGENT_PING_INTERVAL_MS,
  AGENT_PING_TIMEOUT_MS,
  isPingCancel,
  AGENT_PROOF_EKM_LABEL,
  AGENT_PROOF_EKM_LENGTH,
  AgentWelcome,
  H2_SETTINGS,
  HEADERS,
  PATHS,
  PROTOCOL_VERSION,
  SOFTWARE_VERSION,
  SshPublicKey,
  WIRE_ERRORS,
  sanitizeForTerminal,
  type AgentHello,
} from '@mssh/protocol';
import { AgentError, errnoOf } from '../errors.js';
import type { AgentIdentity } from '../enroll/identity.js';
import type { SessionTarget } from '../target/session-target.js';
import { splice, sizeWindowsToPath } from '@mssh/protocol/transport';
import type { HostPort } from './endpoint.js';
import { decoupleWrites } from '@mssh/protocol/transport';
import { connectPinned, DEFAULT_TLS_TIMEOUT_MS, describeDial } from './pinned-tls.js';
import { readBody } from '@mssh/protocol/transport';

export interface RelayLinkOptions {
  /** Where to dial (the relay's agent endpoint); its host is the TLS server name. */
  endpoint: HostPort;
  /** The address to dial when endpoint.host is a name resolved beforehand (default: endpoint.host). */
  address?: string;
  /** Pinned relay certificate fingerprint, "SHA256:...". */
  relayFingerprint: string;
  /** The name this agent is enrolled under. */
  name: string;
  identity: AgentIdentity;
  target: SessionTarget;
  logger: pino.Logger;
  pingIntervalMs?: number;
  pingTimeoutMs?: number;
  connectTimeoutMs?: number;
  /** From TLS up to the relay's welcome (default 30 s). */
  welcomeTimeoutMs?: number;
  /** Called once the relay welcomed this link (and acceptRelay, if given, took it). */
  onWelcomed?: () => void;
  /**
   * Asked when a relay welcomes this link, with the relay's id (null from a relay that sends none):
   * false declines the link (the agent answers the welcome 409, the relay drops this link, and the run
   * ends `duplicate`). An agent holding several links uses it to keep them on different relays.
   */
  acceptRelay?: (relayId: string | null) => boolean;
  /**
   * The relay asked this welcomed link to move (HTTP/2 GOAWAY with NGHTTP2_NO_ERROR): it opens no new
   * session here. The link keeps serving its running sessions and ends (run() resolves) after the last.
   */
  onMove?: () => void;
  /**
   * The target's host keys for a rescan the relay asks for (POST /mssh/host-keys), rate-limited by the
   * caller (HostKeyRescanner). Without it the agent answers 404, as agents before it did.
   */
  rescanHostKeys?: () => Promise<string[]>;
  /** Sessions and their bytes for the metrics endpoint (metrics/agent-metrics.ts). Absent: not counted. */
  sessionMetrics?: LinkSessionMetrics;
}

/**
 * What a link tells the agent's metrics, once per session (never per chunk: the splice updates the
 * counters object it is given, and the metrics read it when scraped). Must not throw.
 */
export interface LinkSessionMetrics {
  /** A session was spliced to the target: the live byte counters its splice is to update. */
  sessionOpened(): { bytesAtoB: number; bytesBtoA: number };
  /** That session ended (its counters hold its final bytes). */
  sessionClosed(counters: { bytesAtoB: number; bytesBtoA: number }): void;
  /** A session the relay asked for could not be opened: the agent's error code (AGT_ERR_TARGET_UNREACHABLE). */
  sessionFailed(code: string): void;
}

export type LinkOutcome =
  /** No link came up: TCP, TLS, pin or ALPN failed. `refused`: nothing listens there (relay restarting). */
  | { kind: 'failed'; error: AgentError; refused: boolean }
  /** The relay refused this agent in its welcome. */
  | { kind: 'refused'; code: string; message: string; permanent: boolean }
  /** The link ended (after or before the welcome). `moved`: the relay had asked it to move (GOAWAY). */
  | { kind: 'closed'; reason: string; welcomed: boolean; moved?: boolean }
  /** A relay welcomed this link, and acceptRelay declined it: another link holds that relay. */
  | { kind: 'duplicate'; relayId: string | null };

const DEFAULT_WELCOME_TIMEOUT_MS = 30_000;
const CONTROL_BODY_MAX_BYTES = 16 * 1024;
const CONTROL_BODY_TIMEOUT_MS = 10_000;

function headerString(h: IncomingHttpHeaders, name: string, max: number): string {
  const v = h[name];
  const s = typeof v === 'string' ? v : '';
  return sanitizeForTerminal(s).slice(0, max);
}

export class RelayLink {
  private readonly o: RelayLinkOptions;
  private readonly log: pino.Logger;
  private readonly abort = new AbortController();
  private socket: TLSSocket | null = null;
  private session: ServerHttp2Session | null = null;
  private server: Http2Server | null = null;
  private ekm: Buffer | null = null;
  private welcomed = false;
  private relay: string | null = null;
  private declined = false;
  private moveAsked = false;
  private stopping = false;
  private refusal: { code: string; message: string; permanent: boolean } | null = null;
  private closeReason: string | null = null;
  private sessions = 0;
  private pingTimer: NodeJS.Timeout | null = null;
  private pingDeadline: NodeJS.Timeout | null = null;
  private welcomeTimer: NodeJS.Timeout | null = null;
  private closedResolve: (() => void) | null = null;
  private readonly closed = new Promise<void>((resolve) => (this.closedResolve = resolve));

  constructor(opts: RelayLinkOptions) {
    this.o = opts;
    this.log = opts.logger;
  }

  /** The TLS socket to the relay, once dialled (tests kill it to simulate a dead link). */
  get tlsSocket(): TLSSocket | null {
    return this.socket;
  }

  get isWelcomed(): boolean {
    return this.welcomed;
  }

  /** The welcoming relay's id, once welcomed (null before, or from a relay that sends none). */
  get relayId(): string | null {
    return this.relay;
  }

  /** The relay asked this link to move (GOAWAY without error after the welcome). */
  get moved(): boolean {
    return this.moveAsked;
  }

  /** Where this link dials, for logs: "host:port", plus " (address)" when the host is a name. */
  get where(): string {
    return describeDial({ ...this.o.endpoint, address: this.o.address });
  }

  activeSessions(): number {
    return this.sessions;
  }

  /** Dial, serve until the link ends, and say how it ended. Never rejects. */
  async run(): Promise<LinkOutcome> {
    try {
      return await this.runInner();
    } finally {
      this.stopTimers();
      this.closedResolve?.();
    }
  }

  private async runInner(): Promise<LinkOutcome> {
    const where = this.where;
    let socket: TLSSocket;
    try {
      ({ socket } = await connectPinned({
        ...this.o.endpoint,
        address: this.o.address,
        alpn: [AGENT_ALPN],
        fingerprint: this.o.relayFingerprint,
        timeoutMs: this.o.connectTimeoutMs ?? DEFAULT_TLS_TIMEOUT_MS,
        signal: this.abort.signal,
      }));
    } catch (err) {
      const e =
        err instanceof AgentError
          ? err
          : new AgentError(
              'AGT_ERR_RELAY_UNREACHABLE',
              `cannot reach the relay at ${where} (${(err as Error).message})`,
              { cause: err },
            );
      return { kind: 'failed', error: e, refused: errnoOf(e) === 'ECONNREFUSED' };
    }
    this.socket = socket;
    socket.on('error', (err) => this.log.debug({ err: err.message }, 'relay socket error'));
    // TCP keep-alive: the only liveness check left on a link the relay asked to move (no PING then).
    socket.setKeepAlive(true, 15_000);
    if (this.stopping) {
      socket.destroy();
      return { kind: 'closed', reason: 'agent shutting down', welcomed: false };
    }
    if (socket.alpnProtocol !== AGENT_ALPN) {
      socket.destroy();
      const offered = socket.alpnProtocol || 'no ALPN';
      return {
        kind: 'failed',
        refused: false,
        error: new AgentError(
          'AGT_ERR_RELAY_NO_AGENT_ALPN',
          `the relay at ${where} does not accept agents on that port (it chose ${offered}, not ${AGENT_ALPN}); check the relay address or upgrade the relay`,
        ),
      };
    }
    try {
      // No context argument (Node's typings want one; undefined means "none", as on the relay side).
      this.ekm = socket.exportKeyingMaterial(
        AGENT_PROOF_EKM_LENGTH,
        AGENT_PROOF_EKM_LABEL,
        undefined as unknown as Buffer,
      );
    } catch (err) {
      socket.destroy();
      return {
        kind: 'failed',
        refused: false,
        error: new AgentError(
          'AGT_ERR_RELAY_BAD_ANSWER',
          `cannot derive the connection proof (${(err as Error).message})`,
          { cause: err },
        ),
      };
    }
    return new Promise<LinkOutcome>((resolve) => this.serve(socket, resolve));
  }

  private serve(socket: TLSSocket, resolve: (o: LinkOutcome) => void): void {
    const server = http2.createServer({ settings: { ...H2_SETTINGS }, maxSessionMemory: 64 });
    this.server = server;
    let session: ServerHttp2Session | null = null;
    server.on('session', (s: ServerHttp2Session) => (session = s));
    server.on('sessionError', (err: Error) => this.log.debug({ err: err.message }, 'relay link HTTP/2 error'));
    server.on('stream', (stream: ServerHttp2Stream, headers: IncomingHttpHeaders) => this.onStream(stream, headers));
    const finish = (): void => {
      this.stopTimers();
      if (!socket.destroyed) socket.destroy();
      if (this.refusal) resolve({ kind: 'refused', ...this.refusal });
      else if (this.declined) resolve({ kind: 'duplicate', relayId: this.relay });
      else
        resolve({
          kind: 'closed',
          reason: this.closeReason ?? 'the relay closed the connection',
          welcomed: this.welcomed,
          moved: this.moveAsked,
        });
    };
    try {
      // HTTP/2 gets a write-decoupled view of the socket, so this link can never freeze with both
      // directions saturated (see decoupled-socket.ts).
      server.emit('connection', decoupleWrites(socket));
    } catch (err) {
      this.closeReason = `HTTP/2 setup failed: ${(err as Error).message}`;
      finish();
      return;
    }
    const s = session as ServerHttp2Session | null;
    if (!s) {
      this.closeReason = 'HTTP/2 setup failed';
      finish();
      return;
    }
    this.session = s;
    s.on('error', (err) => {
      if (this.closeReason === null) this.closeReason = `link error: ${err.message}`;
    });
    s.on('goaway', (code) => {
      const noError = code === http2.constants.NGHTTP2_NO_ERROR;
      if (this.closeReason === null)
        this.closeReason = noError ? 'the relay is going away' : `the relay ended the connection (GOAWAY ${code})`;
      // Node closes the session gracefully itself (running streams go on; with an error code it destroys it).
      if (noError && this.welcomed && !this.stopping && !this.moveAsked) {
        this.moveAsked = true;
        this.log.debug({ relay: this.where, relayId: this.relay, sessions: this.sessions }, 'the relay asks to move');
        try {
          this.o.onMove?.();
        } catch (err) {
          this.log.error({ err }, 'onMove failed');
        }
      }
    });
    s.once('close', finish);
    s.setTimeout(0);
    // Receive windows follow the link's bandwidth-delay product (libs/protocol window-sizing.ts).
    sizeWindowsToPath(s);
    this.welcomeTimer = setTimeout(() => {
      if (!this.welcomed)
        this.destroy(
          `the relay did not welcome this agent within ${this.o.welcomeTimeoutMs ?? DEFAULT_WELCOME_TIMEOUT_MS} ms`,
        );
    }, this.o.welcomeTimeoutMs ?? DEFAULT_WELCOME_TIMEOUT_MS);
    this.welcomeTimer.unref();
    this.startPing(s);
  }

  private startPing(s: ServerHttp2Session): void {
    const interval = this.o.pingIntervalMs ?? AGENT_PING_INTERVAL_MS;
    const timeout = this.o.pingTimeoutMs ?? AGENT_PING_TIMEOUT_MS;
    this.pingTimer = setInterval(() => {
      // After a GOAWAY (the relay asked this link to move) Node cancels every PING (ERR_HTTP2_PING_CANCEL):
      // the link's liveness is then the TCP keep-alive's (set in run()) and its sessions' own.
      if (this.pingDeadline || s.destroyed || s.closed) return;
      let answered = false;
      // Judged after this loop turn's I/O (setImmediate): when the process was starved of CPU for longer than
      // the limit, its timers run before it reads the answer already waiting in the socket.
      this.pingDeadline = setTimeout(
        () =>
          setImmediate(() => {
            if (answered) return;
            this.pingDeadline = null;
            this.destroy(`the relay did not answer PING within ${timeout} ms`);
          }),
        timeout,
      );
      this.pingDeadline.unref();
      try {
        s.ping((err) => {
          answered = true;
          if (this.pingDeadline) clearTimeout(this.pingDeadline);
          this.pingDeadline = null;
          if (err && !s.destroyed && !(s.closed && isPingCancel(err))) this.destroy(`PING failed: ${err.message}`);
        });
      } catch (err) {
        this.destroy(`PING failed: ${(err as Error).message}`);
      }
    }, interval);
    this.pingTimer.unref();
  }

  private stopTimers(): void {
    if (this.pingTimer) clearInterval(this.pingTimer);
    if (this.pingDeadline) clearTimeout(this.pingDeadline);
    if (this.welcomeTimer) clearTimeout(this.welcomeTimer);
    this.pingTimer = this.pingDeadline = this.welcomeTimer = null;
  }

  /** Tear the link down now (its sessions end). */
  destroy(reason: string): void {
    if (this.closeReason === null) this.closeReason = reason;
    this.abort.abort();
    try {
      this.session?.destroy();
    } catch {
      /* gone */
    }
    try {
      this.socket?.destroy();
    } catch {
      /* gone */
    }
  }

  /**
   * Graceful close: GOAWAY (the relay routes no new sessions here), running sessions get up to graceMs
   * to finish, then everything is torn down. Resolves when the link is closed.
   */
  async close(graceMs: number): Promise<void> {
    this.stopping = true;
    if (this.closeReason === null) this.closeReason = 'agent shutting down';
    this.abort.abort();
    const s = this.session;
    if (s && !s.destroyed) {
      try {
        s.close();
      } catch {
        /* already closing */
      }
      const t = setTimeout(() => this.destroy('agent shutting down'), graceMs);
      t.unref();
      await this.closed;
      clearTimeout(t);
    } else {
      this.destroy('agent shutting down');
      await this.closed;
    }
  }

  private onStream(stream: ServerHttp2Stream, headers: IncomingHttpHeaders): void {
    stream.on('error', (err) => this.log.debug({ err: err.message }, 'relay stream error'));
    const path = headers[':path'];
    if (headers[':method'] !== 'POST') {
      this.answer(stream, 405, 'POST only');
      return;
    }
    const handler =
      path === PATHS.agentHello
        ? this.onHello(stream)
        : path === PATHS.agentWelcome
          ? this.onWelcome(stream)
          : path === PATHS.agentSession
            ? this.onSession(stream, headers)
            : path === PATHS.agentHostKeys && this.o.rescanHostKeys
              ? this.onHostKeys(stream)
              : (this.answer(stream, 404, 'unknown path'), Promise.resolve());
    handler.catch((err: unknown) => {
      this.log.error({ err }, 'relay request failed');
      if (!stream.headersSent) this.answer(stream, 500, 'agent error');
      else if (!stream.destroyed) stream.close(http2.constants.NGHTTP2_INTERNAL_ERROR);
    });
  }

  private answer(stream: ServerHttp2Stream, status: number, text: string, extra: Record<string, string> = {}): void {
    if (stream.destroyed || stream.closed || stream.headersSent) return;
    try {
      stream.respond({ ':status': status, 'content-type': 'text/plain; charset=utf-8', ...extra });
      stream.end(text);
    } catch (err) {
      this.log.debug({ err: (err as Error).message }, 'could not answer the relay');
    }
  }

  private async onHello(stream: ServerHttp2Stream): Promise<void> {
    stream.resume(); // the relay sends no body; never let one pile up
    const scanned = await this.o.target.hostKeys();
    const hostKeys = scanned.filter((k) => SshPublicKey.safeParse(k).success).slice(0, 16);
    const hello: AgentHello = {
      name: this.o.name,
      publicKey: this.o.identity.publicKey,
      signature: this.o.identity.sign(this.ekm!).toString('base64'),
      hostKeys,
      agentVersion: SOFTWARE_VERSION,
      protocolVersion: PROTOCOL_VERSION,
      // What the agent knows of its machine: shown by the relay, never matched by grants.
      facts: {
        os: platform(),
        kernel: release(),
        arch: process.arch,
        agentVersion: SOFTWARE_VERSION,
        ...(this.o.target.mode ? { target: this.o.target.mode } : {}),
      },
    };
    if (stream.destroyed || stream.closed) return;
    stream.respond({
      ':status': 200,
      'content-type': 'application/json',
      [HEADERS.protocolVersion]: String(PROTOCOL_VERSION),
      [HEADERS.softwareVersion]: SOFTWARE_VERSION,
    });
    stream.end(JSON.stringify(hello));
  }

  private async onHostKeys(stream: ServerHttp2Stream): Promise<void> {
    stream.resume();
    if (!this.welcomed) {
      this.answer(stream, 503, 'agent link not welcomed yet');
      return;
    }
    const scanned = await this.o.rescanHostKeys!();
    const hostKeys = scanned.filter((k) => SshPublicKey.safeParse(k).success).slice(0, 16);
    if (stream.destroyed || stream.closed) return;
    stream.respond({ ':status': 200, 'content-type': 'application/json' });
    stream.end(JSON.stringify({ hostKeys }));
  }

  private async onWelcome(stream: ServerHttp2Stream): Promise<void> {
    let welcome: AgentWelcome;
    try {
      const body = await readBody(stream, CONTROL_BODY_MAX_BYTES, CONTROL_BODY_TIMEOUT_MS);
      const parsed = AgentWelcome.safeParse(JSON.parse(body.toString('utf8')));
      if (!parsed.success) throw new Error('malformed welcome');
      welcome = parsed.data;
    } catch (err) {
      this.answer(stream, 400, 'bad welcome');
      this.destroy(`the relay sent a bad welcome (${(err as Error).message})`);
      return;
    }
    if (welcome.ok) {
      if (this.welcomed) {
        if (!stream.destroyed && !stream.closed) stream.respond({ ':status': 204 }, { endStream: true });
        return;
      }
      if (this.declined) {
        this.answer(stream, 409, 'this agent already holds a link to this relay');
        return;
      }
      const relayId = welcome.relayId ? sanitizeForTerminal(welcome.relayId).slice(0, 128) : null;
      this.relay = relayId;
      if (this.o.acceptRelay && !this.o.acceptRelay(relayId)) {
        // Another link of this agent holds that relay: decline before the relay registers this one
        // (registering it would make the relay close the other, the same agent's older link).
        this.declined = true;
        this.answer(stream, 409, 'this agent already holds a link to this relay');
        this.log.debug({ relay: this.where, relayId }, 'declined a second link to the same relay');
        if (this.closeReason === null) this.closeReason = 'declined: another link of this agent holds that relay';
        // GOAWAY after the answer (the relay drops the link on reading it); gone within 2 s regardless.
        try {
          this.session?.close();
        } catch {
          /* closing already */
        }
        setTimeout(() => this.destroy('declined'), 2_000).unref();
        return;
      }
      if (!stream.destroyed && !stream.closed) stream.respond({ ':status': 204 }, { endStream: true });
      this.welcomed = true;
      if (this.welcomeTimer) clearTimeout(this.welcomeTimer);
      this.welcomeTimer = null;
      this.log.debug({ name: this.o.name, relay: this.where, relayId }, `welcomed by relay ${this.where}`);
      this.o.onWelcomed?.();
      return;
    }
    if (!stream.destroyed && !stream.closed) stream.respond({ ':status': 204 }, { endStream: true });
    const code = sanitizeForTerminal(welcome.code ?? 'unknown').slice(0, 64);
    const known = (WIRE_ERRORS as Record<string, { message: string }>)[code];
    const message = sanitizeForTerminal(welcome.message ?? known?.message ?? 'no reason given').slice(0, 300);
    this.refusal = { code, message, permanent: welcome.permanent === true };
    this.log.error({ code, permanent: this.refusal.permanent }, `refused by relay: ${code}: ${message}`);
    // The relay closes the link itself; make sure it goes even if it does not.
    const t = setTimeout(() => this.destroy(`refused: ${code}`), 2_000);
    t.unref();
  }

  private async onSession(stream: ServerHttp2Stream, headers: IncomingHttpHeaders): Promise<void> {
    const sessionId = headerString(headers, HEADERS.sessionId, 64) || '?';
    const user = headerString(headers, HEADERS.user, 64) || '?';
    if (!this.welcomed || this.stopping) {
      this.answer(stream, 503, this.stopping ? 'agent is shutting down' : 'agent link not welcomed yet');
      return;
    }
    this.sessions += 1;
    try {
      let conn;
      try {
        conn = await this.o.target.open({ sessionId, user });
      } catch (err) {
        const message =
          err instanceof AgentError ? err.message : `cannot connect to the SSH server at ${this.o.target.description}`;
        this.log.warn({ sessionId, user, err: message }, `session ${sessionId} for ${user}: target unreachable`);
        this.answer(stream, 502, message, { [HEADERS.errorCode]: 'AGT_ERR_TARGET_UNREACHABLE' });
        this.o.sessionMetrics?.sessionFailed('AGT_ERR_TARGET_UNREACHABLE');
        return;
      }
      if (stream.destroyed || stream.closed) {
        conn.destroy();
        return;
      }
      stream.respond({ ':status': 200, 'content-type': 'application/octet-stream', [HEADERS.sessionId]: sessionId });
      this.log.info({ sessionId, user, target: this.o.target.description }, `session ${sessionId} opened for ${user}`);
      const metrics = this.o.sessionMetrics;
      const counters = metrics?.sessionOpened();
      let r: Awaited<ReturnType<typeof splice>>;
      try {
        r = await splice(stream, conn, counters);
      } finally {
        if (counters) metrics!.sessionClosed(counters);
      }
      this.log.info(
        { sessionId, user, bytesFromRelay: r.bytesAtoB, bytesToRelay: r.bytesBtoA, clean: r.clean },
        `session ${sessionId} closed`,
      );
    } finally {
      this.sessions -= 1;
    }
  }
}
