/**
 * The session-start gate and the `sessions` index. Every path that forwards a user's bytes to a machine
 * (HTTPS tunnels, the SSH jump listener) calls `start()` first and forwards nothing unless it resolved:
 * the `sessions` row and the `session.start` audit row are then COMMITTED (one transaction, group
 * committed with concurrent starts). If the database cannot take them the start is refused with
 * RLY_ERR_DATABASE_UNAVAILABLE (fail closed); sessions already running are not affected.
 *
 *   route --start()--> [sessions + session.start COMMIT] --> answer 200, splice --end()--> session.end
 *
 * While sessions run, their byte counters are written every progressIntervalMs (one UPDATE for all of
 * them). At start-up `recoverCrashed()` closes what a previous run of this relay id left open (kill -9,
 * power loss) with end reason relay_crashed and the last written byte counts.
 */
import { and, eq, isNull, sql } from 'drizzle-orm';
import type { Logger } from 'pino';
import { sessions } from '@mssh/migrations';
import type { Db } from '../db/index.js';
import { relayError } from '../errors.js';
import type { RecordedSession, SessionEndReason, SessionLedger, SessionStartInfo } from '../tunnel/types.js';
import { AUDIT } from './codes.js';
import type { AuditRow, AuditWriter } from './audit-writer.js';

export const DEFAULT_PROGRESS_INTERVAL_MS = 10_000;

export interface SessionRecorderOptions {
  db: Db;
  writer: AuditWriter;
  relayId: string;
  logger: Logger;
  clock?: () => Date;
  /** How often live byte counters are written (default 10 s). */
  progressIntervalMs?: number;
}

export interface LiveSessionInfo {
  sessionId: string;
  user: string;
  host: string;
  source: string | null;
  via: string;
  startedAt: Date;
  bytesFromClient: number;
  bytesToClient: number;
}

class LiveSession implements RecordedSession {
  private counters: () => { bytesFromClient: number; bytesToClient: number } = () => ({ bytesFromClient: 0, bytesToClient: 0 });
  ended = false;
  constructor(readonly info: SessionStartInfo, readonly startedAt: Date, private readonly recorder: SessionRecorder) {}

  get sessionId(): string {
    return this.info.sessionId;
  }

  attachCounters(fn: () => { bytesFromClient: number; bytesToClient: number }): void {
    this.counters = fn;
  }

  bytes(): { bytesFromClient: number; bytesToClient: number } {
    return this.counters();
  }

  end(e: { reason: SessionEndReason; bytesFromClient?: number; bytesToClient?: number }): void {
    if (this.ended) return;
    this.ended = true;
    const b = this.counters();
    this.recorder.ended(this, e.reason, e.bytesFromClient ?? b.bytesFromClient, e.bytesToClient ?? b.bytesToClient);
  }
}

export class SessionRecorder implements SessionLedger {
  private readonly live = new Map<string, LiveSession>();
  private readonly clock: () => Date;
  private timer: NodeJS.Timeout | null = null;
  private progressing: Promise<void> | null = null;

  constructor(private readonly opts: SessionRecorderOptions) {
    this.clock = opts.clock ?? (() => new Date());
  }

  /** Record the start durably; resolves after COMMIT. Rejects with RLY_ERR_DATABASE_UNAVAILABLE. */
  async start(s: SessionStartInfo): Promise<RecordedSession> {
    const startedAt = this.clock();
    const event: AuditRow = {
      ...AUDIT.sessionStart, time: startedAt, relayId: this.opts.relayId,
      actor: s.user, host: s.host, source: s.source, sessionId: s.sessionId,
      details: { via: s.via, ...(s.agentId ? { agentId: s.agentId } : {}), ...(s.details ?? {}) },
    };
    try {
      await this.opts.writer.commit({
        starts: [{ id: s.sessionId, relayId: this.opts.relayId, userName: s.user, host: s.host, source: s.source, via: s.via, startedAt }],
        events: [event],
      });
    } catch (err) {
      throw relayError(
        'RLY_ERR_DATABASE_UNAVAILABLE',
        'the relay cannot record this session in its audit trail (database unavailable), so it refused it; running sessions are not affected, try again shortly',
        err,
      );
    }
    const live = new LiveSession(s, startedAt, this);
    this.live.set(s.sessionId, live);
    return live;
  }

  /** Sessions open on this relay now. */
  active(): LiveSessionInfo[] {
    return [...this.live.values()].map((l) => ({
      sessionId: l.sessionId, user: l.info.user, host: l.info.host, source: l.info.source, via: l.info.via, startedAt: l.startedAt, ...l.bytes(),
    }));
  }

  /** Called once by LiveSession.end(): session.end and the sessions row, written eventually (retried). */
  ended(l: LiveSession, reason: SessionEndReason, bytesFromClient: number, bytesToClient: number): void {
    this.live.delete(l.sessionId);
    const endedAt = this.clock();
    this.opts.writer.enqueue({
      ends: [{ id: l.sessionId, endedAt, bytesUp: bytesFromClient, bytesDown: bytesToClient, endReason: reason }],
      events: [{
        ...AUDIT.sessionEnd, time: endedAt, relayId: this.opts.relayId,
        actor: l.info.user, host: l.info.host, source: l.info.source, sessionId: l.sessionId,
        details: {
          via: l.info.via, ...(l.info.agentId ? { agentId: l.info.agentId } : {}), reason, bytesFromClient, bytesToClient,
          startedAt: l.startedAt.toISOString(), durationMs: endedAt.getTime() - l.startedAt.getTime(),
        },
      }],
    });
  }

  /** Write every live session's byte counters now, in one statement. Failures are logged. */
  async writeProgress(): Promise<void> {
    const rows = [...this.live.values()].map((l) => {
      const b = l.bytes();
      return { id: l.sessionId, up: b.bytesFromClient, down: b.bytesToClient };
    });
    if (rows.length === 0) return;
    try {
      await this.opts.db.execute(sql`UPDATE sessions AS s SET bytes_up = GREATEST(s.bytes_up, v.up), bytes_down = GREATEST(s.bytes_down, v.down), progress_at = now()
        FROM jsonb_to_recordset(${JSON.stringify(rows)}::jsonb) AS v(id text, up bigint, down bigint)
        WHERE s.id = v.id AND s.ended_at IS NULL`);
    } catch (err) {
      this.opts.logger.warn({ err, sessions: rows.length }, 'could not write the byte counters of live sessions');
    }
  }

  /** Start writing byte counters periodically. */
  startProgress(): void {
    if (this.timer) return;
    this.timer = setInterval(() => {
      if (this.progressing) return;
      this.progressing = this.writeProgress().finally(() => { this.progressing = null; });
    }, this.opts.progressIntervalMs ?? DEFAULT_PROGRESS_INTERVAL_MS);
    this.timer.unref();
  }

  async close(): Promise<void> {
    if (this.timer) clearInterval(this.timer);
    this.timer = null;
    await this.progressing;
  }

  /**
   * Close the sessions a previous run of this relay left open: end reason relay_crashed, the last
   * written byte counts, ended at the last progress write (or the start). One transaction; returns how
   * many. Throws when the database fails (the relay must not start with open sessions it cannot close).
   */
  async recoverCrashed(): Promise<number> {
    const open = await this.opts.db.select().from(sessions).where(and(eq(sessions.relayId, this.opts.relayId), isNull(sessions.endedAt)));
    if (open.length === 0) return 0;
    const now = this.clock();
    for (let i = 0; i < open.length; i += 500) {
      const chunk = open.slice(i, i + 500);
      await this.opts.writer.commit({
        ends: chunk.map((r) => ({ id: r.id, endedAt: r.progressAt ?? r.startedAt, bytesUp: r.bytesUp, bytesDown: r.bytesDown, endReason: 'relay_crashed' })),
        events: chunk.map((r): AuditRow => {
          const endedAt = r.progressAt ?? r.startedAt;
          return {
            ...AUDIT.sessionEnd, time: now, relayId: this.opts.relayId,
            actor: r.userName, host: r.host, source: r.source, sessionId: r.id,
            details: {
              via: r.via, reason: 'relay_crashed', bytesFromClient: r.bytesUp, bytesToClient: r.bytesDown,
              startedAt: r.startedAt.toISOString(), endedAt: endedAt.toISOString(), durationMs: endedAt.getTime() - r.startedAt.getTime(),
              bytesAsOf: r.progressAt ? r.progressAt.toISOString() : null,
            },
          };
        }),
      });
    }
    return open.length;
  }
}
