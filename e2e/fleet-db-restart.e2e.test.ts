/**
 * Issue 19: Postgres restarted under a running fleet (a private cluster, never the shared server). Two
 * relays on it, an agent held by B, a user entering through A. While Postgres is down nothing is declared
 * lost; once it is back, both relays renew their leases, B rewrites its presence, the news listener
 * reconnects, and a session through A reaches the machine again, with no relay declared lost and no
 * session recorded twice. A signing key rotated on A afterwards is honoured by B at once (fleet news).
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import pg from 'pg';
import { fixtures } from './fixtures/inject.js';
import { startFleet, type Fleet } from './fixtures/fleet.js';
import { waitFor } from './fixtures/net.js';
import { startPrivatePostgres, type PrivatePostgres } from './fixtures/private-postgres.js';
import { BIN, loginUser, startAgent, stopAll, type User } from './fixtures/stack.js';
import { runCommand } from './fixtures/files.js';
import { login, relaySession, request } from './fixtures/tunnel-client.js';
import { PATHS } from '@mssh/protocol';

afterAll(stopAll);

describe('relay fleet: Postgres restarted under it (private cluster)', () => {
  let server: PrivatePostgres;
  let fleet: Fleet;
  let user: User;
  const rel = (i: number) => fleet.relays[i]!;
  const query = async <T extends pg.QueryResultRow>(text: string, values: unknown[] = []): Promise<T[]> => {
    const c = new pg.Client({ connectionString: server.url });
    await c.connect();
    try {
      return (await c.query<T>(text, values)).rows;
    } finally {
      await c.end();
    }
  };
  const sshThroughA = () => {
    const f = fixtures();
    return runCommand(
      process.execPath,
      [BIN.mssh, 'ssh', '-i', f.sshd.clientKey, `${f.sshd.user}@fm-db`, '--', 'echo', 'up'],
      {
        env: user.env,
        timeoutMs: 30_000,
      },
    );
  };

  beforeAll(async () => {
    server = await startPrivatePostgres();
    fleet = await startFleet(2, { databaseUrl: server.url, leaseMs: 1_500 });
    await startAgent(rel(1), 'fm-db');
    user = await loginUser(rel(0));
  }, 120_000);
  afterAll(async () => {
    for (const r of fleet?.relays ?? []) await r.proc.stop();
    server?.remove();
  });

  it('both relays renew their leases and presence by themselves after a restart; sessions through A work again', async () => {
    expect((await sshThroughA()).stdout.trim()).toBe('up');
    server.stop();
    await new Promise((r) => setTimeout(r, 4_000)); // longer than a lease: every lease has expired meanwhile
    server.start();
    const t0 = performance.now();
    await waitFor(
      async () => {
        const rows = await query<{ id: string }>(
          "SELECT id FROM relays WHERE state = 'serving' AND lease_until > now()",
        ).catch(() => []);
        return rows.length === 2 || null;
      },
      20_000,
      'both leases renewed',
    );
    await waitFor(
      async () => {
        const rows = await query<{ relay_id: string }>(
          "SELECT relay_id FROM agent_presence WHERE agent_name = 'fm-db'",
        );
        return rows.length === 1 && rows[0]!.relay_id === rel(1).id ? true : null;
      },
      20_000,
      'presence of fm-db rewritten by B',
    );
    console.log(`[figure] Postgres back -> leases and presence restored in ${(performance.now() - t0).toFixed(0)} ms`);
    // The news listeners are back as soon as the leases are (not at the end of their back-off, up to 5 s
    // later): news sent from now on reaches every relay.
    await waitFor(
      () =>
        rel(0).proc.err.includes('fleet news listener reconnected') &&
        rel(1).proc.err.includes('fleet news listener reconnected')
          ? true
          : null,
      1_500,
      'both news listeners to reconnect',
    );
    console.log(`[figure] Postgres back -> news listeners reconnected in ${(performance.now() - t0).toFixed(0)} ms`);
    const r = await waitFor(
      async () => {
        const out = await sshThroughA();
        return out.code === 0 ? out : null;
      },
      20_000,
      'a session through A to reach fm-db again',
    );
    expect(r.stdout.trim()).toBe('up');
    // Nobody was declared lost: every relay survived the outage.
    expect(await query("SELECT id FROM relays WHERE state = 'lost'")).toEqual([]);
    expect(await query("SELECT 1 FROM audit_events WHERE type = 'relay.lost'")).toEqual([]);
    const twice = await query<{ session_id: string }>(
      "SELECT session_id FROM audit_events WHERE type = 'session.end' GROUP BY session_id HAVING count(*) > 1",
    );
    expect(twice).toEqual([]);
  }, 90_000);

  it('a signing key rotated on A is honoured by B without a restart (fleet news)', async () => {
    const rot = await rel(0).cli(['keys', 'rotate']);
    expect(rot.code, rot.stderr).toBe(0);
    // A token A signs with the NEW key, used on B at once.
    const hA = await relaySession(rel(0));
    const hB = await relaySession(rel(1));
    try {
      const token = await login(hA, 'admin', 'admin-password-for-tests');
      const kid = JSON.parse(Buffer.from(token.split('.')[0]!, 'base64url').toString()) as { kid: string };
      const keys = await query<{ kid: string }>('SELECT kid FROM signing_keys WHERE retired_at IS NULL');
      expect(keys.map((k) => k.kid)).toContain(kid.kid);
      const r = await waitFor(
        async () => {
          const res = await request(hB, 'GET', PATHS.hosts, { token });
          return res.status === 200 ? res : null;
        },
        2_000,
        'B to accept a token signed with the key rotated on A',
      );
      expect(r.status).toBe(200);
    } finally {
      hA.close();
      hB.close();
    }
  });
});
