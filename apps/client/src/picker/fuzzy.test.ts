import { describe, expect, it } from 'vitest';
import { fuzzyMatch, fuzzyScore, rankByName } from './fuzzy.js';
import { defaultLoginUser, parseUserLine } from './login-users.js';
import { hostStatus } from './rows.js';

describe('fuzzyMatch', () => {
  it('matches characters in order, case-insensitive, and returns their positions', () => {
    expect(fuzzyMatch('', 'alpha')).toEqual([]);
    expect(fuzzyMatch('AP', 'alpha')).toEqual([0, 2]);
    expect(fuzzyMatch('lb', 'web-lab')).toEqual([4, 6]);
    expect(fuzzyMatch('pa', 'ap')).toBeNull();
    expect(fuzzyMatch('x', 'alpha')).toBeNull();
  });

  it('finds the match with the fewest runs, not the leftmost one', () => {
    // greedy leftmost would be w, 2 (index 4), 9: three pieces; w + "29" is two
    expect(fuzzyMatch('w29', 'web-229')).toEqual([0, 5, 6]);
    expect(fuzzyScore('w29', 'web-229')).toMatchObject({ tier: 2, runs: 2, atEnd: true });
    expect(fuzzyScore('w29', 'web-209')).toMatchObject({ tier: 2, runs: 3, atEnd: true });
    expect(fuzzyScore('w29', 'web-290')).toMatchObject({ tier: 2, runs: 2, atEnd: false });
    expect(fuzzyScore('WEB-15', 'web-15')).toMatchObject({ tier: 0, runs: 1 });
    expect(fuzzyScore('web-15', 'web-150')).toMatchObject({ tier: 1, runs: 1 });
  });
});

describe('rankByName (exact, then prefix, then fewest runs, then reaching the end, then name)', () => {
  const fleet = Array.from({ length: 301 }, (_, i) => `web-${String(i).padStart(3, '0')}`);
  const rank = (q: string, names: string[]) => rankByName(q, names, (n) => n).map((r) => r.item);

  it('w29 among web-000 … web-300: web-029 first', () => {
    const r = rank('w29', fleet);
    expect(r.slice(0, 4)).toEqual(['web-029', 'web-129', 'web-229', 'web-290']);
    expect(r).toHaveLength(new Set(r).size);
    expect(r).toContain('web-294');
  });

  it('web-15: the prefix matches web-150 … web-159 first, then web-015', () => {
    const r = rank('web-15', fleet);
    expect(r.slice(0, 10)).toEqual(Array.from({ length: 10 }, (_, i) => `web-15${i}`));
    expect(r[10]).toBe('web-015');
  });

  it('an exact name beats every prefix and fuzzy match', () => {
    expect(rank('web-15', [...fleet, 'web-15'])[0]).toBe('web-15');
    expect(rank('web-1', ['web-10', 'aweb-1', 'web-1'])).toEqual(['web-1', 'web-10', 'aweb-1']);
  });

  it('an empty query keeps every name, in name order', () => {
    expect(rank('', ['b', 'c', 'a'])).toEqual(['a', 'b', 'c']);
    expect(rank('zz', ['b', 'c', 'a'])).toEqual([]);
  });
});

describe('hostStatus', () => {
  const now = new Date('2026-01-31T00:00:00Z');
  it('is online, offline, or stale after 30 days unseen', () => {
    expect(hostStatus({ online: true, lastSeen: null }, now)).toBe('online');
    expect(hostStatus({ online: false, lastSeen: '2026-01-30T00:00:00Z' }, now)).toBe('offline');
    expect(hostStatus({ online: false, lastSeen: '2025-12-01T00:00:00Z' }, now)).toBe('stale');
    expect(hostStatus({ online: false, lastSeen: null }, now)).toBe('offline');
    // the relay's own verdict (its --stale-after) wins when given
    expect(hostStatus({ online: false, lastSeen: '2026-01-30T00:00:00Z', stale: true }, now)).toBe('stale');
    expect(hostStatus({ online: false, lastSeen: '2025-12-01T00:00:00Z', stale: false }, now)).toBe('offline');
  });
});

describe('login user default', () => {
  it('reads `user = NAME` from the config file, else the local user', () => {
    expect(parseUserLine('# comment\nuser = alice\n')).toBe('alice');
    expect(parseUserLine('User=bob')).toBe('bob');
    expect(parseUserLine('nothing here')).toBeNull();
    expect(defaultLoginUser('/nonexistent-dir-for-test', 'carol')).toBe('carol');
  });
});
