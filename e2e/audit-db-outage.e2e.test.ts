/**
 * Postgres stops while sessions run (a private cluster, never the shared server): running sessions go
 * on, new ones are refused with RLY_ERR_DATABASE_UNAVAILABLE (fail closed: no session without its
 * session.start), a session that ends during the outage gets its session.end once the database is back,
 * new sessions work again, and nothing written before is lost. Postgres only (PGlite is in-process).
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type http2 from 'node:http2';
import type { AuditEventInfo } from '@mssh/protocol';
import {
  adminAuditEvents,
  startRelay,
  startAgent,
  loginUser,
  stopAll,
  type Relay,
  type User,
} from './fixtures/stack.js';
import { adminSession } from './fixtures/tunnel-client.js';
import { startEchoTarget, openSession, exchange, type EchoTarget } from './fixtures/echo-target.js';
import { startPrivatePostgres, type PrivatePostgres } from './fixtures/private-postgres.js';
import { waitFor } from './fixtures/net.js';
import { fixtures } from './fixtures/inject.js';

type Ev = AuditEventInfo;

describe('database outage (private Postgres cluster)', () => {
  let pg: PrivatePostgres;
  let relay: Relay;
  let echo: EchoTarget;
  let admin: User;
  let h2: http2.ClientHttp2Session;
  let token: string;

  const audit = (): Promise<Ev[]> => adminAuditEvents(admin, ['--limit', '10000']);

  beforeAll(async () => {
    pg = await startPrivatePostgres();
    echo = await startEchoTarget(fixtures().sshd.port, 1000);
    relay = await startRelay('postgres', [], { databaseUrl: pg.url, env: { MSSH_AUDIT_PROGRESS_MS: '200' } });
    await startAgent(relay, 'echo1', { target: `127.0.0.1:${echo.port}` });
    admin = await loginUser(relay);
    ({ h2, token } = await adminSession(relay));
  }, 120_000);
  afterAll(async () => {
    h2?.close();
    await stopAll();
    await echo?.close();
    pg?.remove();
  });

  it('running sessions continue, new ones are refused with the database code, and all is written once it is back', async () => {
    const a = await openSession(h2, token, 'echo1');
    await exchange(a.stream, 20_000, 21_000);
    const b = await openSession(h2, token, 'echo1');
    await exchange(b.stream, 5_000, 6_000);
    const before = await audit();
    expect(before.filter((e) => e.type === 'session.start').map((e) => e.sessionId)).toEqual(
      expect.arrayContaining([a.sessionId, b.sessionId]),
    );

    pg.stop();
    // Running sessions go on.
    await exchange(a.stream, 30_000, 30_000);
    // New sessions are refused: nothing may be forwarded without a committed session.start.
    const refused = await openSession(h2, token, 'echo1').then(
      () => null,
      (e: { status: number; body: { code: string } }) => e,
    );
    expect(refused?.status).toBe(503);
    expect(refused?.body.code).toBe('RLY_ERR_DATABASE_UNAVAILABLE');
    // A session that ends during the outage is recorded once the database is back.
    b.stream.end();
    await new Promise<void>((resolve) => (b.stream.closed ? resolve() : b.stream.once('close', () => resolve())));
    await exchange(a.stream, 1_000, 1_000);

    pg.start();
    const c = await waitFor(
      async () => openSession(h2, token, 'echo1').catch(() => null),
      30_000,
      'a new session after Postgres is back',
    );
    await exchange(c.stream, 1_000, 2_000);
    a.stream.end();
    c.stream.end();

    const after = await waitFor(
      async () => {
        const evs = await audit().catch(() => null);
        if (!evs) return null;
        const ends = evs.filter(
          (e) => e.type === 'session.end' && [a.sessionId, b.sessionId, c.sessionId].includes(e.sessionId!),
        );
        return ends.length === 3 ? evs : null;
      },
      30_000,
      'session.end of the three sessions',
    );
    // Nothing written before the outage is lost.
    const ids = new Set(after.map((e) => e.id));
    expect(before.every((e) => ids.has(e.id))).toBe(true);
    const end = (sid: string) => after.find((e) => e.type === 'session.end' && e.sessionId === sid)!;
    expect(end(a.sessionId).details).toMatchObject({
      reason: 'client_closed',
      bytesFromClient: 51_000,
      bytesToClient: 52_000,
    });
    expect(end(b.sessionId).details).toMatchObject({
      reason: 'client_closed',
      bytesFromClient: 5_000,
      bytesToClient: 6_000,
    });
    expect(after.some((e) => e.type === 'session.start' && e.sessionId === c.sessionId)).toBe(true);
    // Every session start has its end; none was started without a start.
    const starts = after.filter((e) => e.type === 'session.start').map((e) => e.sessionId);
    const ends = after.filter((e) => e.type === 'session.end').map((e) => e.sessionId);
    expect(starts.sort()).toEqual(ends.sort());
  });
});
