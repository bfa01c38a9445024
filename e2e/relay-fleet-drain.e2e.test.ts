/**
 * Issue 19 item 4 in the shape of the real world: a fleet of relays behind ONE address (haproxy 2.6 in TCP
 * mode, round robin, /readyz health check, on loopback), on one Postgres database, sharing one TLS
 * certificate; `mssh` logged in to the balancer's address; one agent given every relay's URL.
 *
 *   mssh ──TCP──▶ haproxy :fe ──▶ relay 1 ─┐ peer links (fleet)
 *                            ├──▶ relay 2 ─┼──── relay holding `box` ──agent──▶ fixture sshd
 *                            └──▶ relay 3 ─┘
 *
 * 1. Rolling restart of the three relays, one by one (SIGTERM: drain, exit, start again, back in haproxy's
 *    rotation by its own health check), under a steady load (a new `mssh ssh`, `mssh proxy` under OpenSSH
 *    or `mssh ls` every 200 ms, i.e. 5/s, at most 16 at a time): zero failures, and every session started
 *    has exactly one end in the audit trail.
 * 2. The guard: a plain round robin (no health check) over a DRAINING relay (a fourth member) and a serving
 *    one. Every other new connection lands on the draining relay (shown with raw tunnel opens: 503
 *    RLY_ERR_DRAINING), yet every command works, through its one retry on a new connection (counted from
 *    MSSH_DEBUG lines). With the retry taken out of relay-client/relay-client.ts, 3 of these 8 commands
 *    failed (RLY_ERR_DRAINING).
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { spawn } from 'node:child_process';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { connect } from 'node:net';
import { join } from 'node:path';
import pg from 'pg';
import { fixtures } from './fixtures/inject.js';
import { freePort, waitFor, waitForPort } from './fixtures/net.js';
import { startFleet, type Fleet, type FleetRelay } from './fixtures/fleet.js';
import {
  ADMIN_PASSWORD,
  BIN,
  exec,
  loginUser,
  Proc,
  proxyCommandSshOpts,
  run,
  startAgent,
  stopAll,
  type RunResult,
  type User,
} from './fixtures/stack.js';
import { login, openTunnel, relaySession } from './fixtures/tunnel-client.js';
import { runCommand } from './fixtures/files.js';

afterAll(stopAll);

const HAPROXY = '/usr/sbin/haproxy';
const RETRY_LINE = /^debug: .*trying once more on a new connection( in \d+ ms)?$/gm;

/** A command on haproxy's admin socket; resolves with its answer. */
function haproxyCommand(socket: string, cmd: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const s = connect(socket);
    let out = '';
    s.on('data', (d: Buffer) => (out += d.toString()));
    s.on('end', () => resolve(out));
    s.on('error', reject);
    s.end(`${cmd}\n`);
  });
}

/** haproxy's view of a server: UP (2) or not. */
async function serverUp(socket: string, backend: string, server: string): Promise<boolean> {
  const text = await haproxyCommand(socket, `show servers state ${backend}`);
  const row = text.split('\n').find((l) => l.split(' ')[3] === server);
  return row?.split(' ')[5] === '2';
}

function count(re: RegExp, text: string): number {
  return (text.match(re) ?? []).length;
}

describe('a relay fleet behind one haproxy address: upgrade without downtime', () => {
  let dir: string;
  let hapSock: string;
  let checkedUrl: string;
  let plainUrl: string;
  let fleet: Fleet;
  /** The three relays of the rolling restart. */
  let serving: FleetRelay[];
  /** The guard's draining relay (a fourth member). */
  let r3: FleetRelay;
  let agent: Proc;
  let checkedUser: User;
  let plainUser: User;
  let knownHosts: string;
  let db: pg.Client;

  beforeAll(async () => {
    const f = fixtures();
    dir = mkdtempSync(join(f.root, 'fleet-'));
    // Behind a TCP balancer on this host every client has haproxy's address: per-address limits off
    // (README "Hardening and limits"). The drain: the defaults, explicitly (the fixture's env sets 0);
    // the guard's relay keeps its listeners open for the whole check.
    const common = ['--max-connections-per-address', '0', '--max-pending-per-address', '0'];
    fleet = await startFleet(4, {
      extraArgs: common,
      perRelay: (i) =>
        i < 3 ? ['--drain-delay', '2', '--drain-timeout', '20'] : ['--drain-delay', '120', '--drain-timeout', '120'],
    });
    serving = fleet.relays.slice(0, 3);
    r3 = fleet.relays[3]!;
    db = new pg.Client({ connectionString: fleet.databaseUrl });
    await db.connect();

    // ONE agent for `box`, given the three relays (it dials another at once when its relay drains).
    const box = await startAgent(serving[0]!, 'box', { start: false });
    agent = run(BIN.agent, [
      'run',
      '--state-dir',
      box.stateDir,
      '--log-level',
      'info',
      ...serving.flatMap((r) => ['--relay', r.url]),
    ]);
    await agent.waitOutput(/connected to relay/, 15_000, 'both');

    const checkedPort = await freePort();
    const plainPort = await freePort();
    hapSock = join(dir, 'haproxy.sock');
    const cfg = join(dir, 'haproxy.cfg');
    writeFileSync(
      cfg,
      [
        'global',
        `  stats socket ${hapSock} level admin`,
        'defaults',
        '  mode tcp',
        '  timeout connect 2s',
        '  timeout client 2m',
        '  timeout server 2m',
        '  retries 2',
        '  option redispatch',
        // The README's configuration: a relay leaves the rotation when /readyz answers 503.
        'frontend fe_checked',
        `  bind 127.0.0.1:${checkedPort}`,
        '  default_backend be_checked',
        'backend be_checked',
        '  balance roundrobin',
        '  option httpchk GET /readyz',
        '  http-check expect status 200',
        '  default-server inter 500ms fall 1 rise 2 check check-ssl verify none',
        ...serving.map((r, i) => `  server r${i} 127.0.0.1:${r.port}`),
        // The guard: no health check, strict alternation between a draining and a serving relay.
        'frontend fe_plain',
        `  bind 127.0.0.1:${plainPort}`,
        '  default_backend be_plain',
        'backend be_plain',
        '  balance roundrobin',
        `  server r3 127.0.0.1:${r3.port}`,
        `  server r2 127.0.0.1:${serving[2]!.port}`,
        '',
      ].join('\n'),
    );
    const hap = new Proc(spawn(HAPROXY, ['-f', cfg, '-db'], { stdio: ['ignore', 'pipe', 'pipe'] }));
    await waitForPort(checkedPort, 10_000, () => !hap.running);
    await waitForPort(plainPort, 10_000, () => !hap.running);
    await waitFor(
      async () => {
        for (let i = 0; i < 3; i++) if (!(await serverUp(hapSock, 'be_checked', `r${i}`))) return null;
        return true;
      },
      10_000,
      'haproxy to see the three relays ready',
    );
    checkedUrl = `https://127.0.0.1:${checkedPort}`;
    plainUrl = `https://127.0.0.1:${plainPort}`;
    checkedUser = await loginUser({ ...serving[0]!, url: checkedUrl });
    plainUser = await loginUser({ ...serving[0]!, url: plainUrl });
    knownHosts = join(dir, 'openssh_known_hosts');
  }, 120_000);

  afterAll(async () => {
    await db?.end();
    await agent?.stop();
    for (const r of fleet?.relays ?? []) await r.proc.stop('SIGINT');
  });

  /** One command through the balancer, as `user`, with MSSH_DEBUG=1 (to count the retries); ok: it did its job. */
  async function oneCommand(user: User, kind: 'ssh' | 'proxy' | 'ls', i: number): Promise<RunResult & { ok: boolean }> {
    const f = fixtures();
    const env = { ...user.env, MSSH_DEBUG: '1' };
    let r: RunResult;
    let expected: string | null = `ok-${i}\n`;
    if (kind === 'ssh') {
      r = await exec(BIN.mssh, ['ssh', '-i', f.sshd.clientKey, `${f.sshd.user}@box`, '--', 'echo', `ok-${i}`], {
        env,
        timeoutMs: 60_000,
      });
    } else if (kind === 'proxy') {
      r = await runCommand(
        'ssh',
        [...proxyCommandSshOpts(knownHosts, f.sshd.clientKey), `${f.sshd.user}@box`, 'echo', `ok-${i}`],
        { env, timeoutMs: 60_000 },
      );
    } else {
      r = await exec(BIN.mssh, ['ls', '--json'], { env, timeoutMs: 60_000 });
      expected = null;
    }
    const ok =
      r.code === 0 && (expected === null ? (JSON.parse(r.stdout) as unknown[]).length === 1 : r.stdout === expected);
    return { ...r, ok };
  }

  it(
    'a rolling restart of the three relays under steady load (a new command every 200 ms, at most 16 at a time) fails zero of them; every session has one end',
    { timeout: 300_000 },
    async () => {
      const failures: string[] = [];
      let launched = 0;
      let retries = 0;
      let stop = false;
      const inflight = new Set<Promise<void>>();
      const kinds = ['ssh', 'ssh', 'ls', 'ssh', 'proxy'] as const;
      const since = (await db.query<{ now: Date }>('SELECT now() AS now')).rows[0]!.now;
      const started = Date.now();
      const loadDone = (async () => {
        // One new command every 200 ms (at most 16 at a time: the rate gives way on a busy machine), until told to stop: bounded in count and time.
        for (let i = 0; i < 2_000 && !stop && Date.now() - started < 240_000; i++) {
          const tick = Date.now();
          if (inflight.size < 16) {
            launched++;
            const kind = kinds[i % kinds.length]!;
            const p = oneCommand(checkedUser, kind, i).then(
              (r) => {
                retries += count(RETRY_LINE, r.stderr);
                if (!r.ok)
                  failures.push(`${kind} #${i} exit ${r.code}: ${r.stdout.slice(0, 200)} ${r.stderr.slice(0, 600)}`);
              },
              (e: unknown) => void failures.push(`${kind} #${i}: ${String(e)}`),
            );
            const tracked = p.finally(() => inflight.delete(tracked));
            inflight.add(tracked);
          }
          await new Promise((res) => setTimeout(res, Math.max(0, 200 - (Date.now() - tick))));
        }
        await Promise.all([...inflight]);
      })();

      await new Promise((res) => setTimeout(res, 4_000)); // steady load first
      const drains: string[] = [];
      for (let i = 0; i < serving.length; i++) {
        const relay = serving[i]!;
        const name = `r${i}`;
        const t0 = Date.now();
        relay.proc.child.kill('SIGTERM');
        const code = await Promise.race([
          relay.proc.exited,
          new Promise<string>((res) => setTimeout(() => res('timeout'), 40_000)),
        ]);
        expect(code, `${name} exit`).toBe(0);
        const drainMs = Date.now() - t0;
        // Started again; haproxy's health check puts it back in rotation by itself.
        await relay.restart();
        await relay.proc.waitOutput(/Fleet peer listener on/, 10_000, 'out');
        await waitFor(() => serverUp(hapSock, 'be_checked', name), 10_000, `${name} back in rotation`);
        drains.push(
          `${name} drained and exited in ${drainMs} ms, back in rotation ${Date.now() - t0} ms after SIGTERM`,
        );
        await new Promise((res) => setTimeout(res, 3_000));
      }
      stop = true;
      await loadDone;
      const secs = (Date.now() - started) / 1000;
      console.log(
        `[figure] rolling restart of 3 relays: ${launched} commands in ${secs.toFixed(1)} s (${(launched / secs).toFixed(1)}/s), ` +
          `${failures.length} failed, ${retries} retried once on a new connection; ${drains.join('; ')}`,
      );
      expect(failures).toEqual([]);
      expect(launched).toBeGreaterThan(50);
      // The audit trail: every session of the run has exactly one end (nothing left open, nothing twice).
      const open = await waitFor(
        async () => {
          const r = await db.query('SELECT id FROM sessions WHERE started_at >= $1 AND ended_at IS NULL', [since]);
          return r.rows.length === 0 ? r.rows : null;
        },
        15_000,
        'every session of the run to have its end',
      );
      expect(open).toEqual([]);
      const sessions = await db.query<{ n: number }>('SELECT count(*)::int AS n FROM sessions WHERE started_at >= $1', [
        since,
      ]);
      expect(sessions.rows[0]!.n).toBeGreaterThan(30);
      const twice = await db.query(
        "SELECT session_id FROM audit_events WHERE type = 'session.end' AND time >= $1 GROUP BY session_id HAVING count(*) > 1",
        [since],
      );
      expect(twice.rows).toEqual([]);
    },
  );

  it(
    'the guard: behind a plain round robin over a draining and a serving relay, every command works through its one retry',
    { timeout: 180_000 },
    async () => {
      r3.proc.child.kill('SIGTERM'); // draining for 120 s: listeners open, new sessions refused
      await waitFor(() => /draining \(SIGTERM\)/.test(r3.proc.err), 10_000, 'r3 draining');

      // What the commands meet: fresh connections alternate between the draining relay and the serving one.
      const balancer = { ...serving[2]!, url: plainUrl, port: Number(new URL(plainUrl).port) };
      const h2 = await relaySession(balancer);
      const token = await login(h2, 'admin', ADMIN_PASSWORD); // a draining relay still serves logins
      h2.close();
      const seen: Array<number | string> = [];
      for (let i = 0; i < 4; i++) {
        const fresh = await relaySession(balancer);
        const answer = await openTunnel(fresh, token, 'box').then(
          (s) => {
            s.destroy();
            return 200;
          },
          (e: { status?: number; body?: { code?: string } }) => e.body?.code ?? String(e.status),
        );
        fresh.close();
        seen.push(answer);
      }
      expect(seen).toContain('RLY_ERR_DRAINING');
      expect(seen).toContain(200);

      const results: string[] = [];
      let retries = 0;
      const kinds = ['ssh', 'proxy', 'ssh', 'ls', 'ssh', 'proxy', 'ssh', 'ssh'] as const;
      for (let i = 0; i < kinds.length; i++) {
        const r = await oneCommand(plainUser, kinds[i]!, 1000 + i);
        retries += count(RETRY_LINE, r.stderr);
        results.push(r.ok ? 'ok' : `${kinds[i]} exit ${r.code}: ${r.stderr.slice(0, 400)}`);
      }
      console.log(`[figure] guard: ${kinds.length} commands over a draining + a serving relay, ${retries} retried`);
      expect(results).toEqual(kinds.map(() => 'ok'));
      expect(retries).toBeGreaterThan(0);
      r3.proc.child.kill('SIGTERM'); // a second signal during the drain: stop now
      expect(await r3.proc.exited).toBe(0);
    },
  );
});
