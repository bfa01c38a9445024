/**
 * The one private-file writer: tokens, keys and state files are replaced atomically and are never
 * readable by others, whatever the umask.
 *
 *   write to DIR/.<random>.tmp (created 0600, O_EXCL) -> fsync -> rename over the file -> fsync DIR
 *
 * A crash leaves either the old or the new content, never half a file, and the temporary name cannot be
 * guessed (a predictable one lets another local user plant a symlink or file there first).
 */
import { randomBytes } from 'node:crypto';
import { chmodSync, closeSync, fsyncSync, openSync, renameSync, rmSync, writeSync } from 'node:fs';
import { basename, dirname, join } from 'node:path';

export const PRIVATE_FILE_MODE = 0o600;

/** Replace `path` with `content` (mode 0600). Throws the file system's error; the caller adds its code. */
export function writePrivateFile(path: string, content: string | Uint8Array): void {
  writeFileAtomic(path, content, PRIVATE_FILE_MODE);
}

/** The same with another mode, for the public half of a pair (a certificate next to its key). */
export function writeFileAtomic(path: string, content: string | Uint8Array, mode: number): void {
  const dir = dirname(path);
  const tmp = join(dir, `.${basename(path)}.${randomBytes(8).toString('hex')}.tmp`);
  try {
    const fd = openSync(tmp, 'wx', PRIVATE_FILE_MODE); // never readable by others, even briefly
    try {
      writeSync(fd, typeof content === 'string' ? Buffer.from(content, 'utf8') : content);
      fsyncSync(fd);
    } finally {
      closeSync(fd);
    }
    chmodSync(tmp, mode); // O_CREAT's mode is masked by the umask: set the one asked for
    renameSync(tmp, path);
  } catch (e) {
    rmSync(tmp, { force: true });
    throw e;
  }
  syncDir(dir);
}

/** Make a rename durable: fsync the directory (not possible on every platform; best effort there). */
function syncDir(dir: string): void {
  let fd: number | undefined;
  try {
    fd = openSync(dir, 'r');
    fsyncSync(fd);
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    if (code !== 'EISDIR' && code !== 'EINVAL' && code !== 'EPERM' && code !== 'EACCES') throw e;
  } finally {
    if (fd !== undefined) closeSync(fd);
  }
}
