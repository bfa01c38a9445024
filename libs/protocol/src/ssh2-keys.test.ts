/**
 * generateEd25519KeyPair: never returns a pair that does not read back, even though ssh2's own generator
 * makes one in ~250 whose public key lost a leading zero byte.
 */
import { describe, expect, it } from 'vitest';
import ssh2 from 'ssh2';
import { generateEd25519KeyPair, isSoundEd25519Pair } from './ssh2-keys.js';

const { utils } = ssh2;

describe('generateEd25519KeyPair', () => {
  it('tells a pair whose public key lost its leading zero byte from a sound one', () => {
    // Bounded search for one of ssh2's bad pairs (p ~ 1/250 each; 20,000 tries miss with p ~ 1e-35).
    let bad: { private: string; public: string } | undefined;
    let good: { private: string; public: string } | undefined;
    for (let i = 0; i < 20_000 && !bad; i++) {
      const pair = utils.generateKeyPairSync('ed25519');
      if (isSoundEd25519Pair(pair)) good ??= pair;
      else bad = pair;
    }
    expect(bad, 'ssh2 made no bad pair in 20,000: has the bug been fixed? then this module can go').toBeDefined();
    expect(utils.parseKey(bad!.private)).toBeInstanceOf(Error);
    expect(good).toBeDefined();
    expect(utils.parseKey(good!.private)).not.toBeInstanceOf(Error);
  });

  it('returns only pairs that read back, with the comment', () => {
    for (let i = 0; i < 2_000; i++) {
      const pair = generateEd25519KeyPair('mssh-test');
      const key = utils.parseKey(pair.private);
      expect(key).not.toBeInstanceOf(Error);
      if (key instanceof Error || Array.isArray(key)) throw new Error('unexpected');
      expect(key.isPrivateKey()).toBe(true);
      expect(key.getPublicSSH()).toHaveLength(51);
      expect(pair.public.endsWith(' mssh-test')).toBe(true);
    }
  });
});
