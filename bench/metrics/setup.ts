/**
 * Metric 2, session setup: wall time of `<path> true`, from spawning the client process until it exited
 * with status 0 (process start, TCP/TLS, key exchange, authentication, channel, command, teardown).
 * Paths are interleaved (the order rotates every round); median of the rounds.
 */
import type { BenchEnv } from '../lib/env.js';
import { commandFor, type PathId } from '../lib/paths.js';
import { SessionProc } from '../lib/session-proc.js';
import type { Recorder } from '../lib/report.js';
import { median, percentile, round } from '../lib/stats.js';

/** Wall time of one `<path> true`, from spawn to exit status 0, in ms. */
export async function setupOnce(env: BenchEnv, path: PathId): Promise<number> {
  const t0 = process.hrtime.bigint();
  const p = new SessionProc(commandFor(env, path, 'true'));
  p.child.stdin!.end();
  const code = await p.finish(30_000);
  const ms = Number(process.hrtime.bigint() - t0) / 1e6;
  if (code !== 0) throw new Error(`exit status ${code} ${p.describe()}`);
  return ms;
}

export async function runSetup(env: BenchEnv, rec: Recorder, paths: PathId[], opts: { rounds: number }): Promise<void> {
  const samples = new Map<PathId, number[]>(paths.map((p) => [p, []]));
  const errors = new Map<PathId, string>();
  // One untimed warm-up per path (page cache, first known_hosts read, first token check).
  for (const path of paths) await setupOnce(env, path).catch((e: Error) => errors.set(path, e.message));
  for (let r = 0; r < opts.rounds; r++) {
    const order = paths.map((_, i) => paths[(i + r) % paths.length]!);
    for (const path of order) {
      if (errors.has(path)) continue;
      try {
        samples.get(path)!.push(await setupOnce(env, path));
      } catch (e) {
        errors.set(path, (e as Error).message);
      }
    }
  }
  for (const path of paths) {
    const s = samples.get(path)!;
    rec.add({
      metric: 'setup_ms',
      path,
      value: round(median(s), 1),
      unit: 'ms',
      better: 'lower',
      ok: !errors.has(path) && s.length === opts.rounds,
      error: errors.get(path),
      samples: s.map((x) => round(x, 1)),
      extra: { rounds: opts.rounds, min: round(Math.min(...s), 1), p90: round(percentile(s, 90), 1), command: 'true' },
    });
  }
}
