/**
 * The audit trail: one row per event in audit_events (append-only; docs/audit.md has the catalogue).
 * Writing is fire-and-forget for callers: events go through the group-commit writer (audit-writer.ts),
 * retried while the database is unavailable, never reaching the request or the tunnel; `flush()` waits
 * for pending writes. Session starts are not written here but through the session-start gate
 * (session-recorder.ts), which callers await.
 */
import type { Logger } from 'pino';
import type { Db } from '../db/index.js';
import type { TunnelAuditSink } from '../tunnel/types.js';
import { AUDIT } from './codes.js';
import { AuditWriter, type AuditWriterMetrics } from './audit-writer.js';

export interface AuditEvent {
  type: string;
  code: string;
  actor?: string | null;
  host?: string | null;
  source?: string | null;
  sessionId?: string | null;
  /** The many-machine run (`mssh exec`) the row belongs to (session rows only). */
  runId?: string | null;
  details?: Record<string, unknown>;
}

export type LoginFailureReason = 'unknown_user' | 'bad_password' | 'disabled' | 'invalid_name';

/**
 * Failures any unauthenticated client can cause (a refused SSH login on the jump listener, a refused
 * enrolment, a login with a control character in the name) are sampled so that a flood cannot fill the
 * database: at most perSource rows per kind (SSH login, enrolment, login name), source address and window,
 * and at most total rows per window over all of them; what was left out is counted in the next row written for that source
 * (`details.suppressedBefore`). (Password logins over HTTPS are bounded by the login limiter instead.)
 */
export const FAILURE_SAMPLING = { perSource: 10, total: 600, windowMs: 60_000 } as const;

/** Everything the relay records. Methods never throw and never wait for the database. */
export interface RelayAuditSink extends TunnelAuditSink {
  emit(e: AuditEvent): void;
  userLogin(
    e:
      | { user: string; source: string; ok: true }
      | { user: string; source: string; ok: false; reason: LoginFailureReason },
  ): void;
  userLogout(e: { user: string; source: string; jti: string }): void;
  userCreated(e: { user: string; admin: boolean; actor: string; source: string }): void;
  agentEnrolled(e: {
    agentId: string;
    name: string;
    source: string;
    tokenCreatedBy: string;
    agentVersion: string;
    protocolVersion: number;
  }): void;
  /** A session refused before it started (host offline, unknown host; others add no_grant, cap...). */
  sessionDenied(e: {
    user: string;
    host: string;
    source: string | null;
    reason: string;
    code?: string;
    via?: 'https' | 'jump';
    runId?: string | null;
  }): void;
  /** A bearer token was refused (sampled: at most one row per source and minute, with the count suppressed). */
  tokenRejected(e: { source: string; code: string; user?: string | null }): void;
  /** The jump listener: a connection ended without authenticating after trying (one row per connection, sampled). */
  sshAuthFailed(e: {
    user: string;
    source: string;
    attempts: number;
    reason: string;
    keys: string[];
    code?: string;
  }): void;
  /** An enrolment was refused (unknown/used token, name mismatch, name taken...; sampled). */
  enrollFailed(e: { name: string; source: string; code: string; message: string }): void;
  /** A login refused at the edge because the user name has control characters (sampled). */
  loginRefusedName(e: { user: string; source: string }): void;
  /** Resolves once every write started so far has finished (or timed out; failures are logged). */
  flush(timeoutMs?: number): Promise<void>;
}

/** The actor of what an agent itself did (connect, disconnect, a refused link): `agent:<name>`. */
export function agentActor(name: string): string {
  return `agent:${name}`;
}

/** token.rejected sampling window per source address. */
export const TOKEN_REJECTED_WINDOW_MS = 60_000;
const MAX_SAMPLED_SOURCES = 10_000;

/** Control characters cannot all be stored (Postgres text and jsonb refuse NUL): written as \uXXXX. */
// eslint-disable-next-line no-control-regex -- the characters to escape
const CONTROL_CHARS = /[\u0000-\u001f\u007f-\u009f]/g;
export function escapeControlChars(s: string): string {
  return s.replace(CONTROL_CHARS, (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, '0')}`);
}
function safeText(s: string | null | undefined): string | null {
  return s == null ? null : escapeControlChars(s);
}
function safeDetails(v: unknown, depth = 0): unknown {
  if (typeof v === 'string') return escapeControlChars(v);
  if (depth > 8 || v === null || typeof v !== 'object') return v;
  if (Array.isArray(v)) return v.map((x) => safeDetails(x, depth + 1));
  const out: Record<string, unknown> = {};
  for (const [k, x] of Object.entries(v)) out[escapeControlChars(k)] = safeDetails(x, depth + 1);
  return out;
}

export class DbAuditSink implements RelayAuditSink {
  readonly writer: AuditWriter;
  private readonly rejected = new Map<string, { windowStart: number; suppressed: number }>();
  private readonly failureWindows = new Map<string, { start: number; n: number; suppressed: number }>();
  private failureTotal = { start: 0, n: 0 };

  constructor(
    private readonly opts: {
      db: Db;
      relayId: string;
      logger: Logger;
      writer?: AuditWriter;
      clock?: () => Date;
      /** Given to the writer this sink makes (not to one passed as `writer`). */
      metrics?: AuditWriterMetrics;
    },
  ) {
    this.writer = opts.writer ?? new AuditWriter({ db: opts.db, logger: opts.logger, metrics: opts.metrics });
  }

  get relayId(): string {
    return this.opts.relayId;
  }

  emit(e: AuditEvent): void {
    try {
      this.writer.enqueue({
        events: [
          {
            time: this.opts.clock?.() ?? new Date(),
            type: e.type,
            code: e.code,
            relayId: this.opts.relayId,
            actor: safeText(e.actor),
            host: safeText(e.host),
            source: safeText(e.source),
            sessionId: safeText(e.sessionId),
            runId: e.runId ?? null,
            details: safeDetails(e.details ?? {}) as Record<string, unknown>,
          },
        ],
      });
    } catch (err) {
      this.opts.logger.error({ err, auditType: e.type, auditCode: e.code }, 'audit write failed');
    }
  }
  userLogin(e: Parameters<RelayAuditSink['userLogin']>[0]): void {
    if (e.ok) this.emit({ ...AUDIT.userLogin, actor: e.user, source: e.source, details: { success: true } });
    else
      this.emit({
        ...AUDIT.userLoginFailed,
        actor: e.user,
        source: e.source,
        details: { success: false, reason: e.reason },
      });
  }

  userLogout(e: { user: string; source: string; jti: string }): void {
    this.emit({ ...AUDIT.userLogout, actor: e.user, source: e.source, details: { jti: e.jti } });
  }

  userCreated(e: { user: string; admin: boolean; actor: string; source: string }): void {
    this.emit({ ...AUDIT.userCreated, actor: e.actor, source: e.source, details: { user: e.user, admin: e.admin } });
  }

  agentEnrolled(e: {
    agentId: string;
    name: string;
    source: string;
    tokenCreatedBy: string;
    agentVersion: string;
    protocolVersion: number;
  }): void {
    this.emit({
      ...AUDIT.agentEnrolled,
      actor: e.tokenCreatedBy,
      host: e.name,
      source: e.source,
      details: { agentId: e.agentId, agentVersion: e.agentVersion, protocolVersion: e.protocolVersion },
    });
  }

  agentConnected(e: {
    agentId: string;
    name: string;
    source: string;
    agentVersion: string;
    protocolVersion: number;
  }): void {
    this.emit({
      ...AUDIT.agentConnected,
      actor: agentActor(e.name),
      host: e.name,
      source: e.source,
      details: { agentId: e.agentId, agentVersion: e.agentVersion, protocolVersion: e.protocolVersion },
    });
  }

  agentDisconnected(e: { agentId: string; name: string; reason: string }): void {
    this.emit({
      ...AUDIT.agentDisconnected,
      actor: agentActor(e.name),
      host: e.name,
      details: { agentId: e.agentId, reason: e.reason },
    });
  }

  agentRejected(e: { name: string | null; source: string; code: string; message: string }): void {
    this.emit({
      ...AUDIT.agentRejected,
      actor: e.name ? agentActor(e.name) : null,
      host: e.name,
      source: e.source,
      details: { code: e.code, message: e.message },
    });
  }

  sessionDenied(e: {
    user: string;
    host: string;
    source: string | null;
    reason: string;
    code?: string;
    via?: 'https' | 'jump';
    runId?: string | null;
  }): void {
    this.emit({
      ...AUDIT.sessionDenied,
      actor: e.user,
      host: e.host,
      source: e.source,
      runId: e.runId ?? null,
      details: { reason: e.reason, via: e.via ?? 'https', ...(e.code ? { code: e.code } : {}) },
    });
  }

  /** Emit a failure event under FAILURE_SAMPLING (per source and in total, per window). */
  private sampledFailure(kind: string, e: AuditEvent & { source: string }): void {
    const now = Date.now();
    const { perSource, total, windowMs } = FAILURE_SAMPLING;
    if (now - this.failureTotal.start >= windowMs) this.failureTotal = { start: now, n: 0 };
    const key = `${kind} ${e.source}`;
    let w = this.failureWindows.get(key);
    if (!w) {
      if (this.failureWindows.size >= MAX_SAMPLED_SOURCES) {
        for (const [k, v] of this.failureWindows) if (now - v.start >= windowMs) this.failureWindows.delete(k);
      }
      w = { start: now, n: 0, suppressed: 0 };
      if (this.failureWindows.size < MAX_SAMPLED_SOURCES) this.failureWindows.set(key, w);
    } else if (now - w.start >= windowMs) {
      w.start = now;
      w.n = 0;
    }
    if (w.n >= perSource || this.failureTotal.n >= total) {
      w.suppressed++;
      return;
    }
    w.n++;
    this.failureTotal.n++;
    const suppressedBefore = w.suppressed;
    w.suppressed = 0;
    this.emit({ ...e, details: { ...(e.details ?? {}), ...(suppressedBefore > 0 ? { suppressedBefore } : {}) } });
  }

  sshAuthFailed(e: {
    user: string;
    source: string;
    attempts: number;
    reason: string;
    keys: string[];
    code?: string;
  }): void {
    this.sampledFailure('ssh', {
      ...AUDIT.userLoginFailed,
      actor: e.user,
      source: e.source,
      details: {
        success: false,
        via: 'jump',
        reason: e.reason,
        attempts: e.attempts,
        keys: e.keys.slice(0, 5),
        ...(e.code ? { code: e.code } : {}),
      },
    });
  }

  enrollFailed(e: { name: string; source: string; code: string; message: string }): void {
    this.sampledFailure('enroll', {
      ...AUDIT.agentEnrollFailed,
      actor: null,
      host: e.name,
      source: e.source,
      details: { code: e.code, message: e.message },
    });
  }

  loginRefusedName(e: { user: string; source: string }): void {
    this.sampledFailure('login-name', {
      ...AUDIT.userLoginFailed,
      actor: e.user.slice(0, 128),
      source: e.source,
      details: { success: false, reason: 'invalid_name', code: 'RLY_ERR_BAD_REQUEST' },
    });
  }

  tokenRejected(e: { source: string; code: string; user?: string | null }): void {
    const now = Date.now();
    const cur = this.rejected.get(e.source);
    if (cur && now - cur.windowStart < TOKEN_REJECTED_WINDOW_MS) {
      cur.suppressed++;
      return;
    }
    if (!cur && this.rejected.size >= MAX_SAMPLED_SOURCES) {
      for (const [k, v] of this.rejected) if (now - v.windowStart >= TOKEN_REJECTED_WINDOW_MS) this.rejected.delete(k);
      if (this.rejected.size >= MAX_SAMPLED_SOURCES) return;
    }
    this.rejected.set(e.source, { windowStart: now, suppressed: 0 });
    this.emit({
      ...AUDIT.tokenRejected,
      actor: e.user ?? null,
      source: e.source,
      details: { code: e.code, suppressedBefore: cur?.suppressed ?? 0, sampleWindowS: TOKEN_REJECTED_WINDOW_MS / 1000 },
    });
  }

  async flush(timeoutMs = 10_000): Promise<void> {
    if (!(await this.writer.drain(timeoutMs))) {
      this.opts.logger.error({ pending: this.writer.pending }, 'audit records still unwritten (database unavailable?)');
    }
  }
}
