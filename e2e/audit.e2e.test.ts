/**
 * The audit trail through the real programs (built mssh-relay, mssh-agent, mssh) on PGlite and Postgres:
 * a session's start and end with user, host, source, exact byte counts and end reason; session.denied for
 * an offline machine; `mssh admin audit` filters and --json (403 for non-admins); and kill -9 of the relay
 * in the middle of 5 sessions, after which each has a session.end with relay_crashed.
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
import { adminSession, relaySession } from './fixtures/tunnel-client.js';
import { startEchoTarget, openSession, exchange, type EchoTarget } from './fixtures/echo-target.js';
import { waitFor } from './fixtures/net.js';
import { fixtures } from './fixtures/inject.js';

type Ev = AuditEventInfo;

const closed = (s: http2.ClientHttp2Stream) =>
  new Promise<void>((resolve) => (s.closed ? resolve() : s.once('close', () => resolve())));

describe.each(['pglite', 'postgres'] as const)('audit trail end to end on %s', (kind) => {
  let relay: Relay;
  let echo: EchoTarget;
  let admin: User;
  let h2: http2.ClientHttp2Session;
  let token: string;

  const audit = (args: string[]): Promise<Ev[]> => adminAuditEvents(admin, [...args, '--limit', '10000']);

  beforeAll(async () => {
    echo = await startEchoTarget(fixtures().sshd.port, 1000);
    relay = await startRelay(kind, [], { env: { MSSH_AUDIT_PROGRESS_MS: '200' } });
    await startAgent(relay, 'echo1', { target: `127.0.0.1:${echo.port}` });
    admin = await loginUser(relay);
    ({ h2, token } = await adminSession(relay));
  }, 120_000);
  afterAll(async () => {
    h2?.close();
    await stopAll();
    await echo?.close();
  });

  it('a session produces session.start and session.end with user, host, source, bytes and reason', async () => {
    const { stream, sessionId } = await openSession(h2, token, 'echo1');
    const n = 300_000;
    await exchange(stream, n, echo.greeting + n);
    stream.end();
    await closed(stream);
    const evs = await waitFor(
      async () => {
        const e = (await audit(['--type', 'session.*', '--host', 'echo1'])).filter((x) => x.sessionId === sessionId);
        return e.length === 2 ? e : null;
      },
      15_000,
      'session.start and session.end',
    );
    const [start, end] = evs as [Ev, Ev];
    expect(start).toMatchObject({ type: 'session.start', code: 'SES001I', actor: 'admin', host: 'echo1' });
    expect(start.source).toMatch(/127\.0\.0\.1/);
    expect(start.details).toMatchObject({ via: 'https' });
    expect(end).toMatchObject({
      type: 'session.end',
      code: 'SES002I',
      actor: 'admin',
      host: 'echo1',
      source: start.source,
    });
    expect(end.details.reason).toBe('client_closed');
    const up = end.details.bytesFromClient as number;
    const down = end.details.bytesToClient as number;
    expect(Math.abs(up - n)).toBeLessThanOrEqual(n * 0.01);
    expect(Math.abs(down - (n + echo.greeting))).toBeLessThanOrEqual((n + echo.greeting) * 0.01);
    expect(end.details.durationMs).toEqual(expect.any(Number));
    // The sessions index agrees, and the session is no longer active.
    const s = await admin.mssh(['admin', 'sessions', '--json']);
    const row = (JSON.parse(s.stdout) as Array<{ sessionId: string }>).find(
      (x: { sessionId: string }) => x.sessionId === sessionId,
    );
    expect(row).toMatchObject({
      user: 'admin',
      host: 'echo1',
      bytesFromClient: up,
      bytesToClient: down,
      endReason: 'client_closed',
      active: false,
    });
  });

  it('a session to an offline machine is refused and produces session.denied', async () => {
    await startAgent(relay, 'sleeper', { start: false });
    await expect(openSession(h2, token, 'sleeper')).rejects.toMatchObject({
      status: 503,
      body: { code: 'RLY_ERR_AGENT_OFFLINE' },
    });
    const denied = await waitFor(
      async () => (await audit(['--type', 'session.denied', '--host', 'sleeper']))[0],
      15_000,
      'session.denied',
    );
    expect(denied).toMatchObject({
      code: 'SES003W',
      actor: 'admin',
      host: 'sleeper',
      details: { reason: 'host_offline' },
    });
  });

  it('mssh admin audit filters by user, host, type and time, prints a JSON array or a table; a non-admin gets 403', async () => {
    const all = await audit([]);
    expect(all.map((e) => e.type)).toEqual(
      expect.arrayContaining([
        'relay.started',
        'agent.enrolled',
        'agent.connected',
        'user.login',
        'session.start',
        'session.end',
      ]),
    );
    const f = await audit(['--user', 'admin', '--host', 'echo1', '--type', 'session.start', '--since', '1h']);
    expect(f.length).toBeGreaterThan(0);
    expect(f.every((e) => e.actor === 'admin' && e.host === 'echo1' && e.type === 'session.start')).toBe(true);
    expect(await audit(['--type', 'session.start', '--until', '1h'])).toEqual([]);
    expect(await audit(['--host', 'no-such-host'])).toEqual([]);
    const agents = await audit(['--type', 'agent.*']);
    expect(agents.length).toBeGreaterThan(0);
    expect(agents.find((e) => e.type === 'agent.connected')).toMatchObject({ actor: 'agent:echo1', host: 'echo1' });
    expect(agents.every((e) => e.type.startsWith('agent.'))).toBe(true);

    const table = await admin.mssh(['admin', 'audit', '--type', 'session.end']);
    expect(table.code, table.stderr).toBe(0);
    expect(table.stdout).toMatch(/^TIME\s+TYPE\s+CODE\s+ACTOR\s+HOST\s+SOURCE\s+UP\s+DOWN\s+DETAILS/);
    expect(table.stdout).toContain('session.end');
    const bad = await admin.mssh(['admin', 'audit', '--since', 'yesterday']);
    expect(bad.code).toBe(64); // usage
    expect(bad.stderr).toMatch(/CLI_ERR_USAGE/);

    const add = await relay.cli(['user', 'add', 'bob', '--password-stdin'], 'bob-password-1\n');
    expect(add.code, add.stderr).toBe(0);
    const bob = await loginUser(relay, 'bob', 'bob-password-1');
    for (const cmd of [
      ['admin', 'audit'],
      ['admin', 'sessions'],
    ]) {
      const r = await bob.mssh(cmd);
      expect(r.code).toBe(1);
      expect(r.stderr).toMatch(/CLI_ERR_FORBIDDEN/);
    }
  });

  it('mssh-relay audit prune goes through the running relay and records audit.pruned', async () => {
    const r = await relay.cli(['audit', 'prune', '--older-than', '365d']);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toMatch(/Deleted 0 audit event\(s\) older than/);
    const pruned = await waitFor(async () => (await audit(['--type', 'audit.pruned']))[0], 10_000, 'audit.pruned');
    expect(pruned).toMatchObject({ code: 'AUD001I', actor: 'local-admin', details: { deleted: 0 } });
    const bad = await relay.cli(['audit', 'prune', '--older-than', '5m']);
    expect(bad.code).toBe(64); // usage
    expect(bad.stderr).toContain('[CLI_ERR_USAGE]');
    expect(bad.stderr).toMatch(/--older-than.*at least one day/);
  });

  it('a graceful stop ends running sessions with relay_shutdown and records relay.stopped', async () => {
    const s = await openSession(h2, token, 'echo1');
    await exchange(s.stream, 2_000, 3_000);
    await relay.restart();
    const end = await waitFor(
      async () => (await audit(['--type', 'session.end'])).find((e) => e.sessionId === s.sessionId),
      20_000,
      'session.end',
    );
    expect(end.details).toMatchObject({ reason: 'relay_shutdown', bytesFromClient: 2_000, bytesToClient: 3_000 });
    expect((await audit(['--type', 'relay.stopped'])).length).toBeGreaterThan(0);
    s.stream.destroy();
    h2.close();
    h2 = await relaySession(relay);
    // The agent redials by itself; the next test needs it.
    await waitFor(
      async () => {
        const ls = await admin.mssh(['ls', '--json']);
        return (
          ls.code === 0 &&
          (JSON.parse(ls.stdout) as Array<{ name: string; online: boolean }>).some(
            (h) => h.name === 'echo1' && h.online,
          )
        );
      },
      20_000,
      'echo1 online again',
    );
  });

  it('kill -9 of the relay in the middle of 5 sessions: after the restart each has session.end relay_crashed', async () => {
    const open: Array<{ stream: http2.ClientHttp2Stream; sessionId: string; sent: number }> = [];
    for (let i = 0; i < 5; i++) {
      const s = await openSession(h2, token, 'echo1');
      const sent = 10_000 * (i + 1);
      await exchange(s.stream, sent, echo.greeting + sent);
      open.push({ ...s, sent });
    }
    // Wait until the relay wrote the counters of all five (every 200 ms here).
    await waitFor(
      async () => {
        const r = await admin.mssh(['admin', 'sessions', '--active', '--json']);
        const live = JSON.parse(r.stdout) as Array<{ sessionId: string; bytesFromClient: number }>;
        return open.every((o) => live.some((l) => l.sessionId === o.sessionId && l.bytesFromClient === o.sent));
      },
      15_000,
      'five live sessions',
    );
    await new Promise((r) => setTimeout(r, 1_000));
    await relay.proc.stop('SIGKILL');
    await relay.restart();
    const ends = await waitFor(
      async () => {
        const e = (await audit(['--type', 'session.end'])).filter((x) => open.some((o) => o.sessionId === x.sessionId));
        return e.length >= 5 ? e : null;
      },
      20_000,
      'five session.end events',
    );
    expect(ends).toHaveLength(5);
    for (const o of open) {
      const e = ends.find((x) => x.sessionId === o.sessionId)!;
      expect(e.details.reason).toBe('relay_crashed');
      expect(e.details.bytesFromClient).toBe(o.sent);
      expect(e.details.bytesToClient).toBe(o.sent + echo.greeting);
    }
    const started = await audit(['--type', 'relay.started']);
    expect(started.at(-1)!.details.recoveredSessions).toBeGreaterThanOrEqual(5);
    const active = await admin.mssh(['admin', 'sessions', '--active', '--json']);
    expect(active.stdout).not.toMatch(new RegExp(open.map((o) => o.sessionId).join('|')));
    for (const o of open) o.stream.destroy();
  });
});
