/**
 * Metric 5, session start rate: open and close sessions as fast as possible for a fixed time, with at
 * most P in flight spread over K client connections. A start counts once the target's SSH identification
 * line came back through the path (so it has crossed the relay and agent, or the bastion and the
 * reverse tunnel, end to end). The target is the near-free null target, so the figure is the cost of
 * the path, not of sshd's fork per connection.
 *   mssh:     POST /v1/tunnel/bench-null on the relay (JWT check, agent lookup, audit rows in Postgres);
 *   baseline: a direct-tcpip channel through a bastion connection to the -R forward of the null target.
 * After the run the relay's audit table is counted, to check that every start was audited.
 */
import type http2 from 'node:http2';
import type { Duplex } from 'node:stream';
import pg from 'pg';
import { openTunnel } from '@mssh/test-fixtures/tunnel-client';
import { relaySession } from '../lib/relay-session.js';
import { NULL_HOST, type BenchEnv } from '../lib/env.js';
import { bastionClient, jumpChannel, firstBytes, closeStream, type SshClient } from '../lib/inproc.js';
import { pool, withTimeout } from '../lib/pool.js';
import type { Recorder } from '../lib/report.js';
import { percentile, round } from '../lib/stats.js';

interface Side {
  path: 'mssh' | 'jump';
  prepare(k: number): Promise<void>;
  open(slot: number): Promise<Duplex>;
  release(): Promise<void>;
}

async function auditCount(url: string | undefined, since: Date): Promise<number | undefined> {
  if (!url) return undefined;
  const c = new pg.Client({ connectionString: url, connectionTimeoutMillis: 5_000 });
  try {
    await c.connect();
    const r = await c.query<{ n: string }>(
      `SELECT count(*) AS n FROM audit_events WHERE type = 'session.start' AND time >= $1`,
      [since],
    );
    return Number(r.rows[0]!.n);
  } catch {
    return undefined;
  } finally {
    await c.end().catch(() => {});
  }
}

export async function runRate(
  env: BenchEnv,
  rec: Recorder,
  opts: { seconds: number; parallel: number; conns: number },
): Promise<void> {
  const sides: Side[] = [];
  let bastions: SshClient[] = [];
  sides.push({
    path: 'jump',
    async prepare(k) {
      bastions = await Promise.all(Array.from({ length: k }, () => bastionClient(env)));
    },
    open: (slot) => jumpChannel(bastions[slot % bastions.length]!, env.nullRport),
    async release() {
      for (const b of bastions) b.end();
      bastions = [];
    },
  });
  const m = env.mssh;
  if (m) {
    let sessions: http2.ClientHttp2Session[] = [];
    sides.push({
      path: 'mssh',
      async prepare(k) {
        sessions = await Promise.all(Array.from({ length: k }, () => relaySession(m.relay)));
      },
      open: (slot) => openTunnel(sessions[slot % sessions.length]!, m.token, NULL_HOST),
      async release() {
        for (const s of sessions) s.close();
        sessions = [];
      },
    });
  }
  for (const side of sides) {
    let firstError: string | undefined;
    let failures = 0;
    let starts = 0;
    const openMs: number[] = [];
    const closeMs: number[] = [];
    try {
      await side.prepare(opts.conns);
      const since = new Date(Date.now() - 1_000);
      const t0 = Date.now();
      const stopAt = t0 + opts.seconds * 1000;
      // Upper bound on the count: 20,000 starts per second would be far beyond either path.
      await pool(opts.seconds * 20_000, opts.parallel, stopAt, async (i) => {
        const s0 = process.hrtime.bigint();
        try {
          const sock = await withTimeout(side.open(i % opts.parallel), 10_000, 'open');
          try {
            await firstBytes(sock, 10_000);
            starts++;
            openMs.push(Number(process.hrtime.bigint() - s0) / 1e6);
          } finally {
            const c0 = process.hrtime.bigint();
            await closeStream(sock, 5_000);
            closeMs.push(Number(process.hrtime.bigint() - c0) / 1e6);
          }
        } catch (e) {
          failures++;
          firstError ??= (e as Error).message;
        }
      });
      const elapsed = (Date.now() - t0) / 1000;
      let audited: number | undefined;
      if (side.path === 'mssh') {
        // Audit writes may trail the streams a little: give them up to 5 s to land.
        for (let i = 0; i < 50; i++) {
          audited = await auditCount(m?.relay.databaseUrl, since);
          if (audited === undefined || audited >= starts) break;
          await new Promise((r) => setTimeout(r, 100));
        }
      }
      rec.add({
        metric: 'rate_starts_per_s',
        path: side.path,
        value: round(starts / elapsed, 0),
        unit: 'starts/s',
        better: 'higher',
        ok: failures === 0 && starts > 0,
        error: firstError,
        extra: {
          starts,
          failures,
          seconds: round(elapsed, 2),
          parallel: opts.parallel,
          clientConnections: opts.conns,
          openP50ms: round(percentile(openMs, 50), 2),
          openP99ms: round(percentile(openMs, 99), 2),
          closeP50ms: round(percentile(closeMs, 50), 2),
          closeP99ms: round(percentile(closeMs, 99), 2),
          ...(side.path === 'mssh' ? { auditedSessionStarts: audited } : {}),
        },
      });
    } catch (e) {
      rec.add({
        metric: 'rate_starts_per_s',
        path: side.path,
        value: NaN,
        unit: 'starts/s',
        better: 'higher',
        ok: false,
        error: (e as Error).message,
      });
    } finally {
      await side.release().catch(() => {});
    }
  }
}
