/**
 * Issue 18 items 1 and 7: ONE session gate admits every session, whatever door it came through.
 * Real relay (Postgres), agents, stock OpenSSH on the jump listener, HTTP/2 tunnels as mssh opens them:
 *
 *   HTTPS  POST /v1/tunnel/HOST ─┐
 *                                ├─> gate: grant -> enrolled/online -> caps -> open agent stream ‖ COMMIT session.start
 *   SSH    ssh -W HOST:22 ───────┘
 *
 *   - a refusal is the same on both doors (same code; same session.denied row but for `via`);
 *   - --max-sessions-per-agent N: exactly N sessions (over both doors) are admitted, the next is refused
 *     with RLY_ERR_AGENT_SESSION_LIMIT on either door;
 *   - a session.start that cannot be committed (a trigger makes the sessions INSERT fail while logins and
 *     token checks still work) refuses the session on both doors with RLY_ERR_DATABASE_UNAVAILABLE: the
 *     agent stream is cancelled (the target's connection closes) and no byte moves either way.
 *
 * The machine `laptop` is a counting TCP target (not sshd): it answers a session's first bytes with one
 * line and counts the bytes it receives, so "no byte moved" is measured where it matters.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { spawn } from 'node:child_process';
import type http2 from 'node:http2';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import net from 'node:net';
import { join } from 'node:path';
import type { Duplex } from 'node:stream';
import pg from 'pg';
import { WIRE_ERRORS, type WireErrorCode } from '@mssh/protocol';
import { fixtures } from './fixtures/inject.js';
import { runCommand } from './fixtures/files.js';
import { freePort, waitFor } from './fixtures/net.js';
import { sshKeygen, writeSshConfig } from './fixtures/openssh.js';
import { Proc, loginUser, startAgent, startRelay, stopAll, type Relay } from './fixtures/stack.js';
import { login, openTunnel, relaySession } from './fixtures/tunnel-client.js';

afterAll(stopAll);

const ALICE_PASSWORD = 'alice-password-for-tests';
const GREETING = 'hello-from-laptop\n';
const PER_AGENT_CAP = 2;

interface TargetConn {
  received: number;
  closed: boolean;
  scan: boolean;
}

/**
 * A TCP target that counts what it receives, per connection, and answers a session's first bytes with
 * GREETING. A connection that opens with an SSH identification line (the agent's host-key scan at
 * enrolment) is passed to the fixture sshd and is not a session.
 */
async function countingTarget(
  sshPort: number,
): Promise<{ port: number; sessions(): TargetConn[]; close(): Promise<void> }> {
  const conns: TargetConn[] = [];
  const sockets = new Set<net.Socket>();
  const server = net.createServer((sock) => {
    const c: TargetConn = { received: 0, closed: false, scan: false };
    conns.push(c);
    sockets.add(sock);
    sock.on('error', () => undefined);
    sock.on('close', () => {
      c.closed = true;
      sockets.delete(sock);
    });
    sock.once('data', (first: Buffer) => {
      if (first.subarray(0, 4).toString('latin1') === 'SSH-') {
        c.scan = true;
        const up = net.connect(sshPort, '127.0.0.1');
        up.on('error', () => sock.destroy());
        up.on('close', () => sock.destroy());
        sock.on('close', () => up.destroy());
        up.write(first);
        sock.pipe(up).pipe(sock);
        return;
      }
      c.received += first.length;
      sock.on('data', (d: Buffer) => (c.received += d.length));
      sock.write(GREETING);
    });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  return {
    port: (server.address() as net.AddressInfo).port,
    sessions: () => conns.filter((c) => !c.scan),
    close: () =>
      new Promise<void>((r) => {
        for (const s of sockets) s.destroy();
        server.close(() => r());
      }),
  };
}

interface Denied {
  host: string;
  source: string | null;
  code: string;
  details: { reason: string; code: string; via: string };
}

describe('one session gate for every door', () => {
  let relay: Relay;
  let target: Awaited<ReturnType<typeof countingTarget>>;
  let h2: http2.ClientHttp2Session;
  let token: string;
  let sshPort: number;
  let cfg: string;
  let db: pg.Client;

  const env = () => ({ ...process.env, SSH_AUTH_SOCK: '' });
  /** `ssh -W HOST:22` through the jump listener; at LogLevel INFO OpenSSH prints a refused channel's reason. */
  const jumpW = (host: string) =>
    runCommand(
      'ssh',
      ['-F', cfg, '-o', 'LogLevel=INFO', '-p', String(sshPort), '-W', `${host}:22`, 'alice@127.0.0.1'],
      { env: env(), timeoutMs: 30_000 },
    );
  const refusal = (p: Promise<Duplex>) =>
    p.then(
      () => {
        throw new Error('the tunnel was admitted');
      },
      (e: { status: number; body: { code: string } }) => e,
    );
  const denials = async (host: string): Promise<Denied[]> =>
    (
      await db.query<Denied>(
        "SELECT host, source, code, details FROM audit_events WHERE type = 'session.denied' AND actor = 'alice' AND host = $1 ORDER BY id",
        [host],
      )
    ).rows;
  const starts = async (host: string): Promise<number> =>
    Number(
      (await db.query("SELECT count(*) AS n FROM audit_events WHERE type = 'session.start' AND host = $1", [host]))
        .rows[0].n,
    );

  beforeAll(async () => {
    target = await countingTarget(fixtures().sshd.port);
    sshPort = await freePort();
    relay = await startRelay('postgres', [
      '--ssh-listen',
      `127.0.0.1:${sshPort}`,
      '--max-sessions-per-agent',
      String(PER_AGENT_CAP),
    ]);
    await startAgent(relay, 'laptop', { target: `127.0.0.1:${target.port}` });
    await startAgent(relay, 'vault'); // online, alice has no grant
    await startAgent(relay, 'desktop', { start: false }); // granted, its agent offline
    expect((await relay.cli(['user', 'add', 'alice', '--password-stdin'], `${ALICE_PASSWORD}\n`)).code).toBe(0);
    for (const pattern of ['laptop', 'desktop', 'ghost'])
      expect((await relay.cli(['grant', 'alice', pattern])).code).toBe(0); // ghost: granted, never enrolled
    const alice = await loginUser(relay, 'alice', ALICE_PASSWORD);
    const dir = mkdtempSync(join(fixtures().root, 'gate-'));
    const key = sshKeygen(dir, 'alice_ed25519');
    const add = await alice.mssh(['keys', 'add', `${key}.pub`]);
    expect(add.code, add.stderr).toBe(0);
    const relayKey = readFileSync(join(relay.dataDir, 'ssh', 'ssh_host_ed25519_key.pub'), 'utf8')
      .trim()
      .split(/\s+/)
      .slice(0, 2)
      .join(' ');
    writeFileSync(join(dir, 'known_hosts'), `[127.0.0.1]:${sshPort} ${relayKey}\n`);
    cfg = writeSshConfig(dir, 'ssh_config', [['*', key]]);
    h2 = await relaySession(relay);
    token = await login(h2, 'alice', ALICE_PASSWORD);
    db = new pg.Client({ connectionString: relay.databaseUrl });
    await db.connect();
  }, 120_000);
  afterAll(async () => {
    h2?.close();
    await db?.end();
    await relay?.proc.stop();
    await target?.close();
  });

  it('a refusal is the same on both doors: the code of the check that refused, and one session.denied row each', async () => {
    const cases: Array<[host: string, code: WireErrorCode, reason: string, wire: RegExp]> = [
      [
        'desktop',
        'RLY_ERR_AGENT_OFFLINE',
        'host_offline',
        /open failed: connect failed: RLY_ERR_AGENT_OFFLINE: desktop is enrolled but its agent is not connected/,
      ],
      [
        'ghost',
        'RLY_ERR_UNKNOWN_HOST',
        'unknown_host',
        /open failed: administratively prohibited: RLY_ERR_UNKNOWN_HOST: no machine named ghost is enrolled/,
      ],
      [
        'vault',
        'RLY_ERR_NO_GRANT',
        'no_grant',
        /open failed: administratively prohibited: RLY_ERR_NO_GRANT: you have no grant for a machine named vault/,
      ],
    ];
    for (const [host, code, reason, wire] of cases) {
      const https = await refusal(openTunnel(h2, token, host));
      expect(https.status, host).toBe(WIRE_ERRORS[code].status);
      expect(https.body.code, host).toBe(code);
      const jump = await jumpW(host);
      expect(jump.code, host).toBe(255);
      expect(jump.stdout, host).toBe('');
      expect(jump.stderr, host).toMatch(wire);
      const rows = await waitFor(
        async () => {
          const r = await denials(host);
          return r.length >= 2 ? r : null;
        },
        10_000,
        `the session.denied rows for ${host}`,
      );
      expect(rows).toHaveLength(2);
      expect(rows.map((r) => r.details.via)).toEqual(['https', 'jump']);
      for (const r of rows)
        expect(r, host).toMatchObject({ host, source: '127.0.0.1', code: 'SES003W', details: { reason, code } });
    }
    expect(target.sessions()).toHaveLength(0);
  });

  it(`--max-sessions-per-agent ${PER_AGENT_CAP}: exactly ${PER_AGENT_CAP} sessions over both doors are admitted, the next is refused with the code on either door`, async () => {
    const startsBefore = await starts('laptop');
    // Session 1: an HTTPS tunnel. Session 2: ssh -W through the jump listener. Both see the greeting.
    const tunnel = await openTunnel(h2, token, 'laptop');
    let fromTunnel = '';
    tunnel.on('data', (d: Buffer) => (fromTunnel += d.toString()));
    tunnel.write('from-tunnel');
    await waitFor(() => fromTunnel === GREETING, 10_000, 'the greeting through the tunnel');
    const w = new Proc(
      spawn('ssh', ['-F', cfg, '-p', String(sshPort), '-W', 'laptop:22', 'alice@127.0.0.1'], {
        env: env(),
        stdio: ['pipe', 'pipe', 'pipe'],
      }),
    );
    try {
      w.child.stdin!.write('from-jump');
      await w.waitOutput(new RegExp(GREETING.trim()), 20_000, 'out');
      expect(target.sessions()).toHaveLength(PER_AGENT_CAP);

      // Session 3 on either door: refused by the per-agent cap, with its code; audited as a cap denial.
      const https = await refusal(openTunnel(h2, token, 'laptop'));
      expect(https.status).toBe(429);
      expect(https.body).toMatchObject({ code: 'RLY_ERR_AGENT_SESSION_LIMIT' });
      const jump = await jumpW('laptop');
      expect(jump.code).toBe(255);
      expect(jump.stdout).toBe('');
      expect(jump.stderr).toMatch(
        /open failed: connect failed: RLY_ERR_AGENT_SESSION_LIMIT: laptop already has 2 sessions open \(--max-sessions-per-agent\)/,
      );
      expect(target.sessions()).toHaveLength(PER_AGENT_CAP); // the refused ones never reached the machine
      const rows = await waitFor(
        async () => {
          const r = await denials('laptop');
          return r.length >= 2 ? r : null;
        },
        10_000,
        'the cap denials',
      );
      expect(rows.map((r) => [r.details.via, r.details.reason, r.details.code])).toEqual([
        ['https', 'cap', 'RLY_ERR_AGENT_SESSION_LIMIT'],
        ['jump', 'cap', 'RLY_ERR_AGENT_SESSION_LIMIT'],
      ]);

      // The admitted two still carry bytes.
      tunnel.write('+more');
      w.child.stdin!.write('+more');
      await waitFor(
        () =>
          target.sessions()[0]!.received === 'from-tunnel+more'.length &&
          target.sessions()[1]!.received === 'from-jump+more'.length,
        10_000,
        'bytes of both sessions at the target',
      );
      expect(await starts('laptop')).toBe(startsBefore + PER_AGENT_CAP);
    } finally {
      tunnel.destroy();
      await w.stop();
    }
    // Their slots are given back: a new session is admitted again.
    const again = await waitFor(() => openTunnel(h2, token, 'laptop').catch(() => null), 10_000, 'a slot to free up');
    again.destroy();
    await waitFor(() => target.sessions().every((c) => c.closed), 10_000, 'every target connection to close');
  });

  it('a session.start that cannot be committed refuses the session on both doors: 503 / channel refusal with the code, agent stream cancelled, no byte moved', async () => {
    await waitFor(() => target.sessions().every((c) => c.closed), 10_000, 'earlier target connections to close');
    const startsBefore = await starts('laptop');
    const sessionsBefore = target.sessions().length;
    // The database stays up (logins and token checks work); only the sessions INSERT fails.
    await db.query(
      `CREATE FUNCTION refuse_session_start() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN RAISE EXCEPTION 'test: session starts refused'; END $$`,
    );
    await db.query(
      'CREATE TRIGGER refuse_session_start BEFORE INSERT ON sessions FOR EACH ROW EXECUTE FUNCTION refuse_session_start()',
    );
    try {
      const https = await refusal(openTunnel(h2, token, 'laptop'));
      expect(https.status).toBe(503);
      expect(https.body).toMatchObject({ code: 'RLY_ERR_DATABASE_UNAVAILABLE' });
      expect(JSON.stringify(https.body)).not.toContain(GREETING.trim()); // nothing of the machine's came back
      const jump = await jumpW('laptop');
      expect(jump.code).toBe(255);
      expect(jump.stdout).toBe('');
      expect(jump.stderr).toMatch(
        /open failed: connect failed: RLY_ERR_DATABASE_UNAVAILABLE: the relay cannot record this session/,
      );
      // The agent streams were opened side by side with the commit, and cancelled: the machine saw one
      // connection per attempt, received nothing, and both are closed.
      const attempts = target.sessions().slice(sessionsBefore);
      expect(attempts).toHaveLength(2);
      await waitFor(
        () => attempts.every((c) => c.closed),
        10_000,
        'the cancelled agent streams to close their target connections',
      );
      expect(attempts.map((c) => c.received)).toEqual([0, 0]);
      expect(await starts('laptop')).toBe(startsBefore);
    } finally {
      await db.query('DROP TRIGGER refuse_session_start ON sessions');
      await db.query('DROP FUNCTION refuse_session_start()');
    }
    // With the commit possible again, the same door admits.
    const back = await openTunnel(h2, token, 'laptop');
    let got = '';
    back.on('data', (d: Buffer) => (got += d.toString()));
    back.write('ping');
    await waitFor(() => got === GREETING, 10_000, 'the greeting once starts commit again');
    back.destroy();
  });
});
