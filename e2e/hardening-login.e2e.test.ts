/**
 * Issue 3, login abuse and token keys, through the real relay: the login limiter (per source address,
 * behind a trusted proxy's X-Forwarded-For or by socket address), the same answer for an unknown user
 * and a wrong password, and signing key rotation while the relay runs. Issue 18: the SSH jump listener
 * uses the same limiter (--login-attempts), one budget for both doors.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import type http2 from 'node:http2';
import { join } from 'node:path';
import pg from 'pg';
import { decodeProtectedHeader } from 'jose';
import { PATHS } from '@mssh/protocol';
import { startRelay, stopAll, ADMIN_PASSWORD, type Relay } from './fixtures/stack.js';
import { h2From, postJson, rawRequest } from './fixtures/h2-raw.js';
import { fixtures } from './fixtures/inject.js';
import { runCommand } from './fixtures/files.js';
import { freePort, waitFor } from './fixtures/net.js';
import { sshKeygen, writeSshConfig } from './fixtures/openssh.js';

afterAll(stopAll);

const PASSWORD = 'alice-long-password';

describe('login limiter behind a trusted proxy', () => {
  let relay: Relay;
  const sessions: http2.ClientHttp2Session[] = [];
  const session = async (from: string) => {
    const s = await h2From(relay, from);
    sessions.push(s);
    return s;
  };

  beforeAll(async () => {
    relay = await startRelay('pglite', ['--trusted-proxy', '127.0.0.1/32']);
    const r = await relay.cli(['user', 'add', 'alice', '--password-stdin'], `${PASSWORD}\n`);
    expect(r.code, r.stderr).toBe(0);
  });
  afterAll(async () => {
    for (const s of sessions) s.close();
    await relay?.proc.stop();
  });

  it('20 wrong passwords from one address: 429 with a code and Retry-After; the right password works from another address', async () => {
    const proxy = await session('127.0.0.1');
    const attacker = { 'x-forwarded-for': '192.0.2.1, 203.0.113.7' };
    const answers = [];
    for (let i = 0; i < 20; i++)
      answers.push(await postJson(proxy, PATHS.login, { user: 'alice', password: `wrong-${i}` }, attacker));
    expect(answers.slice(0, 5).map((a) => a.status)).toEqual([401, 401, 401, 401, 401]);
    const limited = answers.slice(5);
    expect(limited.every((a) => a.status === 429)).toBe(true);
    expect(limited[0]!.body).toMatchObject({ statusCode: 429, code: 'RLY_ERR_RATE_LIMITED' });
    expect(limited[0]!.headers['x-mssh-error']).toBe('RLY_ERR_RATE_LIMITED');
    expect(Number(limited[0]!.headers['retry-after'])).toBeGreaterThanOrEqual(1);
    // Blocked even with the right password: the block is per address, before any password check.
    expect((await postJson(proxy, PATHS.login, { user: 'alice', password: PASSWORD }, attacker)).status).toBe(429);

    // Another client address behind the same proxy logs in.
    const ok = await postJson(
      proxy,
      PATHS.login,
      { user: 'alice', password: PASSWORD },
      { 'x-forwarded-for': '203.0.113.8' },
    );
    expect(ok.status).toBe(200);
    expect(ok.body).toMatchObject({ user: 'alice' });
    // The proxy's own address (no X-Forwarded-For) is another source too.
    expect((await postJson(proxy, PATHS.login, { user: 'alice', password: PASSWORD })).status).toBe(200);
    // An untrusted peer cannot pick its address with X-Forwarded-For: 127.0.0.2 is not a trusted proxy,
    // so its header naming a fresh address is ignored and its own socket address counts.
    const direct = await session('127.0.0.2');
    for (let i = 0; i < 5; i++) {
      const a = await postJson(
        direct,
        PATHS.login,
        { user: 'alice', password: 'nope' },
        { 'x-forwarded-for': `198.51.100.${i}` },
      );
      expect(a.status).toBe(401);
    }
    expect(
      (
        await postJson(
          direct,
          PATHS.login,
          { user: 'alice', password: PASSWORD },
          { 'x-forwarded-for': '198.51.100.99' },
        )
      ).status,
    ).toBe(429);
    // ...and a third socket address is unaffected by either block.
    const other = await session('127.0.0.3');
    expect((await postJson(other, PATHS.login, { user: 'alice', password: PASSWORD })).status).toBe(200);
  });

  it('header and body caps: an oversized header block is refused, an oversized JSON body is 400; the connection serves on', async () => {
    const s = await session('127.0.0.5');
    const fine = await rawRequest(s, { ':method': 'GET', ':path': PATHS.healthz, 'x-pad': 'p'.repeat(8 * 1024) });
    expect(fine.status).toBe(200);
    const huge = await rawRequest(s, { ':method': 'GET', ':path': PATHS.healthz, 'x-pad': 'p'.repeat(20 * 1024) }).then(
      (a) => a.status,
      () => 'reset',
    );
    expect(huge === 'reset' || huge === 431).toBe(true);
    const s2 = await session('127.0.0.5');
    const big = await postJson(s2, PATHS.login, { user: 'alice', password: 'x'.repeat(70 * 1024) });
    expect(big.status).toBe(400);
    expect(big.body).toMatchObject({ code: 'RLY_ERR_BAD_REQUEST', message: 'request body is too large' });
    expect((await rawRequest(s2, { ':method': 'GET', ':path': PATHS.healthz })).status).toBe(200);
  });

  it('an unknown user and a wrong password get exactly the same answer', async () => {
    const s = await session('127.0.0.4');
    const unknown = await postJson(s, PATHS.login, { user: 'nobody-here', password: 'whatever-1' });
    const wrong = await postJson(s, PATHS.login, { user: 'alice', password: 'whatever-1' });
    expect(unknown.status).toBe(401);
    expect(wrong.status).toBe(unknown.status);
    expect(wrong.text).toBe(unknown.text);
    expect(wrong.headers['x-mssh-error']).toBe(unknown.headers['x-mssh-error']);
    expect(wrong.headers['content-type']).toBe(unknown.headers['content-type']);
    expect(unknown.body).toMatchObject({ code: 'AUTH_ERR_BAD_CREDENTIALS' });
  });
});

describe('--login-attempts applies to the SSH jump listener too (Postgres)', () => {
  let relay: Relay;
  let sshPort: number;
  let cfg: string;
  let h2: http2.ClientHttp2Session | undefined;

  beforeAll(async () => {
    sshPort = await freePort();
    // 2, below the default of 5: the third failed login from an address is refused.
    relay = await startRelay('postgres', ['--ssh-listen', `127.0.0.1:${sshPort}`, '--login-attempts', '2']);
    const r = await relay.cli(['user', 'add', 'alice', '--password-stdin'], `${PASSWORD}\n`);
    expect(r.code, r.stderr).toBe(0);
    const dir = mkdtempSync(join(fixtures().root, 'jump-limit-'));
    const stranger = sshKeygen(dir, 'stranger'); // registered nowhere
    const relayKey = readFileSync(join(relay.dataDir, 'ssh', 'ssh_host_ed25519_key.pub'), 'utf8')
      .trim()
      .split(/\s+/)
      .slice(0, 2)
      .join(' ');
    writeFileSync(join(dir, 'known_hosts'), `[127.0.0.1]:${sshPort} ${relayKey}\n`);
    cfg = writeSshConfig(dir, 'ssh_config', [['127.0.0.1', stranger]]);
  });
  afterAll(async () => {
    h2?.close();
    await relay?.proc.stop();
  });

  it('two failed SSH logins, then RLY_ERR_RATE_LIMITED on SSH (audited) and on the HTTPS login from the same address', async () => {
    const ssh = () =>
      runCommand('ssh', ['-F', cfg, '-p', String(sshPort), '-T', 'alice@127.0.0.1'], {
        env: { ...process.env, SSH_AUTH_SOCK: '' },
        timeoutMs: 30_000,
      });
    for (let i = 0; i < 2; i++) {
      const denied = await ssh();
      expect(denied.code).toBe(255);
      expect(denied.stderr).toMatch(/Permission denied \(publickey\)/);
    }
    const limited = await ssh();
    expect(limited.code).toBe(255);
    expect(limited.stderr).toMatch(
      /Received disconnect from 127\.0\.0\.1 port \d+:14: RLY_ERR_RATE_LIMITED: too many failed logins; try again in \d+ s/,
    );
    expect(limited.stderr).not.toMatch(/Permission denied/);

    // One limiter for both doors: the right password over HTTPS from that address is refused too.
    h2 = await h2From(relay, '127.0.0.1');
    const login = await postJson(h2, PATHS.login, { user: 'alice', password: PASSWORD });
    expect(login.status).toBe(429);
    expect(login.body).toMatchObject({ code: 'RLY_ERR_RATE_LIMITED' });

    const c = new pg.Client({ connectionString: relay.databaseUrl });
    await c.connect();
    try {
      const rows = await waitFor(
        async () => {
          const q = await c.query(
            `SELECT code, actor, source, details FROM audit_events WHERE type = 'user.login' AND details->>'via' = 'jump' ORDER BY id`,
          );
          return q.rows.length >= 3 ? q.rows : null;
        },
        10_000,
        'three user.login rows via jump',
      );
      expect(rows.map((x) => x.details.code ?? null)).toEqual([null, null, 'RLY_ERR_RATE_LIMITED']);
      expect(rows[2]).toMatchObject({
        code: 'USR001W',
        actor: 'alice',
        source: '127.0.0.1',
        details: { success: false, reason: expect.stringMatching(/^RLY_ERR_RATE_LIMITED: /) },
      });
    } finally {
      await c.end();
    }
  });
});

describe('signing key rotation while the relay runs (Postgres)', () => {
  let relay: Relay;
  let h2: http2.ClientHttp2Session;
  beforeAll(async () => {
    relay = await startRelay('postgres');
    h2 = await h2From(relay);
  });
  afterAll(async () => {
    h2?.close();
    await relay?.proc.stop();
  });

  const login = async (s: http2.ClientHttp2Session) => {
    const r = await postJson(s, PATHS.login, { user: 'admin', password: ADMIN_PASSWORD });
    expect(r.status).toBe(200);
    return r.body.token as string;
  };
  const whoami = (s: http2.ClientHttp2Session, token: string) =>
    rawRequest(s, { ':method': 'GET', ':path': PATHS.whoami, authorization: `Bearer ${token}` });
  const jwksKids = async (s: http2.ClientHttp2Session) =>
    ((await rawRequest(s, { ':method': 'GET', ':path': PATHS.jwks })).body.keys as Array<{ kid: string }>)
      .map((k) => k.kid)
      .sort();

  it('old tokens keep working, new tokens use the new key, JWKS lists both, key.rotated is audited', async () => {
    const oldToken = await login(h2);
    const oldKid = decodeProtectedHeader(oldToken).kid!;
    expect(await jwksKids(h2)).toEqual([oldKid]);

    const r = await relay.cli(['keys', 'rotate']);
    expect(r.code, r.stderr).toBe(0);
    const newKid = r.stdout.match(/New signing key (\S+):/)![1]!;
    expect(newKid).not.toBe(oldKid);
    expect(r.stdout).toContain(`Retired ${oldKid}`);

    expect(await jwksKids(h2)).toEqual([oldKid, newKid].sort());
    expect((await whoami(h2, oldToken)).status).toBe(200);
    const newToken = await login(h2);
    expect(decodeProtectedHeader(newToken).kid).toBe(newKid);
    expect((await whoami(h2, newToken)).status).toBe(200);

    // After a restart the retired key is still loaded (its tokens have not expired yet).
    h2.close();
    await relay.restart();
    h2 = await h2From(relay);
    expect((await whoami(h2, oldToken)).status).toBe(200);
    expect(decodeProtectedHeader(await login(h2)).kid).toBe(newKid);
    expect(await jwksKids(h2)).toEqual([oldKid, newKid].sort());

    // Rotating with the relay stopped works on the database; the next start signs with that key.
    h2.close();
    await relay.proc.stop();
    const offline = await relay.cli(['keys', 'rotate']);
    expect(offline.code, offline.stderr).toBe(0);
    const thirdKid = offline.stdout.match(/New signing key (\S+):/)![1]!;
    expect(offline.stdout).toContain(`Retired ${newKid}`);
    await relay.restart();
    h2 = await h2From(relay);
    expect(decodeProtectedHeader(await login(h2)).kid).toBe(thirdKid);
    expect((await whoami(h2, oldToken)).status).toBe(200);
    expect((await whoami(h2, newToken)).status).toBe(200);
    expect(await jwksKids(h2)).toEqual([oldKid, newKid, thirdKid].sort());

    const c = new pg.Client({ connectionString: relay.databaseUrl });
    await c.connect();
    try {
      const rows = (await c.query(`SELECT code, actor, details FROM audit_events WHERE type = 'key.rotated'`)).rows;
      expect(rows).toHaveLength(2);
      expect(rows).toContainEqual(
        expect.objectContaining({ code: 'KEY001I', actor: 'local-admin', details: { kid: newKid, retired: [oldKid] } }),
      );
      expect(rows).toContainEqual(
        expect.objectContaining({ code: 'KEY001I', details: { kid: thirdKid, retired: [newKid] } }),
      );
    } finally {
      await c.end();
    }
  });
});
