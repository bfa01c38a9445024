import { describe, expect, it } from 'vitest';
import { globMatch, grantPatternProblem, matchesAny } from './glob.js';
import { AccessService, rulesMatch } from './access-service.js';

describe('grant globs', () => {
  it.each([
    ['web-*', 'web-1', true],
    ['web-*', 'web-', true],
    ['web-*', 'web', false],
    ['web-*', 'xweb-1', false],
    ['db-?', 'db-1', true],
    ['db-?', 'db-12', false],
    ['db-?', 'db-', false],
    ['*', 'anything', true],
    ['laptop', 'laptop', true],
    ['laptop', 'laptop2', false],
    ['*-prod-*', 'eu-prod-7', true],
    ['*-prod-*', 'eu-dev-7', false],
    ['a**b', 'ab', true],
    ['a**b', 'axyzb', true],
    ['??', 'ab', true],
    ['??', 'a', false],
  ])('%s vs %s -> %s', (pattern, host, expected) => {
    expect(globMatch(pattern, host)).toBe(expected);
  });

  it('regex characters are not special (the alphabet leaves none, and invalid patterns match nothing)', () => {
    expect(globMatch('.*', 'abc')).toBe(false);
    expect(globMatch('a.c', 'abc')).toBe(false);
    expect(globMatch('[ab]', 'a')).toBe(false);
    expect(globMatch('', '')).toBe(false);
  });

  it('validates patterns with a message that says what is allowed', () => {
    for (const ok of ['web-*', 'db-?', '*', 'a', 'x'.repeat(128)]) expect(grantPatternProblem(ok)).toBeNull();
    for (const bad of ['', 'Web-*', 'a b', 'a/b', '../*', 'a\u001b[31m', '[ab]', 'x'.repeat(129), 'a.b']) {
      expect(grantPatternProblem(bad)).toMatch(/pattern/);
    }
  });

  it('a long pattern with many stars stays fast (no catastrophic backtracking)', () => {
    const p = `${'*a'.repeat(40)}*b`;
    const t = Date.now();
    expect(globMatch(p, 'a'.repeat(63))).toBe(false);
    expect(Date.now() - t).toBeLessThan(2000);
  });

  it('matchesAny', () => {
    expect(matchesAny([], 'x')).toBe(false);
    expect(matchesAny(['db-?', 'web-*'], 'web-3')).toBe(true);
  });
});

describe('AccessService', () => {
  const calls: Array<[string, string | null]> = [];
  const labelCalls: string[] = [];
  const grants = {
    async rulesFor(user: string, role: string | null) {
      calls.push([user, role]);
      if (user === 'alice') return { patterns: ['web-*'], selectors: [] };
      if (user === 'sam') return { patterns: [], selectors: ['env=staging,role=web', 'site=berlin'] };
      return role === 'ops' ? { patterns: ['db-?'], selectors: [] } : { patterns: [], selectors: [] };
    },
  };
  const machineLabels: Record<string, Record<string, string>> = {
    'stg-1': { env: 'staging', role: 'web', os: 'x' },
    'stg-2': { env: 'staging', role: 'db' },
    'prod-1': { env: 'prod', role: 'web' },
    'ber-1': { site: 'berlin' },
  };
  const agents = {
    async labelsOf(name: string) {
      labelCalls.push(name);
      return machineLabels[name] ?? null;
    },
  };
  const access = new AccessService({ grants, agents });

  it('admins reach everything without a query; others only what their grants or role match', async () => {
    calls.length = 0;
    labelCalls.length = 0;
    expect(await access.canReach({ name: 'root', admin: true, role: null }, 'anything')).toBe(true);
    expect(calls).toHaveLength(0);
    expect(await access.canReach({ name: 'alice', admin: false, role: null }, 'web-1')).toBe(true);
    expect(await access.canReach({ name: 'alice', admin: false, role: null }, 'db-1')).toBe(false);
    expect(await access.canReach({ name: 'bob', admin: false, role: 'ops' }, 'db-1')).toBe(true);
    expect(await access.canReach({ name: 'bob', admin: false, role: null }, 'db-1')).toBe(false);
    expect(calls).toHaveLength(4);
    // no label grant: the machine's labels are never read
    expect(labelCalls).toEqual([]);
  });

  it('a label selector matches when the machine carries every pair of it (any one selector is enough)', async () => {
    const sam = { name: 'sam', admin: false, role: null };
    expect(await access.canReach(sam, 'stg-1')).toBe(true);
    expect(await access.canReach(sam, 'stg-2')).toBe(false); // role=db, not web
    expect(await access.canReach(sam, 'prod-1')).toBe(false); // env=prod
    expect(await access.canReach(sam, 'ber-1')).toBe(true); // the second selector
    expect(await access.canReach(sam, 'unknown')).toBe(false);
  });

  it('filterReachable keeps order and costs one query; it matches labels carried by the listing', async () => {
    calls.length = 0;
    labelCalls.length = 0;
    const hosts = [{ name: 'web-2' }, { name: 'db-1' }, { name: 'web-1' }];
    expect(await access.filterReachable({ name: 'alice', admin: false, role: 'ops' }, hosts)).toEqual([
      { name: 'web-2' },
      { name: 'web-1' },
    ]);
    expect(calls).toEqual([['alice', 'ops']]);
    expect(await access.filterReachable({ name: 'x', admin: true, role: null }, hosts)).toHaveLength(3);
    const labelled = Object.entries(machineLabels).map(([name, labels]) => ({ name, labels }));
    const seen = await access.filterReachable({ name: 'sam', admin: false, role: null }, labelled);
    expect(seen.map((h) => h.name)).toEqual(['stg-1', 'ber-1']);
    expect(labelCalls).toEqual([]);
  });
});

describe('rulesMatch', () => {
  it('name glob OR label selector; an empty selector matches nothing', () => {
    expect(rulesMatch({ patterns: ['web-*'], selectors: [] }, { name: 'web-1' })).toBe(true);
    expect(rulesMatch({ patterns: [], selectors: [{ env: 'prod' }] }, { name: 'x', labels: { env: 'prod' } })).toBe(
      true,
    );
    expect(rulesMatch({ patterns: [], selectors: [{}] }, { name: 'x', labels: { env: 'prod' } })).toBe(false);
    expect(rulesMatch({ patterns: [], selectors: [{ env: 'prod' }] }, { name: 'x' })).toBe(false);
  });
});
