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
 * them), and sooner while bytes move: once flushBytes (1 MiB) have moved through this relay since the last
 * write (writes at least MIN_FLUSH_GAP_MS, 20 ms, apart), or flushIntervalMs (1 s) after bytes moved, the counters of
 * the sessions that changed go into the audit writer's next group commit. So a crash loses at most the
 * bytes moved since the last write: about 1 MiB, or 1 s of a slower transfer (docs/audit.md). The data
 * path only adds to one in-memory number per chunk (noteBytes); no database work per chunk. At start-up `recoverCrashed()` closes what a previous run of this relay id left open (kill -9,
 * power loss) with end reason relay_crashed and the last written byte counts.
 */
import { sql } from 'drizzle-orm';
import type { Logger } from 'pino';
import type { Db } from '../db/index.js';
import { relayError } from '../errors.js';
import type { RecordedSession, SessionEndReason, SessionLedger, SessionStartInfo } from '../tunnel/types.js';
import { AUDIT } from './codes.js';
import type { AuditRow, AuditWriter } from './audit-writer.js';

export const DEFAULT_PROGRESS_INTERVAL_MS = 10_000;
/** Bytes moved (all sessions together) after which live counters are written without waiting. */
export const DEFAULT_FLUSH_BYTES = 1024 * 1024;
/** Counters that moved are written at least this often. */
export const DEFAULT_FLUSH_INTERVAL_MS = 1_000;
/** Byte-triggered writes are at least this far apart (bounds the database work of fast transfers). */
export const MIN_FLUSH_GAP_MS = 20;

export interface SessionRecorderOptions {
  db: Db;
  writer: AuditWriter;
  relayId: string;
  logger: Logger;
  clock?: () => Date;
  /** How often live byte counters are written (default 10 s). */
  progressIntervalMs?: number;
  /** Write the counters that moved once this many bytes have moved since the last write (default 1 MiB). */
  flushBytes?: number;
  /** ...or this long after bytes moved (default 1 s). */
  flushIntervalMs?: number;
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
  private counters: () => { bytesFromClient: number; bytesToClient: number } = () => ({
    bytesFromClient: 0,
    bytesToClient: 0,
  });
  ended = false;
  constructor(
    readonly info: SessionStartInfo,
    readonly startedAt: Date,
    private readonly recorder: SessionRecorder,
  ) {}

  get sessionId(): string {
    return this.info.sessionId;
  }

  attachCounters(fn: () => { bytesFromClient: number; bytesToClient: number }): void {
    this.counters = fn;
  }

  bytes(): { bytesFromClient: number; bytesToClient: number } {
    return this.counters();
  }

  /** Counters as last written to the database. */
  written = { up: 0, down: 0 };

  /** The data path moved n bytes of this session (in memory only). */
  noteBytes(n: number): void {
    this.recorder.noteBytes(n);
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
  private fastTimer: NodeJS.Timeout | null = null;
  private progressing: Promise<void> | null = null;
  /** Bytes moved since the last progress write, all sessions together. */
  private unwritten = 0;
  private flushing: Promise<void> | null = null;
  private flushSoon: NodeJS.Timeout | null = null;
  private lastFlushAt = 0;
  private readonly flushBytes: number;

  constructor(private readonly opts: SessionRecorderOptions) {
    this.clock = opts.clock ?? (() => new Date());
    this.flushBytes = opts.flushBytes ?? DEFAULT_FLUSH_BYTES;
  }

  /**
   * Bytes moved by a live session (called per chunk by the data path): only counted here; past
   * flushBytes a write of the changed counters is started (one at a time, MIN_FLUSH_GAP_MS apart).
   */
  noteBytes(n: number): void {
    this.unwritten += n;
    if (this.unwritten < this.flushBytes || this.flushing || this.flushSoon || !this.timer) return;
    const wait = Math.max(0, this.lastFlushAt + MIN_FLUSH_GAP_MS - Date.now());
    this.flushSoon = setTimeout(() => {
      this.flushSoon = null;
      void this.flushMoved();
    }, wait);
    this.flushSoon.unref();
  }

  /** Write the counters of the sessions that moved since their last write (one statement, group committed). */
  flushMoved(): Promise<void> {
    if (this.flushing) return this.flushing;
    this.unwritten = 0;
    this.lastFlushAt = Date.now();
    const changed: Array<{ l: LiveSession; up: number; down: number }> = [];
    for (const l of this.live.values()) {
      const b = l.bytes();
      if (b.bytesFromClient !== l.written.up || b.bytesToClient !== l.written.down)
        changed.push({ l, up: b.bytesFromClient, down: b.bytesToClient });
    }
    if (changed.length === 0) return Promise.resolve();
    this.flushing = this.writeCounters(changed).finally(() => {
      this.flushing = null;
      // More moved while this write was in flight: go again.
      if (this.unwritten >= this.flushBytes) this.noteBytes(0);
    });
    return this.flushing;
  }

  private async writeCounters(rows: Array<{ l: LiveSession; up: number; down: number }>): Promise<void> {
    try {
      await this.opts.writer.commit({
        progress: rows.map((r) => ({ id: r.l.sessionId, bytesUp: r.up, bytesDown: r.down })),
      });
      for (const r of rows) r.l.written = { up: r.up, down: r.down };
    } catch (err) {
      this.opts.logger.warn({ err, sessions: rows.length }, 'could not write the byte counters of live sessions');
    }
  }

  /** Record the start durably; resolves after COMMIT. Rejects with RLY_ERR_DATABASE_UNAVAILABLE. */
  async start(s: SessionStartInfo): Promise<RecordedSession> {
    const startedAt = this.clock();
    const event: AuditRow = {
      ...AUDIT.sessionStart,
      time: startedAt,
      relayId: this.opts.relayId,
      actor: s.user,
      host: s.host,
      source: s.source,
      sessionId: s.sessionId,
      runId: s.runId ?? null,
      details: {
        via: s.via,
        ...(s.agentId ? { agentId: s.agentId } : {}),
        ...(s.holdingRelayId && s.holdingRelayId !== this.opts.relayId ? { holdingRelay: s.holdingRelayId } : {}),
        ...(s.details ?? {}),
      },
    };
    try {
      await this.opts.writer.commit({
        starts: [
          {
            id: s.sessionId,
            relayId: this.opts.relayId,
            userName: s.user,
            host: s.host,
            source: s.source,
            via: s.via,
            startedAt,
            holdingRelayId: s.holdingRelayId ?? this.opts.relayId,
            runId: s.runId ?? null,
          },
        ],
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
      sessionId: l.sessionId,
      user: l.info.user,
      host: l.info.host,
      source: l.info.source,
      via: l.info.via,
      startedAt: l.startedAt,
      ...l.bytes(),
    }));
  }

  /** Called once by LiveSession.end(): session.end and the sessions row, written eventually (retried). */
  ended(l: LiveSession, reason: SessionEndReason, bytesFromClient: number, bytesToClient: number): void {
    this.live.delete(l.sessionId);
    const endedAt = this.clock();
    this.opts.writer.enqueue({
      ends: [{ id: l.sessionId, endedAt, bytesUp: bytesFromClient, bytesDown: bytesToClient, endReason: reason }],
      events: [
        {
          ...AUDIT.sessionEnd,
          time: endedAt,
          relayId: this.opts.relayId,
          actor: l.info.user,
          host: l.info.host,
          source: l.info.source,
          sessionId: l.sessionId,
          runId: l.info.runId ?? null,
          details: {
            via: l.info.via,
            ...(l.info.agentId ? { agentId: l.info.agentId } : {}),
            reason,
            bytesFromClient,
            bytesToClient,
            startedAt: l.startedAt.toISOString(),
            durationMs: endedAt.getTime() - l.startedAt.getTime(),
          },
        },
      ],
    });
  }

  /** Write every live session's byte counters now (and its progress time), in one statement. Failures are logged. */
  async writeProgress(): Promise<void> {
    const rows = [...this.live.values()].map((l) => {
      const b = l.bytes();
      return { l, up: b.bytesFromClient, down: b.bytesToClient };
    });
    if (rows.length === 0) return;
    await this.writeCounters(rows);
  }

  /** Start writing byte counters periodically. */
  startProgress(): void {
    if (this.timer) return;
    this.timer = setInterval(() => {
      if (this.progressing) return;
      this.progressing = this.writeProgress().finally(() => {
        this.progressing = null;
      });
    }, this.opts.progressIntervalMs ?? DEFAULT_PROGRESS_INTERVAL_MS);
    this.timer.unref();
    this.fastTimer = setInterval(() => void this.flushMoved(), this.opts.flushIntervalMs ?? DEFAULT_FLUSH_INTERVAL_MS);
    this.fastTimer.unref();
  }

  async close(): Promise<void> {
    if (this.timer) clearInterval(this.timer);
    if (this.fastTimer) clearInterval(this.fastTimer);
    if (this.flushSoon) clearTimeout(this.flushSoon);
    this.timer = this.fastTimer = this.flushSoon = null;
    await this.progressing;
    await this.flushing;
  }

  /**
   * Close the sessions a run of a relay left open: end reason relay_crashed, the last written byte counts,
   * ended at the last progress write (or the start). By default this relay's own (at start-up, what a
   * previous run left after kill -9 or power loss); in a fleet, a survivor closes a LOST relay's sessions
   * (fleet/registry.ts), and the session.end rows then name it (`details.closedBy`).
   *
   * ONE statement: the UPDATE closes only rows still open (a concurrent closer waits on the row locks, then
   * skips what the other closed), and the session.end rows are inserted for exactly the rows it closed. So
   * two relays racing to close the same sessions can never record an end twice. Returns how many it
   * closed; throws when the database fails (the relay must not start with open sessions it cannot close).
   */
  async recoverCrashed(relayId: string = this.opts.relayId): Promise<number> {
    const me = this.opts.relayId;
    const closedBy = relayId === me ? sql`'{}'::jsonb` : sql`jsonb_build_object('closedBy', ${me}::text)`;
    const iso = (col: string) => sql.raw(`to_char(${col} AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"')`);
    const res = await this.opts.db.execute(sql`WITH closed AS (
        UPDATE sessions SET ended_at = COALESCE(progress_at, started_at), end_reason = 'relay_crashed'
        WHERE relay_id = ${relayId} AND ended_at IS NULL
        RETURNING id, user_name, host, source, via, run_id, started_at, ended_at, bytes_up, bytes_down, progress_at)
      INSERT INTO audit_events (time, type, code, relay_id, actor, host, source, session_id, run_id, details)
      SELECT ${this.clock().toISOString()}::timestamptz, ${AUDIT.sessionEnd.type}, ${AUDIT.sessionEnd.code}, ${me},
        user_name, host, source, id, run_id,
        jsonb_build_object('via', via, 'reason', 'relay_crashed', 'bytesFromClient', bytes_up, 'bytesToClient', bytes_down,
          'startedAt', ${iso('started_at')}, 'endedAt', ${iso('ended_at')},
          'durationMs', floor(extract(epoch FROM ended_at - started_at) * 1000)::bigint,
          'bytesAsOf', CASE WHEN progress_at IS NULL THEN NULL ELSE ${iso('progress_at')} END) || ${closedBy}
      FROM closed
      RETURNING 1`);
    return (res as unknown as { rows: unknown[] }).rows.length;
  }
}
