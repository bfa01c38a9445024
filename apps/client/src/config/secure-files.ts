/**
 * Private state on disk: the directory is 0700 and every file 0600, whatever the umask. Whole-file writes
 * go to a temporary file that is renamed over the old one, so a crash never leaves half a file.
 */
import { chmodSync, closeSync, existsSync, mkdirSync, openSync, readFileSync, statSync, writeSync } from 'node:fs';
import { dirname } from 'node:path';
import { writePrivateFile as writeKitPrivateFile } from '@mssh/cli-kit';
import { cliError } from '../errors.js';

export const DIR_MODE = 0o700;
export const FILE_MODE = 0o600;

function configError(action: string, path: string, e: unknown) {
  const why = (e as NodeJS.ErrnoException)?.code ?? (e as Error)?.message ?? String(e);
  return cliError(
    'CLI_ERR_CONFIG',
    `cannot ${action} ${path} (${why})`,
    'Check the permissions of the mssh config directory (or set MSSH_CONFIG_DIR).',
    e,
  );
}

/** Create the directory (and parents) if needed and make sure it is 0700. */
export function ensurePrivateDir(dir: string): void {
  try {
    mkdirSync(dir, { recursive: true, mode: DIR_MODE });
    if ((statSync(dir).mode & 0o777) !== DIR_MODE) chmodSync(dir, DIR_MODE);
  } catch (e) {
    throw configError('create', dir, e);
  }
}

/** Read a file, or null when it does not exist. Tightens its mode to 0600 if it was looser. */
export function readPrivateFile(path: string): string | null {
  try {
    if (!existsSync(path)) return null;
    if ((statSync(path).mode & 0o077) !== 0) chmodSync(path, FILE_MODE);
    return readFileSync(path, 'utf8');
  } catch (e) {
    throw configError('read', path, e);
  }
}

/** Replace a file atomically; the new file is 0600 from its first byte (@mssh/cli-kit: fsync, rename). */
export function writePrivateFile(path: string, content: string): void {
  ensurePrivateDir(dirname(path));
  try {
    writeKitPrivateFile(path, content);
  } catch (e) {
    throw configError('write', path, e);
  }
}

/** Append to a file (created 0600), in one write so concurrent appenders do not interleave lines. */
export function appendPrivateFile(path: string, content: string): void {
  ensurePrivateDir(dirname(path));
  try {
    const fd = openSync(path, 'a', FILE_MODE);
    try {
      writeSync(fd, content);
    } finally {
      closeSync(fd);
    }
    if ((statSync(path).mode & 0o777) !== FILE_MODE) chmodSync(path, FILE_MODE);
  } catch (e) {
    throw configError('write', path, e);
  }
}
