/**
 * Issue 19 item 4, upgrade without downtime, on one relay: SIGTERM (and `mssh-relay drain`) drains.
 *
 *   SIGTERM --> /readyz 503 RLY_ERR_DRAINING at once, new sessions refused on both doors (RLY_ERR_DRAINING),
 *               running `mssh ssh` and jump sessions go on (bytes still flow)
 *           --> + --drain-delay: the listeners close (connections refused), running sessions still go on
 *           --> the last session ends (or --drain-timeout: ended relay_shutdown) --> relay.stopped, exit 0
 *
 * Real programs (mssh-relay, mssh-agent, mssh), real Postgres (a database per relay), the fixture sshd.
 */
import { afterAll, describe, expect, it } from 'vitest';
import { connect } from 'node:net';
import { request as httpsRequest } from 'node:https';
import { mkdtempSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import pg from 'pg';
import ssh2 from 'ssh2';
import { fixtures } from './fixtures/inject.js';
import { freePort, waitFor } from './fixtures/net.js';
import { sshKeygen } from './fixtures/openssh.js';
import { BIN, exec, loginUser, run, startAgent, startRelay, stopAll, type Proc, type Relay } from './fixtures/stack.js';
import { adminSession, openTunnel, relaySession } from './fixtures/tunnel-client.js';

afterAll(stopAll);

/** GET /readyz over HTTPS/1.1, as a balancer's health check asks. */
function readyz(port: number): Promise<{ status: number; body: Record<string, unknown> }> {
  return new Promise((resolve, reject) => {
    const req = httpsRequest(
      { host: '127.0.0.1', port, path: '/readyz', rejectUnauthorized: false, agent: false, timeout: 5_000 },
      (res) => {
        let text = '';
        res.on('data', (d: Buffer) => (text += d.toString()));
        res.on('end', () =>
          resolve({ status: res.statusCode ?? 0, body: JSON.parse(text) as Record<string, unknown> }),
        );
      },
    );
    req.on('error', reject);
    req.end();
  });
}

/** 'connected', or the error code of a TCP connect to 127.0.0.1:port. */
function tryConnect(port: number): Promise<string> {
  return new Promise((resolve) => {
    const s = connect({ host: '127.0.0.1', port });
    s.once('connect', () => {
      s.destroy();
      resolve('connected');
    });
    s.once('error', (e: NodeJS.ErrnoException) => resolve(e.code ?? e.message));
  });
}

/** A running `mssh ssh box -- cat`: what is written comes back. */
class CatSession {
  constructor(readonly proc: Proc) {}
  static start(user: { env: NodeJS.ProcessEnv }, host: string): CatSession {
    const f = fixtures();
    return new CatSession(
      run(BIN.mssh, ['ssh', '-i', f.sshd.clientKey, `${f.sshd.user}@${host}`, '--', 'cat'], { env: user.env }),
    );
  }
  /** Write a line and wait for it to come back through the session. */
  async echo(line: string, timeoutMs = 15_000): Promise<void> {
    this.proc.child.stdin!.write(`${line}\n`);
    await this.proc.waitOutput(new RegExp(`^${line}$`, 'm'), timeoutMs, 'out');
  }
  /** End the session as its user would (EOF: cat exits); resolves with mssh's exit code. */
  async end(): Promise<number | null> {
    this.proc.child.stdin!.end();
    return this.proc.exited;
  }
}

interface AuditRow {
  type: string;
  actor: string | null;
  session_id: string | null;
  details: Record<string, unknown>;
}

async function auditOf(relay: Relay): Promise<AuditRow[]> {
  const db = new pg.Client({ connectionString: relay.databaseUrl });
  await db.connect();
  try {
    const relayId = readFileSync(join(relay.dataDir, 'relay-id'), 'utf8').trim();
    return (
      await db.query<AuditRow>(
        'select type, actor, session_id, details from audit_events where relay_id = $1 order by id',
        [relayId],
      )
    ).rows;
  } finally {
    await db.end();
  }
}

/** A fresh relay (Postgres) with the machine `box` online and the admin logged in. */
async function relayWithBox(args: string[]) {
  const relay = await startRelay('postgres', args);
  await startAgent(relay, 'box');
  const user = await loginUser(relay);
  return { relay, user };
}

/** Resolves with the relay's exit code and when it exited. */
function exitOf(relay: Relay): Promise<{ code: number | null; at: number }> {
  return relay.proc.exited.then((code) => ({ code, at: Date.now() }));
}

describe('SIGTERM drains the relay', () => {
  it(
    'readyz 503 at once; running sessions (mssh ssh, ssh -J) go on past the listeners closing; new ones refused RLY_ERR_DRAINING on both doors; exit 0 right after the last session ends',
    { timeout: 120_000 },
    async () => {
      const f = fixtures();
      const sshPort = await freePort();
      const { relay, user } = await relayWithBox([
        '--drain-delay',
        '12',
        '--drain-timeout',
        '90',
        '--ssh-listen',
        `127.0.0.1:${sshPort}`,
      ]);
      // The admin's SSH key, for a jump session (ssh -J) running through the drain.
      const keyDir = mkdtempSync(join(f.root, 'drain-key-'));
      const key = sshKeygen(keyDir, 'admin_ed25519');
      expect((await user.mssh(['keys', 'add', `${key}.pub`])).code).toBe(0);
      const jump = new ssh2.Client();
      await new Promise<void>((resolve, reject) => {
        jump.once('ready', () => resolve());
        jump.once('error', reject);
        jump.connect({
          host: '127.0.0.1',
          port: sshPort,
          username: 'admin',
          privateKey: readFileSync(key),
          hostVerifier: () => true,
        });
      });
      const forward = () =>
        new Promise<ssh2.ClientChannel>((resolve, reject) =>
          jump.forwardOut('127.0.0.1', 0, 'box', 22, (err, ch) => (err ? reject(err) : resolve(ch))),
        );
      const jumpChannel = await forward();
      await new Promise<void>((resolve) => jumpChannel.once('data', () => resolve())); // sshd's banner
      jumpChannel.on('error', () => undefined);

      const session = CatSession.start(user, 'box');
      await session.echo('before-the-drain');
      expect(await readyz(relay.port)).toEqual({ status: 200, body: { status: 'serving' } });

      const exited = exitOf(relay);
      const t0 = Date.now();
      relay.proc.child.kill('SIGTERM');
      // /readyz turns at once (a balancer's next check sees it).
      const ready = await waitFor(
        async () => {
          const r = await readyz(relay.port);
          return r.status === 503 ? r : null;
        },
        2_000,
        '/readyz 503',
        10,
      );
      const readyzMs = Date.now() - t0;
      expect(ready.body).toMatchObject({ status: 'draining', code: 'RLY_ERR_DRAINING' });

      // The running session goes on.
      await session.echo('after-the-drain-began');

      // A new session on this relay is refused, on every door, with the code.
      // A login is still served (the first request of a new connection is answered); the relay then sends
      // that connection a GOAWAY, so the next request goes on a new connection (to another relay).
      const { h2, token } = await adminSession(relay);
      const onOld = await Promise.resolve()
        .then(() => openTunnel(h2, token, 'box'))
        .then(
          () => 'opened',
          (e: Error & { code?: string }) => e.code ?? e.message,
        );
      expect(onOld).toBe('ERR_HTTP2_GOAWAY_SESSION');
      h2.close();
      const fresh = await relaySession(relay);
      const refused = await openTunnel(fresh, token, 'box').then(
        () => null,
        (e: { status: number; body: { code: string } }) => e,
      );
      fresh.close();
      expect(refused?.status).toBe(503);
      expect(refused?.body.code).toBe('RLY_ERR_DRAINING');
      const jumpRefusal = await forward().then(
        () => null,
        (e: Error) => e.message,
      );
      expect(jumpRefusal).toMatch(/RLY_ERR_DRAINING: /);
      // mssh tries once more on a new connection (here the same draining relay): told at debug level only.
      const plain = await user.mssh(['ssh', '-i', f.sshd.clientKey, `${f.sshd.user}@box`, '--', 'echo', 'new']);
      expect(plain.code).toBe(255);
      expect(plain.stdout).toBe('');
      expect(plain.stderr).toContain('RLY_ERR_DRAINING');
      expect(plain.stderr).not.toMatch(/once more|debug:/);
      const debug = await exec(BIN.mssh, ['ssh', '-i', f.sshd.clientKey, `${f.sshd.user}@box`, '--', 'true'], {
        env: { ...user.env, MSSH_DEBUG: '1' },
      });
      expect(debug.code).toBe(255);
      expect(debug.stderr).toContain(
        'debug: opening the tunnel to box: the relay is draining (503 RLY_ERR_DRAINING); trying once more on a new connection',
      );
      expect(debug.stderr).toContain('RLY_ERR_DRAINING');
      expect(Date.now() - t0, 'the checks above ran before the listeners closed').toBeLessThan(12_000);

      // After --drain-delay the listeners close: new connections are refused, running sessions go on.
      await waitFor(async () => (await tryConnect(relay.port)) === 'ECONNREFUSED', 15_000, 'the HTTPS listener closed');
      const listenersClosedMs = Date.now() - t0;
      expect(await tryConnect(sshPort)).toBe('ECONNREFUSED');
      await session.echo('after-the-listeners-closed');
      expect(relay.proc.running).toBe(true);

      // The sessions end as their users end them; the relay exits right after the last one.
      jumpChannel.end();
      jump.end();
      expect(await session.end()).toBe(0);
      const sessionEnded = Date.now();
      const { code, at } = await exited;
      expect(code).toBe(0);
      expect(at - sessionEnded).toBeLessThan(3_000);
      console.log(
        `[figure] drain: /readyz 503 after ${readyzMs} ms, listeners closed after ${listenersClosedMs} ms, ` +
          `relay exited ${at - sessionEnded} ms after the last session ended (${at - t0} ms after SIGTERM)`,
      );
      expect(relay.proc.err).toMatch(/draining \(SIGTERM\): \/readyz answers 503/);
      expect(relay.proc.err).toMatch(/draining: the listeners are closed/);

      const rows = await auditOf(relay);
      const types = rows.map((r) => r.type);
      const draining = rows.find((r) => r.type === 'relay.draining')!;
      expect(draining.details).toMatchObject({ reason: 'SIGTERM', sessions: 2, agents: 1 });
      const ends = rows.filter((r) => r.type === 'session.end');
      expect(ends).toHaveLength(2);
      for (const e of ends) expect(['client_closed', 'agent_closed']).toContain(e.details.reason);
      const denied = rows.filter((r) => r.type === 'session.denied');
      expect(denied.map((d) => [d.details.reason, d.details.code, d.details.via])).toEqual(
        expect.arrayContaining([
          ['draining', 'RLY_ERR_DRAINING', 'https'],
          ['draining', 'RLY_ERR_DRAINING', 'jump'],
        ]),
      );
      expect(types.indexOf('relay.draining')).toBeLessThan(types.lastIndexOf('session.end'));
      expect(types.indexOf('relay.stopped')).toBeGreaterThan(types.lastIndexOf('session.end'));
      expect(rows.find((r) => r.type === 'relay.stopped')!.details).toMatchObject({
        signal: 'SIGTERM',
        sessionsEnded: 0,
      });
    },
  );

  it(
    '--drain-timeout 2: a session that never ends is ended relay_shutdown after ~2 s, and the relay exits 0',
    { timeout: 90_000 },
    async () => {
      const { relay, user } = await relayWithBox(['--drain-timeout', '2']);
      const session = CatSession.start(user, 'box');
      await session.echo('still-here');
      const exited = exitOf(relay);
      const t0 = Date.now();
      relay.proc.child.kill('SIGTERM');
      const { code, at } = await exited;
      expect(code).toBe(0);
      const ms = at - t0;
      console.log(`[figure] --drain-timeout 2: the relay exited ${ms} ms after SIGTERM`);
      expect(ms).toBeGreaterThanOrEqual(2_000);
      expect(ms).toBeLessThan(8_000);
      const mssh = await session.proc.exited;
      expect(mssh).toBe(255); // the session was cut, and mssh says why
      expect(session.proc.err).toContain(
        `the session to box was ended: the relay at ${relay.url} stopped (a restart or an upgrade) [CLI_ERR_TUNNEL_BROKEN]`,
      );
      expect(relay.proc.err).toMatch(/drain timeout \(2 s\): ending 1 running session/);
      const rows = await auditOf(relay);
      expect(rows.filter((r) => r.type === 'session.end').map((r) => r.details.reason)).toEqual(['relay_shutdown']);
      expect(rows.find((r) => r.type === 'relay.stopped')).toMatchObject({ details: { sessionsEnded: 1 } });
    },
  );
});

describe('mssh-relay drain', () => {
  it(
    'drains the running relay as SIGTERM does: says what happens, returns at once; --wait returns once it exited',
    { timeout: 90_000 },
    async () => {
      const { relay, user } = await relayWithBox(['--drain-delay', '1', '--drain-timeout', '60']);
      const session = CatSession.start(user, 'box');
      await session.echo('before');
      const exited = exitOf(relay);
      const drainCli = (args: string[]) => exec(BIN.relay, ['drain', '--data-dir', relay.dataDir, ...args]);

      const t0 = Date.now();
      const r = await drainCli([]);
      expect(r.code, r.stderr).toBe(0);
      expect(r.stdout).toMatch(/^Relay pid \d+ is draining \(since .*\): \/readyz answers 503/m);
      expect(r.stdout).toContain('Running sessions: 1;');
      expect(r.stdout).toContain('(--drain-timeout)');
      expect(relay.proc.running).toBe(true);
      const ready = await readyz(relay.port).catch(() => null); // the listener may have closed (1 s) already
      if (ready) expect(ready.body).toMatchObject({ status: 'draining', code: 'RLY_ERR_DRAINING' });
      await session.echo('after');

      // Asked again, with --wait: it says so, and returns once the relay has exited.
      const again = run(BIN.relay, ['drain', '--wait', '--data-dir', relay.dataDir]);
      again.child.stdin!.end();
      await again.waitOutput(/was already draining/, 15_000, 'out');
      await again.waitOutput(/The listeners are closed/, 15_000, 'out');
      expect(again.running).toBe(true);
      expect(await session.end()).toBe(0);
      expect(await again.exited).toBe(0);
      expect(again.out).toMatch(/Relay pid \d+ has exited/);
      const { code, at } = await exited;
      expect(code).toBe(0);
      console.log(`[figure] mssh-relay drain: the relay exited ${at - t0} ms after the command`);

      const rows = await auditOf(relay);
      expect(rows.find((x) => x.type === 'relay.draining')).toMatchObject({
        actor: 'local-admin',
        details: { reason: 'mssh-relay drain', sessions: 1 },
      });
      expect(rows.filter((x) => x.type === 'session.end').map((x) => x.details.reason)).not.toContain('relay_shutdown');
      expect(rows.find((x) => x.type === 'relay.stopped')).toMatchObject({ details: { signal: 'mssh-relay drain' } });

      // Nothing runs there any more: refused with its code.
      const none = await drainCli([]);
      expect(none.code).toBe(1);
      expect(none.stderr).toContain('[RLY_CLI_ERR_NOT_RUNNING]');
      // A new connection to the address is refused now.
      expect(await tryConnect(relay.port)).toBe('ECONNREFUSED');
      await relaySession(relay).then(
        (s) => {
          s.close();
          throw new Error('connected to a stopped relay');
        },
        () => undefined,
      );
    },
  );
});
