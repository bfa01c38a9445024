import { describe, expect, it } from 'vitest';
import { generateKeyPairSync, sign } from 'node:crypto';
import { parseAgentPublicKey, verifyAgentProof } from './agent-proof.js';

const spki = (k: ReturnType<typeof generateKeyPairSync>['publicKey']) =>
  k.export({ format: 'der', type: 'spki' }) as Buffer;

describe('the agent identity key parser (enrolment and link hello)', () => {
  const id = generateKeyPairSync('ed25519');
  const good = spki(id.publicKey).toString('base64');

  it('takes an Ed25519 SPKI in base64, as the agent sends it', () => {
    expect(parseAgentPublicKey(good)?.asymmetricKeyType).toBe('ed25519');
  });

  it('refuses another key type, non-base64 characters, and DER with trailing bytes', () => {
    expect(parseAgentPublicKey(spki(generateKeyPairSync('x25519').publicKey).toString('base64'))).toBeNull();
    expect(
      parseAgentPublicKey(spki(generateKeyPairSync('ec', { namedCurve: 'P-256' }).publicKey).toString('base64')),
    ).toBeNull();
    expect(parseAgentPublicKey(` ${good}`)).toBeNull();
    expect(parseAgentPublicKey(good.replace(/\+/g, '-').replace(/\//g, '_').replace(/=+$/, '') + '!')).toBeNull();
    expect(parseAgentPublicKey(Buffer.concat([spki(id.publicKey), Buffer.from([0])]).toString('base64'))).toBeNull();
    expect(parseAgentPublicKey('')).toBeNull();
  });

  it('verifies a proof only with that key', () => {
    const ekm = Buffer.alloc(32, 7);
    const sig = sign(null, ekm, id.privateKey).toString('base64');
    expect(verifyAgentProof(good, ekm, sig)).toBe(true);
    expect(verifyAgentProof(good, Buffer.alloc(32, 8), sig)).toBe(false);
    expect(verifyAgentProof(Buffer.concat([spki(id.publicKey), Buffer.from([0])]).toString('base64'), ekm, sig)).toBe(
      false,
    );
  });
});
