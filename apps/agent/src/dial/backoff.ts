/**
 * Reconnect delays: exponential backoff with full jitter (delay = random() * min(cap, base * 2^attempt)),
 * reset once a link stayed healthy for `healthyResetMs`.
 *
 * A refused TCP connection (nothing listening: the relay is restarting) costs the relay nothing, so its
 * ceiling stops growing at `refusedCapMs`: agents are back within seconds of a relay restart, while
 * everything else (timeouts, TLS failures, refusals, dropped links) backs off up to `capMs`.
 */
import { RECONNECT_BASE_MS, RECONNECT_CAP_MS, RECONNECT_HEALTHY_RESET_MS } from '@mssh/protocol';

export interface BackoffOptions {
  baseMs: number;
  capMs: number;
  refusedCapMs: number;
  healthyResetMs: number;
  /** Uniform in [0, 1). */
  random: () => number;
  /** Milliseconds, monotonic enough for durations. */
  now: () => number;
}

export const DEFAULT_REFUSED_CAP_MS = 2_000;
const MAX_EXPONENT = 30;

export type FailureKind = 'refused' | 'other';

export class Backoff {
  private readonly o: BackoffOptions;
  private attempt = 0;
  private connectedAt: number | null = null;

  constructor(opts: Partial<BackoffOptions> = {}) {
    this.o = {
      baseMs: opts.baseMs ?? RECONNECT_BASE_MS,
      capMs: opts.capMs ?? RECONNECT_CAP_MS,
      refusedCapMs: opts.refusedCapMs ?? DEFAULT_REFUSED_CAP_MS,
      healthyResetMs: opts.healthyResetMs ?? RECONNECT_HEALTHY_RESET_MS,
      random: opts.random ?? Math.random,
      now: opts.now ?? (() => performance.now()),
    };
  }

  /** Failures since the last reset. */
  get attempts(): number {
    return this.attempt;
  }

  /** The ceiling the next delay is drawn under. */
  ceiling(kind: FailureKind = 'other'): number {
    const cap = kind === 'refused' ? Math.min(this.o.refusedCapMs, this.o.capMs) : this.o.capMs;
    return Math.min(cap, this.o.baseMs * 2 ** Math.min(this.attempt, MAX_EXPONENT));
  }

  /** Delay before the next attempt; counts one more failure. */
  next(kind: FailureKind = 'other'): number {
    const ceiling = this.ceiling(kind);
    this.attempt = Math.min(this.attempt + 1, MAX_EXPONENT);
    const r = Math.min(Math.max(this.o.random(), 0), 1);
    return Math.floor(r * ceiling);
  }

  /** A link is up and verified. */
  connected(): void {
    this.connectedAt = this.o.now();
  }

  /** The link went down: if it had been healthy long enough, start over from the base delay. */
  disconnected(): void {
    if (this.connectedAt !== null && this.o.now() - this.connectedAt >= this.o.healthyResetMs) this.attempt = 0;
    this.connectedAt = null;
  }

  reset(): void {
    this.attempt = 0;
    this.connectedAt = null;
  }
}
