/**
 * Issue 19: the relay fleet. Three real `mssh-relay` processes on one real Postgres database, each with
 * its own peer listener and data dir, serving one TLS certificate; real agents in front of the fixture
 * sshd; stock OpenSSH and the mssh client as a user runs them.
 *
 *   mssh / ssh -J --> relay A ==peer link (mTLS, h2)==> relay B (holds fm-b's link) --> mssh-agent --> sshd
 *
 * What the user sees and what the audit trail holds:
 *   - a machine held by B is online in `mssh ls` on A, and `mssh ssh`, `mssh proxy` and `ssh -J` through A
 *     reach it, 64 MiB byte-exact; the session row names A (entry) and B (holding);
 *   - grants and the audit gate apply once: one session.start, one session.end, on the entry relay;
 *   - `users disable --kill-sessions` on A ends a session that entered through C within 2 s;
 *   - only fleet members may open a peer link (a stranger's certificate is refused), and a peer request
 *     names a machine, never an address.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import http2 from 'node:http2';
import { join } from 'node:path';
import tls from 'node:tls';
import pg from 'pg';
import { generate } from 'selfsigned';
import { fixtures } from './fixtures/inject.js';
import { MiB, runCommand, writeRandomFile } from './fixtures/files.js';
import { startFleet, type Fleet } from './fixtures/fleet.js';
import { freePort, waitFor } from './fixtures/net.js';
import { sshKeygen, writeSshConfig } from './fixtures/openssh.js';
import { login, openTunnel, readKey, relaySession, sshExec } from './fixtures/tunnel-client.js';
import {
  ADMIN_PASSWORD,
  BIN,
  adminAuditEvents,
  loginUser,
  proxyCommandSshOpts,
  startAgent,
  stopAll,
  type User,
} from './fixtures/stack.js';

afterAll(stopAll);

const ALICE_PASSWORD = 'alice-password-for-tests';

describe('relay fleet: three relays on one Postgres', () => {
  let fleet: Fleet;
  let admin: User; // logged in to relay A
  let dir: string;
  let db: pg.Client;
  let jumpPort: number;

  beforeAll(async () => {
    jumpPort = await freePort();
    // Relay A also runs the SSH jump listener.
    fleet = await startFleet(3, { perRelay: (i) => (i === 0 ? ['--ssh-listen', `127.0.0.1:${jumpPort}`] : []) });
    db = new pg.Client({ connectionString: fleet.databaseUrl });
    await db.connect();
    dir = mkdtempSync(join(fixtures().root, 'fleet-'));
    await startAgent(fleet.relays[1]!, 'fm-b');
    admin = await loginUser(fleet.relays[0]!);
  }, 120_000);
  afterAll(async () => {
    await db?.end();
    for (const r of fleet?.relays ?? []) await r.proc.stop();
  });

  const [A, B, C] = [0, 1, 2];
  const rel = (i: number) => fleet.relays[i]!;

  it('registers every relay with a lease; `mssh admin relays` lists them serving', async () => {
    const rows = (await db.query<{ id: string; state: string }>('SELECT id, state FROM relays ORDER BY id')).rows;
    expect(rows.map((r) => r.id).sort()).toEqual(fleet.relays.map((r) => r.id).sort());
    expect(rows.every((r) => r.state === 'serving')).toBe(true);
  });

  it('presence: B holds fm-b, and fm-b is online in `mssh ls` on A', async () => {
    const p = await db.query<{ relay_id: string }>("SELECT relay_id FROM agent_presence WHERE agent_name = 'fm-b'");
    expect(p.rows.map((r) => r.relay_id)).toEqual([rel(B).id]);
    const ls = await admin.mssh(['ls', '--json']);
    expect(ls.code, ls.stderr).toBe(0);
    const hosts = JSON.parse(ls.stdout) as Array<{ name: string; online: boolean }>;
    expect(hosts.find((h) => h.name === 'fm-b')?.online).toBe(true);
  });

  it('mssh ssh through A reaches fm-b on B: 64 MiB byte-exact, one session row naming both relays', async () => {
    const f = fixtures();
    const big = join(dir, 'big.bin');
    const sum = writeRandomFile(big, 64 * MiB);
    const before = Date.now();
    const r = await runCommand(
      process.execPath,
      [BIN.mssh, 'ssh', '-i', f.sshd.clientKey, `${f.sshd.user}@fm-b`, '--', 'sha256sum'],
      { env: admin.env, stdinFile: big, timeoutMs: 120_000 },
    );
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    expect(r.stdout.split(/\s+/)[0]).toBe(sum);
    const rows = await waitFor(
      async () => {
        const q = await db.query<{
          relay_id: string;
          holding_relay_id: string;
          bytes_up: string;
          end_reason: string | null;
        }>(
          "SELECT relay_id, holding_relay_id, bytes_up, end_reason FROM sessions WHERE host = 'fm-b' AND started_at >= $1",
          [new Date(before - 1000)],
        );
        return q.rows.length === 1 && q.rows[0]!.end_reason ? q.rows : null;
      },
      10_000,
      'the forwarded session row to be closed',
    );
    expect(rows[0]).toMatchObject({ relay_id: rel(A).id, holding_relay_id: rel(B).id, end_reason: 'client_closed' });
    expect(Number(rows[0]!.bytes_up)).toBeGreaterThan(64 * MiB);
    const events = await adminAuditEvents(admin, ['--type', 'session', '--host', 'fm-b']);
    const starts = events.filter((e) => e.type === 'session.start');
    expect(starts.length).toBeGreaterThanOrEqual(1);
    expect(starts[0]!.details).toMatchObject({ holdingRelay: rel(B).id });
    const listed = await admin.mssh(['admin', 'sessions', '--json']);
    const fmb = (JSON.parse(listed.stdout) as Array<{ host: string; relayId: string; holdingRelayId: string }>).find(
      (x) => x.host === 'fm-b',
    );
    expect(fmb).toMatchObject({ relayId: rel(A).id, holdingRelayId: rel(B).id });
  }, 150_000);

  it('stock OpenSSH with ProxyCommand=mssh proxy %n through A reaches fm-b', async () => {
    const f = fixtures();
    const r = await runCommand(
      'ssh',
      [...proxyCommandSshOpts(join(dir, 'kh_proxy'), f.sshd.clientKey), `${f.sshd.user}@fm-b`, 'echo', 'via-proxy'],
      { env: admin.env, timeoutMs: 30_000 },
    );
    expect(r.stderr).toBe('');
    expect(r.stdout.trim()).toBe('via-proxy');
  });

  it('presence follows the agent within 1 s: stopped, fm-b is offline fleet-wide and refused on A; back, reachable again', async () => {
    const agent = await startAgent(rel(B), 'fm-p');
    const held = async () =>
      (await db.query<{ relay_id: string }>("SELECT relay_id FROM agent_presence WHERE agent_name = 'fm-p'")).rows;
    // The agent logs "connected" once welcomed; B writes its presence row right after.
    await waitFor(async () => ((await held()).length === 1 ? true : null), 2_000, 'fm-p presence');
    expect(await held()).toEqual([{ relay_id: rel(B).id }]);
    const t0 = performance.now();
    await agent.proc.stop();
    await waitFor(async () => ((await held()).length === 0 ? true : null), 5_000, 'fm-p presence to go');
    const gone = performance.now() - t0;
    console.log(
      `[figure] agent stopped -> presence row gone in ${gone.toFixed(0)} ms (includes the agent's own shutdown)`,
    );
    expect(gone).toBeLessThan(1_000 + 1_000); // 1 s, plus the agent process's graceful stop
    const f = fixtures();
    const r = await runCommand(
      process.execPath,
      [BIN.mssh, 'ssh', '-i', f.sshd.clientKey, `${f.sshd.user}@fm-p`, '--', 'true'],
      {
        env: admin.env,
        timeoutMs: 30_000,
      },
    );
    expect(r.code).not.toBe(0);
    expect(r.stderr).toMatch(/fm-p is offline.*\[(CLI|RLY)_ERR_\w*OFFLINE\]/s);
    await agent.start();
    await waitFor(async () => ((await held()).length === 1 ? true : null), 5_000, 'fm-p presence back');
    const ok = await runCommand(
      process.execPath,
      [BIN.mssh, 'ssh', '-i', f.sshd.clientKey, `${f.sshd.user}@fm-p`, '--', 'echo', 'back'],
      {
        env: admin.env,
        timeoutMs: 30_000,
      },
    );
    expect(ok.stdout.trim()).toBe('back');
    await agent.proc.stop();
  });

  it('`mssh admin relays` on A and `mssh-relay fleet` list the three relays, serving', async () => {
    const r = await admin.mssh(['admin', 'relays', '--json']);
    expect(r.code, r.stderr).toBe(0);
    const relays = JSON.parse(r.stdout) as Array<{ id: string; state: string; self: boolean; agents: number }>;
    expect(relays.map((x) => x.id).sort()).toEqual(fleet.relays.map((x) => x.id).sort());
    expect(relays.every((x) => x.state === 'serving')).toBe(true);
    expect(relays.find((x) => x.self)?.id).toBe(rel(A).id);
    expect(relays.find((x) => x.id === rel(B).id)?.agents).toBe(1);
    const table = await admin.mssh(['admin', 'relays']);
    expect(table.stdout).toMatch(new RegExp(`${rel(A).id} \\*\\s+serving`));
    const viaCli = await rel(C).cli(['fleet', '--json']);
    expect(viaCli.code, viaCli.stderr).toBe(0);
    expect((JSON.parse(viaCli.stdout) as Array<{ self: boolean; id: string }>).find((x) => x.self)?.id).toBe(rel(C).id);
  });

  it('ssh -J through the jump listener of A reaches fm-b held by B, audited once on A', async () => {
    const add = await rel(A).cli(['user', 'add', 'alice', '--password-stdin'], `${ALICE_PASSWORD}\n`);
    expect(add.code, add.stderr).toBe(0);
    expect((await rel(A).cli(['grant', 'alice', 'fm-*'])).code).toBe(0);
    const alice = await loginUser(rel(A), 'alice', ALICE_PASSWORD);
    const key = sshKeygen(dir, 'alice_ed25519');
    const k = await alice.mssh(['keys', 'add', `${key}.pub`]);
    expect(k.code, k.stderr).toBe(0);
    const relayKey = readFileSync(join(rel(A).dataDir, 'ssh', 'ssh_host_ed25519_key.pub'), 'utf8')
      .trim()
      .split(/\s+/)
      .slice(0, 2)
      .join(' ');
    writeFileSync(
      join(dir, 'known_hosts'),
      [`[127.0.0.1]:${jumpPort} ${relayKey}`, ...fixtures().sshd.hostKeys.map((hk) => `fm-b ${hk}`), ''].join('\n'),
    );
    const cfg = writeSshConfig(dir, 'ssh_config', [
      ['127.0.0.1', key],
      ['fm-b', fixtures().sshd.clientKey],
    ]);
    const r = await runCommand(
      'ssh',
      ['-F', cfg, '-J', `alice@127.0.0.1:${jumpPort}`, `${fixtures().sshd.user}@fm-b`, '--', 'echo', 'via-jump'],
      { env: { ...process.env, SSH_AUTH_SOCK: '' }, timeoutMs: 30_000 },
    );
    expect(r.stderr).toBe('');
    expect(r.stdout.trim()).toBe('via-jump');
    const q = await db.query<{ relay_id: string; holding_relay_id: string }>(
      "SELECT relay_id, holding_relay_id FROM sessions WHERE via = 'jump' AND host = 'fm-b'",
    );
    expect(q.rows).toEqual([{ relay_id: rel(A).id, holding_relay_id: rel(B).id }]);
  });

  it('users disable --kill-sessions on A ends a session that entered through C within 2 s', async () => {
    const add = await rel(A).cli(['user', 'add', 'carol', '--password-stdin'], `${ALICE_PASSWORD}\n`);
    expect(add.code, add.stderr).toBe(0);
    expect((await rel(A).cli(['grant', 'carol', 'fm-b'])).code).toBe(0);
    const h2 = await relaySession(rel(C));
    try {
      const token = await login(h2, 'carol', ALICE_PASSWORD);
      const sock = await openTunnel(h2, token, 'fm-b');
      const f = fixtures();
      const { client, channel } = await sshExec(sock, {
        user: f.sshd.user,
        privateKey: readKey(f.sshd.clientKey),
        command: 'sleep 60',
      });
      const closed = new Promise<number>((resolve) => client.once('close', () => resolve(performance.now())));
      const t0 = performance.now();
      const r = await admin.mssh(['admin', 'users', 'disable', 'carol', '--kill-sessions']);
      expect(r.code, r.stderr).toBe(0);
      const at = await Promise.race([closed, new Promise<number>((resolve) => setTimeout(() => resolve(-1), 10_000))]);
      expect(at, 'the session through C did not end').toBeGreaterThan(0);
      console.log(`[figure] disable on A -> session via C closed in ${(at - t0).toFixed(0)} ms`);
      expect(at - t0).toBeLessThan(2_000 + 1_000); // 2 s, plus the mssh process start of the admin command
      void channel;
      const row = await waitFor(
        async () =>
          (
            await db.query<{ relay_id: string; end_reason: string | null }>(
              "SELECT relay_id, end_reason FROM sessions WHERE user_name = 'carol' AND end_reason IS NOT NULL",
            )
          ).rows[0] ?? null,
        10_000,
        "carol's session row to be closed",
      );
      expect(row).toEqual({ relay_id: rel(C).id, end_reason: 'user_disabled' });
    } finally {
      h2.close();
    }
  });

  it('a peer link from a certificate no member row names is refused; no client certificate neither', async () => {
    const { cert, private: key } = await generate([{ name: 'commonName', value: 'stranger' }], {
      keyType: 'ec',
      curve: 'P-256',
    });
    for (const creds of [{ cert, key }, {}]) {
      const outcome = await new Promise<string>((resolve) => {
        const s = tls.connect({
          host: '127.0.0.1',
          port: rel(B).peerPort,
          ALPNProtocols: ['mssh-peer/1'],
          rejectUnauthorized: false,
          ...creds,
        });
        s.on('error', () => resolve('closed'));
        s.on('close', () => resolve('closed'));
        s.on('secureConnect', () => {
          // The refusal comes after the handshake: the server closes without a single HTTP/2 frame.
          s.once('data', () => resolve('got data'));
        });
        setTimeout(() => resolve('still open'), 10_000).unref();
      });
      expect(outcome).toBe('closed');
    }
    expect(rel(B).proc.out + rel(B).proc.err).toMatch(
      /refused a peer link from 127\.0\.0\.1:\d+: its certificate is not that of a live fleet member/,
    );
  });

  it("a member's peer request names a machine, never an address: bad names 400, a machine it does not hold 503", async () => {
    // Relay A's own peer identity (a member) talking to C's peer listener.
    const peerDir = join(rel(A).dataDir, 'peer');
    const creds = {
      cert: readFileSync(join(peerDir, 'cert.pem'), 'utf8'),
      key: readFileSync(join(peerDir, 'key.pem'), 'utf8'),
    };
    const socket = await new Promise<tls.TLSSocket>((resolve, reject) => {
      const s = tls.connect({
        host: '127.0.0.1',
        port: rel(C).peerPort,
        ALPNProtocols: ['mssh-peer/1'],
        rejectUnauthorized: false,
        ...creds,
      });
      s.once('secureConnect', () => resolve(s));
      s.once('error', reject);
    });
    const h2 = http2.connect('https://peer.invalid', { createConnection: () => socket });
    h2.on('error', () => {});
    const ask = (host: string, entry = rel(A).id) =>
      new Promise<{ status: number; code: string }>((resolve, reject) => {
        const req = h2.request({
          ':method': 'POST',
          ':path': '/mssh/peer/session',
          'x-mssh-session': '6f1c1d2e-3b4a-4c5d-8e9f-0a1b2c3d4e5f',
          'x-mssh-user': 'admin',
          'x-mssh-peer-host': host,
          'x-mssh-peer-entry': entry,
        });
        req.on('response', (h) => resolve({ status: Number(h[':status']), code: String(h['x-mssh-error'] ?? '') }));
        req.on('error', reject);
        req.end();
      });
    try {
      for (const addr of ['127.0.0.1', '127.0.0.1:22', 'localhost:22', '[::1]:22', 'fm-b.example.org']) {
        expect(await ask(addr), addr).toEqual({ status: 400, code: 'RLY_ERR_BAD_REQUEST' });
      }
      expect(await ask('fm-b')).toEqual({ status: 503, code: 'RLY_ERR_AGENT_OFFLINE' });
      expect(await ask('fm-b', rel(B).id)).toEqual({ status: 400, code: 'RLY_ERR_BAD_REQUEST' });
    } finally {
      h2.close();
    }
  });

  it('kill -9 of the entry relay: a survivor closes its open session as relay_crashed, exactly once, and lists it lost', async () => {
    const h2 = await relaySession(rel(C));
    const token = await login(h2, 'admin', ADMIN_PASSWORD);
    const sock = await openTunnel(h2, token, 'fm-b');
    const f = fixtures();
    await sshExec(sock, { user: f.sshd.user, privateKey: readKey(f.sshd.clientKey), command: 'sleep 60' });
    const open = await db.query<{ id: string }>('SELECT id FROM sessions WHERE relay_id = $1 AND ended_at IS NULL', [
      rel(C).id,
    ]);
    expect(open.rows.length).toBe(1);
    const sessionId = open.rows[0]!.id;
    const t0 = performance.now();
    rel(C).proc.child.kill('SIGKILL');
    await rel(C).proc.exited;
    h2.destroy();
    const row = await waitFor(
      async () =>
        (
          await db.query<{ end_reason: string | null }>('SELECT end_reason FROM sessions WHERE id = $1', [sessionId])
        ).rows.find((r) => r.end_reason !== null) ?? null,
      15_000,
      'the killed relay session to be closed by a survivor',
    );
    console.log(
      `[figure] kill -9 of the entry relay -> its session closed by a survivor in ${(performance.now() - t0).toFixed(0)} ms`,
    );
    expect(row.end_reason).toBe('relay_crashed');
    const ends = await db.query<{ relay_id: string; details: { closedBy?: string } }>(
      "SELECT relay_id, details FROM audit_events WHERE session_id = $1 AND type = 'session.end'",
      [sessionId],
    );
    expect(ends.rows.length).toBe(1);
    expect([rel(A).id, rel(B).id]).toContain(ends.rows[0]!.details.closedBy);
    const lost = await db.query("SELECT 1 FROM audit_events WHERE type = 'relay.lost' AND details->>'relay' = $1", [
      rel(C).id,
    ]);
    expect(lost.rows.length).toBe(1);
    const r = await admin.mssh(['admin', 'relays', '--json']);
    const relays = JSON.parse(r.stdout) as Array<{ id: string; state: string }>;
    expect(relays.find((x) => x.id === rel(C).id)?.state).toBe('lost');
    // C comes back on its data dir: serving again, and nothing of its old session is recorded twice.
    await rel(C).restart();
    await waitFor(
      async () =>
        (await db.query("SELECT 1 FROM relays WHERE id = $1 AND state = 'serving'", [rel(C).id])).rows.length === 1 ||
        null,
      10_000,
      'C serving again',
    );
    const again = await db.query(
      "SELECT count(*)::int AS n FROM audit_events WHERE session_id = $1 AND type = 'session.end'",
      [sessionId],
    );
    expect(again.rows[0]).toEqual({ n: 1 });
  });
});
