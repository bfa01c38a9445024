/**
 * Reading the audit trail for admins (`mssh admin audit`, `mssh admin sessions`) and the one explicit
 * retention path (`mssh-relay audit prune --older-than 365d`).
 */
import { and, desc, eq, gte, isNull, like, lt, sql, type SQL } from 'drizzle-orm';
import { auditEvents, sessions } from '@mssh/migrations';
import type { AuditEventInfo, AuditQuery, SessionInfo } from '@mssh/protocol';
import type { Db } from '../db/index.js';
import { AUDIT } from './codes.js';
import type { LiveSessionInfo } from './session-recorder.js';

export interface PruneResult {
  deleted: number;
  cutoff: string;
}

export class AuditLog {
  constructor(private readonly opts: {
    db: Db;
    relayId: string;
    /** This relay's live sessions (fresher byte counts than the last progress write). */
    live?: () => LiveSessionInfo[];
    clock?: () => Date;
  }) {}

  /** Events matching the filters, oldest first; the newest `limit` when more match. */
  async events(q: AuditQuery): Promise<AuditEventInfo[]> {
    const where: SQL[] = [];
    if (q.user) where.push(eq(auditEvents.actor, q.user));
    if (q.host) where.push(eq(auditEvents.host, q.host));
    if (q.type) where.push(q.type.endsWith('.*') ? like(auditEvents.type, `${q.type.slice(0, -1)}%`) : eq(auditEvents.type, q.type));
    if (q.since) where.push(gte(auditEvents.time, new Date(q.since)));
    if (q.until) where.push(lt(auditEvents.time, new Date(q.until)));
    const rows = await this.opts.db.select().from(auditEvents).where(and(...where))
      .orderBy(desc(auditEvents.time), desc(auditEvents.id)).limit(q.limit);
    return rows.reverse().map((r) => ({
      id: Number(r.id), time: r.time.toISOString(), type: r.type, code: r.code, relayId: r.relayId,
      actor: r.actor, host: r.host, source: r.source, sessionId: r.sessionId, details: r.details ?? {},
    }));
  }

  /** Sessions, newest first (only running ones with active). */
  async sessions(q: { active: boolean; limit: number }): Promise<SessionInfo[]> {
    const rows = await this.opts.db.select().from(sessions).where(q.active ? isNull(sessions.endedAt) : undefined)
      .orderBy(desc(sessions.startedAt)).limit(q.limit);
    const live = new Map((this.opts.live?.() ?? []).map((l) => [l.sessionId, l]));
    const now = (this.opts.clock?.() ?? new Date()).getTime();
    return rows.map((r) => {
      const l = r.endedAt ? undefined : live.get(r.id);
      return {
        sessionId: r.id, relayId: r.relayId, user: r.userName, host: r.host, source: r.source, via: r.via,
        startedAt: r.startedAt.toISOString(), endedAt: r.endedAt?.toISOString() ?? null,
        durationMs: (r.endedAt?.getTime() ?? now) - r.startedAt.getTime(),
        bytesFromClient: l ? l.bytesFromClient : Number(r.bytesUp), bytesToClient: l ? l.bytesToClient : Number(r.bytesDown),
        endReason: r.endReason, active: r.endedAt === null,
      };
    });
  }

  /**
   * Delete audit events strictly older than `cutoff` and record audit.pruned, in one transaction. The
   * append-only trigger lets the DELETE through only for rows older than the transaction-local
   * mssh.audit_prune_before setting.
   */
  async prune(cutoff: Date, by: { actor: string; source: string }): Promise<PruneResult> {
    const iso = cutoff.toISOString();
    return this.opts.db.transaction(async (tx) => {
      await tx.execute(sql`SELECT set_config('mssh.audit_prune_before', ${iso}, true)`);
      const res = await tx.execute(sql`WITH d AS (DELETE FROM audit_events WHERE time < ${iso}::timestamptz RETURNING 1) SELECT count(*)::int AS n FROM d`);
      const deleted = Number((res as unknown as { rows: Array<{ n: number }> }).rows[0]?.n ?? 0);
      await tx.insert(auditEvents).values({
        ...AUDIT.auditPruned, time: this.opts.clock?.() ?? new Date(), relayId: this.opts.relayId,
        actor: by.actor, source: by.source, details: { olderThan: iso, deleted },
      });
      return { deleted, cutoff: iso };
    });
  }
}

