/**
 * The agent's identity: an Ed25519 key pair generated on the agent. The private key stays in
 * DIR/identity.key (PKCS#8 PEM, 0600); the relay only ever sees the public key (SPKI DER, base64) and
 * signatures over the TLS keying material of each connection.
 */
import { createPrivateKey, createPublicKey, generateKeyPairSync, sign, type KeyObject } from 'node:crypto';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { AgentError } from '../errors.js';
import { IDENTITY_FILE, writePrivateFile } from '../state/state-dir.js';

export interface AgentIdentity {
  /** SPKI DER, base64 (what the relay enrols). */
  readonly publicKey: string;
  /** Ed25519 signature of data. */
  sign(data: Buffer): Buffer;
}

export function identityFromPrivateKey(key: KeyObject): AgentIdentity {
  if (key.asymmetricKeyType !== 'ed25519')
    throw new AgentError(
      'AGT_ERR_IDENTITY',
      'the identity key is not an Ed25519 key; enrol again into an empty --state-dir',
    );
  const publicKey = createPublicKey(key).export({ format: 'der', type: 'spki' }).toString('base64');
  return { publicKey, sign: (data) => sign(null, data, key) };
}

export function identityPath(dir: string): string {
  return join(dir, IDENTITY_FILE);
}

export function loadIdentity(dir: string): AgentIdentity {
  const path = identityPath(dir);
  let pem: string;
  try {
    pem = readFileSync(path, 'utf8');
  } catch (err) {
    throw new AgentError(
      'AGT_ERR_IDENTITY',
      `cannot read the identity key ${path} (${(err as NodeJS.ErrnoException).code ?? (err as Error).message}); enrol again with \`mssh-agent enroll\``,
      { cause: err },
    );
  }
  let key: KeyObject;
  try {
    key = createPrivateKey({ key: pem, format: 'pem' });
  } catch (err) {
    throw new AgentError(
      'AGT_ERR_IDENTITY',
      `${path} is not a readable private key; enrol again into an empty --state-dir`,
      { cause: err },
    );
  }
  return identityFromPrivateKey(key);
}

/** Load DIR/identity.key, or generate and store a new one when there is none. */
export function loadOrCreateIdentity(dir: string): { identity: AgentIdentity; created: boolean } {
  if (existsSync(identityPath(dir))) return { identity: loadIdentity(dir), created: false };
  const { privateKey } = generateKeyPairSync('ed25519');
  writePrivateFile(identityPath(dir), privateKey.export({ format: 'pem', type: 'pkcs8' }).toString());
  return { identity: identityFromPrivateKey(privateKey), created: true };
}
