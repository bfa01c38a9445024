/**
 * The audit trail: one row per event in audit_events. Writing is fire-and-forget for callers (a failed
 * write is logged and never reaches the request or the tunnel); `flush()` waits for pending writes.
 */
import type { Logger } from 'pino';
import { auditEvents } from '@mssh/migrations';
import type { Db } from '../db/index.js';
import type { SessionVia, TunnelAuditSink, TunnelSessionSummary } from '../tunnel/types.js';
import { AUDIT } from './codes.js';

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
  /** Resolves once every write started so far has finished (or failed and been logged). */
  flush(): Promise<void>;
}

export class DbAuditSink implements RelayAuditSink {
  private readonly pending = new Set<Promise<void>>();

  constructor(private readonly opts: { db: Db; relayId: string; logger: Logger }) {}

  emit(e: AuditEvent): void {
    const row = {
      type: e.type, code: e.code, relayId: this.opts.relayId,
      actor: e.actor ?? null, host: e.host ?? null, source: e.source ?? null, sessionId: e.sessionId ?? null,
      details: e.details ?? {},
    };
    let p: Promise<void>;
    try {
      p = this.opts.db.insert(auditEvents).values(row).then(
        () => undefined,
        (err: unknown) => this.opts.logger.error({ err, auditType: e.type, auditCode: e.code }, 'audit write failed'),
      );
    } catch (err) {
      this.opts.logger.error({ err, auditType: e.type, auditCode: e.code }, 'audit write failed');
      return;
    }
    this.pending.add(p);
    void p.finally(() => this.pending.delete(p));
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
    this.emit({ ...AUDIT.agentConnected, host: e.name, source: e.source, details: { agentId: e.agentId, agentVersion: e.agentVersion, protocolVersion: e.protocolVersion } });
  }

  agentDisconnected(e: { agentId: string; name: string; reason: string }): void {
    this.emit({ ...AUDIT.agentDisconnected, host: e.name, details: { agentId: e.agentId, reason: e.reason } });
  }

  agentRejected(e: { name: string | null; source: string; code: string; message: string }): void {
    this.emit({ ...AUDIT.agentRejected, host: e.name, source: e.source, details: { code: e.code, message: e.message } });
  }

  sessionStarted(e: { sessionId: string; user: string; host: string; agentId: string; source: string | null; via: SessionVia }): void {
    this.emit({ ...AUDIT.sessionStart, actor: e.user, host: e.host, source: e.source, sessionId: e.sessionId, details: { agentId: e.agentId, via: e.via } });
  }

  sessionEnded(e: TunnelSessionSummary): void {
    this.emit({
      ...AUDIT.sessionEnd, actor: e.user, host: e.host, source: e.source, sessionId: e.sessionId,
      details: {
        agentId: e.agentId, via: e.via, reason: e.reason, bytesFromClient: e.bytesFromClient, bytesToClient: e.bytesToClient,
        startedAt: e.startedAt.toISOString(), durationMs: e.endedAt.getTime() - e.startedAt.getTime(),
      },
    });
  }

  async flush(): Promise<void> {
    for (let i = 0; i < 10 && this.pending.size > 0; i++) await Promise.allSettled([...this.pending]);
  }
}
