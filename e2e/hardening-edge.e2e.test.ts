/**
 * Issue 16 items 3 and 7 through the real relay: per-address limits at the edge (connections, unanswered
 * requests, body deadline, the API's stream limit, cheap request logging) and forwarded source addresses
 * behind a trusted proxy (ports stripped, non-addresses dropped, limits keyed on the address).
 * The flood itself (a running shell during 5 x 10,000 streams) is in hardening-flood.solo.e2e.test.ts.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import http2 from 'node:http2';
import { PATHS } from '@mssh/protocol';
import { startRelay, stopAll, ADMIN_PASSWORD, type Relay } from './fixtures/stack.js';
import { h2From, postJson, rawRequest } from './fixtures/h2-raw.js';
import { waitFor } from './fixtures/net.js';

afterAll(stopAll);

const { NGHTTP2_REFUSED_STREAM, NGHTTP2_ENHANCE_YOUR_CALM } = http2.constants;

/** A login stream that announces a body and never sends it; resolves with how it ended. */
function stalledLogin(
  s: http2.ClientHttp2Session,
  timeoutMs = 20_000,
): Promise<{ status: number; rst: number; body: unknown; ms: number }> {
  const t0 = Date.now();
  return new Promise((resolve) => {
    const req = s.request(
      { ':method': 'POST', ':path': PATHS.login, 'content-type': 'application/json', 'content-length': '100' },
      { endStream: false },
    );
    let status = 0;
    const chunks: Buffer[] = [];
    const timer = setTimeout(() => req.close(http2.constants.NGHTTP2_CANCEL), timeoutMs);
    req.on('response', (h) => (status = Number(h[':status'])));
    req.on('data', (d: Buffer) => chunks.push(d));
    req.on('error', () => {});
    req.on('close', () => {
      clearTimeout(timer);
      let body: unknown = Buffer.concat(chunks).toString();
      try {
        body = JSON.parse(body as string);
      } catch {
        /* not JSON */
      }
      resolve({ status, rst: req.rstCode ?? 0, body, ms: Date.now() - t0 });
    });
  });
}

describe('per-address limits at the edge', () => {
  let relay: Relay;
  const sessions: http2.ClientHttp2Session[] = [];
  const session = async (from: string) => {
    const s = await h2From(relay, from);
    sessions.push(s);
    return s;
  };

  beforeAll(async () => {
    relay = await startRelay('pglite', [
      '--max-connections-per-address',
      '2',
      '--max-pending-per-address',
      '4',
      '--body-timeout',
      '2',
    ]);
  });
  afterAll(async () => {
    for (const s of sessions) s.destroy();
    await relay?.proc.stop();
  });

  it('API connections advertise a small stream limit (128), not 10,000', async () => {
    const s = await session('127.0.0.10');
    // h2From returns before the relay's SETTINGS frame is read: it arrives as this event.
    const settings = await new Promise<http2.Settings | null>((resolve) => {
      const timer = setTimeout(() => resolve(null), 5_000);
      s.once('remoteSettings', (v: http2.Settings) => {
        clearTimeout(timer);
        resolve(v);
      });
    });
    expect(settings?.maxConcurrentStreams).toBe(128);
    s.close();
  });

  it('a third connection from one address gets GOAWAY ENHANCE_YOUR_CALM; other addresses, and the same one after a close, connect', async () => {
    const a = await session('127.0.0.3');
    const b = await session('127.0.0.3');
    expect((await rawRequest(a, { ':method': 'GET', ':path': PATHS.healthz })).status).toBe(200);
    expect((await rawRequest(b, { ':method': 'GET', ':path': PATHS.healthz })).status).toBe(200);
    const c = await session('127.0.0.3');
    const goaway = await new Promise<number | null>((resolve) => {
      const timer = setTimeout(() => resolve(null), 5_000);
      c.once('goaway', (code: number) => {
        clearTimeout(timer);
        resolve(code);
      });
    });
    expect(goaway).toBe(NGHTTP2_ENHANCE_YOUR_CALM);
    // Another address is not affected.
    const other = await session('127.0.0.4');
    expect((await rawRequest(other, { ':method': 'GET', ':path': PATHS.healthz })).status).toBe(200);
    // Once one of the two closes, the address may connect again.
    a.close();
    await waitFor(
      async () => {
        const d = await h2From(relay, '127.0.0.3');
        sessions.push(d);
        const r = await rawRequest(d, { ':method': 'GET', ':path': PATHS.healthz }, undefined, 3_000).catch(() => null);
        if (!r) d.destroy();
        return r?.status === 200;
      },
      10_000,
      'a new connection from 127.0.0.3 once one closed',
    );
  });

  it('unanswered requests per address: the 5th stalled login is refused REFUSED_STREAM; the stalled ones get 408 RLY_ERR_BODY_TIMEOUT', async () => {
    const s = await session('127.0.0.5');
    const stalled = [0, 1, 2, 3].map(() => stalledLogin(s));
    // Let the four reach the relay before the fifth.
    await new Promise((r) => setTimeout(r, 300));
    const fifth = await stalledLogin(s);
    expect(fifth.status).toBe(0);
    expect(fifth.rst).toBe(NGHTTP2_REFUSED_STREAM);
    // Another address is not affected meanwhile.
    const other = await session('127.0.0.6');
    expect((await postJson(other, PATHS.login, { user: 'admin', password: ADMIN_PASSWORD })).status).toBe(200);
    const ends = await Promise.all(stalled);
    for (const e of ends) {
      expect(e.status).toBe(408);
      expect(e.body).toMatchObject({ statusCode: 408, code: 'RLY_ERR_BODY_TIMEOUT' });
      expect(e.ms).toBeGreaterThanOrEqual(1_500);
      expect(e.ms).toBeLessThan(10_000);
    }
    // Answered: the address may send again.
    expect((await postJson(s, PATHS.login, { user: 'admin', password: ADMIN_PASSWORD })).status).toBe(200);
  });

  it('routine requests are not logged at info; /healthz shows the limiter and source counts', async () => {
    const s = await session('127.0.0.7');
    const before = relay.proc.err.split('\n').length;
    for (let i = 0; i < 20; i++)
      expect((await rawRequest(s, { ':method': 'GET', ':path': PATHS.healthz })).status).toBe(200);
    for (let i = 0; i < 3; i++)
      expect((await postJson(s, PATHS.login, { user: `nobody-${i}`, password: 'wrong-password' })).status).toBe(401);
    const health = await rawRequest(s, { ':method': 'GET', ':path': PATHS.healthz });
    expect(health.body.limits.limiterEntries).toBeGreaterThanOrEqual(4); // 127.0.0.7 + three user names
    expect(health.body.limits.sourcesTracked).toBeGreaterThanOrEqual(1);
    const lines = relay.proc.err
      .split('\n')
      .slice(before - 1)
      .filter((l) => /"url":"\/(healthz|v1\/auth\/login)"/.test(l) || /incoming request|request completed/.test(l));
    expect(lines).toEqual([]);
  });
});

describe('a connection whose requests keep timing out', () => {
  let relay: Relay;
  let s: http2.ClientHttp2Session | undefined;
  beforeAll(async () => {
    relay = await startRelay('pglite', ['--max-pending-per-address', '64', '--body-timeout', '1']);
  });
  afterAll(async () => {
    s?.destroy();
    await relay?.proc.stop();
  });

  it('is closed with GOAWAY ENHANCE_YOUR_CALM after 32 body timeouts (a quarter of its stream limit), not answered round after round', async () => {
    s = await h2From(relay, '127.0.0.20');
    const goaway = new Promise<number | null>((resolve) => {
      const timer = setTimeout(() => resolve(null), 15_000);
      s!.once('goaway', (code: number) => {
        clearTimeout(timer);
        resolve(code);
      });
    });
    const ends = await Promise.all(Array.from({ length: 40 }, () => stalledLogin(s!)));
    expect(await goaway).toBe(NGHTTP2_ENHANCE_YOUR_CALM);
    // The answers written before the connection went carry the code; the rest ended with it.
    const timedOut = ends.filter(
      (e) => e.status === 408 && (e.body as { code?: string } | null)?.code === 'RLY_ERR_BODY_TIMEOUT',
    ).length;
    expect(timedOut).toBeGreaterThan(0);
    expect(ends.filter((e) => e.status !== 408 && e.status !== 0)).toEqual([]);
    // The address itself is not blocked: a new connection logs in.
    const again = await h2From(relay, '127.0.0.20');
    try {
      expect((await postJson(again, PATHS.login, { user: 'admin', password: ADMIN_PASSWORD })).status).toBe(200);
    } finally {
      again.destroy();
    }
  });
});

describe('forwarded source addresses behind a trusted proxy', () => {
  let relay: Relay;
  let proxy: http2.ClientHttp2Session;
  let admin: string;

  beforeAll(async () => {
    relay = await startRelay('pglite', ['--trusted-proxy', '127.0.0.1/32']);
    proxy = await h2From(relay, '127.0.0.1');
    const r = await postJson(
      proxy,
      PATHS.login,
      { user: 'admin', password: ADMIN_PASSWORD },
      { 'x-forwarded-for': '192.0.2.200' },
    );
    expect(r.status).toBe(200);
    admin = r.body.token;
  });
  afterAll(async () => {
    proxy?.destroy();
    await relay?.proc.stop();
  });

  const tenFailures = async (user: string, xff: (i: number) => string) => {
    const out: Array<{ status: number; code: string }> = [];
    for (let i = 0; i < 10; i++) {
      const a = await postJson(proxy, PATHS.login, { user, password: `wrong-${i}` }, { 'x-forwarded-for': xff(i) });
      out.push({ status: a.status, code: a.body.code });
    }
    return out;
  };
  const expectFiveThenLimited = (out: Array<{ status: number; code: string }>) => {
    expect(out.map((a) => a.status)).toEqual([401, 401, 401, 401, 401, 429, 429, 429, 429, 429]);
    expect(out.slice(0, 5).every((a) => a.code === 'AUTH_ERR_BAD_CREDENTIALS')).toBe(true);
    expect(out.slice(5).every((a) => a.code === 'RLY_ERR_RATE_LIMITED')).toBe(true);
  };

  it('IPv4 with a different source port each time: one source, 401 x 5 then 429', async () => {
    expectFiveThenLimited(await tenFailures('nobody-v4', (i) => `9.9.9.9:${40001 + i}`));
  });

  it('bracketed IPv6 with ports, and addresses of the same /64: one source', async () => {
    expectFiveThenLimited(
      await tenFailures('nobody-v6', (i) =>
        i % 2 ? `[2001:db8::9]:${40001 + i}` : `2001:db8::${(i + 1).toString(16)}`,
      ),
    );
    // Another /64 is another source.
    const other = await postJson(
      proxy,
      PATHS.login,
      { user: 'nobody-v6b', password: 'wrong' },
      { 'x-forwarded-for': '[2001:db8:0:1::9]:1' },
    );
    expect(other.status).toBe(401);
  });

  it('an IPv4-mapped IPv6 address is the IPv4 source', async () => {
    expectFiveThenLimited(await tenFailures('nobody-mapped', (i) => (i % 2 ? `[::ffff:8.8.4.4]:${i + 1}` : '8.8.4.4')));
  });

  it('garbage and over-long X-Forwarded-For fall back to the peer address; the audit source is an IP', async () => {
    const long = 'x'.repeat(301);
    for (const xff of ['garbage', long, '203.0.113.9, garbage']) {
      const a = await postJson(
        proxy,
        PATHS.login,
        { user: 'nobody-garbage', password: 'wrong' },
        { 'x-forwarded-for': xff },
      );
      expect(a.status).toBe(401);
    }
    // The three failures counted against the proxy's own address (127.0.0.1): two more and it is blocked
    // (without X-Forwarded-For, the peer is the source).
    for (let i = 0; i < 2; i++)
      expect((await postJson(proxy, PATHS.login, { user: 'nobody-garbage2', password: 'wrong' })).status).toBe(401);
    const blocked = await postJson(proxy, PATHS.login, { user: 'nobody-garbage3', password: 'wrong' });
    expect(blocked.status).toBe(429);
    expect(blocked.body).toMatchObject({ code: 'RLY_ERR_RATE_LIMITED' });

    const events = await waitFor(
      async () => {
        const r = await rawRequest(proxy, {
          ':method': 'GET',
          ':path': `${PATHS.adminAudit}?type=user.login&limit=1000`,
          authorization: `Bearer ${admin}`,
          'x-forwarded-for': '192.0.2.200',
        });
        const evs = (r.body.events as Array<{ actor: string | null; source: string | null; details: unknown }>).filter(
          (e) => JSON.stringify(e).includes('nobody-'),
        );
        return evs.length >= 21 ? evs : null; // 5 + 5 + 1 + 5 failed logins above, 3 + 2 here
      },
      15_000,
      'login audit events',
    );
    const sources = new Set(events.map((e) => e.source));
    for (const s of sources) expect(s).toMatch(/^(\d{1,3}\.){3}\d{1,3}$|^[0-9a-f:]+$/);
    expect([...sources].sort()).toEqual(expect.arrayContaining(['9.9.9.9', '8.8.4.4', '127.0.0.1']));
    expect([...sources].some((s) => s?.startsWith('2001:db8'))).toBe(true);
    expect([...sources].some((s) => s?.includes('garbage') || s === long || s?.includes(':4000'))).toBe(false);
  });
});
