/**
 * Issue 16 item 2: the audit trail against the relay's own database role (real Postgres, one role per
 * kind created with unique names and dropped afterwards), and the same triggers on embedded PGlite.
 *
 * - a role with SELECT, INSERT, DELETE on audit_events cannot delete with the SET LOCAL cut-off trick;
 * - the relay role of docs/audit.md cannot delete/update/truncate audit_events, rewrite a closed session,
 *   shrink a byte counter, or delete sessions; it can insert, grow counters and close an open session;
 * - only the prune role may run mssh_audit_prune, never inside the retention floor, and its audit.pruned
 *   row is written in the same transaction as the delete;
 * - the relay opens its database as the restricted role (migrations already applied by the owner).
 */
import { randomBytes } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import pg from 'pg';
import { sql } from 'drizzle-orm';
import { createTestDatabase } from '@mssh/test-fixtures/postgres';
import { fixtures } from '@mssh/test-fixtures/inject';
import { openDatabase, type Database } from '../db/index.js';
import { grantRoles } from '../db/roles.js';
import { openTestDatabase } from '../test-support.js';
import { AuditLog, sqlState } from './audit-log.js';
import { RelayError } from '../errors.js';

const DAY = 86_400_000;

function urlAs(url: string, role: string): string {
  const u = new URL(url);
  u.username = role;
  u.password = '';
  return u.toString();
}

/** The error a query fails with (SQLSTATE and message), or null when it succeeded. */
async function failure(p: Promise<unknown>): Promise<{ code: string | undefined; message: string } | null> {
  return p.then(
    () => null,
    (e: unknown) => ({ code: sqlState(e), message: (e as Error).message }),
  );
}

describe('audit roles on postgres', () => {
  const tag = randomBytes(4).toString('hex');
  const roles = { relay: `mssh_t_relay_${tag}`, prune: `mssh_t_prune_${tag}`, issue: `mssh_t_sid_${tag}` };
  let url: string;
  let owner: pg.Client;
  const clients: pg.Client[] = [];
  const as = async (role: string): Promise<pg.Client> => {
    const c = new pg.Client({ connectionString: urlAs(url, role), connectionTimeoutMillis: 5_000 });
    await c.connect();
    clients.push(c);
    return c;
  };
  let relay: pg.Client;
  let pruner: pg.Client;

  beforeAll(async () => {
    url = await createTestDatabase(fixtures().runId);
    owner = new pg.Client({ connectionString: url });
    await owner.connect();
    for (const r of Object.values(roles)) await owner.query(`CREATE ROLE ${r} LOGIN`);
    const ownerDb = await openDatabase({ databaseUrl: url });
    try {
      await grantRoles(ownerDb.db, { relayRole: roles.relay, pruneRole: roles.prune });
    } finally {
      await ownerDb.close();
    }
    // The role of the issue's report: SELECT, INSERT, DELETE on audit_events and nothing else.
    await owner.query(
      `GRANT USAGE ON SCHEMA public TO ${roles.issue}; GRANT SELECT, INSERT, DELETE ON audit_events TO ${roles.issue}`,
    );
    // History: a year-old and a recent login, and a closed and an open session.
    await owner.query(`INSERT INTO audit_events (time, type, code, relay_id, actor) VALUES
      (now() - interval '400 days', 'user.login', 'USR001I', 'r1', 'old'), (now() - interval '1 hour', 'user.login', 'USR001I', 'r1', 'recent')`);
    await owner.query(`INSERT INTO sessions (id, relay_id, user_name, host, started_at, ended_at, bytes_up, bytes_down, end_reason) VALUES
      ('closed-1', 'r1', 'alice', 'laptop', now() - interval '2 hours', now() - interval '1 hour', 10, 20, 'client_closed'),
      ('open-1', 'r1', 'alice', 'laptop', now() - interval '1 minute', NULL, 100, 200, NULL)`);
    relay = await as(roles.relay);
    pruner = await as(roles.prune);
  });

  afterAll(async () => {
    for (const c of clients) await c.end().catch(() => {});
    if (owner) {
      // Privileges are per database, roles cluster-wide: revoke here, then drop the roles of this run only.
      await owner.query(`DROP OWNED BY ${Object.values(roles).join(', ')}`).catch(() => {});
      for (const r of Object.values(roles)) await owner.query(`DROP ROLE IF EXISTS ${r}`).catch(() => {});
      await owner.end();
    }
  });

  const loginCount = async () =>
    Number((await owner.query(`SELECT count(*) AS n FROM audit_events WHERE type = 'user.login'`)).rows[0].n);

  it('a role with DELETE cannot prune with SET LOCAL mssh.audit_prune_before (SQLSTATE 42501, append-only)', async () => {
    const c = await as(roles.issue);
    const before = await loginCount();
    await c.query('BEGIN');
    await c.query(`SET LOCAL mssh.audit_prune_before = '9999-01-01'`);
    const err = await failure(c.query(`DELETE FROM audit_events WHERE type = 'user.login'`));
    await c.query('ROLLBACK');
    expect(err).toMatchObject({ code: '42501' });
    expect(err!.message).toMatch(/audit_events is append-only: DELETE refused/);
    expect(await loginCount()).toBe(before);
  });

  it('the relay role cannot delete, update or truncate audit_events, even with the cut-off set', async () => {
    await relay.query('BEGIN');
    await relay.query(`SET LOCAL mssh.audit_prune_before = '9999-01-01'`);
    const del = await failure(relay.query(`DELETE FROM audit_events WHERE type = 'user.login'`));
    await relay.query('ROLLBACK');
    expect(del).toMatchObject({ code: '42501' });
    expect(del!.message).toMatch(/permission denied for table audit_events/);
    const upd = await failure(relay.query(`UPDATE audit_events SET actor = 'nobody'`));
    expect(upd).toMatchObject({ code: '42501' });
    expect(upd!.message).toMatch(/permission denied for table audit_events/);
    const trunc = await failure(relay.query('TRUNCATE audit_events'));
    expect(trunc).toMatchObject({ code: '42501' });
    // It can write events (that is its job).
    await relay.query(`INSERT INTO audit_events (type, code, relay_id) VALUES ('test.ok', 'TST001I', 'r1')`);
  });

  it('the relay role cannot rewrite a closed session row or delete sessions', async () => {
    const rewrite = await failure(
      relay.query(`UPDATE sessions SET bytes_up = 0, user_name = 'nobody' WHERE id = 'closed-1'`),
    );
    expect(rewrite).toMatchObject({ code: '42501' });
    expect(rewrite!.message).toMatch(/session closed-1 is closed: its row cannot be changed/);
    const reopen = await failure(
      relay.query(`UPDATE sessions SET ended_at = NULL, end_reason = NULL WHERE id = 'closed-1'`),
    );
    expect(reopen).toMatchObject({ code: '42501' });
    const del = await failure(relay.query(`DELETE FROM sessions WHERE id = 'closed-1'`));
    expect(del).toMatchObject({ code: '42501' });
    expect(del!.message).toMatch(/permission denied for table sessions/);
    // The owner is held by the trigger too (it could drop the trigger, but nothing happens by accident).
    const ownerRewrite = await failure(owner.query(`UPDATE sessions SET bytes_up = 0 WHERE id = 'closed-1'`));
    expect(ownerRewrite).toMatchObject({ code: '42501' });
    const row = (await owner.query(`SELECT user_name, bytes_up FROM sessions WHERE id = 'closed-1'`)).rows[0];
    expect(row).toEqual({ user_name: 'alice', bytes_up: '10' });
  });

  it('on an open row the relay role may grow the counters and close it, but not shrink a counter or change who/where', async () => {
    const down = await failure(relay.query(`UPDATE sessions SET bytes_down = 1 WHERE id = 'open-1'`));
    expect(down).toMatchObject({ code: '42501' });
    expect(down!.message).toMatch(/session open-1: byte counters may only grow/);
    const who = await failure(relay.query(`UPDATE sessions SET user_name = 'nobody' WHERE id = 'open-1'`));
    expect(who).toMatchObject({ code: '42501' });
    expect(who!.message).toMatch(/only the byte counters and the end of an open session may change/);
    const grow = await relay.query(
      `UPDATE sessions SET bytes_up = 150, bytes_down = 250, progress_at = now() WHERE id = 'open-1'`,
    );
    expect(grow.rowCount).toBe(1);
    const close = await relay.query(
      `UPDATE sessions SET ended_at = now(), end_reason = 'client_closed', bytes_up = 160, bytes_down = 260 WHERE id = 'open-1' AND ended_at IS NULL`,
    );
    expect(close.rowCount).toBe(1);
    const after = await failure(relay.query(`UPDATE sessions SET bytes_up = 999 WHERE id = 'open-1'`));
    expect(after!.message).toMatch(/session open-1 is closed/);
  });

  it('only the prune role may prune, never inside the retention floor; audit.pruned is written in the same transaction', async () => {
    const byRelay = await failure(relay.query(`SELECT mssh_audit_prune(now() - interval '30 days', 'x', 'x', 'x')`));
    expect(byRelay).toMatchObject({ code: '42501' });
    expect(byRelay!.message).toMatch(/permission denied for function mssh_audit_prune/);
    // The prune role has no other way in.
    const direct = await failure(pruner.query(`DELETE FROM audit_events`));
    expect(direct!.message).toMatch(/permission denied for table audit_events/);

    const tooRecent = await failure(
      pruner.query(`SELECT mssh_audit_prune(now() - interval '1 hour', 'ops', 'cli', 'r1')`),
    );
    expect(tooRecent).toMatchObject({ code: '22023' });
    expect(tooRecent!.message).toMatch(/within the retention floor of 1 day/);
    // The owner may raise the floor; the relay role may not lower it.
    expect(await failure(relay.query(`UPDATE audit_retention SET min_age = interval '1 day'`))).toMatchObject({
      code: '42501',
    });
    await owner.query(`UPDATE audit_retention SET min_age = interval '500 days'`);
    const belowRaised = await failure(
      pruner.query(`SELECT mssh_audit_prune(now() - interval '365 days', 'ops', 'cli', 'r1')`),
    );
    expect(belowRaised).toMatchObject({ code: '22023' });
    await owner.query(`UPDATE audit_retention SET min_age = interval '1 day'`);

    // Same transaction: rolled back, neither the delete nor audit.pruned remain.
    await pruner.query('BEGIN');
    const n = (await pruner.query(`SELECT mssh_audit_prune(now() - interval '365 days', 'ops', 'cli', 'r1') AS n`))
      .rows[0].n;
    await pruner.query('ROLLBACK');
    expect(Number(n)).toBe(1);
    expect((await owner.query(`SELECT count(*) AS n FROM audit_events WHERE type = 'audit.pruned'`)).rows[0].n).toBe(
      '0',
    );
    expect((await owner.query(`SELECT count(*) AS n FROM audit_events WHERE actor = 'old'`)).rows[0].n).toBe('1');

    // Through the relay's code path (mssh-relay audit prune --database-url <prune role>).
    const asPruner = await openDatabase({ databaseUrl: urlAs(url, roles.prune) });
    const asRelay = await openDatabase({ databaseUrl: urlAs(url, roles.relay) });
    try {
      const refused = await new AuditLog({ db: asRelay.db, relayId: 'r1' })
        .prune(new Date(Date.now() - 365 * DAY), { actor: 'local-admin', source: 'cli' })
        .catch((e: unknown) => e);
      expect(refused).toBeInstanceOf(RelayError);
      expect((refused as RelayError).code).toBe('RLY_ERR_PRUNE_NOT_ALLOWED');
      const tooNew = await new AuditLog({ db: asPruner.db, relayId: 'r1' })
        .prune(new Date(Date.now() - 3_600_000), { actor: 'local-admin', source: 'cli' })
        .catch((e: unknown) => e);
      expect((tooNew as RelayError).code).toBe('RLY_ERR_PRUNE_TOO_RECENT');
      const r = await new AuditLog({ db: asPruner.db, relayId: 'r1' }).prune(new Date(Date.now() - 365 * DAY), {
        actor: 'local-admin',
        source: 'cli',
      });
      expect(r.deleted).toBe(1);
    } finally {
      await asPruner.close();
      await asRelay.close();
    }
    const rows = (
      await owner.query(
        `SELECT actor, type, code, source, details FROM audit_events WHERE actor IN ('old', 'recent', 'local-admin') ORDER BY id`,
      )
    ).rows;
    expect(rows.map((x) => x.actor)).toEqual(['recent', 'local-admin']);
    expect(rows[1]).toMatchObject({
      type: 'audit.pruned',
      code: 'AUD001I',
      source: 'cli',
      details: { deleted: 1, sessionsDeleted: 0, dbUser: roles.prune },
    });
  });

  it('the relay opens the database as the restricted role once the owner has migrated it', async () => {
    let d: Database | undefined;
    try {
      d = await openDatabase({ databaseUrl: urlAs(url, roles.relay) });
      const r = await d.db.execute(sql`SELECT current_user AS u`);
      expect((r as unknown as { rows: Array<{ u: string }> }).rows[0]!.u).toBe(roles.relay);
    } finally {
      await d?.close();
    }
  });
});

describe('audit triggers on pglite (one superuser: the owner)', () => {
  let t: Awaited<ReturnType<typeof openTestDatabase>>;
  beforeAll(async () => {
    t = await openTestDatabase('pglite');
  });
  afterAll(async () => {
    await t?.cleanup();
  });

  it('a closed session row cannot be rewritten; prune works through the function and audits itself', async () => {
    const db = t.database.db;
    await db.execute(
      sql`INSERT INTO sessions (id, relay_id, user_name, host, started_at, ended_at, end_reason) VALUES ('c1', 'r1', 'alice', 'laptop', now() - interval '800 days', now() - interval '799 days', 'client_closed')`,
    );
    const err = await db.execute(sql`UPDATE sessions SET user_name = 'nobody' WHERE id = 'c1'`).then(
      () => null,
      (e: unknown) => e,
    );
    expect(sqlState(err)).toBe('42501');
    await db.execute(
      sql`INSERT INTO audit_events (time, type, code, relay_id) VALUES (now() - interval '800 days', 'user.login', 'USR001I', 'r1')`,
    );
    const r = await new AuditLog({ db, relayId: 'r1' }).prune(new Date(Date.now() - 365 * DAY), {
      actor: 'local-admin',
      source: 'cli',
    });
    expect(r.deleted).toBeGreaterThanOrEqual(1);
    const pruned = await db.execute(sql`SELECT details FROM audit_events WHERE type = 'audit.pruned'`);
    expect((pruned as unknown as { rows: Array<{ details: Record<string, unknown> }> }).rows[0]!.details).toMatchObject(
      { sessionsDeleted: 1 },
    );
  });
});
