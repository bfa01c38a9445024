/**
 * Metric 1, bulk throughput: N MiB piped through `<path> 'echo ready; exec wc -c'`.
 * The clock starts when the remote side printed "ready" (the session is up, so setup time is not mixed
 * into the figure) and stops when the byte count arrives; the count must equal what was sent.
 * Paths are interleaved (the order rotates every round) and the median of the rounds is reported.
 */
import { randomBytes } from 'node:crypto';
import type { BenchEnv } from '../lib/env.js';
import { commandFor, type PathId } from '../lib/paths.js';
import { SessionProc } from '../lib/session-proc.js';
import type { Recorder } from '../lib/report.js';
import { median, round } from '../lib/stats.js';

export const CHUNK = 1024 * 1024;

/** A client process running `echo ready; exec wc -c` through `path`, its session up. */
export interface BulkSession {
  p: SessionProc;
  /** Where the byte count starts in its stdout. */
  startLen: number;
}

export async function openBulk(env: BenchEnv, path: PathId): Promise<BulkSession> {
  const p = new SessionProc(commandFor(env, path, 'echo ready; exec wc -c'));
  try {
    await p.waitOut((o) => o.includes('ready\n'), 30_000, 'session start');
  } catch (e) {
    await p.kill();
    throw e;
  }
  return { p, startLen: p.out.indexOf('ready\n') + 6 };
}

/** After the last write: end stdin, wait for the byte count (it must equal `bytes`) and exit status 0. */
export async function finishBulk(s: BulkSession, bytes: number, timeoutMs: number): Promise<void> {
  const { p, startLen } = s;
  p.child.stdin!.end();
  await p.waitOut((o) => /^\s*\d+\s*\n/.test(o.subarray(startLen).toString()), timeoutMs, 'byte count');
  const count = Number(p.out.subarray(startLen).toString().trim());
  if (count !== bytes) throw new Error(`wc -c counted ${count} bytes, sent ${bytes}`);
  const code = await p.finish(10_000);
  if (code !== 0) throw new Error(`exit status ${code} ${p.describe()}`);
}

/** Send `mib` MiB (`block` is 1 MiB) into an open bulk session; ms from the first byte to the count. */
export async function transferBulk(s: BulkSession, mib: number, block: Buffer): Promise<number> {
  const t0 = process.hrtime.bigint();
  for (let i = 0; i < mib; i++) await s.p.write(block);
  // At 1 MB/s a 256 MiB run would take 4.5 min: anything slower counts as failed.
  await finishBulk(s, mib * CHUNK, 30_000 + mib * 1_000);
  return Number(process.hrtime.bigint() - t0) / 1e6;
}

/** One transfer of `mib` MiB into `wc -c` through `path`, checked against the count. */
export async function bulkOnce(
  env: BenchEnv,
  path: PathId,
  mib: number,
  block: Buffer,
): Promise<{ mbps: number; ms: number }> {
  const s = await openBulk(env, path);
  try {
    const ms = await transferBulk(s, mib, block);
    return { mbps: (mib * CHUNK) / 1e6 / (ms / 1000), ms };
  } finally {
    await s.p.kill();
  }
}

export async function runBulk(
  env: BenchEnv,
  rec: Recorder,
  paths: PathId[],
  opts: { mib: number; rounds: number },
): Promise<void> {
  const block = randomBytes(CHUNK);
  const samples = new Map<PathId, number[]>(paths.map((p) => [p, []]));
  const errors = new Map<PathId, string>();
  for (let round_ = 0; round_ < opts.rounds; round_++) {
    const order = paths.map((_, i) => paths[(i + round_) % paths.length]!);
    for (const path of order) {
      if (errors.has(path)) continue;
      try {
        const r = await bulkOnce(env, path, opts.mib, block);
        samples.get(path)!.push(r.mbps);
        process.stderr.write(`bench:     bulk ${path} round ${round_ + 1}: ${r.mbps.toFixed(1)} MB/s\n`);
      } catch (e) {
        errors.set(path, (e as Error).message);
      }
    }
  }
  for (const path of paths) {
    const s = samples.get(path)!;
    rec.add({
      metric: 'bulk_mbps',
      path,
      value: round(median(s), 1),
      unit: 'MB/s',
      better: 'higher',
      ok: !errors.has(path) && s.length === opts.rounds,
      error: errors.get(path),
      samples: s.map((x) => round(x, 1)),
      extra: { mib: opts.mib, rounds: opts.rounds, verified: 'wc -c count equals bytes sent' },
    });
  }
}
