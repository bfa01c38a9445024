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
import { AuditWriter } from './audit-writer.js';

export interface AuditEvent {
  type: string;
  code: string;
  actor?: string | null;
  host?: string | null;
  source?: string | null;
  sessionId?: string | null;
  details?: Record<string, unknown>;
}

export type LoginFailureReason = 'unknown_user' | 'bad_password' | 'disabled';

/** Everything the relay records. Methods never throw and never wait for the database. */
export interface RelayAuditSink extends TunnelAuditSink {
  emit(e: AuditEvent): void;
  userLogin(e: { user: string; source: string; ok: true } | { user: string; source: string; ok: false; reason: LoginFailureReason }): void;
  userLogout(e: { user: string; source: string; jti: string }): void;
  userCreated(e: { user: string; admin: boolean; actor: string; source: string }): void;
  agentEnrolled(e: { agentId: string; name: string; source: string; tokenCreatedBy: string; agentVersion: string; protocolVersion: number }): void;
  /** A session refused before it started (host offline, unknown host; others add no_grant, cap...). */
  sessionDenied(e: { user: string; host: string; source: string | null; reason: string; code?: string; via?: 'https' | 'jump' }): void;
  /** A bearer token was refused (sampled: at most one row per source and minute, with the count suppressed). */
  tokenRejected(e: { source: string; code: string; user?: string | null }): void;
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

export class DbAuditSink implements RelayAuditSink {
  readonly writer: AuditWriter;
  private readonly rejected = new Map<string, { windowStart: number; suppressed: number }>();

  constructor(private readonly opts: { db: Db; relayId: string; logger: Logger; writer?: AuditWriter; clock?: () => Date }) {
    this.writer = opts.writer ?? new AuditWriter({ db: opts.db, logger: opts.logger });
  }

  get relayId(): string {
    return this.opts.relayId;
  }

  emit(e: AuditEvent): void {
    try {
      this.writer.enqueue({
        events: [{
          time: this.opts.clock?.() ?? new Date(), type: e.type, code: e.code, relayId: this.opts.relayId,
          actor: e.actor ?? null, host: e.host ?? null, source: e.source ?? null, sessionId: e.sessionId ?? null,
          details: e.details ?? {},
        }],
      });
    } catch (err) {
      this.opts.logger.error({ err, auditType: e.type, auditCode: e.code }, 'audit write failed');
    }
  }
  userLogin(e: Parameters<RelayAuditSink['userLogin']>[0]): void {
    if (e.ok) this.emit({ ...AUDIT.userLogin, actor: e.user, source: e.source, details: { success: true } });
    else this.emit({ ...AUDIT.userLoginFailed, actor: e.user, source: e.source, details: { success: false, reason: e.reason } });
  }

  userLogout(e: { user: string; source: string; jti: string }): void {
    this.emit({ ...AUDIT.userLogout, actor: e.user, source: e.source, details: { jti: e.jti } });
  }

  userCreated(e: { user: string; admin: boolean; actor: string; source: string }): void {
    this.emit({ ...AUDIT.userCreated, actor: e.actor, source: e.source, details: { user: e.user, admin: e.admin } });
  }

  agentEnrolled(e: { agentId: string; name: string; source: string; tokenCreatedBy: string; agentVersion: string; protocolVersion: number }): void {
    this.emit({
      ...AUDIT.agentEnrolled, actor: e.tokenCreatedBy, host: e.name, source: e.source,
      details: { agentId: e.agentId, agentVersion: e.agentVersion, protocolVersion: e.protocolVersion },
    });
  }

  agentConnected(e: { agentId: string; name: string; source: string; agentVersion: string; protocolVersion: number }): void {
    this.emit({ ...AUDIT.agentConnected, actor: agentActor(e.name), host: e.name, source: e.source, details: { agentId: e.agentId, agentVersion: e.agentVersion, protocolVersion: e.protocolVersion } });
  }

  agentDisconnected(e: { agentId: string; name: string; reason: string }): void {
    this.emit({ ...AUDIT.agentDisconnected, actor: agentActor(e.name), host: e.name, details: { agentId: e.agentId, reason: e.reason } });
  }

  agentRejected(e: { name: string | null; source: string; code: string; message: string }): void {
    this.emit({ ...AUDIT.agentRejected, actor: e.name ? agentActor(e.name) : null, host: e.name, source: e.source, details: { code: e.code, message: e.message } });
  }

  sessionDenied(e: { user: string; host: string; source: string | null; reason: string; code?: string; via?: 'https' | 'jump' }): void {
    this.emit({ ...AUDIT.sessionDenied, actor: e.user, host: e.host, source: e.source, details: { reason: e.reason, via: e.via ?? 'https', ...(e.code ? { code: e.code } : {}) } });
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
      ...AUDIT.tokenRejected, actor: e.user ?? null, source: e.source,
      details: { code: e.code, suppressedBefore: cur?.suppressed ?? 0, sampleWindowS: TOKEN_REJECTED_WINDOW_MS / 1000 },
    });
  }

  async flush(timeoutMs = 10_000): Promise<void> {
    if (!(await this.writer.drain(timeoutMs))) {
      this.opts.logger.error({ pending: this.writer.pending }, 'audit records still unwritten (database unavailable?)');
    }
  }
}
