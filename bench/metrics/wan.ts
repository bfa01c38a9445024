/**
 * WAN mode (issue 22): the process metrics again, with both legs of each path going through the WAN
 * proxy (lib/wan.ts, lib/wan-proxy.ts), for each condition (one-way delay per leg, rate cap or none):
 *
 * - bulk (`wan_bulk_mbps`): N MiB into `wc -c` in one session, as metric 1 (median of the rounds);
 * - parallel bulk (`wan_bulk_parallel_mbps`): the same bytes split over K sessions of the same machine at
 *   once, all sessions up before the first byte; bytes / time from the first byte to the last count;
 * - set-up (`wan_setup_ms`): `<path> true`, as metric 2 (one untimed warm-up, median);
 * - keystroke (`wan_key_p50_ms`, `wan_key_p99_ms`): 1-byte round trips through `cat` on a raw PTY, as
 *   metric 3, the paths taking turns trip by trip;
 * - head of line (`wan_hol_p50_ms`, `wan_hol_p99_ms`): the same keystroke session while a second session
 *   of the SAME machine uploads into `wc -c` as fast as it can (through the same agent link / the same
 *   `ssh -R`), from the moment the upload has run `holSettleMs`; the upload's count is checked.
 *
 * One result per metric, path and condition (variant = the condition's label).
 */
import { randomBytes } from 'node:crypto';
import type { PathId } from '../lib/paths.js';
import type { Recorder, Result } from '../lib/report.js';
import { median, percentile, round } from '../lib/stats.js';
import { mbitToBytesPerSec } from '../lib/wan-proxy.js';
import type { WanEnv } from '../lib/wan.js';
import { CHUNK, openBulk, transferBulk, finishBulk, type BulkSession } from './bulk.js';
import { setupOnce } from './setup.js';
import { openEcho, type Echo } from './latency.js';

export interface WanCondition {
  /** One-way delay per leg, ms. */
  delayMs: number;
  /** Rate cap per leg and direction, Mbit/s; 0 = none. */
  rateMbit: number;
}

export interface WanOptions {
  conditions: WanCondition[];
  mib: number;
  rounds: number;
  /** Sessions of the parallel bulk row (0: row left out). */
  parallel: number;
  setupRounds: number;
  keyWarmup: number;
  keyTrips: number;
  holTrips: number;
  /** How long the upload runs before the head-of-line trips start. */
  holSettleMs: number;
  /** Longest the head-of-line upload may run. */
  holMaxMs: number;
}

export const WAN_METRICS = [
  { metric: 'wan_bulk_mbps', label: 'bulk, 1 session' },
  { metric: 'wan_bulk_parallel_mbps', label: 'bulk, K sessions at once' },
  { metric: 'wan_setup_ms', label: 'session set-up `true`' },
  { metric: 'wan_key_p50_ms', label: 'keystroke p50' },
  { metric: 'wan_key_p99_ms', label: 'keystroke p99' },
  { metric: 'wan_hol_p50_ms', label: 'keystroke p50 during upload (HOL)' },
  { metric: 'wan_hol_p99_ms', label: 'keystroke p99 during upload (HOL)' },
] as const;

export function conditionLabel(c: WanCondition): string {
  return `${c.delayMs} ms${c.rateMbit > 0 ? `, ${c.rateMbit} Mbit/s` : ', no cap'}`;
}

function log(msg: string): void {
  process.stderr.write(`bench:     ${msg}\n`);
}

/** Per path: samples and the first error. */
class Samples {
  readonly s = new Map<PathId, number[]>();
  readonly errors = new Map<PathId, string>();
  constructor(paths: PathId[]) {
    for (const p of paths) this.s.set(p, []);
  }
  add(path: PathId, x: number): void {
    this.s.get(path)!.push(x);
  }
  fail(path: PathId, e: unknown): void {
    if (!this.errors.has(path)) this.errors.set(path, (e as Error).message);
  }
}

/** A session uploading as fast as the path takes it, until stopped (bounded by time and bytes). */
class Upload {
  written = 0;
  private stopped = false;
  private readonly done: Promise<void>;
  readonly startedAt = performance.now();
  stoppedAt = 0;
  constructor(
    private readonly s: BulkSession,
    block: Buffer,
    maxMs: number,
  ) {
    this.done = (async () => {
      const deadline = this.startedAt + maxMs;
      for (let i = 0; i < 64 * 1024 && !this.stopped && performance.now() < deadline; i++) {
        await s.p.write(block);
        this.written += block.length;
      }
      this.stoppedAt = performance.now();
    })().catch((e: Error) => {
      // Kept for stop(): a rejection nobody awaits yet would end the process.
      this.failure = e;
    });
  }
  private failure: Error | undefined;
  async stop(): Promise<{ mbps: number }> {
    this.stopped = true;
    await this.done;
    if (this.failure) throw this.failure;
    await finishBulk(this.s, this.written, 60_000);
    return { mbps: this.written / 1e6 / ((this.stoppedAt - this.startedAt) / 1000) };
  }
}

export async function runWan(wan: WanEnv, rec: Recorder, paths: PathId[], o: WanOptions): Promise<void> {
  const env = wan.env;
  const block = randomBytes(CHUNK);
  for (const cond of o.conditions) {
    const variant = conditionLabel(cond);
    await wan.proxy.setCondition({ delayMs: cond.delayMs, rateBytesPerSec: mbitToBytesPerSec(cond.rateMbit) });
    process.stderr.write(`bench:   -- WAN ${variant} (one-way, per leg)\n`);
    // Let what the long-lived links had in flight under the previous condition drain.
    await new Promise((r) => setTimeout(r, 500));
    const add = (r: Omit<Result, 'variant'>) => rec.add({ ...r, variant });
    const extraCond = { delayMs: cond.delayMs, rateMbit: cond.rateMbit, legs: Object.keys(wan.legs) };

    // Set-up: one untimed warm-up per path (also shows the route works), then interleaved rounds.
    const setup = new Samples(paths);
    for (const path of paths) await setupOnce(env, path).catch((e) => setup.fail(path, e));
    for (let r = 0; r < o.setupRounds; r++) {
      for (let k = 0; k < paths.length; k++) {
        const path = paths[(r + k) % paths.length]!;
        if (setup.errors.has(path)) continue;
        await setupOnce(env, path).then(
          (ms) => setup.add(path, ms),
          (e) => setup.fail(path, e),
        );
      }
    }
    for (const path of paths) {
      const s = setup.s.get(path)!;
      add({
        metric: 'wan_setup_ms',
        path,
        value: round(median(s), 1),
        unit: 'ms',
        better: 'lower',
        ok: !setup.errors.has(path) && s.length === o.setupRounds,
        error: setup.errors.get(path),
        samples: s.map((x) => round(x, 1)),
        extra: { ...extraCond, rounds: o.setupRounds },
      });
    }

    // Bulk, one session: interleaved rounds.
    const bulk = new Samples(paths);
    for (let r = 0; r < o.rounds; r++) {
      for (let k = 0; k < paths.length; k++) {
        const path = paths[(r + k) % paths.length]!;
        if (bulk.errors.has(path) || setup.errors.has(path)) continue;
        try {
          const s = await openBulk(env, path);
          try {
            const ms = await transferBulk(s, o.mib, block);
            bulk.add(path, (o.mib * CHUNK) / 1e6 / (ms / 1000));
            log(`bulk ${path} round ${r + 1}: ${bulk.s.get(path)!.at(-1)!.toFixed(1)} MB/s`);
          } finally {
            await s.p.kill();
          }
        } catch (e) {
          bulk.fail(path, e);
        }
      }
    }
    for (const path of paths) {
      const s = bulk.s.get(path)!;
      add({
        metric: 'wan_bulk_mbps',
        path,
        value: round(median(s), 1),
        unit: 'MB/s',
        better: 'higher',
        ok: !bulk.errors.has(path) && s.length === o.rounds,
        error: bulk.errors.get(path) ?? setup.errors.get(path),
        samples: s.map((x) => round(x, 1)),
        extra: { ...extraCond, mib: o.mib, rounds: o.rounds },
      });
    }

    // Bulk, K sessions of the same machine at once: all up first, then the bytes, split evenly.
    if (o.parallel > 0) {
      const per = Math.max(1, Math.floor(o.mib / o.parallel));
      for (const path of paths) {
        if (setup.errors.has(path)) continue;
        const sessions: BulkSession[] = [];
        try {
          for (let i = 0; i < o.parallel; i++) sessions.push(await openBulk(env, path));
          const t0 = performance.now();
          await Promise.all(sessions.map((s) => transferBulk(s, per, block)));
          const mbps = (o.parallel * per * CHUNK) / 1e6 / ((performance.now() - t0) / 1000);
          log(`bulk x${o.parallel} ${path}: ${mbps.toFixed(1)} MB/s`);
          add({
            metric: 'wan_bulk_parallel_mbps',
            path,
            value: round(mbps, 1),
            unit: 'MB/s',
            better: 'higher',
            ok: true,
            extra: { ...extraCond, sessions: o.parallel, mibPerSession: per },
          });
        } catch (e) {
          add({
            metric: 'wan_bulk_parallel_mbps',
            path,
            value: NaN,
            unit: 'MB/s',
            better: 'higher',
            ok: false,
            error: (e as Error).message,
          });
        } finally {
          for (const s of sessions) await s.p.kill();
        }
      }
    }

    // Keystrokes: one echo session per path, the paths taking turns trip by trip.
    const echoes = new Map<PathId, Echo>();
    const keys = new Samples(paths);
    const hol = new Samples(paths);
    const holExtra = new Map<PathId, Record<string, unknown>>();
    try {
      for (const path of paths) {
        if (setup.errors.has(path)) continue;
        await openEcho(env, path).then(
          (e) => echoes.set(path, e),
          (e) => keys.fail(path, e),
        );
      }
      for (let i = 0; i < o.keyWarmup + o.keyTrips; i++) {
        const live = paths.filter((p) => echoes.has(p) && !keys.errors.has(p));
        if (!live.length) break;
        for (let k = 0; k < live.length; k++) {
          const path = live[(i + k) % live.length]!;
          try {
            const us = await echoes.get(path)!.rtt(0x61 + (i % 26), 10_000);
            if (i >= o.keyWarmup) keys.add(path, us / 1000);
          } catch (e) {
            keys.fail(path, e);
          }
        }
      }
      // Head of line: each path alone (another path's upload would load the machine), its echo session
      // timed while a second session of the same machine uploads.
      for (const path of paths) {
        const echo = echoes.get(path);
        if (!echo || keys.errors.has(path)) {
          hol.fail(path, new Error(keys.errors.get(path) ?? setup.errors.get(path) ?? 'no echo session'));
          continue;
        }
        let up: Upload | undefined;
        try {
          const s = await openBulk(env, path);
          up = new Upload(s, block, o.holMaxMs);
          await new Promise((r) => setTimeout(r, o.holSettleMs));
          const t0 = performance.now();
          for (let i = 0; i < o.holTrips; i++) {
            hol.add(path, (await echo.rtt(0x61 + (i % 26), 15_000)) / 1000);
            if (performance.now() - up.startedAt > o.holMaxMs) throw new Error('the upload ended before the trips');
          }
          const tripsMs = performance.now() - t0;
          const u = await up.stop();
          up = undefined;
          log(`HOL ${path}: upload ${u.mbps.toFixed(1)} MB/s during ${o.holTrips} trips in ${Math.round(tripsMs)} ms`);
          holExtra.set(path, { uploadMbps: round(u.mbps, 1), tripsMs: Math.round(tripsMs) });
        } catch (e) {
          hol.fail(path, e);
        } finally {
          if (up) await up.stop().catch(() => {});
        }
      }
    } finally {
      for (const e of echoes.values()) await e.p.kill();
    }
    const pct = (name: string, smp: Samples, path: PathId, p: number, want: number, extra: Record<string, unknown>) => {
      const s = smp.s.get(path)!;
      add({
        metric: name,
        path,
        value: round(percentile(s, p), 1),
        unit: 'ms',
        better: 'lower',
        ok: !smp.errors.has(path) && s.length === want,
        error: smp.errors.get(path),
        extra: { ...extraCond, ...extra, trips: s.length, max: round(Math.max(...s), 1) },
      });
    };
    for (const path of paths) {
      pct('wan_key_p50_ms', keys, path, 50, o.keyTrips, { warmup: o.keyWarmup });
      pct('wan_key_p99_ms', keys, path, 99, o.keyTrips, { warmup: o.keyWarmup });
      pct('wan_hol_p50_ms', hol, path, 50, o.holTrips, holExtra.get(path) ?? {});
      pct('wan_hol_p99_ms', hol, path, 99, o.holTrips, holExtra.get(path) ?? {});
    }
    const stats = await wan.proxy.stats().catch(() => []);
    log(
      `proxy legs so far: ${Object.keys(wan.legs)
        .map((l, i) => {
          const st = stats[i];
          return `${l} ${st ? `${st.connections} conns, max held ${Math.round(st.maxHeld / 1024)} KiB, ${st.pauses} pauses` : '?'}`;
        })
        .join('; ')}`,
    );
  }
}
