/**
 * The jump listener's SSH host key: <data-dir>/ssh/ssh_host_ed25519_key (OpenSSH format, 0600), created on
 * the first start and kept, so users pin it once (`mssh-relay info` shows its fingerprint).
 */
import { existsSync, linkSync, mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { randomBytes } from 'node:crypto';
import { join } from 'node:path';
import { fingerprintBlob, keyLineFromBlob } from '@mssh/protocol';
import { generateEd25519KeyPair, parseSshKey } from '@mssh/protocol/ssh2-keys';
import { CliError, cliFailure, codedCliError } from '../errors.js';

export interface JumpHostKey {
  privateKey: string;
  /** "ssh-ed25519 AAAA..." */
  publicLine: string;
  fingerprint: string;
  path: string;
}

export function jumpHostKeyPath(dataDir: string): string {
  return join(dataDir, 'ssh', 'ssh_host_ed25519_key');
}

function parse(text: string, path: string): JumpHostKey {
  const key = parseSshKey(text);
  if (!key?.isPrivateKey()) {
    throw codedCliError(
      'RLY_CLI_ERR_KEY_FILE',
      `${path} is not a valid unencrypted SSH private key`,
      'Move it away and start the relay again to create a new one (users who pinned the old key must then forget it).',
    );
  }
  const blob = key.getPublicSSH();
  return { privateKey: text, publicLine: keyLineFromBlob(blob), fingerprint: fingerprintBlob(blob), path };
}

export function loadOrCreateJumpHostKey(dataDir: string): { key: JumpHostKey; created: boolean } {
  const path = jumpHostKeyPath(dataDir);
  try {
    if (existsSync(path)) return { key: parse(readFileSync(path, 'utf8'), path), created: false };
    mkdirSync(join(dataDir, 'ssh'), { recursive: true, mode: 0o700 });
    const pair = generateEd25519KeyPair('mssh-relay-jump');
    // Whole file first, then a hard link into place: two starts at once keep exactly one key.
    const tmp = `${path}.${randomBytes(6).toString('hex')}.tmp`;
    writeFileSync(tmp, pair.private, { mode: 0o600, flag: 'wx' });
    try {
      linkSync(tmp, path);
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'EEXIST') throw e;
    } finally {
      rmSync(tmp, { force: true });
    }
    const key = parse(readFileSync(path, 'utf8'), path);
    writeFileSync(`${path}.pub`, `${key.publicLine} mssh-relay-jump\n`, { mode: 0o644 });
    return { key, created: true };
  } catch (e) {
    if (e instanceof CliError) throw e;
    throw cliFailure(
      `cannot read or create the SSH jump host key ${path}: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`,
      'Check the data directory permissions, or disable the listener with --ssh-listen off.',
      e,
    );
  }
}

/**
 * Fingerprint of the existing key, without creating one; null when none exists yet. A key file that
 * exists but cannot be read or parsed is an error (RLY_CLI_ERR_KEY_FILE), never "none yet".
 */
export function readJumpHostKeyFingerprint(dataDir: string): string | null {
  const path = jumpHostKeyPath(dataDir);
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    if (code === 'ENOENT') return null;
    throw codedCliError(
      'RLY_CLI_ERR_KEY_FILE',
      `cannot read the SSH jump host key ${path}: ${code ?? (e as Error).message}`,
      'Check its permissions; to make a new one, move it away and start the relay (users who pinned the old key must then forget it).',
      e,
    );
  }
  return parse(text, path).fingerprint;
}
