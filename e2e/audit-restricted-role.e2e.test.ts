/**
 * Issue 16 item 2, through the built programs on real Postgres: the operator's split of roles.
 *
 *   owner  (postgres here)  `mssh-relay migrate --relay-role R --prune-role P`
 *   R      `mssh-relay serve --database-url postgres://R@...`: logins, enrolment, a session's start and end
 *   P      `mssh-relay audit prune --database-url postgres://P@...`
 *
 * Roles are cluster-wide: unique names per run, dropped afterwards (after revoking their privileges in
 * this run's database).
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { randomBytes } from 'node:crypto';
import pg from 'pg';
import { fixtures } from './fixtures/inject.js';
import { createTestDatabase, ADMIN_URL, dbUrl } from './fixtures/postgres.js';
import { BIN, exec, loginUser, startAgent, startRelay, stopAll, type Relay } from './fixtures/stack.js';
import { mkdtempSync } from 'node:fs';
import { join } from 'node:path';

afterAll(stopAll);

function urlAs(url: string, role: string): string {
  const u = new URL(url);
  u.username = role;
  u.password = '';
  return u.toString();
}

describe('the relay serves as a restricted database role; only the prune role prunes', () => {
  const tag = randomBytes(4).toString('hex');
  const R = `mssh_e2e_relay_${tag}`;
  const P = `mssh_e2e_prune_${tag}`;
  let ownerUrl: string;
  let owner: pg.Client;
  let relay: Relay;
  const emptyDb = `mssh_t_${fixtures().runId}_empty_${tag}`;

  beforeAll(async () => {
    ownerUrl = await createTestDatabase(fixtures().runId);
    owner = new pg.Client({ connectionString: ownerUrl });
    await owner.connect();
    await owner.query(`CREATE ROLE ${R} LOGIN`);
    await owner.query(`CREATE ROLE ${P} LOGIN`);
  });
  afterAll(async () => {
    await relay?.proc.stop();
    if (owner) {
      await owner.query(`DROP OWNED BY ${R}, ${P}`).catch(() => {});
      await owner.query(`DROP ROLE IF EXISTS ${R}`).catch(() => {});
      await owner.query(`DROP ROLE IF EXISTS ${P}`).catch(() => {});
      await owner.end();
    }
    const a = new pg.Client({ connectionString: ADMIN_URL });
    await a.connect();
    await a.query(`DROP DATABASE IF EXISTS ${emptyDb} WITH (FORCE)`).catch(() => {});
    await a.end();
  });

  it('migrate as the owner grants the roles', async () => {
    const dataDir = mkdtempSync(join(fixtures().root, 'migrate-'));
    const r = await exec(BIN.relay, [
      'migrate',
      '--database-url',
      ownerUrl,
      '--data-dir',
      dataDir,
      '--relay-role',
      R,
      '--prune-role',
      P,
    ]);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toMatch(/Database schema is up to date/);
    expect(r.stdout).toContain(`Granted role "${R}"`);
    expect(r.stdout).toContain(`Granted role "${P}" EXECUTE on mssh_audit_prune`);
  });

  it('serve as the relay role: login, enrolment, a session start and end are recorded; it cannot prune', async () => {
    relay = await startRelay('postgres', [], { databaseUrl: urlAs(ownerUrl, R) });
    await startAgent(relay, 'laptop');
    const admin = await loginUser(relay);
    const f = fixtures();
    const s = await admin.mssh(
      ['ssh', '-i', f.sshd.clientKey, `${f.sshd.user}@laptop`, '--', 'echo', 'restricted-ok'],
      { timeoutMs: 60_000 },
    );
    expect(s.stdout).toBe('restricted-ok\n');
    expect(s.code, s.stderr).toBe(0);
    const current = await owner.query<{ u: string }>(
      `SELECT usename AS u FROM pg_stat_activity WHERE datname = current_database() AND usename = $1 LIMIT 1`,
      [R],
    );
    expect(current.rows[0]?.u).toBe(R);
    // Recorded: the session row closed, its start and end, the login, the enrolment.
    const session = await waitRow(
      `SELECT id, user_name, host, end_reason, bytes_up FROM sessions WHERE host = 'laptop' AND ended_at IS NOT NULL`,
    );
    expect(session).toMatchObject({ user_name: 'admin', host: 'laptop', end_reason: 'client_closed' });
    expect(Number(session.bytes_up)).toBeGreaterThan(0);
    const types = (
      await owner.query<{ type: string }>(`SELECT type FROM audit_events WHERE session_id = $1 ORDER BY id`, [
        session.id,
      ])
    ).rows.map((x) => x.type);
    expect(types).toEqual(['session.start', 'session.end']);
    for (const t of ['user.login', 'agent.enrolled', 'relay.started']) {
      expect((await owner.query(`SELECT 1 FROM audit_events WHERE type = $1`, [t])).rowCount, t).toBeGreaterThan(0);
    }
    // The relay's role may not prune, through its own CLI on its own database URL.
    const prune = await relay.cli(['audit', 'prune', '--older-than', '1d']);
    expect(prune.code).toBe(1);
    expect(prune.stderr).toMatch(/RLY_ERR_PRUNE_NOT_ALLOWED/);
    // A graceful restart as the restricted role (migrations only checked) works.
    await relay.restart();
    expect((await owner.query(`SELECT 1 FROM audit_events WHERE type = 'relay.stopped'`)).rowCount).toBeGreaterThan(0);
  });

  it('audit prune as the prune role deletes and records audit.pruned', async () => {
    await owner.query(
      `INSERT INTO audit_events (time, type, code, relay_id) VALUES (now() - interval '30 days', 'test.old', 'TST001I', 'x')`,
    );
    const r = await exec(BIN.relay, [
      'audit',
      'prune',
      '--older-than',
      '7d',
      '--database-url',
      urlAs(ownerUrl, P),
      '--data-dir',
      relay.dataDir,
    ]);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toMatch(/Deleted 1 audit event\(s\) older than/);
    const pruned = (await owner.query(`SELECT actor, source, details FROM audit_events WHERE type = 'audit.pruned'`))
      .rows;
    expect(pruned).toHaveLength(1);
    expect(pruned[0]).toMatchObject({ actor: 'local-admin', source: 'cli', details: { deleted: 1, dbUser: P } });
  });

  it('serve as a restricted role on a database the owner has not migrated stops with the fix', async () => {
    const a = new pg.Client({ connectionString: ADMIN_URL });
    await a.connect();
    await a.query(`CREATE DATABASE ${emptyDb}`);
    await a.end();
    const dataDir = mkdtempSync(join(fixtures().root, 'unmigrated-'));
    const r = await exec(
      BIN.relay,
      [
        'serve',
        '--listen',
        '127.0.0.1:0',
        '--ssh-listen',
        'off',
        '--data-dir',
        dataDir,
        '--database-url',
        urlAs(dbUrl(emptyDb), R),
      ],
      { timeoutMs: 30_000 },
    );
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/cannot apply the database migrations/);
    expect(r.stderr).toMatch(/mssh-relay migrate --database-url URL/);
  });

  async function waitRow(q: string): Promise<Record<string, string>> {
    const deadline = Date.now() + 15_000;
    for (let i = 0; i < 300 && Date.now() < deadline; i++) {
      const r = await owner.query(q);
      if (r.rows[0]) return r.rows[0];
      await new Promise((res) => setTimeout(res, 50));
    }
    throw new Error(`no row for ${q}`);
  }
});
