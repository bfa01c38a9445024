/**
 * Metric 3, interactive latency: one long session per path running `cat` on a PTY in raw mode without
 * echo (`-tt` / `mssh ssh -t`, remote `stty raw -echo; exec cat`), as an interactive shell would have it
 * (both OpenSSH ends switch to TCP_NODELAY for PTY sessions). The benchmark writes 1 byte to the client
 * process's stdin pipe and times until that byte comes back on its stdout pipe, so every path pays the
 * same two local pipe hops. The paths take turns round trip by round trip.
 *
 * Two figures per path: *cold*, the first `trips` round trips of a new session (a fresh client process,
 * and a relay and agent whose code V8 has not optimised yet: on this machine it takes a couple of
 * thousand round trips before the JIT settles, and the first ones cost up to twice the CPU), and
 * *steady*, `trips` round trips after `warmup` in all, which is what a long-running relay and agent,
 * and a session in use for a while, give. The target is on the steady figure; both are printed.
 */
import type { BenchEnv } from '../lib/env.js';
import { commandFor, type PathId } from '../lib/paths.js';
import { SessionProc } from '../lib/session-proc.js';
import type { Recorder } from '../lib/report.js';
import { percentile, round } from '../lib/stats.js';

/** A `cat` session on a PTY whose round trips of one byte are timed. */
export class Echo {
  private received = 0;
  private want = 0;
  private resolve?: () => void;
  private lastByte = -1;
  constructor(readonly p: SessionProc) {}
  start(): void {
    this.p.child.stdout!.removeAllListeners('data');
    this.p.child.stdout!.on('data', (d: Buffer) => {
      this.received += d.length;
      this.lastByte = d[d.length - 1]!;
      if (this.received >= this.want && this.resolve) {
        const r = this.resolve;
        this.resolve = undefined;
        r();
      }
    });
  }
  /** One round trip of one byte; returns microseconds. */
  async rtt(byte: number, timeoutMs: number): Promise<number> {
    this.want = this.received + 1;
    let timer: NodeJS.Timeout | undefined;
    const back = new Promise<void>((resolve, reject) => {
      this.resolve = resolve;
      timer = setTimeout(() => reject(new Error(`no echo within ${timeoutMs} ms ${this.p.describe()}`)), timeoutMs);
    });
    const t0 = process.hrtime.bigint();
    this.p.child.stdin!.write(Buffer.of(byte));
    try {
      await back;
    } finally {
      clearTimeout(timer);
    }
    const us = Number(process.hrtime.bigint() - t0) / 1e3;
    if (this.lastByte !== byte) throw new Error(`echo returned byte ${this.lastByte}, sent ${byte}`);
    return us;
  }
}

/** Open a session running `cat` on a raw PTY through `path`, ready for round trips (killed on failure). */
export async function openEcho(env: BenchEnv, path: PathId, startTimeoutMs = 30_000): Promise<Echo> {
  const p = new SessionProc(commandFor(env, path, 'stty raw -echo; echo ready; exec cat', { tty: true }));
  try {
    await p.waitOut((o) => o.includes('ready'), startTimeoutMs, 'session start');
    // Let any trailing output of the start (a CR, a prompt) arrive before counting bytes.
    await new Promise((r) => setTimeout(r, 200));
    const e = new Echo(p);
    e.start();
    return e;
  } catch (err) {
    await p.kill();
    throw err;
  }
}

export async function runLatency(
  env: BenchEnv,
  rec: Recorder,
  paths: PathId[],
  opts: { warmup: number; trips: number },
): Promise<void> {
  if (opts.warmup < opts.trips) throw new Error('latency: the warm-up must be at least as long as the cold sample');
  const sessions = new Map<PathId, Echo>();
  const errors = new Map<PathId, string>();
  const samples = new Map<PathId, number[]>(paths.map((p) => [p, []]));
  const cold = new Map<PathId, number[]>(paths.map((p) => [p, []]));
  try {
    for (const path of paths) {
      try {
        sessions.set(path, await openEcho(env, path));
      } catch (err) {
        errors.set(path, (err as Error).message);
      }
    }
    const live = () => paths.filter((p) => sessions.has(p) && !errors.has(p));
    for (let i = 0; i < opts.warmup + opts.trips; i++) {
      const byte = 0x61 + (i % 26);
      const order = live();
      if (!order.length) break;
      for (let k = 0; k < order.length; k++) {
        const path = order[(i + k) % order.length]!;
        try {
          const us = await sessions.get(path)!.rtt(byte, 5_000);
          if (i < opts.trips) cold.get(path)!.push(us);
          if (i >= opts.warmup) samples.get(path)!.push(us);
        } catch (err) {
          errors.set(path, (err as Error).message);
        }
      }
    }
  } finally {
    for (const e of sessions.values()) await e.p.kill();
  }
  for (const path of paths) {
    const s = samples.get(path)!;
    const ok = !errors.has(path) && s.length === opts.trips;
    const extra = {
      trips: s.length,
      warmup: opts.warmup,
      p90: round(percentile(s, 90), 0),
      max: round(Math.max(...s), 0),
      pty: true,
    };
    rec.add({
      metric: 'latency_p50_us',
      path,
      value: round(percentile(s, 50), 0),
      unit: 'us',
      better: 'lower',
      ok,
      error: errors.get(path),
      extra,
    });
    rec.add({
      metric: 'latency_p99_us',
      path,
      value: round(percentile(s, 99), 0),
      unit: 'us',
      better: 'lower',
      ok,
      error: errors.get(path),
      extra,
    });
    const c = cold.get(path)!;
    const coldOk = !errors.has(path) && c.length === opts.trips;
    const coldExtra = {
      trips: c.length,
      firstTrips: true,
      p90: round(percentile(c, 90), 0),
      p99: round(percentile(c, 99), 0),
      max: round(Math.max(...c), 0),
      pty: true,
    };
    rec.add({
      metric: 'latency_cold_p50_us',
      path,
      value: round(percentile(c, 50), 0),
      unit: 'us',
      better: 'lower',
      ok: coldOk,
      error: errors.get(path),
      extra: coldExtra,
    });
  }
}
