/**
 * A cap on concurrent password hashes (argon2id takes ~19 MiB and tens of ms each): at most `max` run at
 * once, up to `queue` more wait (at most `maxWaitMs`), anything beyond is refused at once with
 * RLY_ERR_BUSY (503, Retry-After 1).
 */
import { relayError } from '../errors.js';

export interface HashSlotsOptions {
  /** Concurrent hashes (default 4). */
  max?: number;
  /** Waiting hashes beyond that (default 64). */
  queue?: number;
  /** Longest wait in the queue (default 5 s). */
  maxWaitMs?: number;
}

export class HashSlots {
  private running = 0;
  private readonly waiting: Array<{ go: () => void; timer: NodeJS.Timeout }> = [];
  private readonly max: number;
  private readonly queue: number;
  private readonly maxWaitMs: number;

  constructor(opts: HashSlotsOptions = {}) {
    this.max = Math.max(1, opts.max ?? 4);
    this.queue = Math.max(0, opts.queue ?? 64);
    this.maxWaitMs = opts.maxWaitMs ?? 5_000;
  }

  get active(): number {
    return this.running;
  }

  get queued(): number {
    return this.waiting.length;
  }

  async run<T>(fn: () => Promise<T>): Promise<T> {
    await this.acquire();
    try {
      return await fn();
    } finally {
      this.release();
    }
  }

  private acquire(): Promise<void> {
    if (this.running < this.max) {
      this.running++;
      return Promise.resolve();
    }
    if (this.waiting.length >= this.queue) return Promise.reject(busy());
    return new Promise((resolve, reject) => {
      const w = {
        go: () => {
          clearTimeout(w.timer);
          this.running++;
          resolve();
        },
        timer: setTimeout(() => {
          const i = this.waiting.indexOf(w);
          if (i >= 0) this.waiting.splice(i, 1);
          reject(busy());
        }, this.maxWaitMs),
      };
      w.timer.unref();
      this.waiting.push(w);
    });
  }

  private release(): void {
    this.running--;
    const next = this.waiting.shift();
    if (next) next.go();
  }
}

function busy() {
  const e = relayError('RLY_ERR_BUSY');
  e.retryAfterSeconds = 1;
  return e;
}
