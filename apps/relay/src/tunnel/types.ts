/**
 * The seams between the tunnel core and the rest of the relay. The tunnel core does not import fastify
 * nor the database: it gets these injected by main.ts.
 */
import type { TLSSocket } from 'node:tls';
import type { ClientHttp2Stream } from 'node:http2';
import type { Duplex } from 'node:stream';
import type { CapScope } from './session-caps.js';

/** What the tunnel needs to know about enrolled agents (implemented by the db layer). */
export interface AgentDirectory {
  /** Look up an enrolled agent by its identity public key (SPKI DER, base64). */
  findByPublicKey(publicKey: string): Promise<EnrolledAgent | null>;
  /** The agent proved its key: store what it reported and mark it seen now. */
  markConnected(
    id: string,
    info: {
      hostKeys: string[];
      agentVersion: string;
      protocolVersion: number;
      at: Date;
      /** What the agent reports of its machine, sanitised (agents before facts send none). */
      facts?: Record<string, string>;
    },
  ): Promise<void>;
  /** The agent reported its target's host keys again (a rescan asked for by a client). */
  updateHostKeys?(id: string, hostKeys: string[]): Promise<void>;
  /** The agent's link ended (or it is still up: periodic touch). */
  markSeen(id: string, at: Date): Promise<void>;
}

export interface EnrolledAgent {
  id: string;
  name: string;
  publicKey: string;
  revokedAt: Date | null;
}

/** Why a session ended; audit uses the same words. */
export type SessionEndReason =
  | 'client_closed'
  | 'agent_closed'
  | 'relay_shutdown'
  | 'agent_revoked'
  | 'user_disabled'
  | 'role_changed'
  | 'grant_revoked'
  | 'idle_timeout'
  | 'agent_unresponsive'
  | 'error'
  | 'relay_crashed';

/** What is known when a session is about to start (before any byte is forwarded). */
export interface SessionStartInfo {
  sessionId: string;
  /** mssh user name. */
  user: string;
  /** Target machine (agent name). */
  host: string;
  /** Client address as the relay saw it. */
  source: string | null;
  /** Which listener: HTTPS tunnel or the SSH jump listener. */
  via: 'https' | 'jump';
  agentId?: string;
  /** The relay holding the agent's link when it is not this one (a fleet's forwarded session). */
  holdingRelayId?: string;
  /** Extra audit details for session.start. */
  details?: Record<string, unknown>;
  /** The many-machine run (`mssh exec`, header x-mssh-run) it belongs to: on its sessions row and audit rows. */
  runId?: string | null;
}

/** A session whose start is committed to the audit trail (audit/session-recorder.ts). */
export interface RecordedSession {
  readonly sessionId: string;
  /** Live byte counters (read for the periodic progress writes). */
  attachCounters(fn: () => { bytesFromClient: number; bytesToClient: number }): void;
  /** The data path moved n bytes (per chunk; in memory only: lets the recorder write counters sooner). */
  noteBytes?(n: number): void;
  /** Record the end (once; later calls are ignored). Bytes default to the attached counters. */
  end(e: { reason: SessionEndReason; bytesFromClient?: number; bytesToClient?: number }): void;
}

/**
 * The session-start gate (implemented by audit/session-recorder.ts): resolves only once the start is
 * durably recorded; rejects (RLY_ERR_DATABASE_UNAVAILABLE) when it cannot be, and then nothing may be
 * forwarded.
 */
export interface SessionLedger {
  start(s: SessionStartInfo): Promise<RecordedSession>;
}

/** Audit events the tunnel emits (implemented by audit/). Must not throw; failures are logged by the sink. */
export interface TunnelAuditSink {
  agentConnected(e: {
    agentId: string;
    name: string;
    source: string;
    agentVersion: string;
    protocolVersion: number;
  }): void;
  agentDisconnected(e: { agentId: string; name: string; reason: string }): void;
  agentRejected(e: { name: string | null; source: string; code: string; message: string }): void;
  /**
   * A session ended; bytes each way (optional: the audit trail records starts and ends through the
   * session-start gate, `record` below, not through this sink).
   */
  sessionEnded?(e: TunnelSessionSummary): void;
}

/**
 * What the tunnel tells the relay's metrics (metrics/relay-metrics.ts implements it). Called once per
 * session, never per chunk: the bytes are read from the router's own counters when scraped
 * (RelayTunnelRouter.stats()). Must not throw.
 */
export interface TunnelMetrics {
  /** A session was spliced: bytes may flow from now on. */
  sessionStarted(via: SessionVia): void;
  sessionEnded(reason: SessionEndReason): void;
}

/** One finished session, with the bytes moved each way. */
export interface TunnelSessionSummary {
  sessionId: string;
  user: string;
  host: string;
  agentId: string;
  /** Client address as the relay saw it, when known. */
  source: string | null;
  /** How the client came: the HTTPS tunnel route or the SSH jump listener. */
  via: SessionVia;
  startedAt: Date;
  endedAt: Date;
  /** Bytes read from the client and forwarded to the agent. */
  bytesFromClient: number;
  /** Bytes read from the agent and forwarded to the client. */
  bytesToClient: number;
  reason: SessionEndReason;
}

export type SessionVia = 'https' | 'jump';

export interface SessionMeta {
  sessionId: string;
  /** mssh user name (not the SSH login user, which the relay never learns). */
  user: string;
  /** Which caps the session counts against here (session-caps.ts CapScope; default local). */
  caps?: CapScope;
}

export interface SpliceMeta extends SessionMeta {
  host: string;
  source?: string | null;
  via?: SessionVia;
  record?: RecordedSession;
  /**
   * When the user was last found active for this session (performance.now(), taken before that lookup
   * was sent). If closeSessionsOfUser ran for the user at or after this moment, the session is ended as
   * soon as it is spliced: it was set up under an account that was being shut out.
   */
  authAt: number;
}

/** The tunnel router: owns agent links and opens session streams to them. */
export interface TunnelRouter {
  /** Take over a TLS socket whose negotiated ALPN is AGENT_ALPN (the agent link). */
  acceptAgentSocket(socket: TLSSocket): void;
  /** Is an agent with this name connected and verified right now? */
  isOnline(name: string): boolean;
  /** Names of connected agents. */
  onlineNames(): string[];
  /** Number of open session streams across all agents. */
  activeSessions(): number;
  /** Sessions holding a cap slot: in total, of one mssh user, or to one agent (by name). */
  sessionCount(q?: { user?: string; agent?: string }): number;
  /**
   * Take a slot under the session caps (--max-sessions-per-user, -per-agent, --max-sessions) for a
   * session that does NOT go through openSession (which takes its own). Throws RelayError
   * RLY_ERR_{USER,AGENT,RELAY}_SESSION_LIMIT when a cap is reached; call the returned release() once
   * when the session ends (it is idempotent).
   */
  takeSessionSlot(user: string, agent: string, scope?: CapScope): () => void;
  /**
   * Throw the cap's RelayError if a session for this user and agent would be refused now, taking nothing:
   * lets a caller refuse (and audit it as session.denied) before recording a start. openSession still
   * enforces the caps itself.
   */
  checkSessionSlot?(user: string, agent: string, scope?: CapScope): void;
  /**
   * Open a session stream to the named agent. Resolves once the agent answered 200 (its target accepted
   * the TCP connection). Takes a session-cap slot (released when the stream closes): rejects with
   * RLY_ERR_*_SESSION_LIMIT when a cap is reached, RLY_ERR_AGENT_OFFLINE when no link is up, or
   * RLY_ERR_AGENT_FAILED (message from the agent) when the agent could not reach its target.
   */
  openSession(name: string, meta: SessionMeta): Promise<ClientHttp2Stream>;
  /**
   * Splice a client's stream with a session stream from openSession(): backpressure both ways,
   * half-close preserved, either side's abort tears down both. Counts bytes; reports to the audit sink's
   * optional sessionEnded and, when given, to `record` (live counters, then end()).
   * Resolves (never rejects) when both streams are closed.
   */
  spliceSession(client: Duplex, agentStream: ClientHttp2Stream, meta: SpliceMeta): Promise<TunnelSessionSummary>;
  /**
   * Ask the named agent to scan its target's host keys again and store what it reports (a client saw a
   * key the relay does not attest, e.g. after the machine's keys were replaced). Concurrent and
   * back-to-back calls for one agent share one request; the agent rate-limits its scans itself.
   * Rejects RLY_ERR_AGENT_OFFLINE (no link) or RLY_ERR_AGENT_FAILED (no usable answer: an older agent).
   */
  refreshHostKeys?(name: string): Promise<string[]>;
  /** The id of the agent connected under this name ('' when none). */
  agentIdOf?(name: string): string;
  /**
   * End every live session of this mssh user now (both streams cancelled); they are recorded with
   * `reason`. Sessions still being set up (user checked before this call, spliced after it) end as soon
   * as they are spliced, with the same reason. Returns how many live sessions were ended.
   */
  closeSessionsOfUser(user: string, reason: SessionEndReason): number;
  /**
   * End every live session now (both streams cancelled), recorded with `reason`, whatever door it came
   * through: the end of a drain whose --drain-timeout passed (issue 19), before the stop closes the doors.
   * Returns how many were ended.
   */
  closeAllSessions?(reason: SessionEndReason): number;
  /** The live (spliced, not yet ended) sessions to this machine on this relay, and whose they are. */
  sessionsOn?(host: string): Array<{ sessionId: string; user: string }>;
  /**
   * End this user's live sessions to this machine now (both streams cancelled), recorded with `reason`:
   * the machine's labels changed and no grant of the user matches it any more. Returns how many.
   */
  closeSessionsOfUserOn?(user: string, host: string, reason: SessionEndReason): number;
  /**
   * Drop the named agent's link (and with it its sessions, recorded with `reason`). Returns whether a
   * link was up. With `agentId`, a handshake of that agent still in flight (it passed the database check
   * just before the revocation) is refused too when it completes.
   */
  closeAgent(name: string, reason: SessionEndReason, agentId?: string): boolean;
  /**
   * Ask every connected agent to move to another relay of the fleet (drain): each online link gets an
   * HTTP/2 GOAWAY (NGHTTP2_NO_ERROR) and leaves the registry at once (isOnline() is false, no new session
   * goes to it); its running sessions go on, and it closes when the last one ends. The agents dial
   * another relay at once, without growing their back-off. Links still in their handshake are moved as
   * soon as they are verified (not counted). Returns how many online links were told. Optional: only
   * the real router has it (callers write `router.moveAgents?.()`).
   */
  moveAgents?(): number;
  /** Close every link (and with them every session), e.g. at shutdown. */
  close(): Promise<void>;
}

/**
 * An agent link became this relay's registered link for `name` (up) or stopped being it (down). `moved`:
 * down because this relay asked the agent to move (a drain), so it is expected on another relay shortly.
 */
export interface PresenceChange {
  agentId: string;
  name: string;
  up: boolean;
  moved?: boolean;
}
