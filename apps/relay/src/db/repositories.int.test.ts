/** Repository behaviour that matters under concurrency and over time, on both databases. */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { eq, inArray } from 'drizzle-orm';
import { enrollTokens, revokedTokens } from '@mssh/migrations';
import { DB_KINDS, agentIdentity, openTestDatabase } from '../test-support.js';
import { createRepositories, hashEnrollToken, type Database, type Repositories } from './index.js';
import { UserRepository } from './users.js';

describe.each(DB_KINDS)('repositories on %s', (kind) => {
  let database: Database;
  let cleanup: () => Promise<void>;
  let repos: Repositories;

  beforeAll(async () => {
    ({ database, cleanup } = await openTestDatabase(kind));
    repos = createRepositories(database.db);
  });
  afterAll(async () => {
    await cleanup?.();
  });

  it('an enrolment token is claimed once, even by concurrent claims; only its hash is stored', async () => {
    const { token } = await repos.enrollTokens.create({ name: 'race', createdBy: 'admin', ttlSeconds: 3600 });
    const rows = await database.db.select().from(enrollTokens).where(eq(enrollTokens.name, 'race'));
    expect(rows[0]!.tokenHash).toBe(hashEnrollToken(token));
    expect(JSON.stringify(rows)).not.toContain(token);
    expect(await repos.enrollTokens.peek(token)).toMatchObject({ name: 'race' });
    const claims = await Promise.all(Array.from({ length: 6 }, () => repos.enrollTokens.claim(token)));
    expect(claims.filter((c) => c !== null)).toHaveLength(1);
    expect(await repos.enrollTokens.peek(token)).toBeNull();
  });

  it('the first signing key is created once, even by concurrent first starts', async () => {
    const [a, b] = await Promise.all([repos.signingKeys.loadOrCreate(), repos.signingKeys.loadOrCreate()]);
    expect(a.keys.map((k) => k.kid)).toEqual(b.keys.map((k) => k.kid));
    expect(a.keys).toHaveLength(1);
    expect([a.created, b.created].filter(Boolean).length).toBeLessThanOrEqual(1);
    const again = await repos.signingKeys.loadOrCreate();
    expect(again).toMatchObject({ created: false });
    expect(again.keys[0]!.kid).toBe(a.keys[0]!.kid);
  });

  it('users: unique names, count, list', async () => {
    expect(await repos.users.create({ name: 'u1', passwordHash: 'h', isAdmin: false })).toMatchObject({
      name: 'u1',
      isAdmin: false,
      disabledAt: null,
    });
    expect(await repos.users.create({ name: 'u1', passwordHash: 'h2', isAdmin: true })).toBeNull();
    expect(await repos.users.count()).toBe(1);
    expect((await repos.users.list()).map((u) => u.name)).toEqual(['u1']);
  });

  it('agents: create reports conflicts; the tunnel directory view updates last seen and host keys', async () => {
    const id = agentIdentity();
    const created = await repos.agents.create({
      name: 'box',
      publicKey: id.publicKey,
      hostKeys: [id.hostKey],
      agentVersion: '0.1.0',
      protocolVersion: 1,
    });
    expect(created.ok).toBe(true);
    const other = agentIdentity();
    expect(
      await repos.agents.create({
        name: 'box',
        publicKey: other.publicKey,
        hostKeys: [],
        agentVersion: '0.1.0',
        protocolVersion: 1,
      }),
    ).toEqual({ ok: false, conflict: 'name' });
    expect(
      await repos.agents.create({
        name: 'box2',
        publicKey: id.publicKey,
        hostKeys: [],
        agentVersion: '0.1.0',
        protocolVersion: 1,
      }),
    ).toEqual({ ok: false, conflict: 'publicKey' });
    const found = await repos.agents.findByPublicKey(id.publicKey);
    expect(found).toMatchObject({ name: 'box', revokedAt: null });
    const at = new Date(Date.now() - 1000);
    await repos.agents.markConnected(found!.id, {
      hostKeys: [other.hostKey],
      agentVersion: '0.2.0',
      protocolVersion: 1,
      at,
    });
    expect(await repos.agents.findByName('box')).toMatchObject({
      hostKeys: [other.hostKey],
      agentVersion: '0.2.0',
      lastSeenAt: at,
    });
    const later = new Date();
    await repos.agents.markSeen(found!.id, later);
    expect((await repos.agents.findByName('box'))!.lastSeenAt).toEqual(later);
    expect(await repos.agents.exists('box')).toBe(true);
    expect(await repos.agents.exists('nope')).toBe(false);
    expect(await repos.agents.countEnrolled()).toBe(1);
    expect(await repos.agents.findByPublicKey(agentIdentity().publicKey)).toBeNull();
  });

  it('grants: add is idempotent, remove reports, patternsFor takes user and role in one query', async () => {
    expect(await repos.grants.add({ subjectKind: 'user', subject: 'gina', pattern: 'web-*', createdBy: 'admin' })).toBe(
      true,
    );
    expect(await repos.grants.add({ subjectKind: 'user', subject: 'gina', pattern: 'web-*', createdBy: 'admin' })).toBe(
      false,
    );
    expect(await repos.grants.add({ subjectKind: 'role', subject: 'ops', pattern: 'db-?', createdBy: 'admin' })).toBe(
      true,
    );
    expect(
      await repos.grants.add({ subjectKind: 'role', subject: 'gina', pattern: 'role-only', createdBy: 'admin' }),
    ).toBe(true);
    expect(await repos.grants.add({ subjectKind: 'user', subject: 'other', pattern: '*', createdBy: 'admin' })).toBe(
      true,
    );
    expect((await repos.grants.patternsFor('gina', null)).sort()).toEqual(['web-*']);
    expect((await repos.grants.patternsFor('gina', 'ops')).sort()).toEqual(['db-?', 'web-*']);
    expect(await repos.grants.patternsFor('nobody', null)).toEqual([]);
    expect(await repos.grants.patternsFor('nobody', 'ops')).toEqual(['db-?']);
    const all = await repos.grants.list();
    expect(all.map((g) => `${g.subjectKind}:${g.subject}:${g.pattern}`)).toEqual([
      'role:gina:role-only',
      'role:ops:db-?',
      'user:gina:web-*',
      'user:other:*',
    ]);
    expect(all[0]!.createdBy).toBe('admin');
    expect(await repos.grants.remove({ subjectKind: 'user', subject: 'gina', pattern: 'web-*' })).toBe(true);
    expect(await repos.grants.remove({ subjectKind: 'user', subject: 'gina', pattern: 'web-*' })).toBe(false);
    expect(await repos.grants.patternsFor('gina', null)).toEqual([]);
  });

  it('users: disable/enable, password, role', async () => {
    await repos.users.create({ name: 'hank', passwordHash: 'h', isAdmin: false });
    const at = new Date();
    expect(await repos.users.setDisabled('hank', at)).toMatchObject({ disabledAt: at });
    expect(await repos.users.setDisabled('hank', null)).toMatchObject({ disabledAt: null });
    expect(await repos.users.setPasswordHash('hank', 'h2')).toMatchObject({ passwordHash: 'h2' });
    expect(await repos.users.setRole('hank', 'ops')).toMatchObject({ role: 'ops' });
    expect(await repos.users.setRole('nobody', 'ops')).toBeNull();
  });

  it('agents: revoke keeps the first time, forgetRevoked only forgets revoked rows, countStale', async () => {
    const id = agentIdentity();
    await repos.agents.create({
      name: 'gone',
      publicKey: id.publicKey,
      hostKeys: [],
      agentVersion: '0.1.0',
      protocolVersion: 1,
    });
    expect(await repos.agents.forgetRevoked('gone')).toBe(false);
    const t1 = new Date(Date.now() - 5000);
    expect((await repos.agents.revoke('gone', t1))!.revokedAt).toEqual(t1);
    expect((await repos.agents.revoke('gone', new Date()))!.revokedAt).toEqual(t1);
    expect(await repos.agents.revoke('nope', new Date())).toBeNull();
    expect((await repos.agents.listAll()).map((a) => a.name)).toContain('gone');
    expect((await repos.agents.list()).map((a) => a.name)).not.toContain('gone');
    expect(await repos.agents.forgetRevoked('gone')).toBe(true);
    expect(await repos.agents.findByName('gone')).toBeNull();
    expect(await repos.agents.countStale(new Date(Date.now() - 86_400_000))).toBe(0);
    expect(await repos.agents.countStale(new Date(Date.now() + 86_400_000))).toBeGreaterThan(0);
  });

  it('token lookups asked together share queries, each answer is its own, and a revocation made before a lookup is seen', async () => {
    const luA = (await repos.users.create({ name: 'lu-a', passwordHash: 'pa', isAdmin: true }))!;
    const luB = (await repos.users.create({ name: 'lu-b', passwordHash: 'pb', isAdmin: false }))!;
    await repos.users.setDisabled('lu-b', new Date());
    // Lookups are by the user's id: a name never finds a user, an unknown id finds none.
    const idOf: Record<string, string> = {
      'lu-a': luA.id,
      'lu-b': luB.id,
      'lu-nobody': '00000000-0000-4000-8000-000000000000',
    };
    await repos.revokedTokens.revoke('lu-jti-revoked', new Date(Date.now() + 3600_000));
    // The same repository code on a database handle that counts the statements it is sent.
    let statements = 0;
    const counted = new Proxy(database.db, {
      get(target, prop, receiver) {
        const v = Reflect.get(target, prop, receiver) as unknown;
        if (prop !== 'execute' || typeof v !== 'function') return v;
        return (...args: unknown[]) => {
          statements++;
          return (v as (...a: unknown[]) => unknown).apply(target, args);
        };
      },
    });
    const users = new UserRepository(counted);
    const asks = Array.from({ length: 60 }, (_, i) => ({
      name: ['lu-a', 'lu-b', 'lu-nobody'][i % 3]!,
      jti: i % 4 === 0 ? 'lu-jti-revoked' : `lu-jti-${i}`,
    }));
    const answers = await Promise.all(asks.map((a) => users.findForToken(idOf[a.name]!, a.jti)));
    answers.forEach((ans, i) => {
      const a = asks[i]!;
      expect(ans.revoked, `ask ${i}`).toBe(a.jti === 'lu-jti-revoked');
      if (a.name === 'lu-nobody') expect(ans.user, `ask ${i}`).toBeNull();
      else
        expect(ans.user, `ask ${i}`).toMatchObject({
          name: a.name,
          isAdmin: a.name === 'lu-a',
          passwordHash: a.name === 'lu-a' ? 'pa' : 'pb',
        });
      if (a.name === 'lu-b') expect(ans.user!).toMatchObject({ disabledAt: expect.any(Date), tokenGeneration: 1 });
      if (a.name === 'lu-a') expect(ans.user!.tokenGeneration).toBe(0);
    });
    // The first lookup goes alone; the 59 asked while it was in flight share the next query.
    expect(statements).toBe(2);

    // While a lookup is in flight, revoke a token and ask about it: the answer comes from a later query.
    const before = users.findForToken(luA.id, 'lu-jti-late');
    await repos.revokedTokens.revoke('lu-jti-late', new Date(Date.now() + 3600_000));
    const after = users.findForToken(luA.id, 'lu-jti-late');
    expect((await after).revoked).toBe(true);
    await before;

    // A failed query fails the lookups it carried and leaves the next ones working.
    const broken = new UserRepository(
      new Proxy(database.db, {
        get(target, prop, receiver) {
          if (prop === 'execute') return () => Promise.reject(new Error('connection lost'));
          return Reflect.get(target, prop, receiver) as unknown;
        },
      }),
    );
    await expect(Promise.all([broken.findForToken(luA.id, 'x'), broken.findForToken(luA.id, 'y')])).rejects.toThrow(
      'connection lost',
    );
    expect((await users.findForToken(luA.id, 'lu-jti-ok')).user?.name).toBe('lu-a');
    await database.db.delete(revokedTokens).where(inArray(revokedTokens.jti, ['lu-jti-revoked', 'lu-jti-late']));
  });

  it('revocations: idempotent, and forgotten once long expired', async () => {
    await repos.revokedTokens.revoke('j-live', new Date(Date.now() + 3600_000));
    await repos.revokedTokens.revoke('j-live', new Date(Date.now() + 3600_000));
    await repos.revokedTokens.revoke('j-old', new Date(Date.now() - 3600_000));
    expect(await repos.revokedTokens.isRevoked('j-live')).toBe(true);
    expect(await repos.revokedTokens.isRevoked('j-other')).toBe(false);
    expect(await repos.revokedTokens.purgeExpired()).toBe(1);
    const left = await database.db.select().from(revokedTokens);
    expect(left.map((x) => x.jti)).toEqual(['j-live']);
  });
});
