/**
 * Issue 3: malformed input against a running relay (loopback, bounded in count and time). 10,000
 * random or garbled HTTP/2 requests (bad paths, methods, headers, bodies, huge headers, bad JWTs,
 * content-length lies) and a few hundred garbled agent-link connections (garbage after TLS, fake agents
 * answering the handshake with nonsense, non-TLS bytes, instant hang-ups). Afterwards the relay still
 * serves a real SSH session, logged no unhandled error, answered no 500, and its memory stayed bounded.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { readFileSync } from 'node:fs';
import net from 'node:net';
import tls from 'node:tls';
import http2 from 'node:http2';
import { base64url } from 'jose';
import { AGENT_ALPN, PATHS } from '@mssh/protocol';
import { fixtures } from './fixtures/inject.js';
import { startRelay, startAgent, stopAll, type Relay } from './fixtures/stack.js';
import { adminSession, openTunnel, sshExec, readKey } from './fixtures/tunnel-client.js';
import { h2From, rawRequest, rssOf } from './fixtures/h2-raw.js';
import { waitFor } from './fixtures/net.js';

afterAll(stopAll);

const REQUESTS = 10_000;
const AGENT_CONNECTIONS = 300;
const BUDGET_MS = 240_000;

/** Small seeded PRNG (reproducible runs; the seed is printed). */
function prng(seed: number) {
  let s = seed >>> 0;
  const next = () => {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    return s / 2 ** 32;
  };
  return {
    next,
    int: (n: number) => Math.floor(next() * n),
    pick: <T>(xs: readonly T[]): T => xs[Math.floor(next() * xs.length)]!,
    bytes: (n: number) => {
      const b = Buffer.alloc(n);
      for (let i = 0; i < n; i++) b[i] = Math.floor(next() * 256);
      return b;
    },
    chance: (p: number) => next() < p,
  };
}
type Rng = ReturnType<typeof prng>;

const PATH_BASES = [
  '/',
  '/healthz',
  PATHS.login,
  PATHS.logout,
  PATHS.whoami,
  PATHS.hosts,
  '/v1/hosts/fuzzhost',
  '/v1/tunnel/fuzzhost',
  '/v1/tunnel/nobody',
  '/v1/tunnel/',
  PATHS.adminUsers,
  PATHS.adminAgentEnroll,
  PATHS.enroll,
  PATHS.jwks,
  '/mssh/hello',
  '/v1/',
];

function garbagePath(r: Rng): string {
  const base = r.pick(PATH_BASES);
  switch (r.int(9)) {
    case 0:
      return base;
    case 1:
      return `${base}/${r.bytes(r.int(40)).toString('hex')}`;
    case 2:
      return `${base}?${encodeURIComponent(r.bytes(r.int(200)).toString('latin1'))}`;
    case 3:
      return `${base}/%zz%00%2e%2e%2f..//${r.int(1e6)}`;
    case 4:
      return `/${'a'.repeat(1000 + r.int(7000))}`;
    case 5:
      return `${base}${'/..'.repeat(r.int(50))}`;
    case 6:
      return `/v1/tunnel/${encodeURIComponent(r.bytes(r.int(80)).toString('latin1'))}`;
    case 7:
      return `/v1/hosts/${'-'.repeat(r.int(100))}UPPER_case.dots`;
    default:
      return `*`;
  }
}

function tokens(r: Rng, good: string): string {
  const [h, p, s] = good.split('.') as [string, string, string];
  const none = `${base64url.encode(JSON.stringify({ alg: 'none', typ: 'JWT' }))}.${p}.`;
  const hs = `${base64url.encode(JSON.stringify({ alg: 'HS256', typ: 'JWT' }))}.${p}.${s}`;
  const tampered = `${h}.${base64url.encode(JSON.stringify({ sub: 'admin', admin: true, exp: 9e9 }))}.${s}`;
  const choices = [
    `Bearer ${good}`,
    `Bearer ${none}`,
    `Bearer ${hs}`,
    `Bearer ${tampered}`,
    `Bearer ${h}.${p}`,
    'Bearer a.b.c',
    'Bearer ',
    `Bearer ${r.bytes(r.int(300)).toString('base64')}`,
    `Basic ${Buffer.from('admin:x').toString('base64')}`,
    `bearer  ${good}x`,
    `Bearer ${'A'.repeat(4000 + r.int(4000))}`,
    `Bearer ${good.slice(0, r.int(good.length))}`,
    `Bearer ${base64url.encode(r.bytes(40))}.${base64url.encode(r.bytes(200))}.${base64url.encode(r.bytes(64))}`,
  ];
  return r.pick(choices);
}

function garbageBody(r: Rng): Buffer | string | undefined {
  switch (r.int(10)) {
    case 0:
      return undefined;
    case 1:
      return r.bytes(r.int(2048));
    case 2:
      return JSON.stringify({
        user: r.pick(['admin', 'alice', 'x'.repeat(70), '']),
        password: r.bytes(r.int(30)).toString('hex'),
      });
    case 3:
      return '{"user": "admin", "password": ';
    case 4:
      return '['.repeat(2000 + r.int(3000));
    case 5:
      return Buffer.alloc(70 * 1024 + r.int(64 * 1024), 0x7b);
    case 6:
      return JSON.stringify({
        name: r.bytes(20).toString('latin1'),
        token: 'x'.repeat(r.int(400)),
        publicKey: 7,
        hostKeys: [null],
      });
    case 7:
      return JSON.stringify(Array.from({ length: r.int(2000) }, (_, i) => ({ [`k${i}`]: i })));
    case 8:
      return '\u0000\uffff\ud800'.repeat(r.int(100));
    default:
      return '{}';
  }
}

function garbageHeaders(r: Rng, good: string): http2.OutgoingHttpHeaders {
  const h: http2.OutgoingHttpHeaders = {
    ':method': r.pick(['GET', 'POST', 'POST', 'PUT', 'DELETE', 'PATCH', 'OPTIONS', 'HEAD', 'FOO']),
    ':path': garbagePath(r),
  };
  if (r.chance(0.7)) h.authorization = tokens(r, good);
  if (r.chance(0.6))
    h['content-type'] = r.pick([
      'application/json',
      'application/octet-stream',
      'text/plain',
      'application/json; charset=utf-16',
      'multipart/form-data; boundary=x',
      ';;;',
      'a/b/c',
    ]);
  if (r.chance(0.2)) h['x-mssh-protocol'] = r.pick(['1', '0', '-1', '99999999999', 'banana', '', '1.5']);
  if (r.chance(0.2)) h['x-forwarded-for'] = r.pick(['1.2.3.4', 'not an ip', '::1, 10.0.0.1', ',,,,', 'x'.repeat(500)]);
  if (r.chance(0.1)) h['content-length'] = String(r.int(100_000));
  if (r.chance(0.05)) h[`x-huge-${r.int(100)}`] = 'h'.repeat(20_000 + r.int(60_000)); // over the 16 KiB header cap
  if (r.chance(0.1)) for (let i = 0; i < 50 + r.int(150); i++) h[`x-many-${i}`] = String(i);
  if (r.chance(0.05)) h.cookie = 'c=' + 'z'.repeat(r.int(8000));
  return h;
}

/** A client pool of HTTP/2 sessions from distinct source addresses; dead sessions are replaced. */
class Pool {
  private readonly sessions: Array<http2.ClientHttp2Session | null>;
  /** One connect per slot at a time: workers that find the same dead session share its replacement
   * (each used to open its own and drop all but one, unclosed, until the relay's per-address limit). */
  private readonly connecting = new Map<number, Promise<http2.ClientHttp2Session>>();
  constructor(
    private readonly relay: Relay,
    size: number,
  ) {
    this.sessions = Array.from({ length: size }, () => null);
  }
  async get(i: number): Promise<http2.ClientHttp2Session> {
    const k = i % this.sessions.length;
    const s = this.sessions[k];
    if (s && !s.destroyed && !s.closed) return s;
    let pending = this.connecting.get(k);
    if (!pending) {
      pending = h2From(this.relay, `127.0.${10 + k}.1`)
        .then((fresh) => (this.sessions[k] = fresh))
        .finally(() => this.connecting.delete(k));
      this.connecting.set(k, pending);
    }
    return pending;
  }
  close(): void {
    for (const s of this.sessions) s?.destroy();
  }
}

/** One garbled agent-link connection; resolves when it is over (bounded by 13 s). */
async function agentGarbage(relay: Relay, r: Rng): Promise<string> {
  const kind = r.int(6);
  const finish = (sock: net.Socket, after: number) =>
    new Promise<string>((resolve) => {
      const t = setTimeout(() => {
        sock.destroy();
        resolve('we hung up');
      }, after);
      sock.on('error', () => {});
      sock.once('close', () => {
        clearTimeout(t);
        resolve('relay closed');
      });
    });
  if (kind === 0) {
    // Not TLS at all.
    const s = net.connect(relay.port, '127.0.0.1');
    s.on('error', () => {});
    s.write(r.bytes(1 + r.int(4096)));
    return finish(s, 13_000);
  }
  const s = tls.connect({
    host: '127.0.0.1',
    port: relay.port,
    ALPNProtocols: [AGENT_ALPN],
    rejectUnauthorized: false,
  });
  s.on('error', () => {});
  const up = await new Promise<boolean>((res) => {
    s.once('secureConnect', () => res(true));
    s.once('error', () => res(false));
    s.once('close', () => res(false));
  });
  if (!up) return 'tls failed';
  if (kind === 1) {
    s.destroy();
    return 'hung up at once';
  }
  if (kind === 2) {
    s.write(r.bytes(1 + r.int(8192)));
    return finish(s, 13_000);
  }
  // A fake agent: HTTP/2 server on the socket, answering the relay's handshake with nonsense.
  const srv = http2.createServer();
  srv.on('sessionError', () => {});
  srv.on('stream', (stream, headers) => {
    stream.on('error', () => {});
    const path = headers[':path'];
    const style = r.int(7);
    try {
      if (path === PATHS.agentHello) {
        if (style === 0) return; // never answers
        stream.respond({ ':status': r.pick([200, 200, 500, 404, 204]), 'content-type': 'application/json' });
        const bodies = [
          'not json',
          '{}',
          JSON.stringify({
            name: 'fuzzhost',
            publicKey: 'AAAA',
            signature: 'BBBB',
            hostKeys: [],
            agentVersion: 'x',
            protocolVersion: 1,
          }),
          JSON.stringify({ name: 'x'.repeat(500) }),
          'z'.repeat(100_000 + r.int(100_000)),
          JSON.stringify({
            name: 'fuzzhost',
            publicKey: r.bytes(44).toString('base64'),
            signature: r.bytes(64).toString('base64'),
            hostKeys: ['ssh-ed25519 AAAA'],
            agentVersion: '\u0007\u001b[31m',
            protocolVersion: 9e9,
          }),
        ];
        stream.end(r.pick(bodies));
      } else {
        stream.respond({ ':status': r.pick([204, 200, 400]) });
        stream.end(r.chance(0.5) ? r.bytes(r.int(1000)) : undefined);
      }
    } catch {
      /* relay reset it */
    }
  });
  srv.emit('connection', s);
  const how = await finish(s, 13_000);
  srv.close();
  return how;
}

describe('malformed input fuzz', () => {
  let relay: Relay;
  let good: string;

  beforeAll(async () => {
    relay = await startRelay('pglite');
    await startAgent(relay, 'fuzzhost');
    const admin = await adminSession(relay);
    good = admin.token;
    admin.h2.close();
  });
  afterAll(async () => {
    await relay?.proc.stop();
  });

  it(
    '10,000 garbled requests and 300 garbled agent links leave the relay serving, with no unhandled error and bounded memory',
    { timeout: BUDGET_MS + 60_000 },
    async () => {
      const f = fixtures();
      const pid = relay.proc.child.pid!;
      const rssBefore = rssOf(pid, readFileSync);
      const seed = Number(process.env.MSSH_FUZZ_SEED ?? Date.now() % 1e9);
      console.log(`[fuzz] seed ${seed} (MSSH_FUZZ_SEED to replay)`);
      const r = prng(seed);
      const deadline = Date.now() + BUDGET_MS;
      const statuses = new Map<string, number>();
      const tally = (k: string) => statuses.set(k, (statuses.get(k) ?? 0) + 1);

      // Agent-link garbage runs alongside the requests.
      const agentRng = prng(seed ^ 0x5a5a5a5a);
      const agentSide = (async () => {
        const outcomes = new Map<string, number>();
        let next = 0;
        const worker = async () => {
          for (let i = 0; i < AGENT_CONNECTIONS && next < AGENT_CONNECTIONS && Date.now() < deadline; i++) {
            next++;
            const how = await agentGarbage(relay, agentRng).catch((e: Error) => `error ${e.message}`);
            outcomes.set(how, (outcomes.get(how) ?? 0) + 1);
          }
        };
        await Promise.all(Array.from({ length: 16 }, worker));
        return outcomes;
      })();

      const pool = new Pool(relay, 8);
      let sent = 0;
      const worker = async (w: number) => {
        for (let i = 0; i < REQUESTS * 2 && sent < REQUESTS && Date.now() < deadline; i++) {
          if (sent >= REQUESTS) break;
          sent++;
          const headers = garbageHeaders(r, good);
          const body = headers[':method'] === 'GET' || headers[':method'] === 'HEAD' ? undefined : garbageBody(r);
          let session: http2.ClientHttp2Session;
          try {
            session = await pool.get(w + i);
          } catch {
            tally(`connect error`);
            continue;
          }
          try {
            const a = await rawRequest(session, headers, body, 12_000);
            tally(String(a.status));
            if (a.status >= 500) tally(`${a.status} ${typeof a.body === 'object' ? a.body.code : a.text.slice(0, 40)}`);
          } catch (e) {
            tally(/timed out/.test((e as Error).message) ? 'timeout' : 'reset');
          }
        }
      };
      await Promise.all(Array.from({ length: 32 }, (_, w) => worker(w)));
      pool.close();
      const agentOutcomes = await agentSide;
      console.log(`[fuzz] ${sent} requests: ${JSON.stringify(Object.fromEntries([...statuses].sort()))}`);
      console.log(`[fuzz] agent links: ${JSON.stringify(Object.fromEntries(agentOutcomes))}`);
      expect(sent).toBe(REQUESTS);
      expect(statuses.get('connect error')).toBeUndefined();
      expect([...agentOutcomes.values()].reduce((a, b) => a + b, 0)).toBe(AGENT_CONNECTIONS);

      // Still serving: the process runs, a real SSH session works end to end.
      expect(relay.proc.running).toBe(true);
      const { h2, token } = await adminSession(relay);
      const sock = await openTunnel(h2, token, 'fuzzhost');
      const { client, channel } = await sshExec(sock, {
        user: f.sshd.user,
        privateKey: readKey(f.sshd.clientKey),
        command: 'echo after-fuzz',
      });
      let out = '';
      channel.on('data', (d: Buffer) => (out += d.toString()));
      await waitFor(() => out.includes('after-fuzz'), 20_000, 'a real session after the fuzz');
      client.end();
      expect((await rawRequest(h2, { ':method': 'GET', ':path': PATHS.healthz })).body).toMatchObject({
        status: 'ok',
        agentsOnline: 1,
      });
      h2.close();

      // No internal errors answered, none unhandled in the log.
      expect([...statuses.keys()].filter((k) => /^500/.test(k))).toEqual([]);
      expect(relay.proc.err).not.toMatch(/unhandled rejection|uncaught|"level":60/i);
      // Memory: generous bound (V8 grows its heap under load and gives back lazily).
      const rssAfter = rssOf(pid, readFileSync);
      console.log(`[fuzz] relay RSS ${Math.round(rssBefore / 2 ** 20)} MiB -> ${Math.round(rssAfter / 2 ** 20)} MiB`);
      expect(rssAfter).toBeLessThan(rssBefore + 384 * 2 ** 20);
    },
  );
});
