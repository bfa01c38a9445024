/**
 * Failed SSH logins per source address, to shut out guessers: after `maxFailures` failed connections
 * within `windowMs`, new connections from that address are dropped until the window has passed. The map
 * is bounded (oldest entries go first), so a flood of addresses cannot grow it without limit.
 */
export interface AuthFailureLimiterOptions {
  maxFailures?: number;
  windowMs?: number;
  maxSources?: number;
  clock?: () => number;
}

export class AuthFailureLimiter {
  private readonly bySource = new Map<string, { count: number; since: number }>();
  readonly maxFailures: number;
  private readonly windowMs: number;
  private readonly maxSources: number;
  private readonly clock: () => number;

  constructor(o: AuthFailureLimiterOptions = {}) {
    this.maxFailures = o.maxFailures ?? 20;
    this.windowMs = o.windowMs ?? 10 * 60_000;
    this.maxSources = o.maxSources ?? 10_000;
    this.clock = o.clock ?? Date.now;
  }

  private current(source: string): { count: number; since: number } | undefined {
    const e = this.bySource.get(source);
    if (e && this.clock() - e.since >= this.windowMs) {
      this.bySource.delete(source);
      return undefined;
    }
    return e;
  }

  blocked(source: string): boolean {
    return (this.current(source)?.count ?? 0) >= this.maxFailures;
  }

  fail(source: string): void {
    const e = this.current(source);
    if (e) {
      e.count++;
      return;
    }
    if (this.bySource.size >= this.maxSources) {
      const oldest = this.bySource.keys().next().value;
      if (oldest !== undefined) this.bySource.delete(oldest);
    }
    this.bySource.set(source, { count: 1, since: this.clock() });
  }

  get size(): number {
    return this.bySource.size;
  }
}
