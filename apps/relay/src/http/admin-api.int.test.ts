/**
 * Users, grants and agents administration over the REST API (admin JWT), on both databases, with a stub
 * tunnel router (it records which sessions and links the relay asked to end). The end-to-end effects on
 * live tunnels are in e2e/access.e2e.test.ts.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  AgentsResponse,
  CreateEnrollTokenResponse,
  GrantsResponse,
  HostsResponse,
  PATHS,
  UsersResponse,
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

describe.each(DB_KINDS)('admin API on %s', (kind) => {
  let r: TestRelay;
  let adminToken: string;
  let aliceToken: string;

  const call = (method: Parameters<typeof apiCall>[1], url: string, opts?: Parameters<typeof apiCall>[3]) =>
    apiCall(r, method, url, opts);
  const login = (user: string, password: string) => apiLogin(r, user, password);
  const enrol = async (name: string) => {
    const t = CreateEnrollTokenResponse.parse(
      (await call('POST', PATHS.adminAgentEnroll, { token: adminToken, body: { name } })).json(),
    ).token;
    const id = agentIdentity();
    const res = await call('POST', PATHS.enroll, {
      body: {
        token: t,
        name,
        publicKey: id.publicKey,
        hostKeys: [id.hostKey],
        agentVersion: '0.1.0',
        protocolVersion: 1,
      },
    });
    expect(res.statusCode, res.body).toBe(201);
    return id;
  };
  const visible = async (token: string) =>
    HostsResponse.parse((await call('GET', PATHS.hosts, { token })).json()).hosts.map((h) => h.name);
  const audit = (type: string) => auditRowsOfType(r, type);

  beforeAll(async () => {
    r = await startTestRelay(kind);
    adminToken = await login(ADMIN.name, ADMIN.password);
    aliceToken = await login(ALICE.name, ALICE.password);
    for (const n of ['web-1', 'web-2', 'db-1', 'db-12']) await enrol(n);
  });
  afterAll(async () => {
    await r?.close();
  });

  it('admin routes are 403 for non-admins', async () => {
    for (const [m, url] of [
      ['GET', PATHS.adminUsers],
      ['GET', PATHS.adminGrants],
      ['GET', PATHS.adminAgents],
      ['POST', `${PATHS.adminAgent('web-1')}/revoke`],
      ['DELETE', PATHS.adminAgent('web-1')],
    ] as const) {
      const res = await call(m, url, { token: aliceToken, body: m === 'POST' ? {} : undefined });
      expect(res.statusCode, url).toBe(403);
    }
  });

  it('grants: nothing until granted; user and role grants; revoke applies at once; bad patterns refused', async () => {
    expect(await visible(adminToken)).toEqual(['db-1', 'db-12', 'web-1', 'web-2']);
    expect(await visible(aliceToken)).toEqual([]);
    const add = await call('POST', PATHS.adminGrants, {
      token: adminToken,
      body: { subjectKind: 'user', subject: 'alice', pattern: 'web-*' },
    });
    expect(add.statusCode, add.body).toBe(201);
    expect(
      (
        await call('POST', PATHS.adminGrants, {
          token: adminToken,
          body: { subjectKind: 'user', subject: 'alice', pattern: 'web-*' },
        })
      ).json(),
    ).toEqual({ changed: false });
    expect(await visible(aliceToken)).toEqual(['web-1', 'web-2']);

    // role grant reaches alice once she has the role
    expect(
      (
        await call('POST', PATHS.adminGrants, {
          token: adminToken,
          body: { subjectKind: 'role', subject: 'ops', pattern: 'db-?' },
        })
      ).statusCode,
    ).toBe(201);
    expect(await visible(aliceToken)).toEqual(['web-1', 'web-2']);
    const role = await call('POST', `${PATHS.adminUser('alice')}/role`, { token: adminToken, body: { role: 'ops' } });
    expect(role.json()).toMatchObject({ name: 'alice', role: 'ops' });
    // A role change ends the tokens judged under the old role: alice logs in again.
    expect((await call('GET', PATHS.hosts, { token: aliceToken })).json().code).toBe('AUTH_ERR_SESSION_ENDED');
    aliceToken = await login(ALICE.name, ALICE.password);
    expect(await visible(aliceToken)).toEqual(['db-1', 'web-1', 'web-2']);

    // GET one host: granted 200; ungranted and unknown look the same
    expect((await call('GET', PATHS.host('db-1'), { token: aliceToken })).statusCode).toBe(200);
    const ungranted = await call('GET', PATHS.host('db-12'), { token: aliceToken });
    const unknown = await call('GET', PATHS.host('db-99'), { token: aliceToken });
    expect(ungranted.statusCode).toBe(403);
    expect(ungranted.json().code).toBe('RLY_ERR_NO_GRANT');
    expect(unknown.statusCode).toBe(403);
    expect(unknown.json().message.replaceAll('db-99', 'X')).toBe(ungranted.json().message.replaceAll('db-12', 'X'));

    const list = GrantsResponse.parse((await call('GET', PATHS.adminGrants, { token: adminToken })).json()).grants;
    expect(list.map((g) => `${g.subjectKind}:${g.subject}:${g.pattern}`)).toEqual([
      'role:ops:db-?',
      'user:alice:web-*',
    ]);
    expect(list[1]!.createdBy).toBe('admin');

    const rm = await call('POST', PATHS.adminGrantsRemove, {
      token: adminToken,
      body: { subjectKind: 'user', subject: 'alice', pattern: 'web-*' },
    });
    expect(rm.statusCode).toBe(200);
    expect(await visible(aliceToken)).toEqual(['db-1']);
    const again = await call('POST', PATHS.adminGrantsRemove, {
      token: adminToken,
      body: { subjectKind: 'user', subject: 'alice', pattern: 'web-*' },
    });
    expect(again.statusCode).toBe(404);
    expect(again.json().code).toBe('RLY_ERR_UNKNOWN_GRANT');
    const clear = await call('POST', `${PATHS.adminUser('alice')}/role`, { token: adminToken, body: { role: null } });
    expect(clear.json()).toMatchObject({ role: null });
    aliceToken = await login(ALICE.name, ALICE.password);
    expect(await visible(aliceToken)).toEqual([]);

    for (const pattern of ['Web-*', '../x', 'a b', '', 'x\u001b[2J']) {
      const bad = await call('POST', PATHS.adminGrants, {
        token: adminToken,
        body: { subjectKind: 'user', subject: 'alice', pattern },
      });
      expect(bad.statusCode, pattern).toBe(400);
      expect(bad.json().code).toBe('RLY_ERR_BAD_REQUEST');
    }
    const nobody = await call('POST', PATHS.adminGrants, {
      token: adminToken,
      body: { subjectKind: 'user', subject: 'nobody', pattern: '*' },
    });
    expect(nobody.statusCode).toBe(404);
    expect(nobody.json().code).toBe('RLY_ERR_UNKNOWN_USER');

    const added = await audit('grant.added');
    expect(added.find((e) => (e.details as { pattern?: string }).pattern === 'web-*')).toMatchObject({
      code: 'GRT001I',
      actor: 'admin',
      details: { subjectKind: 'user', subject: 'alice' },
    });
    expect((await audit('grant.removed')).length).toBe(1);
    expect((await audit('user.role_changed')).length).toBe(2);
  });

  it('users: list, disable (tokens fail at once, sessions ended on request), enable, password', async () => {
    const created = await call('POST', PATHS.adminUsers, {
      token: adminToken,
      body: { name: 'carol', password: 'carol-password' },
    });
    expect(created.statusCode).toBe(201);
    const carolToken = await login('carol', 'carol-password');
    const users = UsersResponse.parse((await call('GET', PATHS.adminUsers, { token: adminToken })).json()).users;
    expect(users.map((u) => u.name)).toEqual(['admin', 'alice', 'carol']);
    expect(users.find((u) => u.name === 'carol')).toMatchObject({ admin: false, role: null, disabled: false });

    const dis = await call('POST', `${PATHS.adminUser('carol')}/disable`, {
      token: adminToken,
      body: { killSessions: true },
    });
    expect(dis.statusCode, dis.body).toBe(200);
    expect(dis.json()).toMatchObject({ name: 'carol', disabled: true, sessionsEnded: 0 });
    expect(r.router.closed).toContainEqual({ kind: 'user', name: 'carol', reason: 'user_disabled' });
    const refused = await call('GET', PATHS.hosts, { token: carolToken });
    expect(refused.statusCode).toBe(401);
    expect(refused.json().code).toBe('AUTH_ERR_USER_DISABLED');
    // The right password of a disabled account hears that it is disabled; a wrong one hears nothing more.
    const disabledLogin = await call('POST', PATHS.login, { body: { user: 'carol', password: 'carol-password' } });
    expect(disabledLogin.statusCode).toBe(401);
    expect(disabledLogin.json().code).toBe('AUTH_ERR_USER_DISABLED');
    const wrongLogin = await call('POST', PATHS.login, { body: { user: 'carol', password: 'not-carols-password' } });
    expect(wrongLogin.json()).toEqual({
      statusCode: 401,
      code: 'AUTH_ERR_BAD_CREDENTIALS',
      error: 'Unauthorized',
      message: 'wrong user name or password',
    });

    expect((await call('POST', `${PATHS.adminUser('carol')}/enable`, { token: adminToken })).json()).toMatchObject({
      disabled: false,
    });
    // Enabling does not revive the tokens the account had: they ended with the disable.
    const revived = await call('GET', PATHS.hosts, { token: carolToken });
    expect(revived.statusCode).toBe(401);
    expect(revived.json().code).toBe('AUTH_ERR_SESSION_ENDED');
    expect((await call('GET', PATHS.hosts, { token: await login('carol', 'carol-password') })).statusCode).toBe(200);

    const pw = await call('POST', `${PATHS.adminUser('carol')}/password`, {
      token: adminToken,
      body: { password: 'new-carol-password' },
    });
    expect(pw.statusCode).toBe(200);
    expect((await call('POST', PATHS.login, { body: { user: 'carol', password: 'carol-password' } })).statusCode).toBe(
      401,
    );
    await login('carol', 'new-carol-password');
    expect(
      (await call('POST', `${PATHS.adminUser('carol')}/password`, { token: adminToken, body: { password: 'short' } }))
        .statusCode,
    ).toBe(400);

    const ghost = await call('POST', `${PATHS.adminUser('ghost')}/disable`, { token: adminToken, body: {} });
    expect(ghost.statusCode).toBe(404);
    expect(ghost.json().code).toBe('RLY_ERR_UNKNOWN_USER');

    expect((await audit('user.disabled'))[0]).toMatchObject({
      code: 'USR004I',
      actor: 'admin',
      details: { user: 'carol', killSessions: true },
    });
    expect((await audit('user.enabled')).length).toBe(1);
    expect((await audit('user.password_changed')).length).toBe(1);
  });

  it('agents: list with fingerprints, revoke (link dropped, name re-enrollable), forget, stale in healthz', async () => {
    const before = AgentsResponse.parse((await call('GET', PATHS.adminAgents, { token: adminToken })).json()).agents;
    const web1 = before.find((a) => a.name === 'web-1')!;
    expect(web1).toMatchObject({
      online: false,
      revokedAt: null,
      stale: false,
      protocolVersion: 1,
      agentVersion: '0.1.0',
    });
    expect(web1.identityFingerprint).toMatch(/^SHA256:[A-Za-z0-9+/]{43}$/);
    expect(web1.hostKeyFingerprints[0]).toMatch(/^SHA256:/);

    r.router.online.add('web-1');
    const rev = await call('POST', `${PATHS.adminAgent('web-1')}/revoke`, { token: adminToken, body: {} });
    expect(rev.statusCode, rev.body).toBe(200);
    expect(rev.json().revokedAt).not.toBeNull();
    expect(r.router.closed).toContainEqual({ kind: 'agent', name: 'web-1', reason: 'agent_revoked' });
    expect(await visible(adminToken)).not.toContain('web-1');
    expect((await r.repos.agents.findByName('web-1'))!.revokedAt).not.toBeNull();

    // re-enrolment of the revoked name with a fresh token works (and replaces the revoked row)
    const id2 = await enrol('web-1');
    expect(await r.repos.agents.findByName('web-1')).toMatchObject({ publicKey: id2.publicKey, revokedAt: null });

    const forget = await call('DELETE', PATHS.adminAgent('web-2'), { token: adminToken });
    expect(forget.statusCode, forget.body).toBe(200);
    expect(await r.repos.agents.findByName('web-2')).toBeNull();
    expect((await call('DELETE', PATHS.adminAgent('web-2'), { token: adminToken })).json().code).toBe(
      'RLY_ERR_UNKNOWN_HOST',
    );
    expect((await call('POST', `${PATHS.adminAgent('nope')}/revoke`, { token: adminToken, body: {} })).statusCode).toBe(
      404,
    );

    // stale: not seen for more than 30 days
    const db1 = await r.repos.agents.findByName('db-1');
    await r.repos.agents.markSeen(db1!.id, new Date(Date.now() - 31 * 86_400_000));
    // The database counts of /healthz are at most 500 ms old (host-service.ts).
    await expect
      .poll(async () => (await call('GET', PATHS.healthz)).json<{ agentsStale: number }>().agentsStale, {
        timeout: 3_000,
        interval: 100,
      })
      .toBe(1);
    const hosts = HostsResponse.parse((await call('GET', PATHS.hosts, { token: adminToken })).json()).hosts;
    expect(hosts.find((h) => h.name === 'db-1')!.stale).toBe(true);
    expect(hosts.find((h) => h.name === 'db-12')!.stale).toBe(false);
    const listed = AgentsResponse.parse((await call('GET', PATHS.adminAgents, { token: adminToken })).json()).agents;
    expect(listed.find((a) => a.name === 'db-1')!.stale).toBe(true);

    expect((await audit('agent.revoked'))[0]).toMatchObject({ code: 'AGT004I', actor: 'admin', host: 'web-1' });
    expect((await audit('agent.forgotten'))[0]).toMatchObject({ code: 'AGT005I', host: 'web-2' });
  });

  it('labels: set at enrolment (from the token, not the agent), changed and audited; label grants; each rule refused RLY_ERR_BAD_LABEL', async () => {
    const bad = async (method: 'POST', url: string, body: unknown, rule: string) => {
      const res = await call(method, url, { token: adminToken, body });
      expect(res.statusCode, res.body).toBe(400);
      expect(res.json()).toMatchObject({
        code: 'RLY_ERR_BAD_LABEL',
        message: expect.stringContaining(`(rule ${rule})`),
      });
    };
    await bad('POST', PATHS.adminAgentEnroll, { name: 'lab-1', labels: { Env: 'prod' } }, 'key_syntax');
    await bad('POST', PATHS.adminAgentEnroll, { name: 'lab-1', labels: { env: 'a b' } }, 'value_syntax');
    const tooMany = Object.fromEntries(Array.from({ length: 33 }, (_, i) => [`k${i}`, 'v']));
    await bad('POST', PATHS.adminAgentEnroll, { name: 'lab-1', labels: tooMany }, 'too_many');

    const t = CreateEnrollTokenResponse.parse(
      (
        await call('POST', PATHS.adminAgentEnroll, {
          token: adminToken,
          body: { name: 'lab-1', labels: { env: 'staging', role: 'web' } },
        })
      ).json(),
    ).token;
    const id = agentIdentity();
    const res = await call('POST', PATHS.enroll, {
      body: {
        token: t,
        name: 'lab-1',
        publicKey: id.publicKey,
        hostKeys: [id.hostKey],
        agentVersion: '0.1.0',
        protocolVersion: 1,
        labels: { env: 'prod' }, // an agent has no say: ignored
      },
    });
    expect(res.statusCode, res.body).toBe(201);
    expect((await r.repos.agents.findByName('lab-1'))!.labels).toEqual({ env: 'staging', role: 'web' });

    // a label grant to a fresh user: sees exactly lab-1
    expect(
      (await call('POST', PATHS.adminUsers, { token: adminToken, body: { name: 'lena', password: 'lena-password-1' } }))
        .statusCode,
    ).toBe(201);
    const lena = await login('lena', 'lena-password-1');
    await bad('POST', PATHS.adminGrants, { subjectKind: 'user', subject: 'lena', labels: 'env' }, 'missing_equals');
    const both = await call('POST', PATHS.adminGrants, {
      token: adminToken,
      body: { subjectKind: 'user', subject: 'lena', labels: 'env=staging', pattern: 'web-*' },
    });
    expect(both.json().code).toBe('RLY_ERR_BAD_REQUEST');
    const g = await call('POST', PATHS.adminGrants, {
      token: adminToken,
      body: { subjectKind: 'user', subject: 'lena', labels: 'role=web,env=staging' },
    });
    expect(g.statusCode, g.body).toBe(201);
    const grants = GrantsResponse.parse((await call('GET', PATHS.adminGrants, { token: adminToken })).json()).grants;
    expect(grants.filter((x) => x.subject === 'lena')).toEqual([
      expect.objectContaining({ subjectKind: 'user', labels: 'env=staging,role=web' }),
    ]);
    expect(await visible(lena)).toEqual(['lab-1']);
    const one = HostsResponse.shape.hosts.element.parse(
      (await call('GET', PATHS.host('lab-1'), { token: lena })).json(),
    );
    expect(one.labels).toEqual({ env: 'staging', role: 'web' });

    // relabel: out of the selector, then back in; the audit has from and to
    const url = `${PATHS.adminAgent('lab-1')}/labels`;
    await bad('POST', url, { set: { 'Bad key': 'x' } }, 'key_syntax');
    await bad('POST', url, { set: tooMany }, 'too_many');
    const r1 = await call('POST', url, { token: adminToken, body: { set: { env: 'prod' } } });
    expect(r1.json()).toEqual({
      name: 'lab-1',
      labels: { env: 'prod', role: 'web' },
      before: { env: 'staging', role: 'web' },
      sessionsEnded: 0,
    });
    expect(await visible(lena)).toEqual([]);
    expect((await call('GET', PATHS.host('lab-1'), { token: lena })).json().code).toBe('RLY_ERR_NO_GRANT');
    const r2 = await call('POST', url, { token: adminToken, body: { set: { env: 'staging', site: 'berlin' } } });
    expect(r2.json().labels).toEqual({ env: 'staging', role: 'web', site: 'berlin' });
    expect(await visible(lena)).toEqual(['lab-1']);
    const r3 = await call('POST', url, { token: adminToken, body: { remove: ['site'] } });
    expect(r3.json().labels).toEqual({ env: 'staging', role: 'web' });
    expect(
      (await call('POST', `${PATHS.adminAgent('nope')}/labels`, { token: adminToken, body: {} })).json().code,
    ).toBe('RLY_ERR_UNKNOWN_HOST');
    // non-admins cannot relabel
    expect((await call('POST', url, { token: lena, body: { set: { env: 'x' } } })).statusCode).toBe(403);
    const listed = AgentsResponse.parse((await call('GET', PATHS.adminAgents, { token: adminToken })).json()).agents;
    expect(listed.find((a) => a.name === 'lab-1')!.labels).toEqual({ env: 'staging', role: 'web' });

    const rows = await audit('agent.labels_changed');
    expect(rows.map((x) => [x.code, x.actor, x.host, (x.details as { to: unknown }).to])).toEqual([
      ['AGT006I', 'admin', 'lab-1', { env: 'prod', role: 'web' }],
      ['AGT006I', 'admin', 'lab-1', { env: 'staging', role: 'web', site: 'berlin' }],
      ['AGT006I', 'admin', 'lab-1', { env: 'staging', role: 'web' }],
    ]);
    expect((await audit('grant.added')).map((x) => x.details)).toContainEqual({
      subjectKind: 'user',
      subject: 'lena',
      labels: 'env=staging,role=web',
    });
  });
});
