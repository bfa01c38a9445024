import { describe, expect, it } from 'vitest';
import { fuzzyMatch } from './fuzzy.js';
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
