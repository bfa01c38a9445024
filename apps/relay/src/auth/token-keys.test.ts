import { describe, expect, it } from 'vitest';
import { generateSigningKey } from '@mssh/auth';
import { JWT_DEFAULT_TTL_SECONDS } from '@mssh/protocol';
import { CLOCK_TOLERANCE_SECONDS, liveKeys } from './token-keys.js';

describe('liveKeys', () => {
  it('keeps usable keys and retired keys whose tokens may still be valid; drops the rest', async () => {
    const now = new Date('2026-01-02T00:00:00Z');
    const horizonMs = (JWT_DEFAULT_TTL_SECONDS + CLOCK_TOLERANCE_SECONDS) * 1000;
    const usable = { ...(await generateSigningKey()), retiredAt: null };
    const recent = { ...(await generateSigningKey()), retiredAt: new Date(now.getTime() - horizonMs + 1000) };
    const gone = { ...(await generateSigningKey()), retiredAt: new Date(now.getTime() - horizonMs - 1000) };
    expect(liveKeys([usable, recent, gone], now).map((k) => k.kid)).toEqual([usable.kid, recent.kid]);
  });
});
