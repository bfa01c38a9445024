/**
 * Issue 2, as a user runs it: login, ls, ssh through relay -> agent -> real sshd, on both databases.
 * Also the authentication wall: every way of presenting a bad token gets 401 and sees nothing.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { generateKeyPair, SignJWT, UnsecuredJWT } from 'jose';
import type http2 from 'node:http2';
import { readdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fixtures } from './fixtures/inject.js';
import { startRelay, startAgent, loginUser, sshArgs, stopAll, type Relay, type User } from './fixtures/stack.js';
import { adminSession, request, openTunnel } from './fixtures/tunnel-client.js';
import { PATHS } from '@mssh/protocol';

afterAll(stopAll);

/** The JWT that `mssh login` stored in the user's config dir (whatever file holds it). */
function storedToken(dir: string): string {
  for (const f of readdirSync(dir)) {
    if (!statSync(join(dir, f)).isFile()) continue;
    const m = readFileSync(join(dir, f), 'utf8').match(/eyJ[\w-]+\.[\w-]+\.[\w-]+/);
    if (m) return m[0];
  }
  throw new Error(`no token stored in ${dir}`);
}

describe.each(['pglite', 'postgres'] as const)('core on %s', (db) => {
  let relay: Relay;
  let user: User;
  let h2: http2.ClientHttp2Session;
  let token: string;

  beforeAll(async () => {
    relay = await startRelay(db);
    await startAgent(relay, 'laptop');
    user = await loginUser(relay);
    ({ h2, token } = await adminSession(relay));
  });
  afterAll(async () => {
    h2?.close();
    await relay?.proc.stop();
  });

  it('mssh ls shows the enrolled machine online with its host key fingerprint', async () => {
    const r = await user.mssh(['ls', '--json']);
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    const hosts = JSON.parse(r.stdout);
    const laptop = hosts.find((h: { name: string }) => h.name === 'laptop');
    expect(laptop.online).toBe(true);
    expect(laptop.hostKeys.sort()).toEqual([...fixtures().sshd.hostKeys].sort());
    const table = await user.mssh(['ls']);
    expect(table.code).toBe(0);
    expect(table.stdout).toMatch(/laptop\s+online/);
  });

  it('mssh whoami names the logged-in user', async () => {
    const r = await user.mssh(['whoami']);
    expect(r.code).toBe(0);
    expect(r.stdout).toContain('admin');
  });

  it('mssh ssh host -- echo hi prints hi', async () => {
    const r = await user.mssh([...sshArgs('laptop'), '--', 'echo', 'hi']);
    expect(r.stderr).not.toMatch(/error/i);
    expect(r.stdout).toBe('hi\n');
    expect(r.code).toBe(0);
  });

  it("mssh ssh host -- sh -c 'exit 7' exits 7", async () => {
    const r = await user.mssh([...sshArgs('laptop'), '--', 'sh', '-c', "'exit 7'"]);
    expect(r.code).toBe(7);
  });

  it('first use pins the attested host key in the user known_hosts under the host name', async () => {
    const known = readFileSync(`${user.configDir}/known_hosts`, 'utf8');
    const line = known.split('\n').find((l) => l.startsWith('laptop '));
    expect(line).toBeDefined();
    expect(fixtures().sshd.hostKeys).toContain(line!.split(/\s+/).slice(1, 3).join(' '));
  });

  it('no token, a garbage token, a token signed by another key and alg:none all get 401 and see no hosts', async () => {
    const other = await generateKeyPair('EdDSA', { crv: 'Ed25519' });
    const forged = await new SignJWT({ admin: true })
      .setProtectedHeader({ alg: 'EdDSA', kid: 'x' })
      .setSubject('admin')
      .setIssuer('mssh-relay')
      .setAudience('mssh')
      .setIssuedAt()
      .setExpirationTime('1h')
      .sign(other.privateKey);
    const none = new UnsecuredJWT({ admin: true })
      .setSubject('admin')
      .setIssuer('mssh-relay')
      .setAudience('mssh')
      .setExpirationTime('1h')
      .encode();
    const cases: Array<{ name: string; rawAuth?: string; token?: string }> = [
      { name: 'none' },
      { name: 'garbage', token: 'not.a.jwt' },
      { name: 'basic', rawAuth: 'Basic YWRtaW46eA==' },
      { name: 'other key', token: forged },
      { name: 'alg none', token: none },
    ];
    for (const c of cases) {
      const r = await request(h2, 'GET', PATHS.hosts, { token: c.token, rawAuth: c.rawAuth });
      expect(r.status, c.name).toBe(401);
      expect(r.body.code, c.name).toMatch(/^AUTH_ERR_/);
      expect(JSON.stringify(r.body), c.name).not.toContain('laptop');
      const t = await openTunnel(h2, c.token ?? '', 'laptop').then(
        () => 200,
        (e) => e.status,
      );
      expect(t, `tunnel with ${c.name}`).toBe(401);
    }
  });

  it('a client naming 127.0.0.1:22, localhost or an unenrolled name reaches nothing', async () => {
    for (const target of ['127.0.0.1:22', '127.0.0.1', 'localhost', 'not-enrolled', '..', 'laptop:22']) {
      const status = await openTunnel(h2, token, target).then(
        () => 200,
        (e) => e.status,
      );
      expect([400, 404], target).toContain(status);
    }
    const r = await user.mssh([...sshArgs('localhost'), '--', 'true']);
    expect(r.code).toBe(255);
    expect(r.stderr).toMatch(/localhost/);
    expect(r.stderr).toMatch(/mssh ls/);
  });

  it('healthz is anonymous and gives counts only', async () => {
    const r = await request(h2, 'GET', PATHS.healthz);
    expect(r.status).toBe(200);
    expect(r.body.agentsOnline).toBe(1);
    expect(JSON.stringify(r.body)).not.toContain('laptop');
  });

  it('logout revokes the token server-side', async () => {
    const u2 = await loginUser(relay);
    const tok = storedToken(u2.configDir);
    expect((await request(h2, 'GET', PATHS.hosts, { token: tok })).status).toBe(200);
    const r = await u2.mssh(['logout']);
    expect(r.code).toBe(0);
    expect((await request(h2, 'GET', PATHS.hosts, { token: tok })).status).toBe(401);
    const after = await u2.mssh(['ls']);
    expect(after.code).not.toBe(0);
    expect(after.stderr).toMatch(/mssh login/);
  });

  it('logout with a damaged credentials file revokes the token it still holds and fails with CLI_ERR_CONFIG', async () => {
    // Valid JSON with a wrong version (hand-edited, or a newer mssh): the entry itself is intact.
    const u3 = await loginUser(relay);
    const tok3 = storedToken(u3.configDir);
    const file3 = join(u3.configDir, 'credentials.json');
    const damaged = JSON.stringify({ ...JSON.parse(readFileSync(file3, 'utf8')), version: 7 });
    writeFileSync(file3, damaged);
    const r3 = await u3.mssh(['logout']);
    expect(r3.code, r3.stderr).toBe(78); // CLI_ERR_CONFIG: stored state unusable (docs/cli.md)
    expect(r3.stderr).toContain('[CLI_ERR_CONFIG]');
    expect(r3.stderr).toContain(`${file3} is damaged`);
    expect(r3.stderr).toMatch(/was revoked on the relay/);
    expect(r3.stderr).toMatch(/Delete it and log in again/);
    expect(r3.stderr + r3.stdout).not.toMatch(/Not logged in/);
    expect((await request(h2, 'GET', PATHS.hosts, { token: tok3 })).status).toBe(401);
    expect(readFileSync(file3, 'utf8')).toBe(damaged);

    // Not JSON at all: no token can be read, so none is revoked, and it says so.
    const u4 = await loginUser(relay);
    const tok4 = storedToken(u4.configDir);
    writeFileSync(join(u4.configDir, 'credentials.json'), '{"version": 1, "cur');
    const r4 = await u4.mssh(['logout']);
    expect(r4.code, r4.stderr).toBe(78);
    expect(r4.stderr).toContain('[CLI_ERR_CONFIG]');
    expect(r4.stderr).toMatch(/none was revoked/);
    expect((await request(h2, 'GET', PATHS.hosts, { token: tok4 })).status).toBe(200);
  });
});
