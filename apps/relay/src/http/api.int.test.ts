/**
 * The relay API through fastify's inject(), over a real database of each kind, with a stub tunnel
 * router (the tunnel is tested in tunnel/). Covers the authentication wall, enrolment and admin rights.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { SignJWT, UnsecuredJWT, importJWK } from 'jose';
import { eq } from 'drizzle-orm';
import { enrollTokens } from '@mssh/migrations';
import { generateSigningKey, TokenService } from '@mssh/auth';
import {
  PATHS,
  fingerprintKeyLine,
  HostsResponse,
  LoginResponse,
  CreateEnrollTokenResponse,
  EnrollResponse,
  HostInfo,
} from '@mssh/protocol';
import {
  ADMIN,
  ALICE,
  DB_KINDS,
  agentIdentity,
  apiCall,
  apiLogin,
  auditRowsOfType,
  startTestRelay,
  type TestRelay,
} from '../test-support.js';

describe.each(DB_KINDS)('relay API on %s', (kind) => {
  let r: TestRelay;
  let adminToken: string;
  let aliceToken: string;

  const call = (method: Parameters<typeof apiCall>[1], url: string, opts?: Parameters<typeof apiCall>[3]) =>
    apiCall(r, method, url, opts);

  const login = (user: string, password: string) => apiLogin(r, user, password);

  const issueEnrollToken = async (name: string) => {
    const res = await call('POST', PATHS.adminAgentEnroll, { token: adminToken, body: { name } });
    expect(res.statusCode, res.body).toBe(201);
    return CreateEnrollTokenResponse.parse(res.json()).token;
  };

  const enroll = (token: string, name: string, id = agentIdentity()) =>
    call('POST', PATHS.enroll, {
      body: { token, name, publicKey: id.publicKey, hostKeys: [id.hostKey], agentVersion: '0.1.0', protocolVersion: 1 },
    });

  const auditRows = (type: string) => auditRowsOfType(r, type);

  beforeAll(async () => {
    r = await startTestRelay(kind);
    adminToken = await login(ADMIN.name, ADMIN.password);
    aliceToken = await login(ALICE.name, ALICE.password);
  });
  afterAll(async () => {
    await r?.close();
  });

  describe('login', () => {
    it('issues a token that whoami accepts', async () => {
      const res = await call('POST', PATHS.login, { body: { user: ALICE.name, password: ALICE.password } });
      const body = LoginResponse.parse(res.json());
      expect(body).toMatchObject({ user: 'alice', admin: false });
      expect(Date.parse(body.expiresAt)).toBeGreaterThan(Date.now() + 11 * 3600_000);
      const who = await call('GET', PATHS.whoami, { token: body.token });
      expect(who.statusCode).toBe(200);
      expect(who.json()).toEqual({ user: 'alice', admin: false, expiresAt: body.expiresAt });
    });

    it('answers the same 401 for a wrong password and an unknown user, and audits both', async () => {
      const wrong = await call('POST', PATHS.login, { body: { user: ALICE.name, password: 'not-the-password' } });
      const unknown = await call('POST', PATHS.login, { body: { user: 'mallory', password: 'whatever-password' } });
      for (const res of [wrong, unknown]) {
        expect(res.statusCode).toBe(401);
        expect(res.json()).toEqual({
          statusCode: 401,
          code: 'AUTH_ERR_BAD_CREDENTIALS',
          error: 'Unauthorized',
          message: 'wrong user name or password',
        });
      }
      const rows = await auditRows('user.login');
      expect(rows.find((x) => x.actor === 'mallory')).toMatchObject({
        code: 'USR001W',
        details: { success: false, reason: 'unknown_user' },
      });
      expect(rows.find((x) => x.actor === 'alice' && x.code === 'USR001W')).toMatchObject({
        details: { reason: 'bad_password' },
      });
      expect(rows.find((x) => x.actor === 'alice' && x.code === 'USR001I')).toBeDefined();
      expect(rows.every((x) => x.relayId === 'test-relay')).toBe(true);
    });

    it('rejects malformed and oversized bodies with RLY_ERR_BAD_REQUEST', async () => {
      const missing = await call('POST', PATHS.login, { body: { user: 'alice' } });
      expect(missing.statusCode).toBe(400);
      expect(missing.json()).toMatchObject({ statusCode: 400, code: 'RLY_ERR_BAD_REQUEST', error: 'Bad Request' });
      const bad = await r.app.inject({
        method: 'POST',
        url: PATHS.login,
        headers: { 'content-type': 'application/json' },
        payload: '{nope',
      });
      expect(bad.json()).toMatchObject({ statusCode: 400, code: 'RLY_ERR_BAD_REQUEST' });
      const big = await call('POST', PATHS.login, { body: { user: 'alice', password: 'x'.repeat(100 * 1024) } });
      expect(big.json()).toMatchObject({
        statusCode: 400,
        code: 'RLY_ERR_BAD_REQUEST',
        message: 'request body is too large',
      });
    });
  });

  describe('the authentication wall', () => {
    async function expect401(token: string | undefined, code: string, raw?: string) {
      const headers: Record<string, string> =
        raw !== undefined ? { authorization: raw } : token !== undefined ? { authorization: `Bearer ${token}` } : {};
      for (const url of [PATHS.hosts, PATHS.host('laptop'), PATHS.whoami]) {
        const res = await r.app.inject({ method: 'GET', url, headers });
        expect(res.statusCode, url).toBe(401);
        expect(res.json(), url).toMatchObject({ statusCode: 401, code, error: 'Unauthorized' });
        expect(res.body).not.toContain('hosts');
      }
    }

    it('no token, or not a bearer token', async () => {
      await expect401(undefined, 'AUTH_ERR_MISSING_TOKEN');
      await expect401(undefined, 'AUTH_ERR_MISSING_TOKEN', 'Basic YWRtaW46eA==');
      await expect401(undefined, 'AUTH_ERR_MISSING_TOKEN', 'Bearer');
    });

    it('a garbage token', async () => {
      await expect401('not.a.jwt', 'AUTH_ERR_INVALID_TOKEN');
      await expect401('x'.repeat(3000), 'AUTH_ERR_INVALID_TOKEN');
    });

    it('an expired token', async () => {
      const keys = await r.repos.signingKeys.list();
      const past = await TokenService.create(keys, { now: () => new Date(Date.now() - 13 * 3600_000) });
      const admin = (await r.repos.users.findByName('admin'))!;
      const t = await past.sign({ user: 'admin', userId: admin.id, generation: admin.tokenGeneration, admin: true });
      await expect401(t.token, 'AUTH_ERR_TOKEN_EXPIRED');
    });

    it('a token signed by another key (unknown kid, or forged with a known kid)', async () => {
      const other = await TokenService.create([await generateSigningKey()]);
      const admin = (await r.repos.users.findByName('admin'))!;
      await expect401(
        (await other.sign({ user: 'admin', userId: admin.id, generation: admin.tokenGeneration, admin: true })).token,
        'AUTH_ERR_INVALID_TOKEN',
      );
      const foreign = await generateSigningKey();
      const forged = await new SignJWT({ admin: true })
        .setProtectedHeader({ alg: 'EdDSA', kid: r.tokens.signingKid! })
        .setIssuer('mssh-relay')
        .setAudience('mssh')
        .setSubject('admin')
        .setJti('j1')
        .setIssuedAt()
        .setNotBefore('0s')
        .setExpirationTime('1h')
        .sign(await importJWK(foreign.privateJwk, 'EdDSA'));
      await expect401(forged, 'AUTH_ERR_INVALID_TOKEN');
    });

    it('an `alg: none` token', async () => {
      const none = new UnsecuredJWT({ admin: true })
        .setIssuer('mssh-relay')
        .setAudience('mssh')
        .setSubject('admin')
        .setJti('j2')
        .setIssuedAt()
        .setNotBefore('0s')
        .setExpirationTime('1h')
        .encode();
      await expect401(none, 'AUTH_ERR_INVALID_TOKEN');
    });

    it('a valid token of a user that no longer exists', async () => {
      const t = await r.tokens.sign({
        user: 'ghost',
        userId: '00000000-0000-4000-8000-000000000000',
        generation: 0,
        admin: true,
      });
      await expect401(t.token, 'AUTH_ERR_INVALID_TOKEN');
    });

    it('logout revokes the token, and only that one', async () => {
      const t = await login(ALICE.name, ALICE.password);
      expect((await call('GET', PATHS.hosts, { token: t })).statusCode).toBe(200);
      const out = await call('POST', PATHS.logout, { token: t, body: {} });
      expect(out.statusCode).toBe(204);
      await expect401(t, 'AUTH_ERR_TOKEN_REVOKED');
      expect((await call('POST', PATHS.logout, { token: t })).statusCode).toBe(401);
      expect((await call('GET', PATHS.hosts, { token: aliceToken })).statusCode).toBe(200);
      const rows = await auditRows('user.logout');
      expect(rows.some((x) => x.actor === 'alice' && x.code === 'USR002I')).toBe(true);
    });

    it('anonymous routes: healthz, jwks, enrol; unknown routes are coded 404s', async () => {
      expect((await call('GET', PATHS.healthz)).statusCode).toBe(200);
      const jwks = await call('GET', PATHS.jwks);
      expect(jwks.json().keys.map((k: { kid: string }) => k.kid)).toContain(r.tokens.signingKid);
      expect(JSON.stringify(jwks.json())).not.toContain('"d"');
      const nf = await call('GET', '/v1/nothing-here');
      expect(nf.statusCode).toBe(404);
      expect(nf.json()).toMatchObject({ statusCode: 404, code: 'RLY_ERR_NOT_FOUND', error: 'Not Found' });
    });
  });

  describe('enrolment', () => {
    it('enrols with a valid token; the host is listed with its key fingerprints, online from the router', async () => {
      const token = await issueEnrollToken('laptop');
      const id = agentIdentity();
      const res = await enroll(token, 'laptop', id);
      expect(res.statusCode, res.body).toBe(201);
      const body = EnrollResponse.parse(res.json());
      expect(body).toMatchObject({ name: 'laptop', agentEndpoint: null });
      expect(await r.repos.agents.findByPublicKey(id.publicKey)).toMatchObject({
        id: body.agentId,
        name: 'laptop',
        revokedAt: null,
      });

      // alice (not an admin) sees nothing until granted.
      expect(HostsResponse.parse((await call('GET', PATHS.hosts, { token: aliceToken })).json()).hosts).toEqual([]);
      await r.repos.grants.add({ subjectKind: 'user', subject: 'alice', pattern: 'lap*', createdBy: 'test' });
      const list = HostsResponse.parse((await call('GET', PATHS.hosts, { token: aliceToken })).json());
      const laptop = list.hosts.find((h) => h.name === 'laptop')!;
      expect(laptop).toMatchObject({
        online: false,
        lastSeen: null,
        hostKeys: [id.hostKey],
        hostKeyFingerprints: [fingerprintKeyLine(id.hostKey)],
        agentVersion: '0.1.0',
        protocolVersion: 1,
      });
      r.router.online.add('laptop');
      const one = HostInfo.parse((await call('GET', PATHS.host('laptop'), { token: aliceToken })).json());
      expect(one.online).toBe(true);
      const rows = await auditRows('agent.enrolled');
      expect(rows.find((x) => x.host === 'laptop')).toMatchObject({ code: 'AGT001I', actor: 'admin' });
    });

    it('refuses a reused token', async () => {
      const token = await issueEnrollToken('reuse');
      expect((await enroll(token, 'reuse')).statusCode).toBe(201);
      const again = await enroll(token, 'reuse');
      expect(again.statusCode).toBe(401);
      expect(again.json()).toMatchObject({ code: 'RLY_ERR_ENROLL_TOKEN_INVALID' });
    });

    it('refuses an expired token and an unknown one', async () => {
      const token = await issueEnrollToken('late');
      await r.database.db
        .update(enrollTokens)
        .set({ expiresAt: new Date(Date.now() - 60_000) })
        .where(eq(enrollTokens.name, 'late'));
      const res = await enroll(token, 'late');
      expect(res.statusCode).toBe(401);
      expect(res.json()).toMatchObject({ code: 'RLY_ERR_ENROLL_TOKEN_INVALID' });
      expect((await enroll('a'.repeat(43), 'late')).json()).toMatchObject({ code: 'RLY_ERR_ENROLL_TOKEN_INVALID' });
    });

    it('refuses a duplicate name (and issuing a token for it), leaving the token unused', async () => {
      const t1 = await issueEnrollToken('dup');
      const t2 = await issueEnrollToken('dup');
      expect((await enroll(t1, 'dup')).statusCode).toBe(201);
      const second = await enroll(t2, 'dup');
      expect(second.statusCode).toBe(409);
      expect(second.json()).toMatchObject({ code: 'RLY_ERR_NAME_TAKEN' });
      const rows = await r.database.db.select().from(enrollTokens).where(eq(enrollTokens.name, 'dup'));
      expect(rows.filter((x) => x.usedAt === null)).toHaveLength(1);
      const third = await call('POST', PATHS.adminAgentEnroll, { token: adminToken, body: { name: 'dup' } });
      expect(third.statusCode).toBe(409);
      expect(third.json()).toMatchObject({ code: 'RLY_ERR_NAME_TAKEN' });
    });

    it('refuses a token issued for another name, without using it up', async () => {
      const token = await issueEnrollToken('right');
      const res = await enroll(token, 'wrong');
      expect(res.statusCode).toBe(400);
      expect(res.json()).toMatchObject({ code: 'RLY_ERR_ENROLL_NAME_MISMATCH' });
      expect((await enroll(token, 'right')).statusCode).toBe(201);
    });

    it('refuses a key that is not Ed25519, and a key already enrolled', async () => {
      const token = await issueEnrollToken('badkey');
      const id = agentIdentity();
      const rsa = (await import('node:crypto'))
        .generateKeyPairSync('rsa', { modulusLength: 1024 })
        .publicKey.export({ format: 'der', type: 'spki' })
        .toString('base64');
      for (const publicKey of ['AAAA', rsa.slice(0, 200)]) {
        const res = await call('POST', PATHS.enroll, {
          body: { token, name: 'badkey', publicKey, hostKeys: [], agentVersion: '0.1.0', protocolVersion: 1 },
        });
        expect(res.statusCode).toBe(400);
        expect(res.json()).toMatchObject({ code: 'RLY_ERR_BAD_REQUEST' });
      }
      expect((await enroll(token, 'badkey', id)).statusCode).toBe(201);
      const token2 = await issueEnrollToken('samekey');
      const res = await enroll(token2, 'samekey', id);
      expect(res.statusCode).toBe(400);
      expect(res.json().message).toMatch(/already enrolled/);
    });

    it('refuses malformed requests', async () => {
      const res = await call('POST', PATHS.enroll, { body: { token: 'short', name: 'Not A Name' } });
      expect(res.statusCode).toBe(400);
      expect(res.json()).toMatchObject({ code: 'RLY_ERR_BAD_REQUEST' });
      expect(res.json().message).toMatch(/name/);
    });
  });

  describe('hosts', () => {
    it('unknown and malformed host names', async () => {
      const unknown = await call('GET', PATHS.host('nowhere'), { token: adminToken });
      expect(unknown.statusCode).toBe(404);
      expect(unknown.json()).toMatchObject({ code: 'RLY_ERR_UNKNOWN_HOST' });
      // A non-admin without a grant gets the same answer whether the machine exists or not.
      const ungranted = await call('GET', PATHS.host('nowhere'), { token: aliceToken });
      expect(ungranted.statusCode).toBe(403);
      expect(ungranted.json()).toMatchObject({ code: 'RLY_ERR_NO_GRANT' });
      const bad = await call('GET', PATHS.host('Not_Valid'), { token: aliceToken });
      expect(bad.statusCode).toBe(400);
    });

    it('healthz gives counts only', async () => {
      r.router.sessions = 3;
      const res = await call('GET', PATHS.healthz);
      expect(res.statusCode).toBe(200);
      const body = res.json();
      expect(Object.keys(body).sort()).toEqual([
        'activeSessions',
        'agentsEnrolled',
        'agentsOnline',
        'agentsStale',
        'limits',
        'status',
      ]);
      expect(Object.keys(body.limits).sort()).toEqual(['limiterEntries', 'sourcesTracked']);
      expect(body).toMatchObject({ status: 'ok', agentsOnline: r.router.online.size, activeSessions: 3 });
      expect(res.body).not.toMatch(/laptop/);
      // The database counts are at most 500 ms old (read once per half second, host-service.ts).
      const enrolled = (await r.repos.agents.list()).length;
      await expect
        .poll(async () => (await call('GET', PATHS.healthz)).json<{ agentsEnrolled: number }>().agentsEnrolled, {
          timeout: 3_000,
          interval: 100,
        })
        .toBe(enrolled);
    });
  });

  describe('admin routes', () => {
    it('are 403 for a non-admin and 401 without a token', async () => {
      for (const [url, body] of [
        [PATHS.adminUsers, { name: 'eve', password: 'eve-password', admin: true }],
        [PATHS.adminAgentEnroll, { name: 'evebox' }],
      ] as const) {
        const res = await call('POST', url, { token: aliceToken, body });
        expect(res.statusCode, url).toBe(403);
        expect(res.json()).toMatchObject({ statusCode: 403, code: 'AUTH_ERR_FORBIDDEN', error: 'Forbidden' });
        expect((await call('POST', url, { body })).statusCode).toBe(401);
      }
      expect(await r.repos.users.findByName('eve')).toBeNull();
    });

    it('create users (refusing taken names and short passwords)', async () => {
      const res = await call('POST', PATHS.adminUsers, {
        token: adminToken,
        body: { name: 'bob', password: 'bob-password' },
      });
      expect(res.statusCode).toBe(201);
      expect(res.json()).toMatchObject({ name: 'bob', admin: false });
      expect((await call('POST', PATHS.login, { body: { user: 'bob', password: 'bob-password' } })).statusCode).toBe(
        200,
      );
      const taken = await call('POST', PATHS.adminUsers, {
        token: adminToken,
        body: { name: 'bob', password: 'other-password' },
      });
      expect(taken.statusCode).toBe(409);
      expect(taken.json()).toMatchObject({ code: 'RLY_ERR_NAME_TAKEN' });
      const short = await call('POST', PATHS.adminUsers, {
        token: adminToken,
        body: { name: 'carol', password: 'short' },
      });
      expect(short.json()).toMatchObject({ statusCode: 400, code: 'RLY_ERR_BAD_REQUEST' });
      const rows = await auditRows('user.created');
      expect(rows.find((x) => (x.details as { user?: string }).user === 'bob')).toMatchObject({
        code: 'USR003I',
        actor: 'admin',
      });
    });

    it('issue enrolment tokens with the relay URL and fingerprint', async () => {
      const res = await call('POST', PATHS.adminAgentEnroll, { token: adminToken, body: { name: 'desk' } });
      expect(res.statusCode).toBe(201);
      const body = res.json();
      expect(body).toMatchObject({
        name: 'desk',
        relayUrl: 'https://relay.test:8443',
        relayFingerprint: r.tls.fingerprint,
      });
      expect(Date.parse(body.expiresAt) - Date.now()).toBeGreaterThan(50 * 60_000);
      expect(Date.parse(body.expiresAt) - Date.now()).toBeLessThanOrEqual(3600_000);
      const stored = await r.database.db.select().from(enrollTokens).where(eq(enrollTokens.name, 'desk'));
      expect(stored[0]!.tokenHash).not.toBe(body.token);
      expect(stored[0]!.tokenHash).toMatch(/^[0-9a-f]{64}$/);
    });
  });
});
