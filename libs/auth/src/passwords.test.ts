import { describe, expect, it } from 'vitest';
import { hashPassword, verifyPassword, dummyVerifyPassword } from './passwords.js';

describe('passwords', () => {
  it('hashes with argon2id and verifies', async () => {
    const h = await hashPassword('correct horse battery staple');
    expect(h.startsWith('$argon2id$')).toBe(true);
    expect(await verifyPassword(h, 'correct horse battery staple')).toBe(true);
    expect(await verifyPassword(h, 'wrong')).toBe(false);
    expect(await hashPassword('correct horse battery staple')).not.toBe(h); // salted
  });

  it('a malformed hash is a mismatch, not a throw', async () => {
    expect(await verifyPassword('not-a-hash', 'x')).toBe(false);
  });

  it('the dummy verification always fails', async () => {
    expect(await dummyVerifyPassword('anything')).toBe(false);
  });
});
