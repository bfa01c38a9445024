/**
 * A small SFTP (version 3) file server on ssh2's SFTP server mode, used when the machine has no
 * OpenSSH sftp-server binary. It covers what sftp(1) and scp(1) (which speaks SFTP since OpenSSH 9) need:
 * open/read/write/close, stat/lstat/fstat, setstat/fsetstat, opendir/readdir, realpath, readlink, symlink,
 * mkdir/rmdir, remove, rename. Relative paths are relative to the agent user's home directory.
 */
import { constants as fsc, type Stats } from 'node:fs';
import {
  lstat,
  mkdir,
  open,
  readdir,
  readlink,
  realpath,
  rename,
  rmdir,
  stat,
  symlink,
  unlink,
  chmod,
  chown,
  utimes,
  truncate,
  type FileHandle,
} from 'node:fs/promises';
import { posix } from 'node:path';
import type { Logger } from 'pino';
import ssh2 from 'ssh2';
import type { SFTPWrapper, Attributes, InputAttributes, FileEntry } from 'ssh2';
import { sendExitStatus } from '@mssh/ssh-server';

const { utils } = ssh2;
const { STATUS_CODE, OPEN_MODE } = utils.sftp;

const MAX_READ = 64 * 1024;
const DIR_BATCH = 64;

type Handle =
  { kind: 'file'; fh: FileHandle; path: string } | { kind: 'dir'; path: string; names: string[] | null; pos: number };

function toAttrs(st: Stats): Attributes {
  return {
    mode: st.mode,
    uid: st.uid,
    gid: st.gid,
    size: st.size,
    atime: Math.floor(st.atimeMs / 1000),
    mtime: Math.floor(st.mtimeMs / 1000),
  };
}

const MONTHS = ['Jan', 'Feb', 'Mar', 'Apr', 'May', 'Jun', 'Jul', 'Aug', 'Sep', 'Oct', 'Nov', 'Dec'];

function modeString(mode: number): string {
  const type =
    (mode & fsc.S_IFMT) === fsc.S_IFDIR
      ? 'd'
      : (mode & fsc.S_IFMT) === fsc.S_IFLNK
        ? 'l'
        : (mode & fsc.S_IFMT) === fsc.S_IFCHR
          ? 'c'
          : (mode & fsc.S_IFMT) === fsc.S_IFBLK
            ? 'b'
            : (mode & fsc.S_IFMT) === fsc.S_IFIFO
              ? 'p'
              : (mode & fsc.S_IFMT) === fsc.S_IFSOCK
                ? 's'
                : '-';
  const rwx = (bits: number) => `${bits & 4 ? 'r' : '-'}${bits & 2 ? 'w' : '-'}${bits & 1 ? 'x' : '-'}`;
  return type + rwx(mode >> 6) + rwx(mode >> 3) + rwx(mode);
}

/** `ls -l` style line, as sftp(1) prints for `ls -l`. */
function longname(name: string, st: Stats): string {
  const d = st.mtime;
  const recent = Math.abs(Date.now() - d.getTime()) < 180 * 24 * 3600 * 1000;
  const when =
    `${MONTHS[d.getMonth()]} ${String(d.getDate()).padStart(2)} ` +
    (recent
      ? `${String(d.getHours()).padStart(2, '0')}:${String(d.getMinutes()).padStart(2, '0')}`
      : ` ${d.getFullYear()}`);
  return `${modeString(st.mode)} ${String(st.nlink).padStart(3)} ${String(st.uid).padEnd(8)} ${String(st.gid).padEnd(8)} ${String(st.size).padStart(8)} ${when} ${name}`;
}

function statusFor(e: unknown): { code: number; message: string } {
  const err = e as NodeJS.ErrnoException;
  switch (err?.code) {
    case 'ENOENT':
    case 'ENOTDIR':
      return { code: STATUS_CODE.NO_SUCH_FILE, message: 'No such file' };
    case 'EACCES':
    case 'EPERM':
      return { code: STATUS_CODE.PERMISSION_DENIED, message: 'Permission denied' };
    default:
      return { code: STATUS_CODE.FAILURE, message: err?.message ?? 'Failure' };
  }
}

function openFlags(pflags: number): number {
  let f: number;
  const r = (pflags & OPEN_MODE.READ) !== 0;
  const w = (pflags & OPEN_MODE.WRITE) !== 0;
  if (r && w) f = fsc.O_RDWR;
  else if (w) f = fsc.O_WRONLY;
  else f = fsc.O_RDONLY;
  if (pflags & OPEN_MODE.APPEND) f |= fsc.O_APPEND;
  if (pflags & OPEN_MODE.CREAT) f |= fsc.O_CREAT;
  if (pflags & OPEN_MODE.TRUNC) f |= fsc.O_TRUNC;
  if (pflags & OPEN_MODE.EXCL) f |= fsc.O_EXCL;
  return f;
}

async function applyAttrs(attrs: InputAttributes, target: { path: string } | { fh: FileHandle }): Promise<void> {
  const isFh = 'fh' in target;
  if (typeof attrs.size === 'number') {
    if (isFh) await target.fh.truncate(attrs.size);
    else await truncate(target.path, attrs.size);
  }
  if (typeof attrs.uid === 'number' && typeof attrs.gid === 'number') {
    if (isFh) await target.fh.chown(attrs.uid, attrs.gid);
    else await chown(target.path, attrs.uid, attrs.gid);
  }
  if (attrs.mode !== undefined) {
    const mode = (typeof attrs.mode === 'string' ? parseInt(attrs.mode, 8) : attrs.mode) & 0o7777;
    if (isFh) await target.fh.chmod(mode);
    else await chmod(target.path, mode);
  }
  if (attrs.atime !== undefined && attrs.mtime !== undefined) {
    if (isFh) await target.fh.utimes(attrs.atime, attrs.mtime);
    else await utimes(target.path, attrs.atime, attrs.mtime);
  }
}

/** Serve SFTP requests on `sftp` until the channel ends; every open file is closed at the end. */
export function serveBuiltinSftp(sftp: SFTPWrapper, opts: { home: string; logger: Logger }): void {
  const { home, logger } = opts;
  const handles = new Map<string, Handle>();
  let nextHandle = 1;
  let closed = false;

  const abs = (p: string) => posix.resolve(home, p === '' ? '.' : p);
  const newHandle = (h: Handle): Buffer => {
    const buf = Buffer.alloc(4);
    buf.writeUInt32BE(nextHandle++ >>> 0);
    handles.set(buf.toString('hex'), h);
    return buf;
  };
  const getHandle = (b: Buffer) => handles.get(b.toString('hex'));

  // Every reply goes through here: after the channel closed, or if ssh2 refuses a value, nothing crashes.
  const reply = (fn: () => void) => {
    if (closed) return;
    try {
      fn();
    } catch (e) {
      logger.warn({ err: e }, 'sftp reply failed');
    }
  };
  const ok = (id: number) => reply(() => sftp.status(id, STATUS_CODE.OK));
  const fail = (id: number, e: unknown) => {
    const { code, message } = statusFor(e);
    reply(() => sftp.status(id, code, message));
  };
  let inFlight = 0;
  let clientDone = false;
  // Requests are answered strictly in order, like OpenSSH's sftp-server: sftp(1) and scp(1) pipeline reads
  // past the end of the file and take an early EOF answer as the file's end.
  let queue: Promise<void> = Promise.resolve();
  const run = (id: number, op: string, fn: () => Promise<void>) => {
    inFlight++;
    queue = queue
      .then(fn)
      .catch((e: unknown) => {
        logger.debug({ op, err: (e as Error)?.message }, 'sftp request failed');
        fail(id, e);
      })
      .finally(() => {
        inFlight--;
        if (clientDone && inFlight === 0) finish();
      });
  };
  const badHandle = (id: number) => reply(() => sftp.status(id, STATUS_CODE.FAILURE, 'Invalid handle'));

  sftp.on('OPEN', (id, filename, flags, attrs) =>
    run(id, 'open', async () => {
      const mode =
        attrs.mode !== undefined
          ? (typeof attrs.mode === 'string' ? parseInt(attrs.mode, 8) : attrs.mode) & 0o7777
          : 0o666;
      const path = abs(filename);
      const fh = await open(path, openFlags(flags), mode);
      if (closed) {
        await fh.close();
        return;
      }
      const h = newHandle({ kind: 'file', fh, path });
      reply(() => sftp.handle(id, h));
    }),
  );

  sftp.on('READ', (id, handle, offset, length) =>
    run(id, 'read', async () => {
      const h = getHandle(handle);
      if (!h || h.kind !== 'file') return badHandle(id);
      const buf = Buffer.allocUnsafe(Math.max(0, Math.min(length, MAX_READ)));
      const { bytesRead } = await h.fh.read(buf, 0, buf.length, offset);
      if (bytesRead === 0) reply(() => sftp.status(id, STATUS_CODE.EOF));
      else reply(() => sftp.data(id, buf.subarray(0, bytesRead)));
    }),
  );

  sftp.on('WRITE', (id, handle, offset, data) =>
    run(id, 'write', async () => {
      const h = getHandle(handle);
      if (!h || h.kind !== 'file') return badHandle(id);
      let done = 0;
      for (let i = 0; done < data.length && i < 1000; i++) {
        const { bytesWritten } = await h.fh.write(data, done, data.length - done, offset + done);
        done += bytesWritten;
      }
      if (done < data.length) throw new Error('short write');
      ok(id);
    }),
  );

  sftp.on('FSTAT', (id, handle) =>
    run(id, 'fstat', async () => {
      const h = getHandle(handle);
      if (!h) return badHandle(id);
      const st = h.kind === 'file' ? await h.fh.stat() : await stat(h.path);
      reply(() => sftp.attrs(id, toAttrs(st)));
    }),
  );

  sftp.on('FSETSTAT', (id, handle, attrs) =>
    run(id, 'fsetstat', async () => {
      const h = getHandle(handle);
      if (!h) return badHandle(id);
      await applyAttrs(attrs, h.kind === 'file' ? { fh: h.fh } : { path: h.path });
      ok(id);
    }),
  );

  sftp.on('CLOSE', (id, handle) =>
    run(id, 'close', async () => {
      const key = handle.toString('hex');
      const h = handles.get(key);
      if (!h) return badHandle(id);
      handles.delete(key);
      if (h.kind === 'file') await h.fh.close();
      ok(id);
    }),
  );

  sftp.on('OPENDIR', (id, path) =>
    run(id, 'opendir', async () => {
      const p = abs(path);
      const st = await stat(p);
      if (!st.isDirectory()) {
        reply(() => sftp.status(id, STATUS_CODE.FAILURE, 'Not a directory'));
        return;
      }
      const h = newHandle({ kind: 'dir', path: p, names: null, pos: 0 });
      reply(() => sftp.handle(id, h));
    }),
  );

  sftp.on('READDIR', (id, handle) =>
    run(id, 'readdir', async () => {
      const h = getHandle(handle);
      if (!h || h.kind !== 'dir') return badHandle(id);
      if (h.names === null) h.names = ['.', '..', ...(await readdir(h.path))];
      if (h.pos >= h.names.length) {
        reply(() => sftp.status(id, STATUS_CODE.EOF));
        return;
      }
      const batch = h.names.slice(h.pos, h.pos + DIR_BATCH);
      h.pos += batch.length;
      const entries: FileEntry[] = [];
      for (const name of batch) {
        try {
          const st = await lstat(posix.join(h.path, name));
          entries.push({ filename: name, longname: longname(name, st), attrs: toAttrs(st) });
        } catch {
          // vanished between readdir and lstat: leave it out
        }
      }
      reply(() => sftp.name(id, entries));
    }),
  );

  sftp.on('LSTAT', (id, path) =>
    run(id, 'lstat', async () => {
      const st = await lstat(abs(path));
      reply(() => sftp.attrs(id, toAttrs(st)));
    }),
  );
  sftp.on('STAT', (id, path) =>
    run(id, 'stat', async () => {
      const st = await stat(abs(path));
      reply(() => sftp.attrs(id, toAttrs(st)));
    }),
  );
  sftp.on('SETSTAT', (id, path, attrs) =>
    run(id, 'setstat', async () => {
      await applyAttrs(attrs, { path: abs(path) });
      ok(id);
    }),
  );
  sftp.on('REMOVE', (id, path) =>
    run(id, 'remove', async () => {
      await unlink(abs(path));
      ok(id);
    }),
  );
  sftp.on('RMDIR', (id, path) =>
    run(id, 'rmdir', async () => {
      await rmdir(abs(path));
      ok(id);
    }),
  );
  sftp.on('MKDIR', (id, path, attrs) =>
    run(id, 'mkdir', async () => {
      const mode =
        attrs.mode !== undefined
          ? (typeof attrs.mode === 'string' ? parseInt(attrs.mode, 8) : attrs.mode) & 0o7777
          : 0o777;
      await mkdir(abs(path), { mode });
      ok(id);
    }),
  );
  sftp.on('RENAME', (id, oldPath, newPath) =>
    run(id, 'rename', async () => {
      // SFTP v3 RENAME must not overwrite an existing target.
      const target = abs(newPath);
      const exists = await lstat(target).then(
        () => true,
        () => false,
      );
      if (exists) {
        reply(() => sftp.status(id, STATUS_CODE.FAILURE, 'Target exists'));
        return;
      }
      await rename(abs(oldPath), target);
      ok(id);
    }),
  );
  sftp.on('REALPATH', (id, path) =>
    run(id, 'realpath', async () => {
      const p = abs(path);
      const resolved = await realpath(p).catch((e: NodeJS.ErrnoException) => {
        if (e.code === 'ENOENT') return p;
        throw e;
      });
      reply(() => sftp.name(id, [{ filename: resolved, longname: resolved, attrs: {} as Attributes }]));
    }),
  );
  sftp.on('READLINK', (id, path) =>
    run(id, 'readlink', async () => {
      const target = await readlink(abs(path));
      reply(() => sftp.name(id, [{ filename: target, longname: target, attrs: {} as Attributes }]));
    }),
  );
  sftp.on('SYMLINK', (id, linkPath, targetPath) =>
    run(id, 'symlink', async () => {
      await symlink(targetPath, abs(linkPath));
      ok(id);
    }),
  );

  const cleanup = () => {
    if (closed) return;
    closed = true;
    for (const h of handles.values()) if (h.kind === 'file') h.fh.close().catch(() => undefined);
    handles.clear();
  };
  // The client sent EOF (sftp(1) quit): answer what is in flight, then close the channel, as sftp-server
  // does by exiting.
  const finish = () => {
    cleanup();
    try {
      // Exit status 0 before the close, as sshd sends when sftp-server exits: scp(1) in SFTP mode fails
      // without one (ssh2's SFTP object has no public exit(); see @mssh/ssh-server's ssh2-internals).
      sendExitStatus(sftp, 0);
      sftp.end();
    } catch {
      // channel already gone
    }
  };
  sftp.on('error', (e: Error) => logger.warn({ err: e }, 'sftp channel error'));
  sftp.on('end', () => {
    clientDone = true;
    if (inFlight === 0) finish();
  });
  sftp.on('close', cleanup);
}
