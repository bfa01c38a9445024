/**
 * Helpers over ssh2's key utilities: reading one key, and ed25519 key pairs in OpenSSH format from ssh2's
 * generator, checked before use.
 *
 * ssh2 1.17's `utils.generateKeyPairSync('ed25519')` writes the 32-byte public key as if it were a
 * number: when its first byte is zero (about one key in 250; 79 in 20,000 here), that byte is dropped,
 * and the file is a "Malformed OpenSSH private key" to every reader, ssh2 included. A relay or agent
 * that saved such a key as its host key could not start again until somebody moved the file away.
 * So every pair is read back (and its public key checked for its full length) before it is returned;
 * a bad one is thrown away and another made.
 *
 * Its own entry point (`@mssh/protocol/ssh2-keys`), so that importing the protocol library does not
 * load ssh2 (the CLI loads it only when it opens an SSH session).
 */
import ssh2, { type ParsedKey } from 'ssh2';

const { utils } = ssh2;

/** The (first) key ssh2 reads from `text`, an OpenSSH private key or public key line; null when it cannot. */
export function parseSshKey(text: string | Buffer): ParsedKey | null {
  const parsed = utils.parseKey(text);
  const key = Array.isArray(parsed) ? parsed[0] : parsed;
  return !key || key instanceof Error ? null : key;
}

export interface OpenSshKeyPair {
  /** "-----BEGIN OPENSSH PRIVATE KEY-----..." */
  private: string;
  /** "ssh-ed25519 AAAA... comment" */
  public: string;
}

/** Length of an ssh-ed25519 public key blob: string "ssh-ed25519" (4 + 11) + string key (4 + 32). */
const ED25519_BLOB_LENGTH = 51;
const ATTEMPTS = 16;

/** True when `pair` reads back as a private ed25519 key with a whole public key. */
export function isSoundEd25519Pair(pair: OpenSshKeyPair): boolean {
  const key = parseSshKey(pair.private);
  const pubKey = parseSshKey(pair.public);
  if (!key?.isPrivateKey() || !pubKey) return false;
  const blob = key.getPublicSSH();
  return blob.length === ED25519_BLOB_LENGTH && blob.equals(pubKey.getPublicSSH());
}

/** A new ed25519 key pair that is known to read back correctly. */
export function generateEd25519KeyPair(comment?: string): OpenSshKeyPair {
  for (let i = 0; i < ATTEMPTS; i++) {
    const pair = utils.generateKeyPairSync('ed25519', comment === undefined ? {} : { comment });
    if (isSoundEd25519Pair(pair)) return pair;
  }
  throw new Error(`ssh2 produced ${ATTEMPTS} unreadable ed25519 keys in a row`);
}
