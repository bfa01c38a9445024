/**
 * Issue 19 item 4 in the shape of the real world: several relays behind ONE address (haproxy 2.6 in TCP
 * mode, round robin, on loopback), on one Postgres database, sharing one TLS certificate; `mssh` logged in
 * to the balancer's address.
 *
 *   mssh ──TCP──▶ haproxy :fe ──▶ relay 1 ──agent A──┐
 *                            └──▶ relay 2 ──agent B──┴──▶ fixture sshd   (A, B: ONE enrolled machine `box`)
 *
 * Until the fleet core forwards sessions between relays, a relay serves only the sessions of agents linked
 * to it, so `box` runs one agent process per relay (one enrolment, its state copied: the relays share the
 * tables). The restarted relay is put back in rotation once its agent is back (haproxy's `state ready`),
 * which is the fleet core's job later.
 *
 * 1. Rolling restart of both relays, one by one (SIGTERM: drain, exit, start again), under a steady
 *    load (a new `mssh ssh`, `mssh proxy` under OpenSSH or `mssh ls` every 200 ms, i.e. 5/s where the
 *    machine keeps up, at most 12 at a time): zero failures.
 * 2. The guard: a plain round robin (no health check) over a DRAINING relay and a serving one. Every other
 *    new connection lands on the draining relay (shown with raw tunnel opens: 503 RLY_ERR_DRAINING), yet
 *    every command works, through its one retry on a new connection (counted from MSSH_DEBUG lines).
 *    With the retry taken out of relay-client/relay-client.ts, 3 of these 8 commands failed (RLY_ERR_DRAINING).
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { spawn } from 'node:child_process';
import { cpSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { connect } from 'node:net';
import { join } from 'node:path';
import { fixtures } from './fixtures/inject.js';
import { freePort, waitFor, waitForPort } from './fixtures/net.js';
import { createTestDatabase } from './fixtures/postgres.js';
import {
  ADMIN_PASSWORD,
  BIN,
  exec,
  loginUser,
  Proc,
  proxyCommandSshOpts,
  run,
  startAgent,
  startRelay,
  stopAll,
  type Relay,
  type RunResult,
  type User,
} from './fixtures/stack.js';
import { login, openTunnel, relaySession } from './fixtures/tunnel-client.js';
import { runCommand } from './fixtures/files.js';

afterAll(stopAll);

const HAPROXY = '/usr/sbin/haproxy';
const RETRY_LINE = /^debug: .*trying once more on a new connection( in \d+ ms)?$/gm;

/** One agent process for `box` linked to `relay`, with the identity of the enrolled state in `enrolled`. */
async function agentFor(relay: Relay, enrolled: string): Promise<Proc> {
  const dir = mkdtempSync(join(fixtures().root, 'agent-copy-'));
  cpSync(enrolled, dir, { recursive: true, filter: (src) => !src.endsWith('agent.lock') });
  const state = JSON.parse(readFileSync(join(dir, 'agent.json'), 'utf8')) as Record<string, unknown>;
  writeFileSync(join(dir, 'agent.json'), JSON.stringify({ ...state, relayUrl: relay.url, agentEndpoint: null }), {
    mode: 0o600,
  });
  const p = run(BIN.agent, ['run', '--state-dir', dir, '--log-level', 'info']);
  await p.waitOutput(/connected to relay/, 15_000, 'both');
  return p;
}

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

describe('relays behind one haproxy address: upgrade without downtime', () => {
  let dir: string;
  let hapSock: string;
  let checkedUrl: string;
  let plainUrl: string;
  let r1: Relay;
  let r2: Relay;
  let r3: Relay;
  const agents = new Map<Relay, Proc>();
  let enrolled: string;
  let checkedUser: User;
  let plainUser: User;
  let knownHosts: string;

  beforeAll(async () => {
    const f = fixtures();
    dir = mkdtempSync(join(f.root, 'fleet-'));
    const databaseUrl = await createTestDatabase(f.runId);
    // Behind a TCP balancer on this host every client has haproxy's address: per-address limits off
    // (README "Hardening and limits"). The drain: the defaults, explicitly (the fixture's env sets 0).
    const common = ['--max-connections-per-address', '0', '--max-pending-per-address', '0'];
    r1 = await startRelay('postgres', [...common, '--drain-delay', '2', '--drain-timeout', '20'], { databaseUrl });
    // One certificate for the whole fleet: clients pin one fingerprint for the balancer's address.
    const tls = ['--tls-cert', join(r1.dataDir, 'tls/cert.pem'), '--tls-key', join(r1.dataDir, 'tls/key.pem')];
    r2 = await startRelay('postgres', [...common, ...tls, '--drain-delay', '2', '--drain-timeout', '20'], {
      databaseUrl,
    });
    // The guard's draining relay: its listeners stay open for the whole check.
    r3 = await startRelay('postgres', [...common, ...tls, '--drain-delay', '120', '--drain-timeout', '120'], {
      databaseUrl,
    });
    expect(new Set([r1.fingerprint, r2.fingerprint, r3.fingerprint]).size).toBe(1);

    const box = await startAgent(r1, 'box', { start: false }); // enrolled once, on the shared tables
    enrolled = box.stateDir;
    for (const r of [r1, r2, r3]) agents.set(r, await agentFor(r, enrolled));

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
        `  server r1 127.0.0.1:${r1.port}`,
        `  server r2 127.0.0.1:${r2.port}`,
        // The guard: no health check, strict alternation between a draining and a serving relay.
        'frontend fe_plain',
        `  bind 127.0.0.1:${plainPort}`,
        '  default_backend be_plain',
        'backend be_plain',
        '  balance roundrobin',
        `  server r3 127.0.0.1:${r3.port}`,
        `  server r2 127.0.0.1:${r2.port}`,
        '',
      ].join('\n'),
    );
    const hap = new Proc(spawn(HAPROXY, ['-f', cfg, '-db'], { stdio: ['ignore', 'pipe', 'pipe'] }));
    await waitForPort(checkedPort, 10_000, () => !hap.running);
    await waitForPort(plainPort, 10_000, () => !hap.running);
    await waitFor(
      async () => (await serverUp(hapSock, 'be_checked', 'r1')) && (await serverUp(hapSock, 'be_checked', 'r2')),
      10_000,
      'haproxy to see both relays ready',
    );
    checkedUrl = `https://127.0.0.1:${checkedPort}`;
    plainUrl = `https://127.0.0.1:${plainPort}`;
    checkedUser = await loginUser({ ...r1, url: checkedUrl });
    plainUser = await loginUser({ ...r1, url: plainUrl });
    knownHosts = join(dir, 'openssh_known_hosts');
  });

  afterAll(async () => {
    for (const r of [r1, r2, r3]) await r?.proc.stop('SIGINT');
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
    'a rolling restart of both relays under steady load (a new command every 200 ms, at most 12 at a time) fails zero of them',
    { timeout: 300_000 },
    async () => {
      const failures: string[] = [];
      let launched = 0;
      let retries = 0;
      let stop = false;
      const inflight = new Set<Promise<void>>();
      const kinds = ['ssh', 'ssh', 'ls', 'ssh', 'proxy'] as const;
      const started = Date.now();
      const loadDone = (async () => {
        // One new command every 200 ms (at most 12 at a time: the rate gives way on a busy machine), until told to stop: bounded in count and time.
        for (let i = 0; i < 2_000 && !stop && Date.now() - started < 240_000; i++) {
          const tick = Date.now();
          if (inflight.size < 12) {
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
      for (const [relay, name] of [
        [r1, 'r1'],
        [r2, 'r2'],
      ] as const) {
        const agent = agents.get(relay)!;
        const t0 = Date.now();
        relay.proc.child.kill('SIGTERM');
        const code = await Promise.race([
          relay.proc.exited,
          new Promise<string>((res) => setTimeout(() => res('timeout'), 40_000)),
        ]);
        expect(code, `${name} exit`).toBe(0);
        const drainMs = Date.now() - t0;
        // Back in rotation only once its agent is linked again (the fleet core's job later).
        await haproxyCommand(hapSock, `set server be_checked/${name} state maint`);
        const links = count(/connected to relay/g, agent.out + agent.err);
        await relay.restart();
        await waitFor(
          () => count(/connected to relay/g, agent.out + agent.err) > links,
          40_000,
          `the agent back on ${name}`,
          100,
        );
        await haproxyCommand(hapSock, `set server be_checked/${name} state ready`);
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
        `[figure] rolling restart: ${launched} commands in ${secs.toFixed(1)} s (${(launched / secs).toFixed(1)}/s), ` +
          `${failures.length} failed, ${retries} retried once on a new connection; ${drains.join('; ')}`,
      );
      expect(failures).toEqual([]);
      expect(launched).toBeGreaterThan(50);
    },
  );

  it(
    'the guard: behind a plain round robin over a draining and a serving relay, every command works through its one retry',
    { timeout: 180_000 },
    async () => {
      r3.proc.child.kill('SIGTERM'); // draining for 120 s: listeners open, new sessions refused
      await waitFor(() => /draining \(SIGTERM\)/.test(r3.proc.err), 10_000, 'r3 draining');

      // What the commands meet: fresh connections alternate between the draining relay and the serving one.
      const balancer = { ...r2, url: plainUrl, port: Number(new URL(plainUrl).port) };
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
