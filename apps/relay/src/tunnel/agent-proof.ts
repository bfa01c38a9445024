/**
 * Proof of possession of an agent's identity key: an Ed25519 signature over the TLS exported keying
 * material (RFC 5705, label AGENT_PROOF_EKM_LABEL) of the very connection the agent dialled. The EKM is
 * unique per TLS connection, so a recorded hello cannot be replayed on another one.
 */
import { createPublicKey, verify, type KeyObject } from 'node:crypto';
import type { TLSSocket } from 'node:tls';
import { AGENT_PROOF_EKM_LABEL, AGENT_PROOF_EKM_LENGTH } from '@mssh/protocol';

/** The keying material both ends of this TLS connection compute identically. */
export function agentProofMaterial(socket: TLSSocket): Buffer {
  // No context argument (Node's typings want one; undefined means "none", as on the agent side).
  return socket.exportKeyingMaterial(AGENT_PROOF_EKM_LENGTH, AGENT_PROOF_EKM_LABEL, undefined as unknown as Buffer);
}

/**
 * The one parser of an agent's identity key (enrolment and every link hello): an Ed25519 public key as
 * SPKI DER in canonical base64 (what the agent sends, `identity.ts`). Null for anything else: another
 * key type, characters outside base64, or DER that does not re-encode to the same bytes (trailing data).
 */
export function parseAgentPublicKey(publicKey: string): KeyObject | null {
  if (!/^[A-Za-z0-9+/]+={0,2}$/.test(publicKey)) return null;
  try {
    const der = Buffer.from(publicKey, 'base64');
    const key = createPublicKey({ key: der, format: 'der', type: 'spki' });
    if (key.asymmetricKeyType !== 'ed25519') return null;
    return Buffer.from(key.export({ format: 'der', type: 'spki' })).equals(der) ? key : null;
  } catch {
    return null;
  }
}

/** True when signature (base64) is a valid Ed25519 signature of ekm by publicKey (SPKI DER base64). */
export function verifyAgentProof(publicKey: string, ekm: Buffer, signature: string): boolean {
  const key = parseAgentPublicKey(publicKey);
  if (!key) return false;
  const sig = Buffer.from(signature, 'base64');
  if (sig.length !== 64) return false;
  try {
    return verify(null, ekm, key, sig);
  } catch {
    return false;
  }
}
