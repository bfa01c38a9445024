/**
 * The embedded SSH server's host key: <stateDir>/ssh_host_ed25519_key (OpenSSH private key format, 0600),
 * generated once and kept, so clients that pinned it keep trusting it. A .pub copy is written beside it.
 */
import { chmod, link, mkdir, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { randomBytes } from 'node:crypto';
import { join } from 'node:path';
import { hostname } from 'node:os';
import type { Logger } from 'pino';
import { fingerprintBlob, keyLineFromBlob } from '@mssh/protocol';
import { generateEd25519KeyPair, parseSshKey } from '@mssh/protocol/ssh2-keys';
import { sshdError } from './errors.js';

export const HOST_KEY_FILE = 'ssh_host_ed25519_key';

export interface HostKey {
  /** OpenSSH private key text, as ssh2's Server takes it. */
  privateKey: string;
  /** "ssh-ed25519 AAAA..." without comment. */
  publicLine: string;
  fingerprint: string;
  path: string;
}

function parseHostKey(text: string, path: string): HostKey {
  const key = parseSshKey(text);
  if (!key?.isPrivateKey()) {
    throw sshdError(
      'AGT_ERR_SSHD_HOST_KEY',
      `${path} is not a valid unencrypted private key; move it away and restart the agent to create a new one ` +
        '(clients that pinned the old key will then refuse the new one until they forget it)',
    );
  }
  const blob = key.getPublicSSH();
  return { privateKey: text, publicLine: keyLineFromBlob(blob), fingerprint: fingerprintBlob(blob), path };
}

/** Read the host key, creating it (once, race-safe) when it does not exist yet. */
export async function loadOrCreateHostKey(stateDir: string, logger: Logger): Promise<HostKey> {
  const path = join(stateDir, HOST_KEY_FILE);
  try {
    await mkdir(stateDir, { recursive: true, mode: 0o700 });
  } catch (e) {
    throw sshdError(
      'AGT_ERR_SSHD_STATE_DIR',
      `cannot create ${stateDir}: ${(e as Error).message}; pass a writable --state-dir`,
      e,
    );
  }
  let text: string | undefined;
  try {
    text = await readFile(path, 'utf8');
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code !== 'ENOENT') {
      throw sshdError(
        'AGT_ERR_SSHD_HOST_KEY',
        `cannot read ${path}: ${(e as Error).message}; check its owner and permissions`,
        e,
      );
    }
  }
  if (text === undefined) {
    const pair = generateEd25519KeyPair(`mssh-agent@${hostname()}`);
    // Written in full to a temporary file, then hard-linked into place: link() fails if the key exists,
    // so concurrent starts keep exactly one key and never read a half-written one.
    const tmp = `${path}.${process.pid}.${randomBytes(6).toString('hex')}.tmp`;
    try {
      await writeFile(tmp, pair.private, { mode: 0o600, flag: 'wx' });
      await link(tmp, path);
      text = pair.private;
      logger.info({ path }, 'created the embedded SSH server host key');
      await writeFile(`${path}.pub`, pair.public + '\n', { mode: 0o644 }).catch((e: Error) =>
        logger.warn({ err: e, path: `${path}.pub` }, 'could not write the host public key copy'),
      );
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'EEXIST') {
        throw sshdError(
          'AGT_ERR_SSHD_HOST_KEY',
          `cannot write ${path}: ${(e as Error).message}; pass a writable --state-dir`,
          e,
        );
      }
      text = await readFile(path, 'utf8');
    } finally {
      await rm(tmp, { force: true }).catch(() => undefined);
    }
  } else {
    const st = await stat(path);
    if ((st.mode & 0o077) !== 0) {
      logger.warn({ path, mode: (st.mode & 0o777).toString(8) }, 'host key was readable by others; setting mode 0600');
      await chmod(path, 0o600).catch((e: Error) => logger.warn({ err: e, path }, 'could not chmod the host key'));
    }
  }
  return parseHostKey(text, path);
}
