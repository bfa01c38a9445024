import { describe, expect, it } from 'vitest';
import { AuthFailureLimiter } from './auth-failures.js';

describe('failed SSH logins per source', () => {
  it('blocks a source after maxFailures within the window, and lets it in again after the window', () => {
    let now = 1_000;
    const l = new AuthFailureLimiter({ maxFailures: 3, windowMs: 60_000, clock: () => now });
    for (let i = 0; i < 2; i++) l.fail('10.0.0.1');
    expect(l.blocked('10.0.0.1')).toBe(false);
    l.fail('10.0.0.1');
    expect(l.blocked('10.0.0.1')).toBe(true);
    expect(l.blocked('10.0.0.2')).toBe(false);
    now += 60_000;
    expect(l.blocked('10.0.0.1')).toBe(false);
  });

  it('keeps at most maxSources entries (the oldest go first)', () => {
    const l = new AuthFailureLimiter({ maxFailures: 1, maxSources: 100 });
    for (let i = 0; i < 1000; i++) l.fail(`10.0.${i >> 8}.${i & 255}`);
    expect(l.size).toBe(100);
    expect(l.blocked('10.0.3.231')).toBe(true); // i = 999, the newest
    expect(l.blocked('10.0.0.0')).toBe(false); // the oldest was evicted
  });
});
