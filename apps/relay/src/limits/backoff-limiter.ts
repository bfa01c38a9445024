/**
 * An in-memory failure limiter with exponential back-off, one entry per key (a source address, a user
 * name). `limit` failures within `windowMs` are free; the next one blocks the key for `baseBlockMs`, and
 * each further block while the key is still remembered doubles, up to `maxBlockMs`.
 *
 *   fail(k) x limit within windowMs --> blocked baseBlockMs --> (fail again after) blocked 2x, 4x ... max
 *
 * Memory is bounded: at most `maxEntries` keys (the least recently touched one goes first), and an entry
 * is forgotten `forgetAfterMs` after its last failure or block ended: `sweep()` drops every such entry,
 * and runs by itself every `sweepIntervalMs` on an unref'd timer until `close()`. `size` is the number of
 * entries held (shown in /healthz as `limiterEntries`).
 */
export interface BackoffLimiterOptions {
  /** Free failures per window (default 5). */
  limit?: number;
  /** Window for counting failures (default 60 s). */
  windowMs?: number;
  /** First block (default 60 s); doubles with each further block. */
  baseBlockMs?: number;
  /** Longest block (default 15 min). */
  maxBlockMs?: number;
  /** Forget a quiet key after this long (default 15 min). */
  forgetAfterMs?: number;
  /** Most keys remembered (default 10,000). */
  maxEntries?: number;
  /** How often forgotten entries are swept out (default 60 s; 0: never by itself, call sweep()). */
  sweepIntervalMs?: number;
  now?: () => number;
}

interface Entry {
  windowStart: number;
  failures: number;
  /** Blocks so far (the next one lasts baseBlockMs * 2^blocks). */
  blocks: number;
  blockedUntil: number;
  lastTouched: number;
}

export type LimitVerdict = { ok: true } | { ok: false; retryAfterMs: number };

export class BackoffLimiter {
  private readonly entries = new Map<string, Entry>();
  private readonly limit: number;
  private readonly windowMs: number;
  private readonly baseBlockMs: number;
  private readonly maxBlockMs: number;
  private readonly forgetAfterMs: number;
  private readonly maxEntries: number;
  private readonly now: () => number;
  private sweeper: NodeJS.Timeout | null = null;

  constructor(opts: BackoffLimiterOptions = {}) {
    this.limit = Math.max(1, opts.limit ?? 5);
    this.windowMs = opts.windowMs ?? 60_000;
    this.baseBlockMs = opts.baseBlockMs ?? 60_000;
    this.maxBlockMs = Math.max(this.baseBlockMs, opts.maxBlockMs ?? 15 * 60_000);
    this.forgetAfterMs = opts.forgetAfterMs ?? 15 * 60_000;
    this.maxEntries = Math.max(1, opts.maxEntries ?? 10_000);
    this.now = opts.now ?? Date.now;
    const every = opts.sweepIntervalMs ?? 60_000;
    if (every > 0) {
      this.sweeper = setInterval(() => this.sweep(), every);
      this.sweeper.unref();
    }
  }

  /** Drop every entry that has been quiet for forgetAfterMs; returns how many went. */
  sweep(): number {
    const t = this.now();
    let dropped = 0;
    for (const [k, e] of this.entries) {
      if (this.expired(e, t)) {
        this.entries.delete(k);
        dropped++;
      }
    }
    return dropped;
  }

  /** Stop the sweep timer (the entries stay usable). */
  close(): void {
    if (this.sweeper) clearInterval(this.sweeper);
    this.sweeper = null;
  }

  get size(): number {
    return this.entries.size;
  }

  /** May this key try now? */
  check(key: string): LimitVerdict {
    const e = this.live(key);
    if (!e) return { ok: true };
    const t = this.now();
    return e.blockedUntil > t ? { ok: false, retryAfterMs: e.blockedUntil - t } : { ok: true };
  }

  /** Record a failure; returns the verdict for the next attempt. */
  fail(key: string): LimitVerdict {
    const t = this.now();
    let e = this.live(key);
    if (!e) {
      e = { windowStart: t, failures: 0, blocks: 0, blockedUntil: 0, lastTouched: t };
      this.insert(key, e);
    } else {
      // Move to the end: the map's order is least recently touched first.
      this.entries.delete(key);
      this.entries.set(key, e);
    }
    e.lastTouched = t;
    if (t - e.windowStart >= this.windowMs) {
      e.windowStart = t;
      e.failures = 0;
    }
    e.failures++;
    if (e.failures >= this.limit) {
      const block = Math.min(this.maxBlockMs, this.baseBlockMs * 2 ** Math.min(e.blocks, 30));
      e.blocks++;
      e.blockedUntil = t + block;
      e.failures = 0;
      e.windowStart = t;
    }
    return this.check(key);
  }

  /** Forget a key (e.g. the user logged in). */
  reset(key: string): void {
    this.entries.delete(key);
  }

  /** The entry, unless it has been quiet long enough to forget. */
  private live(key: string): Entry | undefined {
    const e = this.entries.get(key);
    if (!e) return undefined;
    if (this.expired(e, this.now())) {
      this.entries.delete(key);
      return undefined;
    }
    return e;
  }

  private expired(e: Entry, t: number): boolean {
    return t - Math.max(e.lastTouched, e.blockedUntil) >= this.forgetAfterMs;
  }

  private insert(key: string, e: Entry): void {
    if (this.entries.size >= this.maxEntries) {
      // Drop forgotten entries first (bounded scan), then the least recently touched.
      const t = this.now();
      let scanned = 0;
      for (const [k, v] of this.entries) {
        if (scanned++ >= 64) break;
        if (this.expired(v, t)) this.entries.delete(k);
      }
      while (this.entries.size >= this.maxEntries) {
        const oldest = this.entries.keys().next();
        if (oldest.done) break;
        this.entries.delete(oldest.value);
      }
    }
    this.entries.set(key, e);
  }
}
