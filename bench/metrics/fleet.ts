/**
 * Metric 8, the relay fleet (issue 19): three `mssh-relay serve` processes on one Postgres database, one
 * agent for the bench target, held by relay B. In-process ssh2 clients (the same for both routes):
 *
 *   direct     client ──> relay B (holds the agent) ══ agent link ══ agent ──> target sshd
 *   forwarded  client ──> relay A ══ peer link (HTTP/2, mutual TLS) ══ relay B ══ agent link ══ agent ──> sshd
 *
 *   - session set-up: tunnel open + SSH handshake + `true` until its exit status, median of the rounds,
 *     the two routes interleaved (forwarded / direct <= 1.15x);
 *   - bulk: N MiB into `wc -c` (the count must equal what was sent), the clock started once the channel
 *     is open, median of the rounds (forwarded / direct >= 0.9x);
 *   - failover: kill -9 of the relay holding the agent (the agent has every relay's URL), then a session
 *     through a surviving relay every 50 ms until one works: the time from the kill to that session's exit
 *     status, over K kills (p50 <= 2 s, max <= 5 s); the killed relay is started again after each round.
 */
import type http2 from 'node:http2';
import { randomBytes } from 'node:crypto';
import pg from 'pg';
import { startFleet, type Fleet, type FleetRelay } from '@mssh/test-fixtures/fleet';
import { BIN, ADMIN_PASSWORD, run, startAgent, type Agent } from '@mssh/test-fixtures/stack';
import { login, openTunnel } from '@mssh/test-fixtures/tunnel-client';
import { relaySession } from '../lib/relay-session.js';
import type { BenchEnv } from '../lib/env.js';
import { onCleanup } from '../lib/cleanup.js';
import { watch } from '../lib/watchdog.js';
import { closeStream, execChannel, firstBytes, sshOver } from '../lib/inproc.js';
import { pool, sleep, withTimeout } from '../lib/pool.js';
import { cpuMs } from '../lib/procs.js';
import type { Recorder } from '../lib/report.js';
import { median, percentile, round } from '../lib/stats.js';

const HOST = 'bench-fleet';
const CHUNK = 1024 * 1024;

export interface FleetOptions {
  setupRounds: number;
  mib: number;
  bulkRounds: number;
  kills: number;
  /** Seconds of the audited start-rate run over the three relays. */
  rateSeconds: number;
}

interface Door {
  relay: FleetRelay;
  h2: http2.ClientHttp2Session;
  token: string;
}

async function door(relay: FleetRelay): Promise<Door> {
  const h2 = await relaySession(relay);
  return { relay, h2, token: await login(h2, 'admin', ADMIN_PASSWORD) };
}

/** One session through `d`: tunnel, SSH handshake, `true`; resolves with the ms until its exit status. */
async function setupOnce(env: BenchEnv, d: Door, timeoutMs: number): Promise<number> {
  const t0 = performance.now();
  const sock = await withTimeout(openTunnel(d.h2, d.token, HOST), timeoutMs, 'tunnel open');
  const c = await sshOver(env, sock, timeoutMs);
  try {
    const ch = await withTimeout(execChannel(c, 'true'), timeoutMs, 'exec');
    const code = await withTimeout(
      new Promise<number | null>((resolve) => {
        ch.on('exit', (status: number | null) => resolve(status));
        ch.resume();
      }),
      timeoutMs,
      'exit status',
    );
    if (code !== 0) throw new Error(`true exited ${code}`);
    return performance.now() - t0;
  } finally {
    c.end();
    await closeStream(sock, 2_000);
  }
}

/** CPU per MB moved (ms/MB) of each named process during one bulk transfer. */
type CpuPerMb = Record<string, number>;

/**
 * N MiB into `wc -c` through `d`; MB/s from the open channel to the count, and the CPU ms per MB of the
 * processes in `pids` (the relays and the agent) over the same time: this machine is CPU-bound in a bulk
 * transfer, so a route's throughput follows the CPU its processes spend per byte (bench/README.md).
 */
async function bulkOnce(
  env: BenchEnv,
  d: Door,
  mib: number,
  block: Buffer,
  pids: Record<string, number>,
): Promise<{ mbps: number; cpu: CpuPerMb }> {
  const sock = await openTunnel(d.h2, d.token, HOST);
  const c = await sshOver(env, sock);
  try {
    const ch = await execChannel(c, 'exec wc -c');
    let out = '';
    ch.on('data', (b: Buffer) => (out += b.toString()));
    const counted = new Promise<void>((resolve) => ch.on('close', () => resolve()));
    const cpu0 = Object.fromEntries(Object.entries(pids).map(([k, pid]) => [k, cpuMs(pid)]));
    const t0 = performance.now();
    for (let i = 0; i < mib; i++) {
      if (!ch.write(block)) await new Promise<void>((r) => ch.once('drain', () => r()));
    }
    ch.end();
    await withTimeout(counted, 30_000 + mib * 1_000, 'byte count');
    const ms = performance.now() - t0;
    const mb = (mib * CHUNK) / 1e6;
    const cpu = Object.fromEntries(Object.entries(pids).map(([k, pid]) => [k, round((cpuMs(pid) - cpu0[k]!) / mb, 2)]));
    const count = Number(out.trim());
    if (count !== mib * CHUNK) throw new Error(`wc -c counted ${count} bytes, sent ${mib * CHUNK}`);
    return { mbps: mb / (ms / 1000), cpu };
  } finally {
    c.end();
    await closeStream(sock, 2_000);
  }
}

async function holderOf(db: pg.Client): Promise<string | null> {
  const r = await db.query<{ relay_id: string }>(
    `SELECT p.relay_id FROM agent_presence p JOIN relays r ON r.id = p.relay_id
     WHERE p.agent_name = $1 AND r.state = 'serving' AND r.lease_until > now() ORDER BY p.since DESC LIMIT 1`,
    [HOST],
  );
  return r.rows[0]?.relay_id ?? null;
}

async function until<T>(what: string, ms: number, f: () => Promise<T | null>): Promise<T> {
  const deadline = Date.now() + ms;
  for (;;) {
    const v = await f().catch(() => null);
    if (v !== null) return v;
    if (Date.now() > deadline) throw new Error(`timed out after ${ms} ms waiting for ${what}`);
    await sleep(50);
  }
}

export async function runFleet(env: BenchEnv, rec: Recorder, o: FleetOptions): Promise<void> {
  const log = (m: string) => process.stderr.write(`bench:     fleet ${m}\n`);
  let fleet: Fleet | undefined;
  let agent: Agent | undefined;
  let db: pg.Client | undefined;
  const doors = new Map<string, Door>();
  const closeAll = async () => {
    for (const d of doors.values()) d.h2.close();
    await db?.end().catch(() => {});
    await agent?.proc.stop('SIGTERM', 10_000);
    for (const r of fleet?.relays ?? []) await r.proc.stop('SIGTERM', 10_000);
  };
  onCleanup('stop the fleet', closeAll);
  const fail = (metrics: Array<[string, string, string, 'lower' | 'higher']>, e: unknown) => {
    for (const [metric, path, unit, better] of metrics)
      if (!rec.find(metric, path))
        rec.add({ metric, path, value: NaN, unit, better, ok: false, error: (e as Error).message });
  };
  try {
    // The product's defaults (3 s leases), the session caps out of the way of the bench's own loops.
    fleet = await startFleet(3, { leaseMs: 3_000, extraArgs: ['--max-connections-per-address', '0'] });
    for (const r of fleet.relays) watch(r.proc.child);
    const [a, b] = [fleet.relays[0]!, fleet.relays[1]!];
    db = new pg.Client({ connectionString: fleet.databaseUrl });
    await db.connect();
    // Enrolled through B, given every relay: it links to B first (its enrolled relay).
    agent = await startAgent(b, HOST, { start: false, target: `127.0.0.1:${env.target.port}` });
    agent.proc = run(BIN.agent, [
      'run',
      '--state-dir',
      agent.stateDir,
      '--log-level',
      'warn',
      ...fleet.relays.flatMap((r) => ['--relay', r.url]),
    ]);
    watch(agent.proc.child);
    await until('the agent held by B', 20_000, async () => ((await holderOf(db!)) === b.id ? true : null));
    for (const r of fleet.relays) doors.set(r.id, await door(r));
    const direct = doors.get(b.id)!;
    const forwarded = doors.get(a.id)!;

    // Set-up, interleaved; two warm-up sessions each first (the peer link is opened on demand).
    for (let i = 0; i < 2; i++) {
      await setupOnce(env, direct, 20_000);
      await setupOnce(env, forwarded, 20_000);
    }
    // The two routes interleaved: round i starts with the other route than round i - 1.
    const roundOrder = (i: number): Array<['direct' | 'forwarded', Door]> =>
      i % 2
        ? [
            ['forwarded', forwarded],
            ['direct', direct],
          ]
        : [
            ['direct', direct],
            ['forwarded', forwarded],
          ];
    const setup = { direct: [] as number[], forwarded: [] as number[] };
    for (let i = 0; i < o.setupRounds; i++) {
      for (const [path, d] of roundOrder(i)) setup[path].push(await setupOnce(env, d, 20_000));
    }
    for (const path of ['direct', 'forwarded'] as const) {
      rec.add({
        metric: 'fleet_setup_ms',
        path,
        value: round(median(setup[path]), 1),
        unit: 'ms',
        better: 'lower',
        ok: true,
        samples: setup[path].map((x) => round(x, 1)),
      });
    }
    log(
      `set-up median direct ${median(setup.direct).toFixed(1)} ms, forwarded ${median(setup.forwarded).toFixed(1)} ms`,
    );

    const block = randomBytes(CHUNK);
    const bulk = { direct: [] as number[], forwarded: [] as number[] };
    const bulkCpu = { direct: [] as CpuPerMb[], forwarded: [] as CpuPerMb[] };
    // The entry relay of the forwarded route (A), the holding relay (B, the direct route's relay) and the agent.
    const pids = { entry: a.proc.child.pid!, holder: b.proc.child.pid!, agent: agent.proc.child.pid! };
    for (let i = 0; i < o.bulkRounds; i++) {
      for (const [path, d] of roundOrder(i)) {
        const { mbps, cpu } = await bulkOnce(env, d, o.mib, block, pids);
        bulk[path].push(mbps);
        bulkCpu[path].push(cpu);
        const cpuText = Object.entries(cpu)
          .map(([k, v]) => `${k} ${v.toFixed(2)}`)
          .join(', ');
        log(`bulk ${path} round ${i + 1}: ${mbps.toFixed(1)} MB/s; CPU ms per MB: ${cpuText}`);
      }
    }
    for (const path of ['direct', 'forwarded'] as const) {
      rec.add({
        metric: 'fleet_bulk_mbps',
        path,
        value: round(median(bulk[path]), 1),
        unit: 'MB/s',
        better: 'higher',
        ok: true,
        samples: bulk[path].map((x) => round(x, 1)),
        extra: {
          mib: o.mib,
          verified: 'wc -c count equals bytes sent',
          cpuMsPerMb: Object.fromEntries(
            Object.keys(pids).map((k) => [k, round(median(bulkCpu[path].map((c) => c[k]!)), 2)]),
          ),
        },
      });
    }

    // Failover: kill -9 the holder, a session through a survivor every 50 ms until one works.
    const times: number[] = [];
    for (let k = 0; k < o.kills; k++) {
      const holderId = await until('a holder', 20_000, () => holderOf(db!));
      const holder = fleet.relays.find((r) => r.id === holderId)!;
      const entry = doors.get(fleet.relays.find((r) => r.id !== holderId)!.id)!;
      await setupOnce(env, entry, 20_000); // the route works before the kill
      const t0 = performance.now();
      holder.proc.child.kill('SIGKILL');
      let attempts = 0;
      const ms = await until('a session through a survivor', 20_000, async () => {
        attempts++;
        await setupOnce(env, entry, 2_000);
        return performance.now() - t0;
      });
      times.push(ms);
      log(`failover ${k + 1}: reachable again ${ms.toFixed(0)} ms after kill -9 of the holder (${attempts} attempts)`);
      await holder.proc.exited;
      doors.get(holder.id)!.h2.destroy();
      await holder.restart();
      await holder.proc.waitOutput(/Fleet peer listener on/, 20_000, 'out');
      watch(holder.proc.child);
      doors.set(holder.id, await door(holder));
      await sleep(1_000);
    }
    rec.add({
      metric: 'fleet_failover_p50_ms',
      path: 'forwarded',
      value: round(percentile(times, 50), 0),
      unit: 'ms',
      better: 'lower',
      ok: times.length === o.kills,
      samples: times.map((x) => round(x, 0)),
    });
    rec.add({
      metric: 'fleet_failover_max_ms',
      path: 'forwarded',
      value: round(Math.max(...times), 0),
      unit: 'ms',
      better: 'lower',
      ok: times.length === o.kills,
    });

    // The fleet's audited start rate: a null-target agent on every relay, clients on all three.
    const nullAgents: Agent[] = [];
    onCleanup('stop the fleet null agents', async () => {
      for (const n of nullAgents) await n.proc.stop('SIGTERM', 10_000);
    });
    for (const [i, r] of fleet.relays.entries()) {
      const n = await startAgent(r, `bench-fleet-null-${i}`, { target: `127.0.0.1:${env.nullPort}` });
      watch(n.proc.child);
      nullAgents.push(n);
    }
    const conns = await Promise.all(
      fleet.relays.flatMap((r, i) => [0, 1].map(async () => ({ i, h2: await relaySession(r) }))),
    );
    let starts = 0;
    let failures = 0;
    let firstError: string | undefined;
    const openMs: number[] = [];
    try {
      const token = doors.get(a.id)!.token; // every relay verifies every relay's tokens (one signing key)
      const since = (await db.query<{ now: Date }>('SELECT now() AS now')).rows[0]!.now;
      const t0 = Date.now();
      const stopAt = t0 + o.rateSeconds * 1000;
      await pool(o.rateSeconds * 20_000, 48, stopAt, async (k) => {
        const c = conns[k % conns.length]!;
        const s0 = performance.now();
        try {
          const sock = await withTimeout(openTunnel(c.h2, token, `bench-fleet-null-${c.i}`), 10_000, 'open');
          try {
            await firstBytes(sock, 10_000);
            starts++;
            openMs.push(performance.now() - s0);
          } finally {
            await closeStream(sock, 5_000);
          }
        } catch (e) {
          failures++;
          firstError ??= (e as Error).message;
        }
      });
      const elapsed = (Date.now() - t0) / 1000;
      let audited = 0;
      for (let i = 0; i < 50; i++) {
        audited = Number(
          (
            await db.query<{ n: string }>(
              "SELECT count(*) AS n FROM audit_events WHERE type = 'session.start' AND time >= $1 AND host LIKE 'bench-fleet-null-%'",
              [since],
            )
          ).rows[0]!.n,
        );
        if (audited >= starts) break;
        await sleep(100);
      }
      rec.add({
        metric: 'fleet_rate_starts_per_s',
        path: 'direct',
        value: round(starts / elapsed, 0),
        unit: 'starts/s',
        better: 'higher',
        ok: failures === 0 && starts > 0 && audited >= starts,
        error: firstError ?? (audited < starts ? `${audited} session.start rows for ${starts} starts` : undefined),
        extra: {
          relays: 3,
          starts,
          failures,
          auditedSessionStarts: audited,
          seconds: round(elapsed, 2),
          parallel: 48,
          clientConnections: conns.length,
          openP50ms: round(percentile(openMs, 50), 2),
          openP99ms: round(percentile(openMs, 99), 2),
        },
      });
      log(
        `audited starts: ${starts} in ${elapsed.toFixed(1)} s over 3 relays (${failures} failed, ${audited} audited)`,
      );
    } finally {
      for (const c of conns) c.h2.close();
    }
  } catch (e) {
    log(`failed: ${(e as Error).message}`);
    fail(
      [
        ['fleet_setup_ms', 'direct', 'ms', 'lower'],
        ['fleet_setup_ms', 'forwarded', 'ms', 'lower'],
        ['fleet_bulk_mbps', 'direct', 'MB/s', 'higher'],
        ['fleet_bulk_mbps', 'forwarded', 'MB/s', 'higher'],
        ['fleet_failover_p50_ms', 'forwarded', 'ms', 'lower'],
        ['fleet_failover_max_ms', 'forwarded', 'ms', 'lower'],
        ['fleet_rate_starts_per_s', 'direct', 'starts/s', 'higher'],
      ],
      e,
    );
  } finally {
    await closeAll();
  }
}
