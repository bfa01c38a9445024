import { describe, expect, it } from 'vitest';
import { Backoff } from './backoff.js';

function clock(start = 0) {
  let t = start;
  return {
    now: () => t,
    advance: (ms: number) => {
      t += ms;
    },
  };
}

describe('Backoff (exponential, full jitter)', () => {
  it('draws each delay uniformly under a ceiling that doubles from the base up to the cap', () => {
    const c = clock();
    const b = new Backoff({ baseMs: 250, capMs: 30_000, healthyResetMs: 60_000, random: () => 0.999999, now: c.now });
    const delays = Array.from({ length: 10 }, () => b.next());
    expect(delays).toEqual([249, 499, 999, 1999, 3999, 7999, 15999, 29999, 29999, 29999]);
  });

  it('is full jitter: random 0 gives 0, random 0.5 gives half the ceiling', () => {
    const c = clock();
    const zero = new Backoff({ baseMs: 250, capMs: 30_000, random: () => 0, now: c.now });
    expect([zero.next(), zero.next(), zero.next()]).toEqual([0, 0, 0]);
    const half = new Backoff({ baseMs: 250, capMs: 30_000, random: () => 0.5, now: c.now });
    expect([half.next(), half.next(), half.next()]).toEqual([125, 250, 500]);
  });

  it('resets to the base only after a link stayed healthy for healthyResetMs', () => {
    const c = clock();
    const b = new Backoff({ baseMs: 100, capMs: 10_000, healthyResetMs: 60_000, random: () => 0.999999, now: c.now });
    for (let i = 0; i < 5; i++) b.next();
    expect(b.attempts).toBe(5);
    // A short-lived link does not reset the growth.
    b.connected();
    c.advance(59_999);
    b.disconnected();
    expect(b.next()).toBe(3199);
    // A link that lived a full minute does.
    b.connected();
    c.advance(60_000);
    b.disconnected();
    expect(b.attempts).toBe(0);
    expect(b.next()).toBe(99);
  });

  it('keeps refused connections (relay restarting) under the refused cap, while other failures grow to the cap', () => {
    const c = clock();
    const b = new Backoff({ baseMs: 250, capMs: 30_000, refusedCapMs: 2_000, random: () => 0.999999, now: c.now });
    const refused = Array.from({ length: 8 }, () => b.next('refused'));
    expect(Math.max(...refused)).toBe(1999);
    expect(b.next('other')).toBe(29999);
  });

  it('never exceeds the cap however many attempts and never goes negative', () => {
    const c = clock();
    let r = 0;
    const seq = [0.1, 0.9, 0.5, 0, 0.99, 0.3];
    const b = new Backoff({ baseMs: 250, capMs: 30_000, random: () => seq[r++ % seq.length]!, now: c.now });
    for (let i = 0; i < 200; i++) {
      const d = b.next();
      expect(d).toBeGreaterThanOrEqual(0);
      expect(d).toBeLessThan(30_000);
    }
  });
});
