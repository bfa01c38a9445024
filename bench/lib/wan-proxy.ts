/**
 * A WAN in userspace for the benchmark's WAN mode (issue 22): this machine's kernel has no netem, so each
 * leg of a path (client -> relay, agent -> relay, client -> bastion, ssh -R -> bastion) goes through a TCP
 * proxy that makes loopback look like a long link:
 *
 *   client ──> [listen port] DelayLine(c->s) ──> upstream (relay / bastion)
 *          <──               DelayLine(s->c) <──
 *
 * Per direction, every chunk read is stamped and released `delayMs` later, in order (one queue and one
 * timer per direction, not a timer per chunk), through a token bucket (`rateBytesPerSec`, bucket depth
 * `BURST_BYTES`) kept on a virtual clock: a piece's departure time is computed from the bucket, not from
 * when the timer happened to fire, so a late timer releases what was due in one go instead of losing rate.
 * What a direction holds (queue + the writing socket's buffer) is bounded: above `highWater` the reading
 * socket is paused (so TCP backpressure reaches the sender, as a full router queue and a closed window
 * would), below half of it it resumes. The proxy opens its upstream connection 3 x delay after accepting
 * (SYN, SYN-ACK, ACK: the server accepts when the last one arrives) and holds the client's first bytes
 * until then, so connection set-up costs what it would. Half-close (FIN after the queued bytes, delayed
 * like them) and resets are passed on; both sockets run with TCP_NODELAY.
 *
 * Limits (bench/README.md): no loss, no reordering, no jitter; the kernel's TCP on each loopback hop sees
 * a microsecond round trip, so TCP's own congestion control and receive window play no part and the
 * senders' socket buffers fill as fast as loopback allows: what bounds a transfer is the proxy's queue and
 * the programs' own flow control (HTTP/2 and SSH channel windows), which is what the mode is for.
 *
 * `forkWanProxy()` runs the proxies in a child process of their own (wan-proxy-process.ts), so their
 * timers do not share an event loop with the benchmark's clients and clocks.
 */
import net from 'node:net';
import { fork, type ChildProcess } from 'node:child_process';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { track, exited } from './procs.js';

/** The link of one leg, the same for both directions. */
export interface LinkCondition {
  /** One-way delay added to every byte, in ms. */
  delayMs: number;
  /** Rate cap in bytes per second; 0 = none. */
  rateBytesPerSec: number;
}

/** Depth of the token bucket: what may leave back to back after an idle moment. */
export const BURST_BYTES = 16 * 1024;
/** Queue room beyond the bandwidth-delay product, for a rate-capped link. */
export const QUEUE_SLACK_BYTES = 256 * 1024;
/** What a direction of an uncapped link holds at most (8 MiB / 40 ms = 210 MB/s, above what loopback carries here). */
export const UNCAPPED_HIGH_WATER_BYTES = 8 * 1024 * 1024;
/** Most pieces one take() hands out (a turn of the event loop stays bounded). */
const MAX_PIECES_PER_TAKE = 4096;
/** A piece due this close to now leaves now: timers fire on whole milliseconds. */
const TIMER_SLACK_MS = 0.5;

/** Bytes a direction may hold before its reading socket is paused. */
export function highWaterBytes(c: LinkCondition): number {
  if (c.rateBytesPerSec <= 0) return UNCAPPED_HIGH_WATER_BYTES;
  return Math.ceil((c.rateBytesPerSec * c.delayMs) / 1000) + QUEUE_SLACK_BYTES;
}

/** `Mbit/s` (10^6 bits) to bytes per second; 0 stays 0 (no cap). */
export function mbitToBytesPerSec(mbit: number): number {
  return Math.round((mbit * 1e6) / 8);
}

/**
 * One direction of a leg, without sockets or timers (the caller passes the time, in ms): a FIFO of
 * chunks stamped `now + delayMs` on arrival, released in order through a token bucket on a virtual clock.
 */
export class DelayLine {
  private readonly q: { buf: Buffer; readyAt: number }[] = [];
  private head = 0;
  private queued = 0;
  private tokens = BURST_BYTES;
  private tokensAt = -Infinity;

  constructor(
    private readonly condition: () => LinkCondition,
    private readonly burst = BURST_BYTES,
  ) {
    this.tokens = burst;
  }

  /** Bytes waiting. */
  get bytes(): number {
    return this.queued;
  }

  get empty(): boolean {
    return this.head >= this.q.length;
  }

  push(buf: Buffer, now: number): void {
    if (!buf.length) return;
    this.q.push({ buf, readyAt: now + this.condition().delayMs });
    this.queued += buf.length;
  }

  /** When the next piece may leave (ms), or undefined when nothing waits. */
  nextAt(): number | undefined {
    const h = this.q[this.head];
    if (!h) return undefined;
    return this.departure(h.readyAt, this.pieceSize(h.buf)).at;
  }

  /** Every piece due at `now`, in order (chunks larger than the bucket leave in bucket-sized pieces). */
  take(now: number): Buffer[] {
    const out: Buffer[] = [];
    for (let i = 0; i < MAX_PIECES_PER_TAKE; i++) {
      const h = this.q[this.head];
      if (!h) break;
      const n = this.pieceSize(h.buf);
      const d = this.departure(h.readyAt, n);
      if (d.at > now) break;
      if (this.condition().rateBytesPerSec > 0) {
        this.tokens = d.tokens - n;
        this.tokensAt = d.at;
      }
      if (n === h.buf.length) {
        out.push(h.buf);
        this.q[this.head++] = undefined as unknown as { buf: Buffer; readyAt: number };
      } else {
        out.push(h.buf.subarray(0, n));
        h.buf = h.buf.subarray(n);
      }
      this.queued -= n;
    }
    if (this.head > 1024 && this.head * 2 > this.q.length) {
      this.q.splice(0, this.head);
      this.head = 0;
    }
    return out;
  }

  private pieceSize(buf: Buffer): number {
    return this.condition().rateBytesPerSec > 0 ? Math.min(buf.length, this.burst) : buf.length;
  }

  /** When `n` bytes ready at `readyAt` leave, and the bucket's level at that moment (before taking them). */
  private departure(readyAt: number, n: number): { at: number; tokens: number } {
    const rate = this.condition().rateBytesPerSec / 1000; // bytes per ms
    if (rate <= 0) return { at: readyAt, tokens: Infinity };
    const t = Math.max(readyAt, this.tokensAt);
    const level = Math.min(this.burst, this.tokens + (t - this.tokensAt) * rate);
    if (level >= n) return { at: t, tokens: level };
    const at = t + (n - level) / rate;
    return { at, tokens: n };
  }
}

export interface LegStats {
  connections: number;
  open: number;
  /** Bytes released towards the upstream (client -> server) and back. */
  up: number;
  down: number;
  /** Times a reading socket was paused because its direction was full. */
  pauses: number;
  /** Most bytes one direction held at once (queue + the writing socket's buffer). */
  maxHeld: number;
}

export interface LegProxy {
  port: number;
  stats(): LegStats;
  close(): Promise<void>;
}

/**
 * One direction of one proxied connection: reads `src`, writes `dst` (once `dst` is connected),
 * one timer at a time.
 */
class Pipe {
  readonly line: DelayLine;
  private timer: NodeJS.Timeout | undefined;
  private timerAt = Infinity;
  private srcEndAt: number | undefined;
  private ended = false;
  private paused = false;
  dst: net.Socket | undefined;

  constructor(
    private readonly src: net.Socket,
    private readonly condition: () => LinkCondition,
    private readonly onBytes: (n: number) => void,
    private readonly onPause: () => void,
    private readonly onHeld: (n: number) => void,
  ) {
    this.line = new DelayLine(condition);
    src.on('data', (d: Buffer) => {
      this.line.push(d, performance.now());
      const held = this.held();
      this.onHeld(held);
      if (!this.paused && held > highWaterBytes(this.condition())) {
        this.paused = true;
        src.pause();
        this.onPause();
      }
      this.schedule();
    });
    src.on('end', () => {
      this.srcEndAt = performance.now() + this.condition().delayMs;
      this.schedule();
    });
  }

  /** `dst` is connected: start releasing. */
  attach(dst: net.Socket): void {
    this.dst = dst;
    dst.on('drain', () => this.flush());
    this.flush();
  }

  stop(): void {
    clearTimeout(this.timer);
    this.timer = undefined;
  }

  private held(): number {
    return this.line.bytes + (this.dst?.writableLength ?? 0);
  }

  private schedule(): void {
    const next = this.line.empty ? this.srcEndAt : this.line.nextAt();
    if (next === undefined || next >= this.timerAt) return;
    clearTimeout(this.timer);
    this.timerAt = next;
    this.timer = setTimeout(
      () => {
        this.timer = undefined;
        this.timerAt = Infinity;
        this.flush();
      },
      Math.max(0, Math.ceil(next - performance.now())),
    );
  }

  flush(): void {
    const dst = this.dst;
    if (!dst || dst.destroyed || this.ended) return;
    if (!dst.writableNeedDrain) {
      const pieces = this.line.take(performance.now() + TIMER_SLACK_MS);
      if (pieces.length) {
        dst.cork();
        let n = 0;
        for (const p of pieces) {
          dst.write(p);
          n += p.length;
        }
        dst.uncork();
        this.onBytes(n);
      }
    }
    if (this.paused && this.held() <= highWaterBytes(this.condition()) / 2) {
      this.paused = false;
      this.src.resume();
    }
    if (this.line.empty && this.srcEndAt !== undefined && performance.now() >= this.srcEndAt) {
      this.ended = true;
      dst.end();
      return;
    }
    if (!dst.writableNeedDrain) this.schedule();
  }
}

/** A proxy for one leg: listens on 127.0.0.1 and forwards every connection to 127.0.0.1:upstreamPort. */
export function startLegProxy(opts: {
  upstreamPort: number;
  condition: () => LinkCondition;
  listenPort?: number;
}): Promise<LegProxy> {
  const stats: LegStats = { connections: 0, open: 0, up: 0, down: 0, pauses: 0, maxHeld: 0 };
  const held = (n: number) => {
    if (n > stats.maxHeld) stats.maxHeld = n;
  };
  const sockets = new Set<net.Socket>();
  const server = net.createServer({ allowHalfOpen: true, noDelay: true }, (down) => {
    stats.connections++;
    stats.open++;
    sockets.add(down);
    down.setNoDelay(true);
    const c2s = new Pipe(
      down,
      opts.condition,
      (n) => (stats.up += n),
      () => stats.pauses++,
      held,
    );
    let up: net.Socket | undefined;
    let s2c: Pipe | undefined;
    let connectTimer: NodeJS.Timeout | undefined;
    let closed = false;
    /** Close both sockets: with a reset when one side was reset or failed, as a router passes RSTs on. */
    const finish = (reset: boolean) => {
      if (closed) return;
      closed = true;
      stats.open--;
      clearTimeout(connectTimer);
      c2s.stop();
      s2c?.stop();
      for (const s of [down, up]) {
        if (!s || s.destroyed) continue;
        try {
          if (reset) s.resetAndDestroy();
          else s.destroy();
        } catch {
          s.destroy();
        }
      }
      sockets.delete(down);
      if (up) sockets.delete(up);
    };
    // A socket closes cleanly once it was read to its end and ended by us; the connection is done when
    // both have (the other one may still be delivering its last bytes and FIN).
    down.on('error', () => finish(true));
    down.on('close', () => {
      if (!up || up.destroyed) finish(false);
    });
    const open = () => {
      const u = net.connect({ host: '127.0.0.1', port: opts.upstreamPort, allowHalfOpen: true, noDelay: true });
      up = u;
      sockets.add(u);
      u.setNoDelay(true);
      s2c = new Pipe(
        u,
        opts.condition,
        (n) => (stats.down += n),
        () => stats.pauses++,
        held,
      );
      u.on('error', () => finish(true));
      u.on('close', () => {
        if (down.destroyed) finish(false);
      });
      u.once('connect', () => {
        c2s.attach(u);
        s2c!.attach(down);
      });
    };
    const wait = 3 * opts.condition().delayMs;
    if (wait > 0) connectTimer = setTimeout(open, wait);
    else open();
  });
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(opts.listenPort ?? 0, '127.0.0.1', () => {
      server.off('error', reject);
      resolve({
        port: (server.address() as net.AddressInfo).port,
        stats: () => ({ ...stats }),
        close: () =>
          new Promise<void>((res) => {
            for (const s of sockets) s.destroy();
            server.close(() => res());
          }),
      });
    });
  });
}

/** Messages between the benchmark and the proxy process. */
export type WanRequest =
  | { id: number; op: 'listen'; upstreamPort: number }
  | { id: number; op: 'condition'; condition: LinkCondition }
  | { id: number; op: 'stats' };
type WanOk = { id: number; ok: true; port?: number; stats?: LegStats[] };
export type WanReply = WanOk | { id: number; ok: false; error: string };
/** A request before it gets its id. */
type WanOrder = WanRequest extends infer R ? (R extends WanRequest ? Omit<R, 'id'> : never) : never;

/** The proxy process as the benchmark sees it. */
export interface WanProxy {
  readonly child: ChildProcess;
  /** A new leg to 127.0.0.1:upstreamPort; resolves to its listening port. */
  listen(upstreamPort: number): Promise<number>;
  /** The link every leg has from now on (for connections already open too, from their next byte). */
  setCondition(c: LinkCondition): Promise<void>;
  stats(): Promise<LegStats[]>;
  stop(): Promise<void>;
}

/** Start the proxy process (tracked: killed by the benchmark's cleanup and its watchdog). */
export async function forkWanProxy(): Promise<WanProxy> {
  const child = track(
    fork(join(import.meta.dirname, 'wan-proxy-process.ts'), [], {
      execArgv: ['--import', 'tsx'],
      stdio: ['ignore', 'ignore', 'inherit', 'ipc'],
    }),
  );
  const pending = new Map<number, { resolve: (r: WanReply) => void; reject: (e: Error) => void }>();
  let nextId = 1;
  child.on('message', (m: WanReply) => {
    const p = pending.get(m.id);
    pending.delete(m.id);
    p?.resolve(m);
  });
  child.once('exit', (code, sig) => {
    for (const p of pending.values()) p.reject(new Error(`WAN proxy process exited (${code ?? sig})`));
    pending.clear();
  });
  const ask = (req: WanOrder, timeoutMs = 10_000): Promise<WanOk> => {
    const id = nextId++;
    return new Promise<WanOk>((resolve, reject) => {
      const t = setTimeout(() => {
        pending.delete(id);
        reject(new Error(`WAN proxy: no answer to ${req.op} within ${timeoutMs} ms`));
      }, timeoutMs);
      pending.set(id, {
        resolve: (r) => {
          clearTimeout(t);
          if (r.ok) resolve(r);
          else reject(new Error(`WAN proxy: ${req.op} failed: ${r.error}`));
        },
        reject: (e) => {
          clearTimeout(t);
          reject(e);
        },
      });
      child.send({ ...req, id });
    });
  };
  // The first answer also says the process is up (tsx compiles the entry first).
  await ask({ op: 'stats' }, 30_000);
  return {
    child,
    listen: async (upstreamPort) => (await ask({ op: 'listen', upstreamPort })).port!,
    setCondition: async (condition) => {
      await ask({ op: 'condition', condition });
    },
    stats: async () => (await ask({ op: 'stats' })).stats ?? [],
    stop: async () => {
      if (child.exitCode !== null || child.signalCode !== null) return;
      child.kill('SIGTERM');
      const t = setTimeout(() => child.kill('SIGKILL'), 5_000);
      await exited(child);
      clearTimeout(t);
    },
  };
}
