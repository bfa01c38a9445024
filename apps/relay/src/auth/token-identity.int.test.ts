/**
 * Issue 16 item 6 and issue 17 item 5: who a token is. Tokens name the user's immutable id and token
 * generation; a password reset, a disable or a role change ends the tokens issued before it; a token from
 * before these claims, one issued in the future or one living longer than the relay allows is refused.
 * And a disabled account hears that it is disabled only once its password was right. Through the relay's
 * API (inject) over a real database of each kind.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { SignJWT, importJWK } from 'jose';
import { eq } from 'drizzle-orm';
import { hashPassword } from '@mssh/auth';
import { users } from '@mssh/migrations';
import { JWT_AUDIENCE, JWT_DEFAULT_TTL_SECONDS, JWT_ISSUER, PATHS, WhoamiResponse } from '@mssh/protocol';
import { ADMIN, DB_KINDS, apiCall, apiLogin, startTestRelay, type TestRelay } from '../test-support.js';

describe.each(DB_KINDS)('token identity and lifetime on %s', (kind) => {
  let r: TestRelay;
  let adminToken: string;

  const call = (method: Parameters<typeof apiCall>[1], url: string, opts?: Parameters<typeof apiCall>[3]) =>
    apiCall(r, method, url, opts);

  async function addUser(name: string, password: string): Promise<void> {
    const res = await call('POST', PATHS.adminUsers, { token: adminToken, body: { name, password } });
    expect(res.statusCode, res.body).toBe(201);
  }

  async function expect401(token: string, code: string): Promise<void> {
    for (const url of [PATHS.hosts, PATHS.whoami]) {
      const res = await call('GET', url, { token });
      expect(res.statusCode, `${url}: ${res.body}`).toBe(401);
      expect(res.json(), url).toMatchObject({ statusCode: 401, code });
    }
  }

  /** A token signed with the relay's own current key, with the claims given (iat/nbf/exp in seconds). */
  async function relaySigned(
    claims: Record<string, unknown>,
    times: { iat: number; nbf?: number; exp: number },
    sub = 'alice',
  ): Promise<string> {
    const key = (await r.repos.signingKeys.list()).find((k) => k.kid === r.tokens.signingKid)!;
    return new SignJWT(claims)
      .setProtectedHeader({ alg: 'EdDSA', kid: key.kid, typ: 'JWT' })
      .setIssuer(JWT_ISSUER)
      .setAudience(JWT_AUDIENCE)
      .setSubject(sub)
      .setJti(`t-${Math.random()}`)
      .setIssuedAt(times.iat)
      .setNotBefore(times.nbf ?? times.iat)
      .setExpirationTime(times.exp)
      .sign(await importJWK(key.privateJwk as never, 'EdDSA'));
  }

  beforeAll(async () => {
    r = await startTestRelay(kind);
    adminToken = await apiLogin(r, ADMIN.name, ADMIN.password);
  });
  afterAll(async () => {
    await r?.close();
  });

  it('a user deleted and created again under the same name does not inherit the old tokens (nor does an old token show the new admin flag)', async () => {
    await addUser('dora', 'dora-password');
    const old = await apiLogin(r, 'dora', 'dora-password');
    expect(WhoamiResponse.parse((await call('GET', PATHS.whoami, { token: old })).json())).toMatchObject({
      user: 'dora',
      admin: false,
    });
    // There is no delete command yet: SQL, as an operator would.
    await r.database.db.delete(users).where(eq(users.name, 'dora'));
    await r.repos.users.create({ name: 'dora', passwordHash: await hashPassword('new-dora-password'), isAdmin: true });
    await expect401(old, 'AUTH_ERR_INVALID_TOKEN');
    const admin = await call('GET', PATHS.adminUsers, { token: old });
    expect(admin.statusCode).toBe(401);
    // The new dora logs in as herself.
    const fresh = await apiLogin(r, 'dora', 'new-dora-password');
    expect(WhoamiResponse.parse((await call('GET', PATHS.whoami, { token: fresh })).json())).toMatchObject({
      user: 'dora',
      admin: true,
    });
  });

  it('an admin password reset ends the tokens issued before it (AUTH_ERR_SESSION_ENDED); a new login works', async () => {
    await addUser('erin', 'erin-password');
    const old = await apiLogin(r, 'erin', 'erin-password');
    expect((await call('GET', PATHS.hosts, { token: old })).statusCode).toBe(200);
    const pw = await call('POST', `${PATHS.adminUser('erin')}/password`, {
      token: adminToken,
      body: { password: 'erin-new-password' },
    });
    expect(pw.statusCode, pw.body).toBe(200);
    await expect401(old, 'AUTH_ERR_SESSION_ENDED');
    const fresh = await apiLogin(r, 'erin', 'erin-new-password');
    expect((await call('GET', PATHS.hosts, { token: fresh })).statusCode).toBe(200);
  });

  it('a role change ends the tokens issued before it; disable ends them for good (enable does not revive them)', async () => {
    await addUser('finn', 'finn-password');
    const beforeRole = await apiLogin(r, 'finn', 'finn-password');
    const role = await call('POST', `${PATHS.adminUser('finn')}/role`, { token: adminToken, body: { role: 'ops' } });
    expect(role.statusCode, role.body).toBe(200);
    await expect401(beforeRole, 'AUTH_ERR_SESSION_ENDED');
    // The relay ended finn's live sessions too (the stub router records the call).
    expect(r.router.closed).toContainEqual({ kind: 'user', name: 'finn', reason: 'role_changed' });

    const beforeDisable = await apiLogin(r, 'finn', 'finn-password');
    expect((await call('POST', `${PATHS.adminUser('finn')}/disable`, { token: adminToken, body: {} })).statusCode).toBe(
      200,
    );
    await expect401(beforeDisable, 'AUTH_ERR_USER_DISABLED');
    expect((await call('POST', `${PATHS.adminUser('finn')}/enable`, { token: adminToken })).statusCode).toBe(200);
    await expect401(beforeDisable, 'AUTH_ERR_SESSION_ENDED');
    expect((await call('GET', PATHS.hosts, { token: await apiLogin(r, 'finn', 'finn-password') })).statusCode).toBe(
      200,
    );
  });

  it('a token issued before tokens named the user id and generation is AUTH_ERR_TOKEN_OUTDATED (log in again)', async () => {
    const nowS = Math.floor(Date.now() / 1000);
    const legacy = await relaySigned({ admin: true }, { iat: nowS, exp: nowS + 3600 }, 'admin');
    await expect401(legacy, 'AUTH_ERR_TOKEN_OUTDATED');
    const res = await call('GET', PATHS.hosts, { token: legacy });
    expect(res.json().message).toMatch(/mssh login/);
  });

  it("iat in the future beyond the leeway, or a lifetime beyond the maximum, is refused even with the relay's key", async () => {
    const admin = (await r.repos.users.findByName('admin'))!;
    const who = { admin: true, uid: admin.id, gen: admin.tokenGeneration };
    const nowS = Math.floor(Date.now() / 1000);
    // Within the rules: accepted (so the refusals below are about the one claim that differs).
    expect(
      (await call('GET', PATHS.hosts, { token: await relaySigned(who, { iat: nowS, exp: nowS + 3600 }, 'admin') }))
        .statusCode,
    ).toBe(200);
    await expect401(
      await relaySigned(who, { iat: nowS + 600, nbf: nowS, exp: nowS + 3600 }, 'admin'),
      'AUTH_ERR_INVALID_TOKEN',
    );
    await expect401(
      await relaySigned(who, { iat: nowS, exp: nowS + JWT_DEFAULT_TTL_SECONDS + 3600 }, 'admin'),
      'AUTH_ERR_INVALID_TOKEN',
    );
    await expect401(
      await relaySigned(who, { iat: nowS, exp: nowS + 10 * 365 * 86_400 }, 'admin'),
      'AUTH_ERR_INVALID_TOKEN',
    );
  });

  it('a disabled account: the right password hears AUTH_ERR_USER_DISABLED, a wrong one the same answer as an unknown user', async () => {
    await addUser('gus', 'gus-password');
    expect((await call('POST', `${PATHS.adminUser('gus')}/disable`, { token: adminToken, body: {} })).statusCode).toBe(
      200,
    );
    const right = await call('POST', PATHS.login, { body: { user: 'gus', password: 'gus-password' } });
    expect(right.statusCode).toBe(401);
    expect(right.json()).toMatchObject({ code: 'AUTH_ERR_USER_DISABLED' });
    expect(right.json().message).toMatch(/disabled by an admin/);
    const wrong = await call('POST', PATHS.login, { body: { user: 'gus', password: 'not-gus-password' } });
    const unknown = await call('POST', PATHS.login, { body: { user: 'nobody-here', password: 'not-gus-password' } });
    expect(wrong.statusCode).toBe(401);
    expect(wrong.json()).toEqual(unknown.json());
    expect(wrong.json().code).toBe('AUTH_ERR_BAD_CREDENTIALS');
  });
});
