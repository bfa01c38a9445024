/**
 * The two ends of a copy behind one interface: this machine's file system and a remote one over SFTP.
 * Every failure comes back as a CliError naming the path (`laptop:/srv/x: no such file or directory`).
 *
 * SFTP status codes (RFC draft-ietf-secsh-filexfer-02, what OpenSSH's sftp-server sends): 2 no such file
 * (also ENOTDIR, ELOOP), 3 permission denied, 4 failure (anything else, ENOSPC included).
 */
import { constants as fsConstants } from 'node:fs';
import * as fsp from 'node:fs/promises';
import { posix } from 'node:path';
import type { SFTPWrapper, Stats } from 'ssh2';
import { cliError, isCliError, type CliError } from '../errors.js';

export interface FileInfo {
  type: 'file' | 'dir' | 'link' | 'other';
  size: number;
  /** Permission bits (0o7777). */
  mode: number;
  /** Seconds since the epoch. */
  atime: number;
  mtime: number;
}

export interface Side {
  /** `laptop:/srv/x` or the local path, for messages. */
  show(path: string): string;
  /** Follows symlinks; null when nothing is there. */
  stat(path: string): Promise<FileInfo | null>;
  /** Does not follow symlinks; null when nothing is there. */
  lstat(path: string): Promise<FileInfo | null>;
  readdir(path: string): Promise<string[]>;
  realpath(path: string): Promise<string>;
  mkdir(path: string, mode: number): Promise<void>;
  /** Create an empty file that must not exist yet, readable by its owner only (the temporary file). */
  createExclusive(path: string): Promise<void>;
  /** Rename, replacing what is at `to`. */
  replace(from: string, to: string): Promise<void>;
  unlink(path: string): Promise<void>;
  setAttrs(path: string, a: { mode?: number; atime?: number; mtime?: number }): Promise<void>;
  /** Bytes free for an unprivileged user in the file system of `dir`, or null when unknown. */
  freeBytes(dir: string): Promise<number | null>;
}

const S_IFMT = 0o170000;
const S_IFREG = 0o100000;
const S_IFDIR = 0o040000;
const S_IFLNK = 0o120000;

function typeOf(mode: number): FileInfo['type'] {
  switch (mode & S_IFMT) {
    case S_IFREG:
      return 'file';
    case S_IFDIR:
      return 'dir';
    case S_IFLNK:
      return 'link';
    default:
      return 'other';
  }
}

// ---- errors ----

/** An SFTP status error (ssh2 sets `code` to the status number). */
export function isSftpStatus(e: unknown): e is Error & { code: number } {
  return e instanceof Error && typeof (e as { code?: unknown }).code === 'number';
}

export function remoteError(shown: string, e: unknown, doing: string): CliError {
  if (isCliError(e)) return e;
  const code = isSftpStatus(e) ? e.code : -1;
  const said = e instanceof Error ? e.message : String(e);
  if (code === 2)
    return cliError(
      'CLI_ERR_CP_NO_SUCH_FILE',
      `${shown}: no such file or directory`,
      'Check the path (`mssh ssh HOST -- ls -la DIR`).',
      e,
    );
  if (code === 3)
    return cliError(
      'CLI_ERR_CP_PERMISSION_DENIED',
      `${shown}: permission denied (${doing})`,
      'Log in as a user who may do this (user@host: or -l USER), or pick another path.',
      e,
    );
  return cliError(
    'CLI_ERR_CP_FAILED',
    `${shown}: ${doing} failed (${said})`,
    'The SFTP server gives no reason; the disk may be full or the file system read-only (`mssh ssh HOST -- df -h DIR`).',
    e,
  );
}

export function localError(path: string, e: unknown, doing: string): CliError {
  if (isCliError(e)) return e;
  const code = (e as NodeJS.ErrnoException | null)?.code;
  switch (code) {
    case 'ENOENT':
      return cliError('CLI_ERR_CP_NO_SUCH_FILE', `${path}: no such file or directory`, 'Check the local path.', e);
    case 'EACCES':
    case 'EPERM':
    case 'EROFS':
      return cliError(
        'CLI_ERR_CP_PERMISSION_DENIED',
        `${path}: permission denied (${doing})`,
        'Check the permissions of the local file or directory.',
        e,
      );
    case 'ENOTDIR':
      return cliError(
        'CLI_ERR_CP_NOT_A_DIRECTORY',
        `${path}: a part of the path is not a directory`,
        'Check the local path.',
        e,
      );
    case 'EISDIR':
      return cliError(
        'CLI_ERR_CP_IS_A_DIRECTORY',
        `${path}: is a directory`,
        'Name a file, or copy the directory with -r.',
        e,
      );
    case 'ENOSPC':
    case 'EDQUOT':
      return cliError(
        'CLI_ERR_CP_NO_SPACE',
        `${path}: no space left on the local disk`,
        'Free some space and copy again.',
        e,
      );
    default:
      return cliError('CLI_ERR_CP_FAILED', `${path}: ${doing} failed (${(e as Error).message})`, '', e);
  }
}

// ---- local ----

function localInfo(s: import('node:fs').Stats): FileInfo {
  return {
    type: s.isFile() ? 'file' : s.isDirectory() ? 'dir' : s.isSymbolicLink() ? 'link' : 'other',
    size: s.size,
    mode: s.mode & 0o7777,
    atime: Math.floor(s.atimeMs / 1000),
    mtime: Math.floor(s.mtimeMs / 1000),
  };
}

export function localSide(): Side {
  const orNull = async (p: string, f: () => Promise<FileInfo>, doing: string): Promise<FileInfo | null> => {
    try {
      return await f();
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code === 'ENOENT') return null;
      throw localError(p, e, doing);
    }
  };
  const wrap = async <T>(p: string, doing: string, f: () => Promise<T>): Promise<T> => {
    try {
      return await f();
    } catch (e) {
      throw localError(p, e, doing);
    }
  };
  return {
    show: (p) => p,
    stat: (p) => orNull(p, async () => localInfo(await fsp.stat(p)), 'stat'),
    lstat: (p) => orNull(p, async () => localInfo(await fsp.lstat(p)), 'stat'),
    readdir: (p) => wrap(p, 'reading the directory', () => fsp.readdir(p)),
    realpath: (p) => wrap(p, 'resolving the path', () => fsp.realpath(p)),
    mkdir: (p, mode) => wrap(p, 'creating the directory', () => fsp.mkdir(p, { mode }).then(() => {})),
    createExclusive: (p) =>
      wrap(p, 'creating the file', async () => {
        const fh = await fsp.open(p, fsConstants.O_WRONLY | fsConstants.O_CREAT | fsConstants.O_EXCL, 0o600);
        await fh.close();
      }),
    replace: (from, to) => wrap(to, 'renaming into place', () => fsp.rename(from, to)),
    unlink: (p) => wrap(p, 'removing', () => fsp.unlink(p)),
    setAttrs: (p, a) =>
      wrap(p, 'setting times and mode', async () => {
        if (a.mode !== undefined) await fsp.chmod(p, a.mode);
        if (a.mtime !== undefined) await fsp.utimes(p, a.atime ?? a.mtime, a.mtime);
      }),
    freeBytes: async (dir) => {
      try {
        const s = await fsp.statfs(dir);
        return s.blocks > 0 ? s.bavail * s.bsize : null;
      } catch {
        return null;
      }
    },
  };
}

// ---- remote (SFTP) ----

function remoteInfo(s: Stats): FileInfo {
  return { type: typeOf(s.mode), size: s.size, mode: s.mode & 0o7777, atime: s.atime, mtime: s.mtime };
}

type Cb<T> = (err: Error | null | undefined, v: T) => void;

function call<T>(f: (cb: Cb<T>) => void): Promise<T> {
  return new Promise<T>((resolve, reject) => {
    try {
      f((err, v) => (err ? reject(err) : resolve(v)));
    } catch (e) {
      reject(e);
    }
  });
}

export function remoteSide(sftp: SFTPWrapper, host: string): Side {
  const show = (p: string) => `${host}:${p === '.' ? '' : p}`;
  const orNull = async (p: string, f: (cb: Cb<Stats>) => void): Promise<FileInfo | null> => {
    try {
      return remoteInfo(await call(f));
    } catch (e) {
      if (isSftpStatus(e) && e.code === 2) return null;
      throw remoteError(show(p), e, 'stat');
    }
  };
  const wrap = async <T>(p: string, doing: string, f: (cb: Cb<T>) => void): Promise<T> => {
    try {
      return await call(f);
    } catch (e) {
      throw remoteError(show(p), e, doing);
    }
  };
  return {
    show,
    stat: (p) => orNull(p, (cb) => sftp.stat(p, cb)),
    lstat: (p) => orNull(p, (cb) => sftp.lstat(p, cb)),
    readdir: async (p) =>
      (await wrap(p, 'reading the directory', (cb: Cb<{ filename: string }[]>) => sftp.readdir(p, cb)))
        .map((e) => e.filename)
        .filter((n) => n !== '.' && n !== '..'),
    realpath: (p) => wrap(p, 'resolving the path', (cb: Cb<string>) => sftp.realpath(p, cb)),
    mkdir: (p, mode) =>
      wrap(p, 'creating the directory', (cb: Cb<void>) => sftp.mkdir(p, { mode }, (e) => cb(e, undefined))),
    createExclusive: async (p) => {
      const handle = await wrap(p, 'creating the file', (cb: Cb<Buffer>) => sftp.open(p, 'wx', { mode: 0o600 }, cb));
      await wrap(p, 'creating the file', (cb: Cb<void>) => sftp.close(handle, (e) => cb(e, undefined)));
    },
    replace: async (from, to) => {
      // posix-rename@openssh.com replaces atomically; plain SFTP v3 rename refuses an existing target.
      try {
        await call((cb: Cb<void>) => sftp.ext_openssh_rename(from, to, (e) => cb(e, undefined)));
        return;
      } catch (e) {
        if (isSftpStatus(e)) throw remoteError(show(to), e, 'renaming into place');
        // the server lacks the extension: below
      }
      try {
        await call((cb: Cb<void>) => sftp.rename(from, to, (e) => cb(e, undefined)));
      } catch (e) {
        if (!isSftpStatus(e) || e.code !== 4) throw remoteError(show(to), e, 'renaming into place');
        await wrap(to, 'replacing', (cb: Cb<void>) => sftp.unlink(to, (e2) => cb(e2, undefined)));
        await wrap(to, 'renaming into place', (cb: Cb<void>) => sftp.rename(from, to, (e2) => cb(e2, undefined)));
      }
    },
    unlink: (p) => wrap(p, 'removing', (cb: Cb<void>) => sftp.unlink(p, (e) => cb(e, undefined))),
    setAttrs: (p, a) =>
      wrap(p, 'setting times and mode', (cb: Cb<void>) =>
        sftp.setstat(
          p,
          {
            ...(a.mode !== undefined ? { mode: a.mode } : {}),
            ...(a.mtime !== undefined ? { atime: a.atime ?? a.mtime, mtime: a.mtime } : {}),
          },
          (e) => cb(e, undefined),
        ),
      ),
    freeBytes: async (dir) => {
      try {
        const s = await call((cb: Cb<{ f_bavail: unknown; f_frsize: unknown; f_blocks: unknown }>) =>
          sftp.ext_openssh_statvfs(dir, cb),
        );
        const free = Number(s.f_bavail) * Number(s.f_frsize);
        // A file system of no blocks (sysfs, proc) says nothing about space.
        return Number(s.f_blocks) > 0 && Number.isFinite(free) ? free : null;
      } catch {
        return null; // no statvfs@openssh.com (the agent's built-in SFTP server): unknown
      }
    },
  };
}

export const joinPath = (...parts: string[]): string => posix.join(...parts);
export const baseName = (p: string): string => posix.basename(p);
export const dirName = (p: string): string => posix.dirname(p);
