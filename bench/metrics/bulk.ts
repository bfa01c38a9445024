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

const CHUNK = 1024 * 1024;

async function once(env: BenchEnv, path: PathId, mib: number, block: Buffer): Promise<{ mbps: number; ms: number }> {
  const bytes = mib * CHUNK;
  const p = new SessionProc(commandFor(env, path, 'echo ready; exec wc -c'));
  try {
    await p.waitOut((o) => o.includes('ready\n'), 30_000, 'session start');
    const startLen = p.out.indexOf('ready\n') + 6;
    const t0 = process.hrtime.bigint();
    for (let i = 0; i < mib; i++) await p.write(block);
    p.child.stdin!.end();
    // At 1 MB/s a 256 MiB run would take 4.5 min: anything slower counts as failed.
    await p.waitOut((o) => /^\s*\d+\s*\n/.test(o.subarray(startLen).toString()), 30_000 + mib * 1_000, 'byte count');
    const ms = Number(process.hrtime.bigint() - t0) / 1e6;
    const count = Number(p.out.subarray(startLen).toString().trim());
    if (count !== bytes) throw new Error(`wc -c counted ${count} bytes, sent ${bytes}`);
    const code = await p.finish(10_000);
    if (code !== 0) throw new Error(`exit status ${code} ${p.describe()}`);
    return { mbps: bytes / 1e6 / (ms / 1000), ms };
  } finally {
    await p.kill();
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
        const r = await once(env, path, opts.mib, block);
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
