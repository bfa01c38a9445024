/**
 * Group commit for the audit trail: every write (audit rows, session rows) is queued, and one writer at a
 * time takes everything queued so far and writes it in ONE transaction (multi-row INSERTs, one UPDATE for
 * all ended sessions). Callers of commit() are resolved only after COMMIT, so a session start can be
 * made durable before its first byte, at hundreds of starts per second (one fsync per batch, not per row).
 *
 *   start/end/emit --queue--> [batch] --BEGIN; INSERT sessions; INSERT audit_events; UPDATE sessions; COMMIT
 *
 * Two kinds of writes:
 * - commit(op): must be written now; rejects when the transaction fails (the caller refuses the session).
 * - enqueue(op): must be written eventually (session ends, other events): retried with back-off while
 *   the database is unavailable, kept in memory up to maxQueued operations, never rejects.
 */
import { sql } from 'drizzle-orm';
import type { Logger } from 'pino';
import { auditEvents, sessions } from '@mssh/migrations';
import type { Db } from '../db/index.js';

export interface AuditRow {
  time: Date;
  type: string;
  code: string;
  relayId: string;
  actor: string | null;
  host: string | null;
  source: string | null;
  sessionId: string | null;
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
}

export interface SessionEndRow {
  id: string;
  endedAt: Date;
  bytesUp: number;
  bytesDown: number;
  endReason: string;
}

export interface WriteOp {
  events?: AuditRow[];
  starts?: SessionStartRow[];
  ends?: SessionEndRow[];
}

interface Queued {
  op: WriteOp;
  durable: boolean;
  resolve: () => void;
  reject: (err: unknown) => void;
}

export interface AuditWriterOptions {
  db: Db;
  logger: Logger;
  /** Operations per transaction at most (default 500). */
  maxBatch?: number;
  /** Retried operations kept in memory at most; beyond, the oldest are dropped and logged (default 100,000). */
  maxQueued?: number;
}

const MAX_BACKOFF_MS = 5_000;

export class AuditWriter {
  private queue: Queued[] = [];
  private writing = false;
  private failures = 0;
  private retryAt = 0;
  private retryTimer: NodeJS.Timeout | null = null;
  private idle: Array<() => void> = [];
  private readonly maxBatch: number;
  private readonly maxQueued: number;
  /** Transactions written, for tests and the benchmark. */
  batches = 0;

  constructor(private readonly opts: AuditWriterOptions) {
    this.maxBatch = opts.maxBatch ?? 500;
    this.maxQueued = opts.maxQueued ?? 100_000;
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
        this.opts.logger.error({ dropped: dropped!.op.events?.map((e) => e.type) }, 'audit queue full: dropped the oldest unwritten audit record');
        dropped!.resolve();
      }
    }
    this.queue.push({ op, durable: true, resolve: () => {}, reject: () => {} });
    this.kick();
  }

  /** Operations not yet written. */
  get pending(): number {
    return this.queue.length + (this.writing ? 1 : 0);
  }

  /** Wait until everything queued so far is written (or timeoutMs passed). True when all was written. */
  async drain(timeoutMs = 10_000): Promise<boolean> {
    if (this.queue.length === 0 && !this.writing) return true;
    let timer: NodeJS.Timeout | undefined;
    const done = await Promise.race([
      new Promise<boolean>((resolve) => this.idle.push(() => resolve(true))),
      new Promise<boolean>((resolve) => { timer = setTimeout(() => resolve(false), timeoutMs); timer.unref(); }),
    ]);
    clearTimeout(timer);
    return done;
  }

  /** Stop retry timers (the process is about to exit). */
  close(): void {
    if (this.retryTimer) clearTimeout(this.retryTimer);
    this.retryTimer = null;
  }

  private kick(): void {
    if (this.writing) return;
    this.writing = true;
    setImmediate(() => void this.loop());
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

  private async loop(): Promise<void> {
    try {
      for (let round = 0; round < 1_000_000; round++) {
        const batch = this.takeBatch(Date.now());
        if (batch.length === 0) break;
        try {
          await this.write(batch.map((b) => b.op));
          this.batches++;
          if (this.failures > 0) this.opts.logger.warn({ failures: this.failures }, 'audit writes work again');
          this.failures = 0;
          this.retryAt = 0;
          for (const b of batch) b.resolve();
        } catch (err) {
          this.failures++;
          this.retryAt = Date.now() + Math.min(MAX_BACKOFF_MS, 100 * 2 ** Math.min(this.failures, 10));
          if (this.failures === 1 || this.failures % 20 === 0) {
            this.opts.logger.error({ err, failures: this.failures, queued: this.queue.length + batch.length }, 'audit write failed; session starts are refused until the database answers');
          }
          const retry = batch.filter((b) => b.durable);
          this.queue = [...retry, ...this.queue];
          for (const b of batch) if (!b.durable) b.reject(err);
          this.scheduleRetry();
        }
      }
    } finally {
      this.writing = false;
      if (this.queue.some((q) => !q.durable || Date.now() >= this.retryAt)) this.kick();
      else if (this.queue.length > 0) this.scheduleRetry();
      else for (const f of this.idle.splice(0)) f();
    }
  }

  private scheduleRetry(): void {
    if (this.retryTimer || this.queue.length === 0) return;
    this.retryTimer = setTimeout(() => {
      this.retryTimer = null;
      this.kick();
    }, Math.max(10, this.retryAt - Date.now()));
    this.retryTimer.unref();
  }

  private async write(ops: WriteOp[]): Promise<void> {
    const events = ops.flatMap((o) => o.events ?? []);
    const starts = ops.flatMap((o) => o.starts ?? []);
    const ends = ops.flatMap((o) => o.ends ?? []);
    await this.opts.db.transaction(async (tx) => {
      if (starts.length) await tx.insert(sessions).values(starts);
      if (events.length) await tx.insert(auditEvents).values(events);
      if (ends.length) {
        const rows = JSON.stringify(ends.map((e) => ({ id: e.id, ended_at: e.endedAt.toISOString(), up: e.bytesUp, down: e.bytesDown, reason: e.endReason })));
        await tx.execute(sql`UPDATE sessions AS s SET ended_at = v.ended_at, bytes_up = v.up, bytes_down = v.down, end_reason = v.reason, progress_at = v.ended_at
          FROM jsonb_to_recordset(${rows}::jsonb) AS v(id text, ended_at timestamptz, up bigint, down bigint, reason text)
          WHERE s.id = v.id AND s.ended_at IS NULL`);
      }
    });
  }
}
