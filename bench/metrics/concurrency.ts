/**
 * Metric 4, concurrency: N SSH sessions (each running `cat`) held open at once, all through ONE agent
 * connection (mssh) or ONE reverse tunnel (`ssh -R`, baseline). In-process ssh2 clients, opened with at
 * most C handshakes in flight. Two shapes, each run for both:
 *   - "1 client conn":  every session is a stream of one client HTTP/2 connection to the relay, or a
 *                       direct-tcpip channel of one SSH connection to the bastion;
 *   - "conn/session":   every session has its own client connection (TLS to the relay, SSH to the
 *                       bastion), as N separate `mssh ssh` / `ssh -J` processes would.
 * In full mode each shape starts with a fresh relay and agent, or a fresh bastion sshd and `ssh -R`
 * (memory freed by an earlier shape must not hide growth). Memory, sampled 1 s after the sessions are up and compared
 * with 2 s after the fresh start, before the first session opened:
 *   middle = relay RSS (mssh) or PSS of the bastion sshd and all its children (baseline);
 *   edge   = agent RSS (mssh) or RSS of the `ssh -R` client (baseline);
 *   target = PSS of the target sshd and all its children (the same work on both sides, for reference).
 * Every session must echo a byte before it counts as up.
 */
import type { Duplex } from 'node:stream';
import type http2 from 'node:http2';
import { openTunnel } from '@mssh/test-fixtures/tunnel-client';
import { relaySession } from '../lib/relay-session.js';
import type { BenchEnv } from '../lib/env.js';
import { TARGET_HOST, freshMiddle } from '../lib/env.js';
import { bastionClient, jumpChannel, sshOver, execChannel, type SshClient } from '../lib/inproc.js';
import { rssBytes, treePss, descendants } from '../lib/procs.js';
import { pool, withTimeout, sleep } from '../lib/pool.js';
import type { Recorder } from '../lib/report.js';
import { round } from '../lib/stats.js';
import type ssh2 from 'ssh2';

interface Sess {
  ssh: SshClient;
  ch: ssh2.ClientChannel;
  received: number;
  /** Per-session client connection to close with it (conn/session shape). */
  conn?: { close(): void };
}

interface Shape {
  path: 'mssh' | 'jump';
  variant: '1 client conn' | 'conn/session';
  prepare(): Promise<void>;
  open(): Promise<{ sock: Duplex; conn?: { close(): void } }>;
  memory(): { middle: number; edge: number };
  release(): Promise<void>;
}

const MiB = 2 ** 20;

function shapes(env: BenchEnv): Shape[] {
  const out: Shape[] = [];
  let sharedBastion: SshClient | undefined;
  const jumpMem = () => ({ middle: treePss(env.bastion.pid()).bytes, edge: rssBytes(env.tunnel.proc()?.pid ?? 0) });
  out.push({
    path: 'jump',
    variant: '1 client conn',
    async prepare() {
      sharedBastion = await bastionClient(env);
    },
    async open() {
      return { sock: await jumpChannel(sharedBastion!, env.rport) };
    },
    memory: jumpMem,
    async release() {
      sharedBastion?.end();
      sharedBastion = undefined;
    },
  });
  out.push({
    path: 'jump',
    variant: 'conn/session',
    async prepare() {},
    async open() {
      const b = await bastionClient(env);
      try {
        return { sock: await jumpChannel(b, env.rport), conn: { close: () => b.end() } };
      } catch (e) {
        b.end();
        throw e;
      }
    },
    memory: jumpMem,
    async release() {},
  });
  const m = env.mssh;
  if (m) {
    let shared: http2.ClientHttp2Session | undefined;
    const msshMem = () => ({ middle: rssBytes(m.relay.proc.child.pid!), edge: rssBytes(m.agent.proc.child.pid!) });
    out.push({
      path: 'mssh',
      variant: '1 client conn',
      async prepare() {
        shared = await relaySession(m.relay);
      },
      async open() {
        return { sock: await openTunnel(shared!, m.token, TARGET_HOST) };
      },
      memory: msshMem,
      async release() {
        shared?.close();
        shared = undefined;
      },
    });
    out.push({
      path: 'mssh',
      variant: 'conn/session',
      async prepare() {},
      async open() {
        const h2 = await relaySession(m.relay);
        try {
          return { sock: await openTunnel(h2, m.token, TARGET_HOST), conn: { close: () => h2.close() } };
        } catch (e) {
          h2.close();
          throw e;
        }
      },
      memory: msshMem,
      async release() {},
    });
  }
  // Interleave: baseline then mssh for each shape.
  return [out[0]!, out[2], out[1]!, out[3]].filter((s): s is Shape => !!s);
}

async function openSession(env: BenchEnv, shape: Shape): Promise<Sess> {
  const { sock, conn } = await shape.open();
  try {
    const ssh = await sshOver(env, sock);
    const ch = await execChannel(ssh, 'cat');
    const s: Sess = { ssh, ch, received: 0, conn };
    ch.on('data', (d: Buffer) => (s.received += d.length));
    ch.on('error', () => {});
    // Up means: a byte made the round trip.
    ch.write('.');
    for (let i = 0; i < 3_000 && s.received < 1; i++) await sleep(10);
    if (s.received < 1) throw new Error('session did not echo within 30 s');
    return s;
  } catch (e) {
    sock.destroy();
    conn?.close();
    throw e;
  }
}

function targetProcs(env: BenchEnv): number {
  return descendants(env.target.pid()).length;
}

export async function runConcurrency(
  env: BenchEnv,
  rec: Recorder,
  opts: { sessions: number; parallel: number; timeoutMs: number; fresh: boolean },
): Promise<void> {
  for (const shape of shapes(env)) {
    const label = `${shape.path} [${shape.variant}]`;
    const sessions: Sess[] = [];
    let firstError: string | undefined;
    let failures = 0;
    const idleTargetProcs = targetProcs(env);
    try {
      if (opts.fresh) await freshMiddle(env, shape.path);
      await shape.prepare();
      await sleep(2_000);
      const mem0 = shape.memory();
      const target0 = treePss(env.target.pid()).bytes;
      const t0 = Date.now();
      const results = await pool(opts.sessions, opts.parallel, t0 + opts.timeoutMs, (i) =>
        withTimeout(openSession(env, shape), 60_000, `session ${i}`),
      );
      const upMs = Date.now() - t0;
      for (const r of results) {
        if (r.status === 'fulfilled') sessions.push(r.value);
        else {
          failures++;
          firstError ??= (r.reason as Error).message;
        }
      }
      failures += opts.sessions - results.length;
      await sleep(1_000);
      const memN = shape.memory();
      const targetN = treePss(env.target.pid());
      // All still alive at the end: one more echo each, all at once.
      const before = sessions.map((s) => s.received);
      for (const s of sessions) s.ch.write('!');
      for (let i = 0; i < 3_000 && sessions.some((s, k) => s.received <= before[k]!); i++) await sleep(10);
      const alive = sessions.filter((s, k) => s.received > before[k]!).length;
      const ok = alive;
      const per = (a: number, b: number) => (ok ? round((b - a) / ok / 1024, 1) : NaN);
      const base = { path: shape.path, variant: shape.variant };
      const extra = {
        attempted: opts.sessions,
        parallel: opts.parallel,
        failures: failures + (sessions.length - alive),
        firstError,
      };
      rec.add({
        ...base,
        metric: 'conc_ok',
        value: ok,
        unit: 'sessions',
        better: 'higher',
        ok: ok === opts.sessions,
        error: firstError,
        extra,
      });
      rec.add({
        ...base,
        metric: 'conc_up_s',
        value: round(upMs / 1000, 2),
        unit: 's',
        better: 'lower',
        ok: ok === opts.sessions,
      });
      rec.add({
        ...base,
        metric: 'conc_middle_mib_0',
        value: round(mem0.middle / MiB, 1),
        unit: 'MiB',
        better: 'lower',
        ok: true,
      });
      rec.add({
        ...base,
        metric: 'conc_middle_mib_n',
        value: round(memN.middle / MiB, 1),
        unit: 'MiB',
        better: 'lower',
        ok: true,
        extra: { sessions: ok },
      });
      rec.add({
        ...base,
        metric: 'conc_middle_kib_per_session',
        value: per(mem0.middle, memN.middle),
        unit: 'KiB',
        better: 'lower',
        ok: ok > 0,
      });
      rec.add({
        ...base,
        metric: 'conc_edge_kib_per_session',
        value: per(mem0.edge, memN.edge),
        unit: 'KiB',
        better: 'lower',
        ok: ok > 0,
        extra: { at0MiB: round(mem0.edge / MiB, 1), atNMiB: round(memN.edge / MiB, 1) },
      });
      rec.add({
        ...base,
        metric: 'conc_target_kib_per_session',
        value: per(target0, targetN.bytes),
        unit: 'KiB',
        better: 'lower',
        ok: ok > 0,
        extra: { targetProcesses: targetN.processes },
      });
    } catch (e) {
      rec.add({
        path: shape.path,
        variant: shape.variant,
        metric: 'conc_ok',
        value: sessions.length,
        unit: 'sessions',
        better: 'higher',
        ok: false,
        error: (e as Error).message,
      });
    } finally {
      process.stderr.write(`bench:     closing ${sessions.length} sessions of ${label}\n`);
      for (const s of sessions) {
        s.ssh.end();
        s.conn?.close();
      }
      await shape.release().catch(() => {});
      // Wait until the target's session processes are gone so the next shape starts from the same state.
      for (let i = 0; i < 600 && targetProcs(env) > idleTargetProcs; i++) await sleep(100);
    }
  }
}
