import { describe, expect, it } from 'vitest';
import { Backoff } from './backoff.js';
import { Failover, type AttemptEnd } from './failover.js';

function clock() {
  let t = 0;
  return { now: () => t, advance: (ms: number) => (t += ms) };
}

/** Max jitter: every back-off delay is its ceiling minus one. */
function failover(opts: { freeRedials?: number; duplicateDelayMs?: number } = {}) {
  const c = clock();
  const backoff = new Backoff({ baseMs: 250, capMs: 30_000, refusedCapMs: 2_000, random: () => 0.999999, now: c.now });
  const f = new Failover(backoff, { freeWindowMs: 60_000, random: () => 0.999999, now: c.now, ...opts });
  return { f, backoff, clock: c };
}

describe('Failover: which outcomes grow the back-off', () => {
  it('a lost or moved link redials a new round at once and leaves the back-off as it was', () => {
    const { f, backoff } = failover();
    // Some earlier failed rounds.
    f.newRound();
    f.after('failed', 0);
    f.newRound();
    f.after('failed', 0);
    expect(backoff.attempts).toBe(2);
    const ceiling = backoff.ceiling();
    for (const end of ['lost', 'moved'] as AttemptEnd[]) {
      f.newRound();
      f.welcomed();
      expect(f.after(end, 3)).toEqual({ kind: 'new-round', delayMs: 0, backedOff: false });
    }
    expect(backoff.attempts).toBe(2);
    expect(backoff.ceiling()).toBe(ceiling);
  });

  it('a failed candidate moves on to the next one at once; only a whole failed round takes a back-off step', () => {
    const { f, backoff } = failover();
    f.newRound();
    expect(f.after('failed', 2)).toEqual({ kind: 'next-candidate', delayMs: 0 });
    expect(f.after('refused-tcp', 1)).toEqual({ kind: 'next-candidate', delayMs: 0 });
    expect(backoff.attempts).toBe(0);
    expect(f.after('failed', 0)).toEqual({ kind: 'new-round', delayMs: 249, backedOff: true });
    expect(backoff.attempts).toBe(1);
    f.newRound();
    expect(f.after('failed', 0)).toEqual({ kind: 'new-round', delayMs: 499, backedOff: true });
  });

  it('a relay that refuses connections (draining, restarting) costs nothing while another candidate is left', () => {
    const { f, backoff, clock } = failover();
    for (let round = 0; round < 20; round++) {
      f.newRound();
      expect(f.after('refused-tcp', 1)).toEqual({ kind: 'next-candidate', delayMs: 0 });
      f.welcomed(); // the next candidate works, for 10 s
      clock.advance(10_000);
      expect(f.after('lost', 5)).toEqual({ kind: 'new-round', delayMs: 0, backedOff: false });
    }
    expect(backoff.attempts).toBe(0);
  });

  it('a round where every failure was ECONNREFUSED stays under the refused cap; any other failure lifts it', () => {
    const { f } = failover();
    const delays: number[] = [];
    for (let i = 0; i < 8; i++) {
      f.newRound();
      f.after('refused-tcp', 1);
      const s = f.after('refused-tcp', 0);
      if (s.kind === 'new-round') delays.push(s.delayMs);
    }
    expect(Math.max(...delays)).toBe(1999);
    f.newRound();
    f.after('refused-tcp', 1);
    expect(f.after('failed', 0)).toMatchObject({ delayMs: 29_999 });
    f.newRound();
    f.resolveFailed(); // a relay name that did not resolve is no refusal either
    expect(f.after('refused-tcp', 0)).toMatchObject({ delayMs: 29_999 });
  });

  it('a declined duplicate pauses before the next candidate, and a round that found no new relay backs off', () => {
    const { f, backoff } = failover({ duplicateDelayMs: 1_000 });
    f.newRound();
    const s = f.after('duplicate', 1);
    expect(s.kind).toBe('next-candidate');
    expect(s.kind === 'next-candidate' && s.delayMs >= 500 && s.delayMs <= 1_000).toBe(true);
    expect(backoff.attempts).toBe(0);
    // The last candidate was a duplicate too: a back-off step, never shorter than the duplicate pause.
    const end = f.after('duplicate', 0);
    expect(end).toMatchObject({ kind: 'new-round', backedOff: true });
    expect(end.kind === 'new-round' && end.delayMs >= 500).toBe(true);
    expect(backoff.attempts).toBe(1);
  });

  it('only freeRedials moves or losses per window are free: a relay that keeps dropping the agent meets the back-off', () => {
    const { f, backoff, clock } = failover({ freeRedials: 3 });
    for (let i = 0; i < 3; i++)
      expect(f.after(i % 2 ? 'moved' : 'lost', 1)).toMatchObject({ delayMs: 0, backedOff: false });
    expect(f.after('lost', 1)).toEqual({ kind: 'new-round', delayMs: 249, backedOff: true });
    expect(f.after('moved', 1)).toEqual({ kind: 'new-round', delayMs: 499, backedOff: true });
    expect(backoff.attempts).toBe(2);
    clock.advance(60_000);
    expect(f.after('moved', 1)).toMatchObject({ delayMs: 0, backedOff: false });
  });

  it('a permanent refusal ends the loop', () => {
    const { f } = failover();
    expect(f.after('permanent', 3)).toEqual({ kind: 'exit' });
  });
});
