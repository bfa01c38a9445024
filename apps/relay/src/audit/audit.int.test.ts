/**
 * The audit trail on a real database of each kind: the session-start gate (committed before it
 * resolves, group committed), session ends and byte progress, crash recovery, the append-only trigger
 * and prune, and the admin audit API (filters, 403 for non-admins).
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { and, eq, sql } from 'drizzle-orm';
import { auditEvents, sessions } from '@mssh/migrations';
import { PATHS } from '@mssh/protocol';
import { ADMIN, ALICE, DB_KINDS, apiLogin, silentLogger, startTestRelay, type TestRelay } from '../test-support.js';
import { AuditWriter } from './audit-writer.js';
import { SessionRecorder } from './session-recorder.js';
import { AuditLog } from './audit-log.js';
import { rootMessage } from '../db/index.js';

/** drizzle wraps driver errors: match the innermost message. */
async function refused(p: Promise<unknown>, re: RegExp): Promise<void> {
  const err = await p.then(
    () => null,
    (e: unknown) => e,
  );
  expect(err, 'should have been refused').not.toBeNull();
  expect(rootMessage(err)).toMatch(re);
}

describe.each(DB_KINDS)('audit trail on %s', (kind) => {
  let r: TestRelay;
  let adminToken: string;
  let aliceToken: string;
  const db = () => r.database.db;
  const eventsOf = (sessionId: string) =>
    db().select().from(auditEvents).where(eq(auditEvents.sessionId, sessionId)).orderBy(auditEvents.id);

  const login = (u: { name: string; password: string }): Promise<string> => apiLogin(r, u.name, u.password);

  beforeAll(async () => {
    r = await startTestRelay(kind);
    adminToken = await login(ADMIN);
    aliceToken = await login(ALICE);
  });
  afterAll(async () => {
    await r?.close();
  });

  it('a session start is committed when start() resolves; the end carries reason and bytes', async () => {
    const rec = r.recorder;
    const s = await rec.start({
      sessionId: 'sess-1',
      user: 'alice',
      host: 'laptop',
      source: '127.0.0.9',
      via: 'https',
      agentId: 'agent-1',
    });
    // Committed already: visible to another connection without any flush.
    const [row] = await db().select().from(sessions).where(eq(sessions.id, 'sess-1'));
    expect(row).toMatchObject({
      userName: 'alice',
      host: 'laptop',
      source: '127.0.0.9',
      via: 'https',
      relayId: 'test-relay',
      endedAt: null,
    });
    const started = await eventsOf('sess-1');
    expect(started.map((e) => [e.type, e.code, e.actor, e.host, e.source])).toEqual([
      ['session.start', 'SES001I', 'alice', 'laptop', '127.0.0.9'],
    ]);

    let up = 0;
    let down = 0;
    s.attachCounters(() => ({ bytesFromClient: up, bytesToClient: down }));
    up = 1234;
    down = 56789;
    await rec.writeProgress();
    const [mid] = await db().select().from(sessions).where(eq(sessions.id, 'sess-1'));
    expect([mid!.bytesUp, mid!.bytesDown, mid!.endedAt]).toEqual([1234, 56789, null]);
    expect(rec.active().map((a) => a.sessionId)).toContain('sess-1');

    up = 2000;
    down = 60000;
    s.end({ reason: 'client_closed' });
    s.end({ reason: 'error' }); // ignored: one end per session
    await r.audit.flush();
    const [done] = await db().select().from(sessions).where(eq(sessions.id, 'sess-1'));
    expect(done).toMatchObject({ bytesUp: 2000, bytesDown: 60000, endReason: 'client_closed' });
    expect(done!.endedAt).toBeInstanceOf(Date);
    const evs = await eventsOf('sess-1');
    expect(evs.map((e) => e.type)).toEqual(['session.start', 'session.end']);
    expect(evs[1]!.details).toMatchObject({
      reason: 'client_closed',
      bytesFromClient: 2000,
      bytesToClient: 60000,
      via: 'https',
    });
    expect(typeof evs[1]!.details.durationMs).toBe('number');
  });

  it('concurrent starts are group committed: far fewer transactions than starts, every row there', async () => {
    const writer = new AuditWriter({ db: db(), logger: silentLogger() });
    const rec = new SessionRecorder({ db: db(), writer, relayId: 'batch-relay', logger: silentLogger() });
    const n = 200;
    const all = await Promise.all(
      Array.from({ length: n }, (_, i) =>
        rec.start({ sessionId: `batch-${i}`, user: 'alice', host: 'h', source: null, via: 'https' }),
      ),
    );
    expect(all).toHaveLength(n);
    expect(writer.batches).toBeLessThan(n / 4);
    const [{ c }] = (await db()
      .select({ c: sql<number>`count(*)::int` })
      .from(sessions)
      .where(eq(sessions.relayId, 'batch-relay'))) as [{ c: number }];
    expect(c).toBe(n);
    for (const s of all) s.end({ reason: 'client_closed', bytesFromClient: 1, bytesToClient: 2 });
    expect(await writer.drain(10_000)).toBe(true);
    const [{ open }] = (await db()
      .select({ open: sql<number>`count(*)::int` })
      .from(sessions)
      .where(and(eq(sessions.relayId, 'batch-relay'), sql`ended_at IS NULL`))) as [{ open: number }];
    expect(open).toBe(0);
  });

  it('a batch holding both the start and the end of one session writes both (the end goes into the INSERT)', async () => {
    const writer = new AuditWriter({ db: db(), logger: silentLogger() });
    const t = new Date();
    const start = {
      id: 'same-batch-1',
      relayId: 'same-relay',
      userName: 'alice',
      host: 'h',
      source: null,
      via: 'https',
      startedAt: t,
    };
    const event = {
      time: t,
      type: 'session.start',
      code: 'AUD_SESSION_START',
      relayId: 'same-relay',
      actor: 'alice',
      host: 'h',
      source: null,
      sessionId: 'same-batch-1',
      details: {},
    };
    // Queued in the same tick: one batch. The parts of one statement would not see each other's rows.
    const started = writer.commit({ starts: [start], events: [event] });
    writer.enqueue({
      ends: [
        {
          id: 'same-batch-1',
          endedAt: new Date(t.getTime() + 5),
          bytesUp: 7,
          bytesDown: 9,
          endReason: 'client_closed',
        },
      ],
    });
    await started;
    expect(await writer.drain(10_000)).toBe(true);
    expect(writer.batches).toBe(1);
    const [row] = await db().select().from(sessions).where(eq(sessions.id, 'same-batch-1'));
    expect(row).toMatchObject({ endReason: 'client_closed', bytesUp: 7, bytesDown: 9 });
    expect(row!.endedAt).not.toBeNull();
    expect((await eventsOf('same-batch-1')).map((e) => e.type)).toEqual(['session.start']);
  });

  it('a start the database refuses is refused (fail closed) without sinking the other starts of its batch', async () => {
    const writer = new AuditWriter({ db: db(), logger: silentLogger() });
    const rec = new SessionRecorder({ db: db(), writer, relayId: 'dup-relay', logger: silentLogger() });
    await rec.start({ sessionId: 'dup-0', user: 'alice', host: 'h', source: null, via: 'https' });
    const results = await Promise.allSettled([
      rec.start({ sessionId: 'dup-1', user: 'alice', host: 'h', source: null, via: 'https' }),
      rec.start({ sessionId: 'dup-0', user: 'alice', host: 'h', source: null, via: 'https' }),
      rec.start({ sessionId: 'dup-2', user: 'alice', host: 'h', source: null, via: 'jump' }),
    ]);
    expect(results.map((x) => x.status)).toEqual(['fulfilled', 'rejected', 'fulfilled']);
    expect((results[1] as PromiseRejectedResult).reason).toMatchObject({
      code: 'RLY_ERR_DATABASE_UNAVAILABLE',
      statusCode: 503,
    });
    const starts = await db()
      .select()
      .from(auditEvents)
      .where(and(eq(auditEvents.type, 'session.start'), sql`session_id LIKE 'dup-%'`));
    expect(starts.map((e) => e.sessionId).sort()).toEqual(['dup-0', 'dup-1', 'dup-2']);
    expect(
      rec
        .active()
        .map((a) => a.sessionId)
        .sort(),
    ).toEqual(['dup-0', 'dup-1', 'dup-2']);
  });

  it('a restart closes the sessions a crashed run left open: relay_crashed, last written bytes, once', async () => {
    const crashed = new SessionRecorder({
      db: db(),
      writer: new AuditWriter({ db: db(), logger: silentLogger() }),
      relayId: 'crash-relay',
      logger: silentLogger(),
    });
    const ids = ['c-1', 'c-2', 'c-3'];
    for (const [i, id] of ids.entries()) {
      const s = await crashed.start({
        sessionId: id,
        user: 'bob',
        host: 'box',
        source: '10.0.0.1',
        via: i === 2 ? 'jump' : 'https',
      });
      s.attachCounters(() => ({ bytesFromClient: 100 * (i + 1), bytesToClient: 1000 * (i + 1) }));
    }
    await crashed.writeProgress();
    // Another relay's open session must not be touched.
    const other = await r.recorder.start({
      sessionId: 'other-open',
      user: 'bob',
      host: 'box',
      source: null,
      via: 'https',
    });
    // "kill -9": crashed never ends its sessions. The next run of the same relay id:
    const next = new SessionRecorder({
      db: db(),
      writer: new AuditWriter({ db: db(), logger: silentLogger() }),
      relayId: 'crash-relay',
      logger: silentLogger(),
    });
    expect(await next.recoverCrashed()).toBe(3);
    expect(await next.recoverCrashed()).toBe(0);
    for (const [i, id] of ids.entries()) {
      const evs = await eventsOf(id);
      expect(evs.map((e) => e.type)).toEqual(['session.start', 'session.end']);
      expect(evs[1]!.details).toMatchObject({
        reason: 'relay_crashed',
        bytesFromClient: 100 * (i + 1),
        bytesToClient: 1000 * (i + 1),
      });
      expect(evs[1]!.actor).toBe('bob');
      const [row] = await db().select().from(sessions).where(eq(sessions.id, id));
      expect(row!.endReason).toBe('relay_crashed');
    }
    const [o] = await db().select().from(sessions).where(eq(sessions.id, 'other-open'));
    expect(o!.endedAt).toBeNull();
    other.end({ reason: 'client_closed' });
    await r.audit.flush();
  });

  it("a fleet survivor closes a lost relay's sessions once; that relay's own later end adds no second session.end", async () => {
    const writer = new AuditWriter({ db: db(), logger: silentLogger() });
    const lost = new SessionRecorder({ db: db(), writer, relayId: 'lost-relay', logger: silentLogger() });
    const s = await lost.start({ sessionId: 'fleet-1', user: 'bob', host: 'laptop', source: null, via: 'https' });
    const survivorA = new SessionRecorder({ db: db(), writer, relayId: 'survivor-a', logger: silentLogger() });
    const survivorB = new SessionRecorder({ db: db(), writer, relayId: 'survivor-b', logger: silentLogger() });
    // Two survivors race: exactly one closes it.
    const closed = await Promise.all([survivorA.recoverCrashed('lost-relay'), survivorB.recoverCrashed('lost-relay')]);
    expect(closed.sort()).toEqual([0, 1]);
    // The lost relay was only cut off: its session ends later and records its end as usual.
    s.end({ reason: 'client_closed', bytesFromClient: 5, bytesToClient: 7 });
    await writer.drain();
    const evs = await eventsOf('fleet-1');
    expect(evs.map((e) => e.type)).toEqual(['session.start', 'session.end']);
    expect(evs[1]!.details).toMatchObject({ reason: 'relay_crashed' });
    expect(['survivor-a', 'survivor-b']).toContain((evs[1]!.details as { closedBy?: string }).closedBy);
    const [row] = await db().select().from(sessions).where(eq(sessions.id, 'fleet-1'));
    expect(row!.endReason).toBe('relay_crashed');
    writer.close();
  });

  it('UPDATE, DELETE and TRUNCATE on audit_events fail; prune removes only older rows and audits itself', async () => {
    const old = new Date(Date.now() - 400 * 86_400_000);
    await db()
      .insert(auditEvents)
      .values([
        { type: 'test.old', code: 'TST001I', relayId: 'test-relay', time: old },
        { type: 'test.old', code: 'TST001I', relayId: 'test-relay', time: new Date(old.getTime() + 1000) },
        { type: 'test.recent', code: 'TST002I', relayId: 'test-relay', time: new Date(Date.now() - 300 * 86_400_000) },
      ]);
    await refused(db().execute(sql`UPDATE audit_events SET type = 'x' WHERE type = 'test.old'`), /append-only/);
    await refused(db().execute(sql`DELETE FROM audit_events WHERE type = 'test.old'`), /append-only/);
    await refused(db().execute(sql`TRUNCATE audit_events`), /append-only/);
    // Even inside a prune-like transaction, rows newer than the cut-off stay.
    await refused(
      db().transaction(async (tx) => {
        await tx.execute(
          sql`SELECT set_config('mssh.audit_prune_before', ${new Date(Date.now() - 365 * 86_400_000).toISOString()}, true)`,
        );
        await tx.execute(sql`DELETE FROM audit_events WHERE type = 'test.recent'`);
      }),
      /append-only/,
    );

    const total = async () =>
      (
        (await db()
          .select({ c: sql<number>`count(*)::int` })
          .from(auditEvents)) as [{ c: number }]
      )[0].c;
    const before = await total();
    const log = new AuditLog({ db: db(), relayId: 'test-relay' });
    const res = await log.prune(new Date(Date.now() - 365 * 86_400_000), { actor: 'local-admin', source: 'cli' });
    expect(res.deleted).toBe(2);
    expect(await total()).toBe(before - 2 + 1);
    const types = (
      await db()
        .select()
        .from(auditEvents)
        .where(sql`type IN ('test.old', 'test.recent', 'audit.pruned')`)
    )
      .map((e) => e.type)
      .sort();
    expect(types).toEqual(['audit.pruned', 'test.recent']);
    const [pruned] = await db().select().from(auditEvents).where(eq(auditEvents.type, 'audit.pruned'));
    expect(pruned).toMatchObject({ code: 'AUD001I', actor: 'local-admin', details: { deleted: 2 } });
    // The setting was local to the prune transaction: deleting is refused again.
    await refused(db().execute(sql`DELETE FROM audit_events WHERE type = 'audit.pruned'`), /append-only/);
  });

  it('the views give one row per session and failed logins per source', async () => {
    const bad = await r.app.inject({
      method: 'POST',
      url: PATHS.login,
      payload: { user: 'alice', password: 'wrong-password' },
    });
    expect(bad.statusCode).toBe(401);
    await r.audit.flush();
    const s = await db().execute(
      sql`SELECT session_id, user_name, bytes_up, bytes_down, end_reason, active, duration_s FROM audit_sessions WHERE session_id = 'sess-1'`,
    );
    expect((s as unknown as { rows: unknown[] }).rows[0]).toMatchObject({
      user_name: 'alice',
      end_reason: 'client_closed',
      active: false,
    });
    const f = await db().execute(sql`SELECT source, failures, users FROM audit_failed_logins`);
    const rows = (f as unknown as { rows: Array<{ source: string; failures: number | string; users: string[] }> }).rows;
    expect(rows.some((x) => Number(x.failures) >= 1 && x.users.includes('alice'))).toBe(true);
  });

  it('logins are audited with the reason; rejected tokens are sampled per source', async () => {
    await r.audit.flush();
    const failed = await db()
      .select()
      .from(auditEvents)
      .where(and(eq(auditEvents.type, 'user.login'), eq(auditEvents.code, 'USR001W')));
    expect(failed.some((e) => e.actor === 'alice' && e.details.reason === 'bad_password')).toBe(true);
    const ok = await db()
      .select()
      .from(auditEvents)
      .where(and(eq(auditEvents.type, 'user.login'), eq(auditEvents.code, 'USR001I')));
    expect(ok.map((e) => e.actor)).toEqual(expect.arrayContaining(['admin', 'alice']));
    for (let i = 0; i < 3; i++) {
      const res = await r.app.inject({
        method: 'GET',
        url: PATHS.whoami,
        headers: { authorization: 'Bearer not-a-jwt' },
      });
      expect(res.statusCode).toBe(401);
    }
    await r.audit.flush();
    const rejected = await db().select().from(auditEvents).where(eq(auditEvents.type, 'token.rejected'));
    expect(rejected).toHaveLength(1);
    expect(rejected[0]).toMatchObject({ code: 'TOK001W', details: { code: 'AUTH_ERR_INVALID_TOKEN' } });
  });

  it('GET /v1/admin/audit filters by user, host, type and time; non-admins get 403', async () => {
    const base = Date.now() - 3_600_000;
    await db()
      .insert(auditEvents)
      .values([
        {
          type: 'session.denied',
          code: 'SES003W',
          relayId: 'test-relay',
          actor: 'carol',
          host: 'alpha',
          time: new Date(base),
          details: { reason: 'host_offline' },
        },
        {
          type: 'session.denied',
          code: 'SES003W',
          relayId: 'test-relay',
          actor: 'carol',
          host: 'bravo',
          time: new Date(base + 60_000),
          details: { reason: 'host_offline' },
        },
        { type: 'user.logout', code: 'USR002I', relayId: 'test-relay', actor: 'carol', time: new Date(base + 120_000) },
        {
          type: 'session.denied',
          code: 'SES003W',
          relayId: 'test-relay',
          actor: 'dave',
          host: 'alpha',
          time: new Date(base + 180_000),
        },
      ]);
    const q = async (query: string, token = adminToken) =>
      r.app.inject({
        method: 'GET',
        url: `${PATHS.adminAudit}?${query}`,
        headers: { authorization: `Bearer ${token}` },
      });
    const ids = async (query: string) => {
      const res = await q(query);
      expect(res.statusCode, res.body).toBe(200);
      return (res.json().events as Array<{ actor: string; host: string; type: string }>).map(
        (e) => `${e.actor}/${e.host}/${e.type}`,
      );
    };
    expect(await ids('user=carol')).toEqual([
      'carol/alpha/session.denied',
      'carol/bravo/session.denied',
      'carol/null/user.logout',
    ]);
    expect(await ids('user=carol&host=alpha')).toEqual(['carol/alpha/session.denied']);
    expect(await ids('host=alpha&type=session.denied')).toEqual([
      'carol/alpha/session.denied',
      'dave/alpha/session.denied',
    ]);
    expect(await ids('user=carol&type=user.*')).toEqual(['carol/null/user.logout']);
    expect(await ids(`host=alpha&since=${new Date(base + 1000).toISOString()}`)).toEqual(['dave/alpha/session.denied']);
    expect(await ids(`user=carol&until=${new Date(base + 90_000).toISOString()}`)).toEqual([
      'carol/alpha/session.denied',
      'carol/bravo/session.denied',
    ]);
    expect(await ids('user=carol&limit=1')).toEqual(['carol/null/user.logout']);
    expect((await q('limit=0')).statusCode).toBe(400);
    const forbidden = await q('user=carol', aliceToken);
    expect(forbidden.statusCode).toBe(403);
    expect(forbidden.json().code).toBe('AUTH_ERR_FORBIDDEN');
    const sess = await r.app.inject({
      method: 'GET',
      url: PATHS.adminSessions,
      headers: { authorization: `Bearer ${aliceToken}` },
    });
    expect(sess.statusCode).toBe(403);
  });

  it('a run id is on the sessions row and every row of its sessions (crash recovery too); ?run= returns them', async () => {
    const run = 'a1b2c3d4e5f60718';
    const one = await r.recorder.start({
      sessionId: 'run-1',
      user: 'erin',
      host: 'web-1',
      source: null,
      via: 'https',
      runId: run,
    });
    one.end({ reason: 'client_closed' });
    r.audit.sessionDenied({ user: 'erin', host: 'web-2', source: null, reason: 'host_offline', runId: run });
    const crashed = new SessionRecorder({
      db: db(),
      writer: new AuditWriter({ db: db(), logger: silentLogger() }),
      relayId: 'run-crash-relay',
      logger: silentLogger(),
    });
    await crashed.start({ sessionId: 'run-2', user: 'erin', host: 'web-3', source: null, via: 'https', runId: run });
    const open = await r.recorder.start({
      sessionId: 'not-run',
      user: 'erin',
      host: 'web-1',
      source: null,
      via: 'https',
    });
    // A session's run is fixed at its start (the sessions guard of migration 0008).
    await refused(
      db().execute(sql`UPDATE sessions SET run_id = ${run} WHERE id = 'not-run'`),
      /only the byte counters and the end/,
    );
    open.end({ reason: 'client_closed' });
    const recovering = new SessionRecorder({
      db: db(),
      writer: new AuditWriter({ db: db(), logger: silentLogger() }),
      relayId: 'run-crash-relay',
      logger: silentLogger(),
    });
    expect(await recovering.recoverCrashed()).toBe(1);
    await r.audit.flush();
    const [row] = await db().select().from(sessions).where(eq(sessions.id, 'run-1'));
    expect(row!.runId).toBe(run);
    const res = await r.app.inject({
      method: 'GET',
      url: `${PATHS.adminAudit}?run=${run}`,
      headers: { authorization: `Bearer ${adminToken}` },
    });
    expect(res.statusCode, res.body).toBe(200);
    const evs = res.json().events as Array<{ type: string; host: string; runId: string; details: { reason?: string } }>;
    expect(evs.map((e) => `${e.host}/${e.type}${e.details.reason ? `/${e.details.reason}` : ''}`).sort()).toEqual([
      'web-1/session.end/client_closed',
      'web-1/session.start',
      'web-2/session.denied/host_offline',
      'web-3/session.end/relay_crashed',
      'web-3/session.start',
    ]);
    expect(evs.every((e) => e.runId === run)).toBe(true);
    const bad = await r.app.inject({
      method: 'GET',
      url: `${PATHS.adminAudit}?run=NOT-A-RUN`,
      headers: { authorization: `Bearer ${adminToken}` },
    });
    expect(bad.statusCode).toBe(400);
    const [view] = (
      (await db().execute(sql`SELECT run_id FROM audit_sessions WHERE session_id = 'run-1'`)) as unknown as {
        rows: Array<{ run_id: string }>;
      }
    ).rows;
    expect(view!.run_id).toBe(run);
  });

  it('GET /v1/admin/sessions lists sessions with live byte counts; --active only the open ones', async () => {
    const s = await r.recorder.start({
      sessionId: 'live-1',
      user: 'alice',
      host: 'laptop',
      source: '127.0.0.1',
      via: 'https',
    });
    s.attachCounters(() => ({ bytesFromClient: 42, bytesToClient: 4242 }));
    const get = async (query: string) => {
      const res = await r.app.inject({
        method: 'GET',
        url: `${PATHS.adminSessions}?${query}`,
        headers: { authorization: `Bearer ${adminToken}` },
      });
      expect(res.statusCode, res.body).toBe(200);
      return res.json().sessions as Array<{
        sessionId: string;
        active: boolean;
        bytesFromClient: number;
        bytesToClient: number;
        user: string;
      }>;
    };
    const active = await get('active=true');
    expect(active.map((x) => x.sessionId)).toContain('live-1');
    expect(active.every((x) => x.active)).toBe(true);
    expect(active.find((x) => x.sessionId === 'live-1')).toMatchObject({
      user: 'alice',
      bytesFromClient: 42,
      bytesToClient: 4242,
    });
    const all = await get('limit=1000');
    expect(all.find((x) => x.sessionId === 'sess-1')).toMatchObject({
      active: false,
      bytesFromClient: 2000,
      bytesToClient: 60000,
    });
    s.end({ reason: 'client_closed' });
    await r.audit.flush();
  });
});
