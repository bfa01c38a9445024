/**
 * One agent link on the relay: the TLS socket an agent dialled (ALPN mssh-agent/1), with the relay as
 * the HTTP/2 CLIENT on it. Runs the handshake (hello -> verify proof -> welcome), then opens one stream
 * per session and keeps the link honest with PINGs.
 *
 *   agent --TLS--> relay            relay --POST /mssh/hello-->   agent  (AgentHello JSON back)
 *                                   relay --POST /mssh/welcome--> agent  (AgentWelcome JSON, 204 back)
 *                                   relay --POST /mssh/session--> agent  (200 once the target accepted)
 *
 * Named for the side it talks to: the agent's end of the same connection is `RelayLink`
 * (apps/agent/src/dial/relay-link.ts).
 */
import http2, {
  constants as h2c,
  type ClientHttp2Session,
  type ClientHttp2Stream,
  type IncomingHttpHeaders,
} from 'node:http2';
import type { TLSSocket } from 'node:tls';
import type pino from 'pino';
import {
  AgentHello,
  type AgentFacts,
  AgentHostKeys,
  H2_SETTINGS,
  HEADERS,
  PATHS,
  PROTOCOL_VERSION,
  SOFTWARE_VERSION,
  WIRE_ERRORS,
  isPingCancel,
  isWireErrorBody,
  sanitizeForTerminal,
  type AgentWelcome,
  type WireErrorCode,
} from '@mssh/protocol';
import { type RelayError, relayError } from '../errors.js';
import { agentProofMaterial, verifyAgentProof } from './agent-proof.js';
import { readBody, sizeWindowsToPath } from '@mssh/protocol/transport';
import { floodMessage, guardControlFrames, isNghttp2Flood, type FloodReport } from '../http/h2-flood-guard.js';
import type { AgentDirectory, EnrolledAgent, SessionEndReason, SessionMeta, TunnelAuditSink } from './types.js';

export const HELLO_MAX_BYTES = 64 * 1024;
const ERROR_BODY_MAX_BYTES = 4 * 1024;

export interface AgentLinkDeps {
  directory: AgentDirectory;
  audit: TunnelAuditSink;
  logger: pino.Logger;
  minProtocolVersion: number;
  clock: () => Date;
  pingIntervalMs: number;
  pingTimeoutMs: number;
  /** Deadline for each handshake step (hello answer, welcome answer). */
  handshakeTimeoutMs: number;
  /** Deadline for the agent's answer to a session open. */
  openTimeoutMs: number;
  /** May an agent of this name go online (the --max-agents cap)? Absent: always. */
  admitAgent?: (name: string) => boolean;
  /** This relay's stable id, sent in the welcome (agents with several links tell relays apart by it). */
  relayId?: string;
  /** PING/SETTINGS frames the agent may send per second (http/h2-flood-guard.ts; 0 or absent: no limit). */
  maxControlFramesPerSecond?: number;
  /** The flood's one log line (rate-limited across links, RLY_ERR_H2_FLOOD). */
  logFlood?: (fields: object, msg: string) => void;
}

export interface AgentLinkEvents {
  /** Handshake passed: register the link under its name. */
  verified(link: AgentLink): void;
  /** The agent announced it is going away (GOAWAY): route no new sessions to it. */
  draining(link: AgentLink): void;
  /** The link is gone for good. */
  closed(link: AgentLink): void;
  /** Session streams opened (+1) or closed (-1). */
  streamCount(delta: number): void;
}

type Rejection = { code: WireErrorCode; message: string; permanent: boolean };

let nextLinkId = 1;

/** The peer did not answer a control request in time. */
class HandshakeTimeout extends Error {}

/** Guard every audit call: the sink must not throw, but a bug there must not break the tunnel either. */
export function safeAudit(logger: pino.Logger, fn: () => void): void {
  try {
    fn();
  } catch (err) {
    logger.error({ err }, 'audit sink threw');
  }
}

export class AgentLink {
  readonly id = nextLinkId++;
  readonly source: string;
  state: 'handshaking' | 'online' | 'draining' | 'closed' = 'handshaking';
  agent: EnrolledAgent | null = null;
  /** Why the link ended (set once). */
  endReason: string | null = null;
  /** What sessions cut by this link's end are recorded as. */
  sessionEndReason: SessionEndReason = 'agent_closed';
  readonly streams = new Set<ClientHttp2Stream>();
  private session: ClientHttp2Session | null = null;
  private pingTimer: NodeJS.Timeout | null = null;
  private pingDeadline: NodeJS.Timeout | null = null;
  private guardTimer: NodeJS.Timeout | null = null;
  private readonly log: pino.Logger;
  private finalized = false;
  /** This relay asked the agent to move (move()): the link ends when its last session does. */
  private moved = false;
  /** The host keys this agent last reported (hello, then rescans). */
  private reportedHostKeys: string[] | null = null;
  private readonly closedWaiters: Array<() => void> = [];

  constructor(
    private readonly socket: TLSSocket,
    private readonly deps: AgentLinkDeps,
    private readonly events: AgentLinkEvents,
  ) {
    this.source = `${socket.remoteAddress ?? '?'}:${socket.remotePort ?? '?'}`;
    this.log = deps.logger.child({ link: this.id, source: this.source });
  }

  /** State read through a method so TypeScript does not narrow it across awaits. */
  isClosed(): boolean {
    return this.state === 'closed';
  }

  /** This relay asked the agent to move (drain): it is expected back on another relay shortly. */
  get wasMoved(): boolean {
    return this.moved;
  }

  get name(): string | null {
    return this.agent?.name ?? null;
  }

  /** Resolves once the link is closed and accounted for. */
  whenClosed(): Promise<void> {
    if (this.finalized) return Promise.resolve();
    return new Promise((resolve) => this.closedWaiters.push(resolve));
  }

  start(): void {
    // Interactive traffic: no Nagle delay on the link (it interacts badly with delayed ACKs).
    try {
      this.socket.setNoDelay(true);
    } catch {
      /* closed already */
    }
    // A socket error before or after HTTP/2 takes over must never become an uncaught exception.
    this.socket.on('error', (err) => this.log.debug({ err: err.message }, 'agent socket error'));
    // TCP keep-alive: the only liveness check left on a link once it was asked to move (no PING then).
    this.socket.setKeepAlive(true, 15_000);
    this.socket.once('close', () => {
      // The HTTP/2 session normally notices first; this covers a socket that dies before it exists.
      if (!this.session) this.finalize();
    });
    // Whole-handshake guard: a peer that stalls between steps is dropped.
    this.guardTimer = setTimeout(
      () => {
        if (this.state === 'handshaking') this.close('handshake did not complete in time', 'error');
      },
      this.deps.handshakeTimeoutMs * 2 + 1000,
    );
    this.guardTimer.unref();
    this.handshake().catch((err: unknown) => {
      // Only unexpected bugs land here; expected failures are handled inside handshake().
      this.log.error({ err }, 'agent handshake failed unexpectedly');
      this.close('internal error during handshake', 'error');
    });
  }

  private async handshake(): Promise<void> {
    let ekm: Buffer;
    try {
      ekm = agentProofMaterial(this.socket);
    } catch (err) {
      this.log.warn({ err: (err as Error).message }, 'agent link: cannot export TLS keying material; dropping');
      this.close('no TLS keying material', 'error');
      return;
    }
    let session: ClientHttp2Session;
    try {
      session = http2.connect('https://agent.mssh.invalid', {
        createConnection: () => this.socket,
        settings: { ...H2_SETTINGS },
        // Many concurrent bulk sessions share this one connection: allow nghttp2 enough buffer room.
        maxSessionMemory: 64,
      });
    } catch (err) {
      this.log.warn({ err: (err as Error).message }, 'agent link: HTTP/2 setup failed; dropping');
      this.close('HTTP/2 setup failed', 'error');
      return;
    }
    this.session = session;
    const flood = (r: FloodReport): void => {
      if (this.isClosed()) return;
      const peer = `agent ${this.name ?? '(not yet verified)'} at ${this.socket.remoteAddress ?? '?'}`;
      (this.deps.logFlood ?? ((f, m) => this.log.warn(f, m)))(
        { name: this.name, peer: this.socket.remoteAddress, kind: r.kind, count: r.count },
        floodMessage(r, peer, 'agent link'),
      );
      this.close(
        r.kind === 'ack-flood' ? 'HTTP/2 flood (nghttp2 flood protection)' : `HTTP/2 ${r.kind} flood`,
        'error',
      );
    };
    guardControlFrames(session, this.deps.maxControlFramesPerSecond ?? 0, flood);
    session.on('error', (err) => {
      if (isNghttp2Flood(err)) {
        flood({ kind: 'ack-flood', count: 0, limit: 0 });
        return;
      }
      this.log.debug({ err: err.message }, 'agent link HTTP/2 error');
      this.close(`link error: ${err.message}`, 'error');
    });
    session.on('frameError', (type, code) => this.log.debug({ type, code }, 'agent link frame error'));
    session.on('goaway', () => {
      if (this.state === 'online') {
        this.state = 'draining';
        this.log.info({ name: this.name }, 'agent is going away; no new sessions go to it');
        this.events.draining(this);
      }
    });
    session.on('close', () => this.finalize());
    session.on('stream', (stream) => stream.close(h2c.NGHTTP2_REFUSED_STREAM));
    // Receive windows follow the agent link's bandwidth-delay product (libs/protocol window-sizing.ts).
    sizeWindowsToPath(session);

    // 1. hello
    let hello: AgentHello;
    try {
      const res = await this.request(PATHS.agentHello, null, HELLO_MAX_BYTES);
      if (res.status !== 200) throw new Error(`agent answered ${res.status} to hello`);
      const parsed = AgentHello.safeParse(JSON.parse(res.body.toString('utf8')));
      if (!parsed.success) throw new Error(`malformed hello: ${parsed.error.issues[0]?.message ?? 'invalid'}`);
      hello = parsed.data;
    } catch (err) {
      if (this.isClosed()) return;
      const message = sanitizeForTerminal((err as Error).message).slice(0, 200);
      // A peer that did not answer at all gets no welcome (it would not read it either).
      const answered = !(err instanceof HandshakeTimeout);
      await this.reject(
        null,
        { code: 'RLY_ERR_BAD_REQUEST', message: `agent hello rejected: ${message}`, permanent: false },
        answered,
      );
      return;
    }
    if (this.isClosed()) return;

    // 2. verify
    const verdict = await this.verify(hello, ekm);
    if (this.isClosed()) return;
    if ('code' in verdict) {
      await this.reject(hello.name, verdict);
      return;
    }
    const agent = verdict.agent;
    this.reportedHostKeys = hello.hostKeys;
    try {
      await this.deps.directory.markConnected(agent.id, {
        hostKeys: hello.hostKeys,
        agentVersion: hello.agentVersion,
        protocolVersion: hello.protocolVersion,
        at: this.deps.clock(),
        ...(hello.facts ? { facts: sanitizeFacts(hello.facts) } : {}),
      });
    } catch (err) {
      this.log.error({ err, name: agent.name }, 'agent link: could not record the connection');
      await this.reject(hello.name, {
        code: 'RLY_ERR_INTERNAL',
        message: 'the relay could not record this connection; retrying later',
        permanent: false,
      });
      return;
    }
    if (this.isClosed()) return;

    // 3. welcome
    try {
      const welcome: AgentWelcome = this.deps.relayId ? { ok: true, relayId: this.deps.relayId } : { ok: true };
      const res = await this.request(PATHS.agentWelcome, Buffer.from(JSON.stringify(welcome)), ERROR_BODY_MAX_BYTES);
      if (res.status === 409) {
        // The agent holds links to several relays (--links K) and already has one to this relay: it
        // declines this one. Dropping it (not registering it) leaves that other link untouched.
        if (!this.isClosed()) {
          this.log.info(
            { name: agent.name },
            `agent ${agent.name} already holds a link to this relay; dropping the extra one it declined`,
          );
          this.close('the agent declined a second link to this relay', 'agent_closed');
        }
        return;
      }
      if (res.status < 200 || res.status > 299) throw new Error(`agent answered ${res.status} to welcome`);
    } catch (err) {
      if (!this.isClosed()) {
        this.log.warn(
          { err: (err as Error).message, name: agent.name },
          'agent link: welcome not acknowledged; dropping',
        );
        this.close('welcome not acknowledged', 'error');
      }
      return;
    }
    if (this.state !== 'handshaking') return;
    this.agent = agent;
    this.state = 'online';
    if (this.guardTimer) clearTimeout(this.guardTimer);
    this.startPing();
    this.events.verified(this);
    safeAudit(this.log, () =>
      this.deps.audit.agentConnected({
        agentId: agent.id,
        name: agent.name,
        source: this.source,
        agentVersion: hello.agentVersion,
        protocolVersion: hello.protocolVersion,
      }),
    );
    this.log.info(
      { name: agent.name, agentVersion: hello.agentVersion, protocolVersion: hello.protocolVersion },
      `agent ${agent.name} connected`,
    );
  }

  private async verify(hello: AgentHello, ekm: Buffer): Promise<{ agent: EnrolledAgent } | Rejection> {
    if (!verifyAgentProof(hello.publicKey, ekm, hello.signature)) {
      return {
        code: 'RLY_ERR_AGENT_PROOF_INVALID',
        message: 'the signature over this connection does not match the presented key',
        permanent: false,
      };
    }
    let agent: EnrolledAgent | null;
    try {
      agent = await this.deps.directory.findByPublicKey(hello.publicKey);
    } catch (err) {
      this.log.error({ err }, 'agent link: directory lookup failed');
      return {
        code: 'RLY_ERR_INTERNAL',
        message: 'the relay could not look up this agent; retrying later',
        permanent: false,
      };
    }
    if (!agent) {
      return {
        code: 'RLY_ERR_UNKNOWN_AGENT_KEY',
        message: 'this agent key is not enrolled on the relay; enrol again with a fresh token (mssh-agent enroll)',
        permanent: true,
      };
    }
    if (agent.revokedAt) {
      return {
        code: 'RLY_ERR_AGENT_REVOKED',
        message: 'this agent has been revoked; ask an admin for a new enrolment token and enrol again',
        permanent: true,
      };
    }
    if (hello.name !== agent.name) {
      return {
        code: 'RLY_ERR_NAME_TAKEN',
        message: `this key is enrolled as "${agent.name}", not "${hello.name}"; fix the name in the state dir or enrol again`,
        permanent: true,
      };
    }
    if (hello.protocolVersion < this.deps.minProtocolVersion) {
      return {
        code: 'RLY_ERR_PROTOCOL_TOO_OLD',
        message: `agent protocol ${hello.protocolVersion} is older than the relay accepts (${this.deps.minProtocolVersion}); upgrade mssh-agent`,
        permanent: true,
      };
    }
    if (this.deps.admitAgent && !this.deps.admitAgent(agent.name)) {
      return {
        code: 'RLY_ERR_AGENT_LIMIT',
        message: 'the relay has as many agents connected as it allows (--max-agents); retrying later',
        permanent: false,
      };
    }
    return { agent };
  }

  private async reject(name: string | null, r: Rejection, tell = true): Promise<void> {
    safeAudit(this.log, () =>
      this.deps.audit.agentRejected({ name, source: this.source, code: r.code, message: r.message }),
    );
    this.log.warn({ name, code: r.code }, `agent refused: ${r.code}: ${r.message}`);
    if (tell) {
      const welcome: AgentWelcome = { ok: false, code: r.code, message: r.message, permanent: r.permanent };
      try {
        await this.request(PATHS.agentWelcome, Buffer.from(JSON.stringify(welcome)), ERROR_BODY_MAX_BYTES);
      } catch {
        // The agent is gone or misbehaving: nothing more to tell it.
      }
    }
    this.close(`refused: ${r.code}`, 'error');
  }

  /** One control request on the link: POST path with an optional JSON body, deadline, capped answer. */
  private request(
    path: string,
    body: Buffer | null,
    maxBytes: number,
  ): Promise<{ status: number; headers: IncomingHttpHeaders; body: Buffer }> {
    return new Promise((resolve, reject) => {
      const session = this.session;
      if (!session || session.destroyed || session.closed) {
        reject(new Error('link closed'));
        return;
      }
      let stream: ClientHttp2Stream;
      try {
        stream = session.request(
          {
            ':method': 'POST',
            ':path': path,
            'content-type': 'application/json',
            [HEADERS.protocolVersion]: String(PROTOCOL_VERSION),
            [HEADERS.softwareVersion]: SOFTWARE_VERSION,
          },
          { endStream: body === null },
        );
      } catch (err) {
        reject(err);
        return;
      }
      let settled = false;
      const done = (
        err: Error | null,
        value?: { status: number; headers: IncomingHttpHeaders; body: Buffer },
      ): void => {
        if (settled) return;
        settled = true;
        clearTimeout(timer);
        if (err) {
          if (!stream.destroyed) stream.close(h2c.NGHTTP2_CANCEL);
          reject(err);
        } else resolve(value!);
      };
      stream.on('error', (err) => done(err));
      const timer = setTimeout(
        () => done(new HandshakeTimeout(`no answer to ${path} within ${this.deps.handshakeTimeoutMs} ms`)),
        this.deps.handshakeTimeoutMs,
      );
      timer.unref();
      let responded = false;
      stream.once('response', (headers) => {
        responded = true;
        readBody(stream, maxBytes, this.deps.handshakeTimeoutMs).then(
          (buf) => done(null, { status: Number(headers[':status']), headers, body: buf }),
          (err: Error) => done(err),
        );
      });
      // After the answer started, readBody reports an early close itself ('close' can come before its result).
      stream.once('close', () => {
        if (!responded) done(new Error(`stream for ${path} closed before the agent answered`));
      });
      if (body !== null) stream.end(body);
    });
  }

  private startPing(): void {
    const session = this.session;
    if (!session) return;
    this.pingTimer = setInterval(() => {
      // A moved link (GOAWAY sent) cannot PING: Node cancels it (ERR_HTTP2_PING_CANCEL). Its liveness is
      // then the TCP keep-alive's (set in start()) and its running sessions' own.
      if (this.pingDeadline || this.state === 'closed' || session.closed) return;
      let answered = false;
      // Judged after the I/O of this loop turn (setImmediate): a process starved of CPU for longer than the
      // limit (hundreds of OpenSSH connections at once on two cores) runs its timers before it reads the
      // answer already waiting in the socket, and would evict a healthy agent.
      this.pingDeadline = setTimeout(
        () =>
          setImmediate(() => {
            if (answered) return;
            this.pingDeadline = null;
            this.log.warn(
              { name: this.name },
              `agent ${this.name} did not answer PING within ${this.deps.pingTimeoutMs} ms; evicting`,
            );
            this.close(`no answer to PING within ${this.deps.pingTimeoutMs} ms`, 'agent_unresponsive');
          }),
        this.deps.pingTimeoutMs,
      );
      this.pingDeadline.unref();
      try {
        const sent = session.ping((err) => {
          answered = true;
          if (this.pingDeadline) clearTimeout(this.pingDeadline);
          this.pingDeadline = null;
          if (err && this.state !== 'closed' && !(session.closed && isPingCancel(err)))
            this.close(`PING failed: ${err.message}`, 'error');
        });
        if (!sent) this.log.debug('PING not sent: too many outstanding');
      } catch (err) {
        this.close(`PING failed: ${(err as Error).message}`, 'error');
      }
    }, this.deps.pingIntervalMs);
    this.pingTimer.unref();
  }

  /**
   * Open a session stream. Resolves once the agent answered 200; rejects with a RelayError otherwise.
   */
  openStream(name: string, meta: SessionMeta): Promise<ClientHttp2Stream> {
    return new Promise((resolve, reject) => {
      const session = this.session;
      if (this.state !== 'online' || !session || session.destroyed || session.closed) {
        reject(relayError('RLY_ERR_AGENT_OFFLINE', `${name} is enrolled but its agent is not connected`));
        return;
      }
      let stream: ClientHttp2Stream;
      try {
        stream = session.request(
          {
            ':method': 'POST',
            ':path': PATHS.agentSession,
            [HEADERS.sessionId]: meta.sessionId,
            [HEADERS.user]: meta.user,
            [HEADERS.protocolVersion]: String(PROTOCOL_VERSION),
          },
          { endStream: false },
        );
      } catch (err) {
        reject(relayError('RLY_ERR_AGENT_OFFLINE', `${name} is enrolled but its agent is not connected`, err));
        return;
      }
      this.streams.add(stream);
      this.events.streamCount(1);
      let settled = false;
      const fail = (e: RelayError): void => {
        if (settled) return;
        settled = true;
        clearTimeout(timer);
        if (!stream.destroyed) stream.close(h2c.NGHTTP2_CANCEL);
        reject(e);
      };
      stream.on('error', (err) =>
        this.log.debug({ err: err.message, sessionId: meta.sessionId }, 'session stream error'),
      );
      let responded = false;
      stream.once('close', () => {
        this.streams.delete(stream);
        this.events.streamCount(-1);
        // An error answer is still being read: it settles with the agent's own message.
        if (responded) return;
        if (this.state === 'closed' || this.state === 'draining')
          fail(relayError('RLY_ERR_AGENT_OFFLINE', `the agent of ${name} disconnected`));
        else
          fail(
            relayError(
              'RLY_ERR_AGENT_FAILED',
              `the agent of ${name} reset the session (code ${stream.rstCode ?? '?'})`,
            ),
          );
      });
      const timer = setTimeout(
        () =>
          fail(
            relayError(
              'RLY_ERR_AGENT_FAILED',
              `the agent of ${name} did not answer within ${this.deps.openTimeoutMs} ms`,
            ),
          ),
        this.deps.openTimeoutMs,
      );
      timer.unref();
      stream.once('response', (headers) => {
        responded = true;
        const status = Number(headers[':status']);
        if (status === 200) {
          if (settled) return;
          settled = true;
          clearTimeout(timer);
          resolve(stream);
          return;
        }
        const headerCode =
          typeof headers[HEADERS.errorCode] === 'string' ? (headers[HEADERS.errorCode] as string) : null;
        void readBody(stream, ERROR_BODY_MAX_BYTES, 2000)
          .catch(() => Buffer.alloc(0))
          .then((buf) => {
            fail(relayError('RLY_ERR_AGENT_FAILED', agentFailureMessage(name, status, headerCode, buf)));
          });
      });
    });
  }

  /**
   * Ask the agent for its target's host keys (it rescans, rate-limited) and store them when they differ
   * from what it reported before. Only the agent's own report is ever stored: the client that asked
   * for the rescan has no say in the keys.
   */
  async refreshHostKeys(): Promise<string[]> {
    const agent = this.agent;
    if (this.state !== 'online' || !agent) throw relayError('RLY_ERR_AGENT_OFFLINE', 'the agent is not connected');
    let keys: string[];
    try {
      const res = await this.request(PATHS.agentHostKeys, null, HELLO_MAX_BYTES);
      if (res.status !== 200)
        throw new Error(`the agent answered ${res.status} (an agent that cannot rescan: upgrade it, or restart it)`);
      const parsed = AgentHostKeys.safeParse(JSON.parse(res.body.toString('utf8')));
      if (!parsed.success) throw new Error('malformed answer');
      keys = parsed.data.hostKeys;
    } catch (err) {
      throw relayError(
        'RLY_ERR_AGENT_FAILED',
        `the agent of ${agent.name} could not rescan its host keys: ${sanitizeForTerminal((err as Error).message).slice(0, 200)}`,
        err,
      );
    }
    const before = this.reportedHostKeys;
    const changed = before === null || keys.length !== before.length || keys.some((k) => !before.includes(k));
    if (changed && keys.length > 0) {
      await this.deps.directory.updateHostKeys?.(agent.id, keys);
      this.log.warn({ name: agent.name, keys }, `agent ${agent.name} reported new host keys for its target`);
    }
    this.reportedHostKeys = keys;
    return keys;
  }

  /**
   * Ask the agent to move to another relay of the fleet: an HTTP/2 GOAWAY (NGHTTP2_NO_ERROR) on the link.
   * No new session stream is opened on it from now on (the router takes it out of its registry at once,
   * through the `draining` event); running sessions go on, and the link closes when the last one ends.
   * The agent dials another relay at once and serves those sessions until they end. Only an online
   * link is moved; returns whether this one was.
   */
  move(): boolean {
    const session = this.session;
    if (this.state !== 'online' || !session || session.destroyed || session.closed) return false;
    this.moved = true;
    this.state = 'draining';
    this.events.draining(this);
    const running = this.streams.size;
    this.log.info(
      { name: this.name, sessions: running },
      `asking agent ${this.name} to move to another relay (${running} running session(s) stay here until they end)`,
    );
    try {
      // GOAWAY with NGHTTP2_NO_ERROR; the session destroys itself once its last stream has closed.
      session.close();
    } catch (err) {
      this.log.debug({ err: (err as Error).message }, 'GOAWAY failed');
    }
    return true;
  }

  /** Close the link; its sessions end with sessionReason. Idempotent. */
  close(reason: string, sessionReason: SessionEndReason): void {
    if (this.endReason === null) {
      this.endReason = reason;
      this.sessionEndReason = sessionReason;
    }
    this.stopTimers();
    if (this.state !== 'closed' && this.state !== 'handshaking') this.state = 'draining';
    try {
      if (this.session && !this.session.destroyed) this.session.destroy();
    } catch {
      /* already gone */
    }
    try {
      if (!this.socket.destroyed) this.socket.destroy();
    } catch {
      /* already gone */
    }
    if (!this.session) this.finalize();
  }

  private stopTimers(): void {
    if (this.pingTimer) clearInterval(this.pingTimer);
    if (this.pingDeadline) clearTimeout(this.pingDeadline);
    if (this.guardTimer) clearTimeout(this.guardTimer);
    this.pingTimer = null;
    this.pingDeadline = null;
    this.guardTimer = null;
  }

  private finalize(): void {
    if (this.finalized) return;
    this.finalized = true;
    const wasVerified = this.agent !== null;
    if (this.endReason === null) {
      this.endReason = this.moved
        ? 'moved to another relay'
        : wasVerified
          ? 'agent closed the connection'
          : 'closed during handshake';
      this.sessionEndReason = 'agent_closed';
    }
    this.state = 'closed';
    this.stopTimers();
    if (!this.socket.destroyed) this.socket.destroy();
    this.events.closed(this);
    for (const w of this.closedWaiters.splice(0)) w();
  }
}

function agentFailureMessage(name: string, status: number, headerCode: string | null, body: Buffer): string {
  let detail = '';
  const text = body.toString('utf8').trim();
  if (text) {
    try {
      const j: unknown = JSON.parse(text);
      detail = isWireErrorBody(j) ? j.message : text;
    } catch {
      detail = text;
    }
  }
  if (!detail && headerCode && headerCode in WIRE_ERRORS) detail = WIRE_ERRORS[headerCode as WireErrorCode].message;
  detail = sanitizeForTerminal(detail).slice(0, 300);
  const code = headerCode ? sanitizeForTerminal(headerCode).slice(0, 64) : `status ${status}`;
  return `the agent of ${name} could not open the session (${code})${detail ? `: ${detail}` : ''}`;
}

/** Agent-reported facts as stored and shown: known keys only, control characters escaped, 128 chars at most. */
export function sanitizeFacts(facts: AgentFacts): Record<string, string> {
  const out: Record<string, string> = {};
  for (const k of ['os', 'kernel', 'arch', 'agentVersion', 'target'] as const) {
    const v = facts[k];
    if (typeof v === 'string' && v !== '') out[k] = sanitizeForTerminal(v).slice(0, 128);
  }
  return out;
}
