/**
 * Group commit for the audit trail: every write (audit rows, session rows) is queued, and one writer at a
 * time takes everything queued so far and writes it in ONE statement (multi-row INSERTs and one UPDATE for
 * all ended sessions, as data-modifying CTEs: atomic, one round trip). Callers of commit() are resolved
 * only after it committed, so a session start can be made durable before its first byte, at hundreds of
 * starts per second (one fsync per batch, not per row).
 *
 *   start/end/emit/progress --queue--> [batch] --WITH (INSERT sessions), (INSERT audit_events), (UPDATE ends), (UPDATE progress) SELECT 1
 *
 * Two kinds of writes:
 * - commit(op): must be written now; rejects when the transaction fails (the caller refuses the session).
 * - enqueue(op): must be written eventually (session ends, other events): retried with back-off while
 *   the database is unavailable, kept in memory up to maxQueued operations, never rejects.
 */
import { sql } from 'drizzle-orm';
import type { Logger } from 'pino';
import { isDatabaseUnavailable, type Db } from '../db/index.js';

export interface AuditRow {
  time: Date;
  type: string;
  code: string;
  relayId: string;
  actor: string | null;
  host: string | null;
  source: string | null;
  sessionId: string | null;
  /** The many-machine run (`mssh exec`, x-mssh-run) a session row belongs to; absent/null otherwise. */
  runId?: string | null;
  details: Record<string, unknown>;
}

export interface SessionStartRow {
  id: string;
  relayId: string;
  userName: string;
  host: string;
  source: string | null;
  via: string;
  startedAt: Date;
  /** The relay holding the agent link (a fleet's forwarded session); null: relayId itself. */
  holdingRelayId?: string | null;
  /** The many-machine run the session belongs to (x-mssh-run). */
  runId?: string | null;
}

export interface SessionEndRow {
  id: string;
  endedAt: Date;
  bytesUp: number;
  bytesDown: number;
  endReason: string;
}

/** Byte counters of a live session (written only while it is open; counters never go down). */
export interface SessionProgressRow {
  id: string;
  bytesUp: number;
  bytesDown: number;
}

export interface WriteOp {
  events?: AuditRow[];
  starts?: SessionStartRow[];
  ends?: SessionEndRow[];
  progress?: SessionProgressRow[];
}

interface Queued {
  op: WriteOp;
  durable: boolean;
  resolve: () => void;
  reject: (err: unknown) => void;
}

/** What the writer tells the relay's metrics (metrics/relay-metrics.ts implements it). Must not throw. */
export interface AuditWriterMetrics {
  /** One transaction (a batch, or one operation retried alone) took `seconds`; ok false: it failed. */
  transaction(seconds: number, ok: boolean): void;
}

export interface AuditWriterOptions {
  db: Db;
  logger: Logger;
  /** Operations per transaction at most (default 500). */
  maxBatch?: number;
  /** Transactions in flight at once (default 2: one commits while the next batch fills and is sent). */
  concurrency?: number;
  /** Retried operations kept in memory at most; beyond, the oldest are dropped and logged (default 100,000). */
  maxQueued?: number;
  /** Transactions timed and failures counted for the metrics endpoint. Absent: not counted. */
  metrics?: AuditWriterMetrics;
}

const MAX_BACKOFF_MS = 5_000;

export class AuditWriter {
  private queue: Queued[] = [];
  private inFlight = 0;
  private failures = 0;
  private retryAt = 0;
  private retryTimer: NodeJS.Timeout | null = null;
  private idle: Array<() => void> = [];
  private readonly maxBatch: number;
  private readonly maxQueued: number;
  private readonly concurrency: number;
  /** Transactions written, for tests and the benchmark. */
  batches = 0;

  constructor(private readonly opts: AuditWriterOptions) {
    this.maxBatch = opts.maxBatch ?? 500;
    this.maxQueued = opts.maxQueued ?? 100_000;
    this.concurrency = Math.max(1, opts.concurrency ?? 2);
  }

  /** Write op in the next batch; resolves after COMMIT, rejects with the database error. */
  commit(op: WriteOp): Promise<void> {
    return new Promise((resolve, reject) => {
      this.queue.push({ op, durable: false, resolve, reject });
      this.kick();
    });
  }

  /** Write op eventually, retrying while the database is unavailable. Never throws. */
  enqueue(op: WriteOp): void {
    if (this.queue.length >= this.maxQueued) {
      const i = this.queue.findIndex((q) => q.durable);
      if (i >= 0) {
        const [dropped] = this.queue.splice(i, 1);
        this.opts.logger.error(
          { dropped: dropped!.op.events?.map((e) => e.type) },
          'audit queue full: dropped the oldest unwritten audit record',
        );
        dropped!.resolve();
      }
    }
    this.queue.push({ op, durable: true, resolve: () => {}, reject: () => {} });
    this.kick();
  }

  /** Operations not yet written. */
  get pending(): number {
    return this.queue.length + this.inFlight;
  }

  /** Wait until everything queued so far is written (or timeoutMs passed). True when all was written. */
  async drain(timeoutMs = 10_000): Promise<boolean> {
    if (this.queue.length === 0 && this.inFlight === 0) return true;
    let timer: NodeJS.Timeout | undefined;
    const done = await Promise.race([
      new Promise<boolean>((resolve) => this.idle.push(() => resolve(true))),
      new Promise<boolean>((resolve) => {
        timer = setTimeout(() => resolve(false), timeoutMs);
        timer.unref();
      }),
    ]);
    clearTimeout(timer);
    return done;
  }

  /** Stop retry timers (the process is about to exit). */
  close(): void {
    if (this.retryTimer) clearTimeout(this.retryTimer);
    this.retryTimer = null;
  }

  private scheduled = false;

  /** Start a writer on the next turn of the event loop (so concurrent callers land in one batch). */
  private kick(): void {
    if (this.scheduled || this.inFlight >= this.concurrency) return;
    this.scheduled = true;
    setImmediate(() => {
      this.scheduled = false;
      void this.writeOne();
    });
  }

  private takeBatch(now: number): Queued[] {
    const batch: Queued[] = [];
    const rest: Queued[] = [];
    for (const q of this.queue) {
      if (batch.length < this.maxBatch && (!q.durable || now >= this.retryAt)) batch.push(q);
      else rest.push(q);
    }
    this.queue = rest;
    return batch;
  }

  private async writeOne(): Promise<void> {
    if (this.inFlight >= this.concurrency) return;
    const batch = this.takeBatch(Date.now());
    if (batch.length === 0) {
      this.settle();
      return;
    }
    this.inFlight++;
    // More queued than one batch takes: start another writer right away.
    if (this.queue.some((q) => !q.durable)) this.kick();
    try {
      await this.write(batch.map((b) => b.op));
      this.batches++;
      if (this.failures > 0) this.opts.logger.warn({ failures: this.failures }, 'audit writes work again');
      this.failures = 0;
      this.retryAt = 0;
      for (const b of batch) b.resolve();
    } catch (err) {
      // One bad row must not sink the others of its batch: when the database answers but refused the
      // transaction, write each operation alone.
      if (batch.length > 1 && !isDatabaseUnavailable(err)) {
        await this.writeEach(batch);
        return;
      }
      this.failures++;
      this.retryAt = Date.now() + Math.min(MAX_BACKOFF_MS, 100 * 2 ** Math.min(this.failures, 10));
      if (this.failures === 1 || this.failures % 20 === 0) {
        this.opts.logger.error(
          { err, failures: this.failures, queued: this.queue.length + batch.length },
          'audit write failed; session starts are refused until the database answers',
        );
      }
      this.queue = [...batch.filter((b) => b.durable), ...this.queue];
      for (const b of batch) if (!b.durable) b.reject(err);
    } finally {
      this.inFlight--;
      this.settle();
    }
  }

  private async writeEach(batch: Queued[]): Promise<void> {
    for (const b of batch) {
      try {
        await this.write([b.op]);
        this.batches++;
        b.resolve();
      } catch (err) {
        if (!b.durable) {
          b.reject(err);
        } else if (isDatabaseUnavailable(err)) {
          this.queue.unshift(b);
        } else {
          this.opts.logger.error(
            { err, types: b.op.events?.map((e) => e.type) },
            'audit record refused by the database; dropped',
          );
          b.resolve();
        }
      }
    }
  }

  /** After a writer finished: go on with what is due, arm the retry timer, or wake drain() waiters. */
  private settle(): void {
    const now = Date.now();
    if (this.queue.some((q) => !q.durable || now >= this.retryAt)) this.kick();
    else if (this.queue.length > 0) this.scheduleRetry();
    else if (this.inFlight === 0 && !this.scheduled) for (const f of this.idle.splice(0)) f();
  }

  private scheduleRetry(): void {
    if (this.retryTimer || this.queue.length === 0) return;
    this.retryTimer = setTimeout(
      () => {
        this.retryTimer = null;
        this.kick();
      },
      Math.max(10, this.retryAt - Date.now()),
    );
    this.retryTimer.unref();
  }

  /** One transaction, timed for the metrics. */
  private async write(ops: WriteOp[]): Promise<void> {
    const metrics = this.opts.metrics;
    if (!metrics) return this.writeOps(ops);
    const t0 = performance.now();
    let ok = false;
    try {
      await this.writeOps(ops);
      ok = true;
    } finally {
      try {
        metrics.transaction((performance.now() - t0) / 1000, ok);
      } catch {
        /* a metrics bug must not fail an audit write */
      }
    }
  }

  private async writeOps(ops: WriteOp[]): Promise<void> {
    const events = ops.flatMap((o) => o.events ?? []);
    const starts = ops.flatMap((o) => o.starts ?? []);
    // The parts of one statement do not see each other's rows: the end of a session that starts in this
    // same batch goes into its INSERT, not the UPDATE (the first end given, as the UPDATE would apply it).
    const startIds = new Set(starts.map((r) => r.id));
    const endOfStart = new Map<string, SessionEndRow>();
    const ends: SessionEndRow[] = [];
    for (const e of ops.flatMap((o) => o.ends ?? [])) {
      if (!startIds.has(e.id)) ends.push(e);
      else if (!endOfStart.has(e.id)) endOfStart.set(e.id, e);
    }
    // Rows travel as ONE jsonb parameter per table: no per-value query building, any batch size.
    const startRows = JSON.stringify(
      starts.map((r) => {
        const end = endOfStart.get(r.id);
        return {
          id: r.id,
          relay_id: r.relayId,
          holding_relay_id: r.holdingRelayId ?? r.relayId,
          user_name: r.userName,
          host: r.host,
          source: r.source,
          via: r.via,
          run_id: r.runId ?? null,
          started_at: r.startedAt.toISOString(),
          ended_at: end?.endedAt.toISOString() ?? null,
          up: end?.bytesUp ?? 0,
          down: end?.bytesDown ?? 0,
          reason: end?.endReason ?? null,
        };
      }),
    );
    const eventRows = JSON.stringify(
      events.map((e) => ({
        time: e.time.toISOString(),
        type: e.type,
        code: e.code,
        relay_id: e.relayId,
        actor: e.actor,
        host: e.host,
        source: e.source,
        session_id: e.sessionId,
        run_id: e.runId ?? null,
        details: e.details,
      })),
    );
    const endRows = JSON.stringify(
      ends.map((e) => ({
        id: e.id,
        ended_at: e.endedAt.toISOString(),
        up: e.bytesUp,
        down: e.bytesDown,
        reason: e.endReason,
      })),
    );
    // Progress of sessions that neither start nor end in this batch (one statement must not update a row
    // twice); the highest counters when a session's progress was queued more than once.
    const endIds = new Set(ends.map((e) => e.id));
    const progress = new Map<string, SessionProgressRow>();
    for (const p of ops.flatMap((o) => o.progress ?? [])) {
      if (startIds.has(p.id) || endIds.has(p.id)) continue;
      const cur = progress.get(p.id);
      progress.set(
        p.id,
        cur
          ? { id: p.id, bytesUp: Math.max(cur.bytesUp, p.bytesUp), bytesDown: Math.max(cur.bytesDown, p.bytesDown) }
          : p,
      );
    }
    const progressRows = JSON.stringify(
      [...progress.values()].map((p) => ({ id: p.id, up: p.bytesUp, down: p.bytesDown })),
    );
    // ONE statement (data-modifying CTEs, atomic on its own) is one round trip to the database where
    // BEGIN, three statements and COMMIT were five; at hundreds of session starts per second those round
    // trips were most of the relay's database time (bench/README.md, findings).
    await this.opts.db.execute(sql`WITH new_sessions AS (
          INSERT INTO sessions (id, relay_id, holding_relay_id, user_name, host, source, via, run_id, started_at, ended_at, bytes_up, bytes_down, end_reason, progress_at)
          SELECT id, relay_id, holding_relay_id, user_name, host, source, via, run_id, started_at, ended_at, up, down, reason, ended_at
          FROM jsonb_to_recordset(${startRows}::jsonb) AS v(id text, relay_id text, holding_relay_id text, user_name text, host text, source text, via text, run_id text, started_at timestamptz,
            ended_at timestamptz, up bigint, down bigint, reason text)
          RETURNING id),
        ended AS (
          UPDATE sessions AS s SET ended_at = GREATEST(v.ended_at, s.started_at), bytes_up = GREATEST(s.bytes_up, v.up), bytes_down = GREATEST(s.bytes_down, v.down), end_reason = v.reason, progress_at = v.ended_at
          FROM jsonb_to_recordset(${endRows}::jsonb) AS v(id text, ended_at timestamptz, up bigint, down bigint, reason text)
          WHERE s.id = v.id AND s.ended_at IS NULL
          RETURNING s.id),
        progressed AS (
          UPDATE sessions AS s SET bytes_up = GREATEST(s.bytes_up, v.up), bytes_down = GREATEST(s.bytes_down, v.down), progress_at = now()
          FROM jsonb_to_recordset(${progressRows}::jsonb) AS v(id text, up bigint, down bigint)
          WHERE s.id = v.id AND s.ended_at IS NULL
          RETURNING 1),
        new_events AS (
          INSERT INTO audit_events (time, type, code, relay_id, actor, host, source, session_id, run_id, details)
          SELECT time, type, code, relay_id, actor, host, source, session_id, run_id, COALESCE(details, '{}'::jsonb)
          FROM jsonb_to_recordset(${eventRows}::jsonb) AS v(time timestamptz, type text, code text, relay_id text, actor text, host text, source text, session_id text, run_id text, details jsonb)
          -- A session.end only for a session this statement closes (or inserts closed): one that another
          -- relay already closed (a fleet survivor, relay_crashed) never gets a second end.
          WHERE v.type <> 'session.end' OR v.session_id IN (SELECT id FROM ended) OR v.session_id IN (SELECT id FROM new_sessions)
          RETURNING 1)
      SELECT 1`);
  }
}
