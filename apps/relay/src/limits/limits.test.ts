import { describe, expect, it } from 'vitest';
import { AuthError } from '@mssh/auth';
import { BackoffLimiter } from './backoff-limiter.js';
import { HashSlots } from './hash-slots.js';
import { LoginGuard } from './login-guard.js';
import { RelayError } from '../errors.js';

function clock(start = 1_000_000) {
  let t = start;
  return { now: () => t, advance: (ms: number) => (t += ms) };
}

describe('BackoffLimiter', () => {
  it('lets `limit` failures through, then blocks with a doubling back-off up to the cap', () => {
    const c = clock();
    const l = new BackoffLimiter({ limit: 5, windowMs: 60_000, baseBlockMs: 1_000, maxBlockMs: 4_000, now: c.now });
    for (let i = 0; i < 4; i++) expect(l.fail('a').ok).toBe(true);
    expect(l.fail('a')).toEqual({ ok: false, retryAfterMs: 1_000 });
    expect(l.check('b').ok).toBe(true); // other keys unaffected
    c.advance(1_000);
    expect(l.check('a').ok).toBe(true);
    for (let i = 0; i < 4; i++) l.fail('a');
    expect(l.fail('a')).toEqual({ ok: false, retryAfterMs: 2_000 });
    c.advance(2_000);
    for (let i = 0; i < 5; i++) l.fail('a');
    expect(l.check('a')).toEqual({ ok: false, retryAfterMs: 4_000 });
    c.advance(4_000);
    for (let i = 0; i < 5; i++) l.fail('a');
    expect(l.check('a')).toEqual({ ok: false, retryAfterMs: 4_000 }); // capped
  });

  it('failures outside the window do not add up; reset forgets the key', () => {
    const c = clock();
    const l = new BackoffLimiter({ limit: 3, windowMs: 1_000, baseBlockMs: 10_000, now: c.now });
    for (let i = 0; i < 10; i++) {
      expect(l.fail('k').ok).toBe(true);
      c.advance(600);
    }
    l.fail('k');
    l.fail('k');
    l.fail('k');
    expect(l.check('k').ok).toBe(false);
    l.reset('k');
    expect(l.check('k').ok).toBe(true);
  });

  it('stays within maxEntries and forgets quiet keys', () => {
    const c = clock();
    const l = new BackoffLimiter({ limit: 2, maxEntries: 100, forgetAfterMs: 5_000, baseBlockMs: 1_000, now: c.now });
    for (let i = 0; i < 10_000; i++) l.fail(`addr-${i}`);
    expect(l.size).toBe(100);
    l.fail('x');
    l.fail('x');
    expect(l.check('x').ok).toBe(false);
    c.advance(7_000);
    expect(l.check('x').ok).toBe(true);
    // A forgotten key starts over with the base block.
    l.fail('x');
    expect(l.fail('x')).toEqual({ ok: false, retryAfterMs: 1_000 });
  });
});

describe('HashSlots', () => {
  it('runs at most `max` at once, queues up to `queue`, refuses beyond with RLY_ERR_BUSY', async () => {
    const slots = new HashSlots({ max: 2, queue: 1, maxWaitMs: 5_000 });
    let running = 0;
    let peak = 0;
    const gates: Array<() => void> = [];
    const job = () =>
      slots.run(async () => {
        running++;
        peak = Math.max(peak, running);
        await new Promise<void>((r) => gates.push(r));
        running--;
        return 'done';
      });
    const a = job();
    const b = job();
    const c = job(); // queued
    await expect(job()).rejects.toMatchObject({ code: 'RLY_ERR_BUSY', statusCode: 503, retryAfterSeconds: 1 });
    expect(slots.active).toBe(2);
    expect(slots.queued).toBe(1);
    for (let i = 0; i < 20 && gates.length < 3; i++) {
      gates.shift()?.();
      await new Promise((r) => setTimeout(r, 5));
    }
    for (let i = 0; i < 20 && (slots.active > 0 || gates.length > 0); i++) {
      gates.shift()?.();
      await new Promise((r) => setTimeout(r, 5));
    }
    expect(await Promise.all([a, b, c])).toEqual(['done', 'done', 'done']);
    expect(peak).toBe(2);
  });

  it('a queued hash that waits too long is refused', async () => {
    const slots = new HashSlots({ max: 1, queue: 5, maxWaitMs: 50 });
    let release!: () => void;
    const first = slots.run(() => new Promise<void>((r) => (release = r)));
    await expect(slots.run(async () => 1)).rejects.toBeInstanceOf(RelayError);
    release();
    await first;
    expect(await slots.run(async () => 2)).toBe(2);
  });
});

describe('LoginGuard', () => {
  const bad = () => Promise.reject(new AuthError('AUTH_ERR_BAD_CREDENTIALS'));

  it('blocks a source after its failures without locking the user out from elsewhere', async () => {
    const g = new LoginGuard({ perSource: 5, perUser: 10 });
    let calls = 0;
    const counted = () => {
      calls++;
      return bad();
    };
    const codes: string[] = [];
    for (let i = 0; i < 20; i++) {
      codes.push(await g.attempt('alice', '10.0.0.1', counted).catch((e: RelayError | AuthError) => e.code));
    }
    expect(codes.slice(0, 5)).toEqual(Array(5).fill('AUTH_ERR_BAD_CREDENTIALS'));
    expect(new Set(codes.slice(5))).toEqual(new Set(['RLY_ERR_RATE_LIMITED']));
    expect(calls).toBe(5); // refused attempts never reach the password check
    const err = await g.attempt('alice', '10.0.0.1', async () => 'ok').catch((e: RelayError) => e);
    expect(err).toMatchObject({ code: 'RLY_ERR_RATE_LIMITED', statusCode: 429 });
    expect((err as RelayError).retryAfterSeconds).toBeGreaterThanOrEqual(1);
    expect(await g.attempt('alice', '10.0.0.2', async () => 'ok')).toBe('ok');
  });

  it('a user name attacked from many sources is blocked by name, the same answer as by address', async () => {
    const g = new LoginGuard({ perSource: 5, perUser: 10 });
    for (let i = 0; i < 10; i++) await g.attempt('Bob', `10.1.0.${i}`, bad).catch(() => {});
    const e = await g.attempt('bob', '10.2.0.1', async () => 'ok').catch((x: RelayError) => x);
    expect(e).toMatchObject({ code: 'RLY_ERR_RATE_LIMITED' });
    expect(await g.attempt('carol', '10.2.0.1', async () => 'ok')).toBe('ok');
  });

  it('one budget for both doors: SSH failures (failed/refusal) and password failures (attempt) count together', async () => {
    const g = new LoginGuard({ perSource: 3, perUser: 100, limiter: { sweepIntervalMs: 0 } });
    g.failed(null, '10.3.0.1'); // an SSH handshake that timed out: the address only
    g.failed('alice', '10.3.0.1:51000'); // an SSH connection that failed to log in (port ignored)
    expect(g.refusal('alice', '10.3.0.1')).toBeNull();
    await g.attempt('alice', '10.3.0.1', bad).catch(() => {});
    expect(g.refusal('carol', '10.3.0.1')).toMatchObject({ code: 'RLY_ERR_RATE_LIMITED' });
    await expect(g.attempt('alice', '10.3.0.1', async () => 'ok')).rejects.toMatchObject({
      code: 'RLY_ERR_RATE_LIMITED',
    });
    expect(g.refusal('alice', '10.3.0.2')).toBeNull();
    // A successful login forgets the failures of its name (not of its address).
    const n = new LoginGuard({ perSource: 100, perUser: 2, limiter: { sweepIntervalMs: 0 } });
    n.failed('Dave', '10.4.0.1');
    n.succeeded('dave');
    n.failed('dave', '10.4.0.2');
    expect(n.refusal('dave', '10.4.0.3')).toBeNull();
    n.failed('DAVE', '10.4.0.4');
    expect(n.refusal('dave', '10.4.0.3')).toMatchObject({ code: 'RLY_ERR_RATE_LIMITED' });
    g.close();
    n.close();
  });

  it('other errors (busy, internal) do not count as failed logins', async () => {
    const g = new LoginGuard({ perSource: 2 });
    for (let i = 0; i < 10; i++) await g.attempt('a', 's', () => Promise.reject(new Error('db down'))).catch(() => {});
    expect(await g.attempt('a', 's', async () => 'ok')).toBe('ok');
  });
});

describe('BackoffLimiter sweep (issue 16 item 8)', () => {
  it('500 one-shot sources are all swept out once forgotten; live ones stay', () => {
    const c = clock();
    const l = new BackoffLimiter({ limit: 5, forgetAfterMs: 15 * 60_000, sweepIntervalMs: 0, now: c.now });
    for (let i = 0; i < 500; i++) l.fail(`198.51.100.${i % 250}-${i}`);
    expect(l.size).toBe(500);
    c.advance(10 * 60_000);
    l.fail('still-active');
    expect(l.sweep()).toBe(0);
    expect(l.size).toBe(501);
    c.advance(5 * 60_000);
    expect(l.sweep()).toBe(500);
    expect(l.size).toBe(1);
    c.advance(15 * 60_000);
    l.sweep();
    expect(l.size).toBe(0);
  });

  it('a blocked key is kept until its block has ended and it has been quiet for forgetAfterMs', () => {
    const c = clock();
    const l = new BackoffLimiter({
      limit: 1,
      baseBlockMs: 10 * 60_000,
      forgetAfterMs: 60_000,
      sweepIntervalMs: 0,
      now: c.now,
    });
    l.fail('k');
    c.advance(5 * 60_000);
    expect(l.sweep()).toBe(0);
    expect(l.check('k').ok).toBe(false);
    c.advance(6 * 60_000);
    expect(l.sweep()).toBe(1);
    expect(l.size).toBe(0);
  });

  it("sweeps by itself on an unref'd timer, which close() stops", async () => {
    let t = 0;
    const l = new BackoffLimiter({ forgetAfterMs: 1_000, sweepIntervalMs: 20, now: () => t });
    for (let i = 0; i < 50; i++) l.fail(`k${i}`);
    t = 5_000;
    const deadline = Date.now() + 2_000;
    while (l.size > 0 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 10));
    expect(l.size).toBe(0);
    l.close();
    l.fail('after-close');
    // A witness on the same interval and clock, left running: once it has swept, the closed one would have too.
    const witness = new BackoffLimiter({ forgetAfterMs: 1_000, sweepIntervalMs: 20, now: () => t });
    witness.fail('w');
    t = 20_000;
    const until = Date.now() + 2_000;
    while (witness.size > 0 && Date.now() < until) await new Promise((r) => setTimeout(r, 10));
    witness.close();
    expect(witness.size).toBe(0);
    expect(l.size).toBe(1); // no timer any more: nothing swept
  });

  it("LoginGuard counts both limiters' entries and keys sources by address only", async () => {
    const g = new LoginGuard({ perSource: 2, perUser: 100, limiter: { sweepIntervalMs: 0 } });
    const bad = () => Promise.reject(new AuthError('AUTH_ERR_BAD_CREDENTIALS'));
    await expect(g.attempt('u', '2001:db8::1', bad)).rejects.toMatchObject({ code: 'AUTH_ERR_BAD_CREDENTIALS' });
    await expect(g.attempt('u', '2001:db8::2', bad)).rejects.toMatchObject({ code: 'AUTH_ERR_BAD_CREDENTIALS' });
    // Same /64: blocked.
    await expect(g.attempt('u', '2001:db8::ffff:3', bad)).rejects.toMatchObject({ code: 'RLY_ERR_RATE_LIMITED' });
    expect(g.entries).toBe(2); // one source key, one user key
    g.close();
  });
});
