/**
 * Reading the audit trail for admins (`mssh admin audit`, `mssh admin sessions`) and the one explicit
 * retention path (`mssh-relay audit prune --older-than 365d`).
 */
import { and, desc, eq, gte, isNull, like, lt, sql, type SQL } from 'drizzle-orm';
import { auditEvents, sessions } from '@mssh/migrations';
import type { AuditEventInfo, AuditQuery, SessionInfo } from '@mssh/protocol';
import type { Db } from '../db/index.js';
import { relayError } from '../errors.js';
import type { LiveSessionInfo } from './session-recorder.js';

export interface PruneResult {
  deleted: number;
  cutoff: string;
}

export class AuditLog {
  constructor(
    private readonly opts: {
      db: Db;
      relayId: string;
      /** This relay's live sessions (fresher byte counts than the last progress write). */
      live?: () => LiveSessionInfo[];
      clock?: () => Date;
    },
  ) {}

  /** Events matching the filters, oldest first; the newest `limit` when more match. */
  async events(q: AuditQuery): Promise<AuditEventInfo[]> {
    const where: SQL[] = [];
    if (q.user) where.push(eq(auditEvents.actor, q.user));
    if (q.host) where.push(eq(auditEvents.host, q.host));
    if (q.type)
      where.push(
        q.type.endsWith('.*') ? like(auditEvents.type, `${q.type.slice(0, -1)}%`) : eq(auditEvents.type, q.type),
      );
    if (q.since) where.push(gte(auditEvents.time, new Date(q.since)));
    if (q.until) where.push(lt(auditEvents.time, new Date(q.until)));
    if (q.run) where.push(eq(auditEvents.runId, q.run));
    const rows = await this.opts.db
      .select()
      .from(auditEvents)
      .where(and(...where))
      .orderBy(desc(auditEvents.time), desc(auditEvents.id))
      .limit(q.limit);
    return rows.reverse().map((r) => ({
      id: Number(r.id),
      time: r.time.toISOString(),
      type: r.type,
      code: r.code,
      relayId: r.relayId,
      actor: r.actor,
      host: r.host,
      source: r.source,
      sessionId: r.sessionId,
      runId: r.runId,
      details: r.details ?? {},
    }));
  }

  /** Sessions, newest first (only running ones with active). */
  async sessions(q: { active: boolean; limit: number }): Promise<SessionInfo[]> {
    const rows = await this.opts.db
      .select()
      .from(sessions)
      .where(q.active ? isNull(sessions.endedAt) : undefined)
      .orderBy(desc(sessions.startedAt))
      .limit(q.limit);
    const live = new Map((this.opts.live?.() ?? []).map((l) => [l.sessionId, l]));
    const now = (this.opts.clock?.() ?? new Date()).getTime();
    return rows.map((r) => {
      const l = r.endedAt ? undefined : live.get(r.id);
      return {
        sessionId: r.id,
        relayId: r.relayId,
        holdingRelayId: r.holdingRelayId ?? r.relayId,
        user: r.userName,
        host: r.host,
        source: r.source,
        via: r.via,
        startedAt: r.startedAt.toISOString(),
        endedAt: r.endedAt?.toISOString() ?? null,
        durationMs: (r.endedAt?.getTime() ?? now) - r.startedAt.getTime(),
        bytesFromClient: l ? l.bytesFromClient : Number(r.bytesUp),
        bytesToClient: l ? l.bytesToClient : Number(r.bytesDown),
        endReason: r.endReason,
        runId: r.runId,
        active: r.endedAt === null,
      };
    });
  }

  /**
   * Delete audit events strictly older than `cutoff` (and closed sessions that ended before it) and record
   * audit.pruned, in one transaction, through the database function mssh_audit_prune (migration 0003): it
   * refuses a cut-off inside the retention floor and writes its own audit.pruned row. On Postgres only
   * roles granted EXECUTE on it may prune (docs/audit.md, "Database roles"); the relay's own role need not.
   */
  async prune(cutoff: Date, by: { actor: string; source: string }): Promise<PruneResult> {
    const iso = cutoff.toISOString();
    try {
      const res = await this.opts.db.execute(
        sql`SELECT mssh_audit_prune(${iso}::timestamptz, ${by.actor}, ${by.source}, ${this.opts.relayId})::int AS n`,
      );
      const deleted = Number((res as unknown as { rows: Array<{ n: number }> }).rows[0]?.n ?? 0);
      return { deleted, cutoff: iso };
    } catch (e) {
      const code = sqlState(e);
      if (code === '42501') {
        throw relayError(
          'RLY_ERR_PRUNE_NOT_ALLOWED',
          'this database role may not prune the audit trail; run `mssh-relay audit prune --database-url URL` with the URL of a role granted EXECUTE on mssh_audit_prune (docs/audit.md, "Database roles")',
          e,
        );
      }
      if (code === '22023')
        throw relayError(
          'RLY_ERR_PRUNE_TOO_RECENT',
          `the database refused the cut-off ${iso}: it is within the retention floor (audit_retention.min_age)`,
          e,
        );
      throw e;
    }
  }
}

/** The SQLSTATE of a database error (drizzle wraps the driver's error as `cause`). */
export function sqlState(e: unknown): string | undefined {
  let cur = e;
  for (let i = 0; i < 8 && cur; i++) {
    const c = (cur as { code?: unknown }).code;
    if (typeof c === 'string' && /^[0-9A-Z]{5}$/.test(c)) return c;
    cur = (cur as { cause?: unknown }).cause;
  }
  return undefined;
}
