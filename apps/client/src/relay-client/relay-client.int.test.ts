/**
 * The client side of the relay protocol against a small HTTP/2 + TLS server on loopback that answers like
 * the relay (libs/protocol paths, headers and error bodies) and splices tunnels to the real sshd fixture.
 * It exercises what only the client decides: certificate pinning before any byte is sent, trust on first
 * use, CA-valid renewal, error mapping, and SSH and proxy over a real HTTP/2 stream. The real relay and
 * agent are covered by the e2e scenarios.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import http2 from 'node:http2';
import { connect, createServer, type AddressInfo } from 'node:net';
import { execFileSync } from 'node:child_process';
import { X509Certificate } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { PassThrough, Readable, Writable } from 'node:stream';
import { certFingerprint, HEADERS, PATHS, PROTOCOL_VERSION } from '@mssh/protocol';
import { fixtures } from '@mssh/test-fixtures/inject';
import { freePort } from '@mssh/test-fixtures/net';
import { parseConfig } from '../config/config.js';
import { CredentialsStore } from '../config/credentials-store.js';
import type { CliContext } from '../commands/context.js';
import { login, logout, whoami } from '../commands/login.js';
import { ls } from '../commands/ls.js';
import { spliceTunnel } from '../commands/proxy.js';
import type { CliError } from '../errors.js';
import { KnownHostsFile } from '../known-hosts/known-hosts-file.js';
import { sshViaRelay } from '../ssh/ssh-via-relay.js';
import { noPrompter } from '@mssh/cli-kit';
import { RelayClient } from './relay-client.js';
import { connectRelay, connectWithRetry, type RelayTrust } from './relay-connection.js';

const TOKEN = 'eyJhbGciOiJFZERTQSJ9.eyJzdWIiOiJhbGljZSJ9.c2ln';
const WRONG_PIN = `SHA256:${'A'.repeat(43)}`;

let dir: string;
let certPem: string;
let fingerprint: string;
let server: http2.Http2SecureServer;
let url: string;
let streams = 0;
let revoked = false;
const seenHeaders: http2.IncomingHttpHeaders[] = [];
/**
 * Issue 19, like a draining relay: `drain.next` makes the next session that asks for a tunnel a draining one
 * (503 RLY_ERR_DRAINING to every tunnel open on it); `drain.all`: every session; `goaway.next`: the next
 * session answers one request, then sends GOAWAY; `cut`: paths whose stream's connection is destroyed
 * before any answer.
 */
const drain = { next: false, all: false, sessions: new WeakSet<http2.Http2Session>() };
const goaway = { next: false };
const cut = new Set<string>();
const sessionsSeen = new Set<http2.Http2Session>();
/** The TLS socket under each session, by the client's port (an HTTP/2 session's own socket may not be destroyed). */
const rawSockets = new Map<number, import('node:tls').TLSSocket>();

function sendJson(stream: http2.ServerHttp2Stream, status: number, body: unknown) {
  stream.respond({ ':status': status, 'content-type': 'application/json' });
  stream.end(JSON.stringify(body));
}
function wireError(stream: http2.ServerHttp2Stream, status: number, code: string) {
  sendJson(stream, status, { statusCode: status, code, error: 'Error', message: `test relay: ${code}` });
}
function readBody(stream: http2.ServerHttp2Stream): Promise<string> {
  return new Promise((resolve) => {
    const chunks: Buffer[] = [];
    stream.on('data', (d: Buffer) => chunks.push(d));
    stream.on('end', () => resolve(Buffer.concat(chunks).toString()));
  });
}
const hostInfo = (name: string, online: boolean) => ({
  name,
  online,
  lastSeen: new Date(Date.now() - 3_600_000).toISOString(),
  hostKeys: fixtures().sshd.hostKeys,
  hostKeyFingerprints: [],
  agentVersion: '0.1.0',
  protocolVersion: PROTOCOL_VERSION,
});

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'mssh-relay-client-'));
  execFileSync(
    'openssl',
    [
      'req',
      '-x509',
      '-newkey',
      'ec',
      '-pkeyopt',
      'ec_paramgen_curve:prime256v1',
      '-nodes',
      '-keyout',
      join(dir, 'key.pem'),
      '-out',
      join(dir, 'cert.pem'),
      '-days',
      '1',
      '-subj',
      '/CN=localhost',
      '-addext',
      'subjectAltName=IP:127.0.0.1,DNS:localhost',
    ],
    { stdio: 'ignore' },
  );
  certPem = readFileSync(join(dir, 'cert.pem'), 'utf8');
  fingerprint = certFingerprint(new X509Certificate(certPem).raw);
  server = http2.createSecureServer({ key: readFileSync(join(dir, 'key.pem')), cert: certPem, ALPNProtocols: ['h2'] });
  server.on('secureConnection', (sock) => {
    rawSockets.set(sock.remotePort, sock);
    sock.once('close', () => rawSockets.delete(sock.remotePort));
  });
  server.on('stream', (stream, headers) => {
    streams++;
    seenHeaders.push(headers);
    stream.on('error', () => {});
    const path = String(headers[':path']);
    const session = stream.session!;
    sessionsSeen.add(session);
    if (cut.has(path)) return rawSockets.get(session.socket.remotePort!)?.destroy();
    if (goaway.next) {
      goaway.next = false;
      stream.once('close', () => session.close()); // GOAWAY once this request is answered
    }
    if (path.startsWith('/v1/tunnel/')) {
      if (drain.next) {
        drain.next = false;
        drain.sessions.add(session);
      }
      if (drain.all || drain.sessions.has(session)) return wireError(stream, 503, 'RLY_ERR_DRAINING');
    }
    const authed = headers.authorization === `Bearer ${TOKEN}` && !revoked;
    if (path === PATHS.login) {
      void readBody(stream).then((b) => {
        const { user, password } = JSON.parse(b) as { user: string; password: string };
        if (password !== 'correct horse') return wireError(stream, 401, 'AUTH_ERR_BAD_CREDENTIALS');
        sendJson(stream, 200, {
          token: TOKEN,
          expiresAt: new Date(Date.now() + 3_600_000).toISOString(),
          user,
          admin: false,
        });
      });
      return;
    }
    if (!authed)
      return wireError(stream, 401, headers.authorization ? 'AUTH_ERR_INVALID_TOKEN' : 'AUTH_ERR_MISSING_TOKEN');
    if (path === PATHS.logout) {
      revoked = true;
      stream.respond({ ':status': 204 });
      return stream.end();
    }
    if (path === PATHS.whoami)
      return sendJson(stream, 200, {
        user: 'alice',
        admin: false,
        expiresAt: new Date(Date.now() + 3_600_000).toISOString(),
      });
    if (path === PATHS.hosts)
      return sendJson(stream, 200, { hosts: [hostInfo('laptop', true), hostInfo('sleepy\u001b[31m', false)] });
    if (path === PATHS.host('laptop')) return sendJson(stream, 200, hostInfo('laptop', true));
    if (path === PATHS.host('ghost') || path === PATHS.tunnel('ghost'))
      return wireError(stream, 404, 'RLY_ERR_UNKNOWN_HOST');
    if (path === PATHS.tunnel('sleepy')) return wireError(stream, 503, 'RLY_ERR_AGENT_OFFLINE');
    if (path === PATHS.tunnel('laptop')) {
      const sock = connect(fixtures().sshd.port, '127.0.0.1');
      sock.on('error', () => stream.close(http2.constants.NGHTTP2_INTERNAL_ERROR));
      sock.once('connect', () => {
        stream.respond({ ':status': 200, [HEADERS.sessionId]: 'sess-1' });
        stream.pipe(sock);
        sock.pipe(stream);
      });
      return;
    }
    wireError(stream, 404, 'RLY_ERR_NOT_FOUND');
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
  url = `https://127.0.0.1:${(server.address() as { port: number }).port}`;
});

afterAll(async () => {
  await new Promise<void>((r) => server.close(() => r()));
  rmSync(dir, { recursive: true, force: true });
});

async function client(
  trust: RelayTrust = { pin: fingerprint, explicit: false },
  token: string | null = TOKEN,
): Promise<RelayClient> {
  return new RelayClient(await connectRelay({ url, trust }), { token, user: 'alice' });
}
const fail = <T>(p: Promise<T>) =>
  p.then(
    () => null as unknown as CliError,
    (e: CliError) => e,
  );

describe('relay connection: pinning', () => {
  it('first use trusts and reports the fingerprint of the self-signed certificate', async () => {
    const conn = await connectRelay({ url, trust: { pin: null, explicit: false } });
    expect(conn.fingerprint).toBe(fingerprint);
    expect(conn.firstUse).toBe(true);
    expect(conn.caTrusted).toBe(false);
    await conn.close();
  });

  it('a pinned fingerprint that does not match is refused before any request is sent', async () => {
    const before = streams;
    for (const explicit of [false, true]) {
      const err = await fail(connectRelay({ url, trust: { pin: WRONG_PIN, explicit } }));
      expect(err.code).toBe('CLI_ERR_RELAY_CERT_MISMATCH');
      expect(err.message).toContain(WRONG_PIN);
      expect(err.message).toContain(fingerprint);
      expect(err.hint).toContain('mssh-relay info');
    }
    expect(streams).toBe(before);
  });

  it('a CA-valid certificate replaces a stale stored pin, but never an explicit one', async () => {
    const renewed = await connectRelay({ url, trust: { pin: WRONG_PIN, explicit: false }, ca: certPem });
    expect(renewed.caTrusted).toBe(true);
    expect(renewed.pinReplaced).toBe(true);
    expect(renewed.firstUse).toBe(false);
    await renewed.close();
    const err = await fail(connectRelay({ url, trust: { pin: WRONG_PIN, explicit: true }, ca: certPem }));
    expect(err.code).toBe('CLI_ERR_RELAY_CERT_MISMATCH');
    // A pin that matches decides alone: the CA store is not even built (caTrusted is not checked).
    const pinned = await connectRelay({ url, trust: { pin: fingerprint, explicit: false }, ca: certPem });
    expect(pinned.fingerprint).toBe(fingerprint);
    expect(pinned.caTrusted).toBe(false);
    expect(pinned.pinReplaced).toBe(false);
    await pinned.close();
  });

  it('a relay that accepts TCP but never finishes the TLS handshake gets the handshake limit, not the connect one', async () => {
    const silent = createServer(() => {}); // accepts, never answers
    await new Promise<void>((r) => silent.listen(0, '127.0.0.1', () => r()));
    const port = (silent.address() as AddressInfo).port;
    try {
      const err = await fail(
        connectRelay({
          url: `https://127.0.0.1:${port}`,
          trust: { pin: null, explicit: false },
          timeoutMs: 100,
          handshakeTimeoutMs: 400,
        }),
      );
      expect(err.code).toBe('CLI_ERR_RELAY_UNREACHABLE');
      expect(err.message).toContain('accepted the connection but did not finish the TLS handshake');
    } finally {
      silent.close();
    }
  });

  it('an unreachable relay names the URL', async () => {
    const port = await freePort();
    const err = await fail(connectRelay({ url: `https://127.0.0.1:${port}`, trust: { pin: null, explicit: false } }));
    expect(err.code).toBe('CLI_ERR_RELAY_UNREACHABLE');
    expect(err.message).toContain(`https://127.0.0.1:${port}`);
    expect(err.message).toContain('connection refused');
  });
});

describe('relay API', () => {
  it('sends the protocol headers and the bearer token; maps refusals to coded errors', async () => {
    const c = await client();
    try {
      const hosts = await c.listHosts();
      expect(hosts.map((h) => h.name)).toContain('laptop');
      const last = seenHeaders[seenHeaders.length - 1]!;
      expect(last[HEADERS.protocolVersion]).toBe(String(PROTOCOL_VERSION));
      expect(last.authorization).toBe(`Bearer ${TOKEN}`);
      expect((await fail(c.login('alice', 'wrong'))).code).toBe('CLI_ERR_BAD_CREDENTIALS');
      expect((await fail(c.getHost('ghost'))).code).toBe('CLI_ERR_UNKNOWN_HOST');
    } finally {
      await c.close();
    }
    const bad = await client(undefined, 'not-the-token');
    try {
      const err = await fail(bad.listHosts());
      expect(err.code).toBe('CLI_ERR_TOKEN_REJECTED');
      expect(err.hint).toContain(`mssh login --relay ${url} --user alice`);
    } finally {
      await bad.close();
    }
  });

  it('tunnel errors: unknown host and offline agent', async () => {
    const c = await client();
    try {
      const unknown = await fail(c.openTunnel('ghost'));
      expect(unknown.code).toBe('CLI_ERR_UNKNOWN_HOST');
      expect(unknown.hint).toContain('mssh ls');
      const offline = await fail(c.openTunnel('sleepy'));
      expect(offline.code).toBe('CLI_ERR_HOST_OFFLINE');
      expect(offline.message).toContain('not connected');
    } finally {
      await c.close();
    }
  });

  it('ssh through a tunnel stream: attested key pinned, echo hi, exit status', async () => {
    const f = fixtures().sshd;
    const knownHosts = new KnownHostsFile(join(dir, 'known_hosts'));
    const c = await client();
    try {
      const out: Buffer[] = [];
      const stdout = new Writable({ write: (chunk: Buffer, _e, cb) => (out.push(chunk), cb()) });
      const run = (command: string) =>
        sshViaRelay({
          client: c,
          knownHosts,
          host: 'laptop',
          user: f.user,
          command,
          pty: false,
          auth: { agentSocket: null, identityFiles: [f.clientKey], prompter: noPrompter },
          stdin: Readable.from([]),
          stdout,
          stderr: new PassThrough(),
        });
      expect(await run('echo hi')).toBe(0);
      expect(Buffer.concat(out).toString()).toBe('hi\n');
      expect(knownHosts.lookup('laptop')).toHaveLength(1);
      expect(await run("sh -c 'exit 7'")).toBe(7);
    } finally {
      await c.close();
    }
  });

  it('proxy splice: bytes both ways, stdin EOF half-closes, clean end resolves 0', async () => {
    const c = await client();
    try {
      const tunnel = await c.openTunnel('laptop');
      expect(tunnel.sessionId).toBe('sess-1');
      const out: Buffer[] = [];
      const stdout = new Writable({ write: (chunk: Buffer, _e, cb) => (out.push(chunk), cb()) });
      // An SSH client banner, then EOF: sshd answers with its banner and closes.
      const code = await spliceTunnel(
        tunnel.stream,
        Readable.from([Buffer.from('SSH-2.0-mssh_test\r\n')]),
        stdout,
        'laptop',
      );
      expect(code).toBe(0);
      expect(Buffer.concat(out).toString('latin1')).toMatch(/^SSH-2\.0-OpenSSH/);
    } finally {
      await c.close();
    }
  });
});

describe('commands against the relay', () => {
  it('login (trust on first use), ls, whoami, logout revoking the token', async () => {
    revoked = false;
    const configDir = join(dir, 'cfg');
    let out = '';
    let err = '';
    const ctx: CliContext = {
      config: { ...parseConfig({ HOME: dir, MSSH_CONFIG_DIR: configDir }) },
      store: new CredentialsStore(configDir),
      knownHosts: new KnownHostsFile(join(configDir, 'known_hosts')),
      prompter: noPrompter,
      io: {
        stdin: Readable.from([Buffer.from('correct horse\nignored\n')]),
        stdout: new Writable({ write: (c: Buffer, _e, cb) => ((out += c.toString()), cb()) }),
        stderr: new Writable({ write: (c: Buffer, _e, cb) => ((err += c.toString()), cb()) }),
      },
      connect: connectRelay,
      now: () => new Date(),
    };
    expect(await login(ctx, { relay: url, user: 'alice', passwordStdin: true })).toBe(0);
    expect(err).toBe(`Relay certificate fingerprint: ${fingerprint} (trusted on first use)\n`);
    expect(out).toContain(`Logged in to ${url} as alice`);
    expect(ctx.store.get(url)).toMatchObject({ token: TOKEN, fingerprint, user: 'alice' });
    expect(statSync(ctx.store.path).mode & 0o777).toBe(0o600);
    expect(statSync(configDir).mode & 0o777).toBe(0o700);

    out = '';
    err = '';
    expect(await ls(ctx, { json: false })).toBe(0);
    expect(out).toMatch(/^NAME\s+STATUS\s+LAST SEEN\s+LABELS\s+HOST KEY\n/);
    expect(out).toMatch(/laptop\s+online\s+now\s+-\s+SHA256:/);
    expect(out).toMatch(/sleepy\\x1b\[31m\s+offline\s+1h ago/); // the escape shown, not sent
    expect(out).not.toContain('\u001b');

    out = '';
    expect(await whoami(ctx)).toBe(0);
    expect(out).toContain('alice');

    out = '';
    expect(await logout(ctx)).toBe(0);
    expect(revoked).toBe(true);
    expect(ctx.store.get(url)).toEqual({ url, fingerprint });
    const after = await fail(ls(ctx, { json: true }));
    expect(after.code).toBe('CLI_ERR_NOT_LOGGED_IN');
    expect(after.hint).toContain('mssh login');
  });
});

describe('one retry on a new connection (issue 19: a draining or refusing relay)', () => {
  /** A client that reconnects to the same test relay, recording the retries it tells. */
  async function retrying(retries: string[]): Promise<RelayClient> {
    const connect = () => connectRelay({ url, trust: { pin: fingerprint, explicit: false } });
    return new RelayClient(await connect(), {
      token: TOKEN,
      user: 'alice',
      reconnect: connect,
      onRetry: (l) => retries.push(l),
      drainingRetryPauseMs: 300,
    });
  }
  const reset = () => {
    revoked = false; // the logout test above revoked the token
    drain.next = false;
    drain.all = false;
    goaway.next = false;
    cut.clear();
  };

  it('a tunnel open answered 503 RLY_ERR_DRAINING is asked again once, on a new connection, and works there', async () => {
    reset();
    const retries: string[] = [];
    const c = await retrying(retries);
    try {
      drain.next = true;
      const first = c.conn;
      const t0 = performance.now();
      const tunnel = await c.openTunnel('laptop');
      // The pause before the retry (the balancer's health check takes the draining relay out meanwhile).
      expect(performance.now() - t0).toBeGreaterThanOrEqual(290);
      expect(tunnel.sessionId).toBe('sess-1');
      expect(c.conn).not.toBe(first);
      expect(retries).toEqual([
        'opening the tunnel to laptop: the relay is draining (503 RLY_ERR_DRAINING); trying once more on a new connection in 300 ms',
      ]);
      tunnel.stream.close();
    } finally {
      await c.close();
    }
  });

  it('without the retry (no reconnect) the same refusal is the error, with its code', async () => {
    reset();
    const c = await client();
    try {
      drain.next = true;
      const err = await fail(c.openTunnel('laptop'));
      expect(err.code).toBe('CLI_ERR_RELAY_ERROR');
      expect(err.message).toContain('RLY_ERR_DRAINING');
    } finally {
      await c.close();
    }
  });

  it('only once: a relay that is draining on the second connection too gives its refusal after two attempts', async () => {
    reset();
    const retries: string[] = [];
    const c = await retrying(retries);
    const before = streams;
    try {
      drain.all = true;
      const err = await fail(c.openTunnel('laptop'));
      expect(err.message).toContain('RLY_ERR_DRAINING');
      expect(streams - before).toBe(2);
      expect(retries).toHaveLength(1);
    } finally {
      drain.all = false;
      await c.close();
    }
  });

  it('a request after the relay sent GOAWAY goes on a new connection; a tunnel running on the old one goes on', async () => {
    reset();
    const retries: string[] = [];
    const c = await retrying(retries);
    try {
      const tunnel = await c.openTunnel('laptop');
      goaway.next = true;
      const seen = sessionsSeen.size;
      expect((await c.listHosts()).length).toBe(2); // answered, then GOAWAY
      await new Promise((r) => setTimeout(r, 100));
      expect((await c.listHosts()).length).toBe(2); // refused on the old connection: retried
      expect(retries).toEqual([
        'GET /v1/hosts: the connection is closing (GOAWAY) or gone; trying once more on a new connection',
      ]);
      expect(sessionsSeen.size).toBe(seen + 1);
      // The tunnel opened before the GOAWAY still carries bytes: sshd's banner comes back.
      const banner = new Promise<string>((resolve) => tunnel.stream.once('data', (d: Buffer) => resolve(d.toString())));
      tunnel.stream.write('SSH-2.0-mssh_test\r\n');
      expect(await banner).toMatch(/^SSH-2\.0-OpenSSH/);
      tunnel.stream.close();
    } finally {
      await c.close();
    }
  });

  it('a connection lost before any answer: a GET is asked again, a POST is not (it may have been carried out)', async () => {
    reset();
    const retries: string[] = [];
    const c = await retrying(retries);
    try {
      cut.add(PATHS.hosts);
      const before = streams;
      const err = await fail(c.listHosts());
      expect(err.code).toBe('CLI_ERR_RELAY_CONNECTION_LOST'); // cut on both connections: two attempts
      expect(streams - before).toBe(2);
      expect(retries).toHaveLength(1);
    } finally {
      await c.close();
    }
    cut.clear();
    cut.add(PATHS.adminUsers);
    const postRetries: string[] = [];
    const p = await retrying(postRetries);
    try {
      const before = streams;
      const post = await fail(p.createUser({ name: 'bob', password: 'long-enough-1', admin: false }));
      expect(post.code).toBe('CLI_ERR_RELAY_CONNECTION_LOST');
      expect(streams - before).toBe(1); // not retried
      expect(postRetries).toEqual([]);
    } finally {
      cut.clear();
      await p.close();
    }
  });

  it('a refused connection attempt is made once more (another relay behind the address may take it)', async () => {
    const closed = `https://127.0.0.1:${await freePort()}`;
    const urls: string[] = [];
    const retries: string[] = [];
    const conn = await connectWithRetry(
      (o) => {
        urls.push(o.url);
        return connectRelay({ ...o, url: urls.length === 1 ? closed : url });
      },
      { url, trust: { pin: fingerprint, explicit: false } },
      (l) => retries.push(l),
    );
    expect(conn.fingerprint).toBe(fingerprint);
    expect(retries).toEqual([`connecting to ${url}: connection refused; trying once more on a new connection`]);
    await conn.close();
    // A pin mismatch is not a refusal: no second attempt.
    const tried: string[] = [];
    const err = await fail(
      connectWithRetry((o) => (tried.push(o.url), connectRelay(o)), { url, trust: { pin: WRONG_PIN, explicit: true } }),
    );
    expect(err.code).toBe('CLI_ERR_RELAY_CERT_MISMATCH');
    expect(tried).toHaveLength(1);
  });
});
