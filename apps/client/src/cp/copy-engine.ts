/**
 * What `mssh cp` does between two sides (copy-sides.ts), in two steps:
 *
 *   plan: stat every source and the destination, walk directories (-r), decide each target path and
 *         refuse early (missing source, directory without -r, several sources into a non-directory,
 *         not enough free space) before a byte moves;
 *   run:  create the directories, then copy each file to a temporary name beside its target
 *         (`.NAME.mssh-XXXXXXXX.part`, created empty and owner-only), set its mode (and times with -p),
 *         and rename it into place; a failure or Ctrl-C removes the temporary file, so a half-copied file
 *         never appears under its final name.
 *
 * Symlinks: a source named on the command line is followed (like scp); inside a directory copied with
 * -r, symlinks and special files are skipped with a warning, never followed, so a link cannot lead the
 * copy out of the tree.
 */
import { randomBytes } from 'node:crypto';
import { CliError, cliError, isCliError } from '../errors.js';
import { baseName, dirName, joinPath, type FileInfo, type Side } from './copy-sides.js';

export interface CopyFileOp {
  kind: 'file';
  src: string;
  dst: string;
  info: FileInfo;
}
export interface CopyDirOp {
  kind: 'dir';
  src: string;
  dst: string;
  info: FileInfo;
  /** The target directory exists already (merged into, like cp -r). */
  exists: boolean;
}
export type CopyOp = CopyFileOp | CopyDirOp;

export interface CopyPlan {
  ops: CopyOp[];
  /** Files to copy and their total size. */
  files: number;
  bytes: number;
  /** Paths (source side) skipped inside directories: symlinks and special files. */
  skipped: string[];
}

/**
 * Moves one file's bytes from `src` (source side) to `tmp` (destination side, created empty; `target` is
 * its final name, for messages), calling `onBytes` with the bytes moved so far: SFTP fastPut or fastGet.
 */
/**
 * Moves one file's bytes into `tmp`. On `signal` it must stop touching `tmp` soon: runCopy waits for it to
 * settle (at most TRANSFER_SETTLE_MS) before removing `tmp`, so a late open cannot create it again.
 */
export type Transfer = (
  src: string,
  tmp: string,
  target: string,
  onBytes: (total: number) => void,
  signal?: AbortSignal,
) => Promise<void>;

/** How long an interrupted transfer is given to stop before its temporary file is removed anyway. */
export const TRANSFER_SETTLE_MS = 3_000;

export interface CopyJob {
  src: Side;
  dst: Side;
  sources: string[];
  dest: string;
  recursive: boolean;
  preserve: boolean;
}

/** Most entries a -r walk looks at: a bound against a runaway tree (e.g. a mount loop without symlinks). */
export const MAX_WALK_ENTRIES = 1_000_000;

/** The permission bits a copied file gets: -p keeps them, else group/other write is dropped (like umask 022). */
export function targetMode(mode: number, preserve: boolean): number {
  return preserve ? mode & 0o7777 : mode & 0o755;
}

export async function planCopy(job: CopyJob): Promise<CopyPlan> {
  const { src, dst, dest } = job;
  const plan: CopyPlan = { ops: [], files: 0, bytes: 0, skipped: [] };
  const destInfo = await dst.stat(dest);
  const destIsDir = destInfo?.type === 'dir';
  if (dest.endsWith('/') && !destIsDir) {
    // `DIR/` says "into this directory", like cp and scp.
    if (destInfo === null)
      throw cliError(
        'CLI_ERR_CP_NO_SUCH_FILE',
        `${dst.show(dest)}: no such directory`,
        'Create it first, or check the path.',
      );
    throw cliError('CLI_ERR_CP_NOT_A_DIRECTORY', `${dst.show(dest)} is not a directory`, 'Check the destination path.');
  }
  if (job.sources.length > 1 && !destIsDir) {
    if (destInfo === null)
      throw cliError(
        'CLI_ERR_CP_NO_SUCH_FILE',
        `${dst.show(dest)}: no such directory (several sources need an existing directory as the destination)`,
        'Create it first (mssh ssh HOST -- mkdir -p DIR, or mkdir -p DIR here), or copy one source at a time.',
      );
    throw cliError(
      'CLI_ERR_CP_NOT_A_DIRECTORY',
      `${dst.show(dest)} is not a directory (several sources need a directory as the destination)`,
      'Name a directory as the destination, or copy one source at a time.',
    );
  }
  if (destInfo === null) {
    // The target is DEST itself: its directory must exist.
    const parent = dirName(dest);
    const p = await dst.stat(parent);
    if (p === null)
      throw cliError(
        'CLI_ERR_CP_NO_SUCH_FILE',
        `${dst.show(parent)}: no such directory (the destination's directory must exist)`,
        'Create it first, or check the path.',
      );
    if (p.type !== 'dir')
      throw cliError(
        'CLI_ERR_CP_NOT_A_DIRECTORY',
        `${dst.show(parent)} is not a directory`,
        'Check the destination path.',
      );
  }
  let seen = 0;
  const walk = async (s: string, d: string, info: FileInfo, exists: boolean): Promise<void> => {
    plan.ops.push({ kind: 'dir', src: s, dst: d, info, exists });
    const names = (await src.readdir(s)).sort();
    for (const name of names) {
      if (++seen > MAX_WALK_ENTRIES)
        throw cliError(
          'CLI_ERR_CP_FAILED',
          `${src.show(s)}: more than ${MAX_WALK_ENTRIES} entries to copy`,
          'Copy smaller directories, or pack the tree (tar) and copy one file.',
        );
      const sp = joinPath(s, name);
      const dp = joinPath(d, name);
      const li = await src.lstat(sp);
      if (li === null) continue; // removed while we walked
      if (li.type === 'dir') {
        const di = exists ? await dst.stat(dp) : null;
        if (di !== null && di.type !== 'dir')
          throw cliError(
            'CLI_ERR_CP_NOT_A_DIRECTORY',
            `${dst.show(dp)} exists and is not a directory`,
            'Move it away first.',
          );
        await walk(sp, dp, li, di !== null);
      } else if (li.type === 'file') {
        if (exists) await refuseDirTarget(dst, dp);
        addFile(plan, sp, dp, li);
      } else {
        plan.skipped.push(src.show(sp));
      }
    }
  };
  for (const s of job.sources) {
    const info = await src.stat(s);
    if (info === null)
      throw cliError('CLI_ERR_CP_NO_SUCH_FILE', `${src.show(s)}: no such file or directory`, 'Check the source path.');
    let name = baseName(s);
    if (name === '' || name === '.' || name === '..') name = baseName(await src.realpath(s)) || 'root';
    const target = destIsDir ? joinPath(dest, name) : dest;
    if (info.type === 'dir') {
      if (!job.recursive)
        throw cliError(
          'CLI_ERR_CP_IS_A_DIRECTORY',
          `${src.show(s)} is a directory (not a regular file)`,
          'Copy directories with -r: mssh cp -r SRC DEST.',
        );
      const ti = target === dest ? destInfo : await dst.stat(target);
      if (ti !== null && ti.type !== 'dir')
        throw cliError(
          'CLI_ERR_CP_NOT_A_DIRECTORY',
          `${dst.show(target)} exists and is not a directory`,
          'Name a directory (or a new name) as the destination.',
        );
      await walk(s, target, info, ti !== null);
    } else if (info.type === 'file') {
      await refuseDirTarget(dst, target);
      addFile(plan, s, target, info);
    } else {
      throw cliError(
        'CLI_ERR_CP_NOT_REGULAR',
        `${src.show(s)} is not a regular file or directory`,
        'mssh cp copies regular files (and directories with -r), not devices, sockets or pipes.',
      );
    }
  }
  return plan;
}

function addFile(plan: CopyPlan, src: string, dst: string, info: FileInfo): void {
  plan.ops.push({ kind: 'file', src, dst, info });
  plan.files++;
  plan.bytes += info.size;
}

async function refuseDirTarget(dst: Side, target: string): Promise<void> {
  const ti = await dst.stat(target);
  if (ti?.type === 'dir')
    throw cliError(
      'CLI_ERR_CP_IS_A_DIRECTORY',
      `${dst.show(target)} is a directory; a file cannot replace it`,
      'Name the file inside it (DIR/NAME) or move the directory away.',
    );
}

/** Refuse before copying when the destination's file system reports less free space than the plan needs. */
export async function checkSpace(dst: Side, dest: string, plan: CopyPlan): Promise<void> {
  if (plan.bytes === 0) return;
  const info = await dst.stat(dest);
  const dir = info?.type === 'dir' ? dest : dirName(dest);
  const free = await dst.freeBytes(dir);
  if (free !== null && free < plan.bytes)
    throw cliError(
      'CLI_ERR_CP_NO_SPACE',
      `${dst.show(dir)}: ${formatBytes(free)} free, the copy needs ${formatBytes(plan.bytes)}`,
      'Free some space there, or copy somewhere else.',
    );
}

export function formatBytes(n: number): string {
  if (n < 1024) return `${n} B`;
  const units = ['KiB', 'MiB', 'GiB', 'TiB'];
  let v = n / 1024;
  let i = 0;
  while (v >= 1024 && i < units.length - 1) {
    v /= 1024;
    i++;
  }
  return `${v.toFixed(v < 10 ? 1 : 0)} ${units[i]}`;
}

/** `.NAME.mssh-XXXXXXXX.part` beside the target (NAME cut so the whole stays under 255 bytes). */
export function tempName(target: string): string {
  const base = Buffer.from(baseName(target))
    .subarray(0, 200)
    .toString()
    .replace(/\uFFFD+$/, '');
  return joinPath(dirName(target), `.${base}.mssh-${randomBytes(4).toString('hex')}.part`);
}

export interface RunOptions {
  transfer: Transfer;
  /** Bytes moved so far over the whole plan, and the file being copied. */
  onProgress?: (done: number, file: string) => void;
  /** Ctrl-C: the file being copied is removed and CLI_ERR_INTERRUPTED thrown. */
  signal?: AbortSignal;
}

/** Resolves when `p` settles or after `ms`, whichever is first. */
async function settled(p: Promise<unknown>, ms: number): Promise<void> {
  let timer: NodeJS.Timeout | undefined;
  await Promise.race([
    p.then(
      () => {},
      () => {},
    ),
    new Promise<void>((resolve) => (timer = setTimeout(resolve, ms))),
  ]);
  clearTimeout(timer);
}

/** Ctrl-C: CLI_ERR_INTERRUPTED, exit 130 (128 + SIGINT, as a shell reports it). */
export function cpInterrupted(message = 'interrupted'): CliError {
  return new CliError('CLI_ERR_INTERRUPTED', message, '', { exitCode: 130 });
}

export async function runCopy(job: CopyJob, plan: CopyPlan, opts: RunOptions): Promise<void> {
  const { dst } = job;
  let done = 0;
  const interrupted = () => cpInterrupted('interrupted; the file being copied was removed');
  const created: CopyDirOp[] = [];
  for (const op of plan.ops) {
    if (opts.signal?.aborted) throw interrupted();
    if (op.kind === 'dir') {
      // Owner-writable while we fill it; its own mode (with -p) is set at the end.
      if (!op.exists) await dst.mkdir(op.dst, targetMode(op.info.mode, job.preserve) | 0o700);
      created.push(op);
      continue;
    }
    const tmp = tempName(op.dst);
    await dst.createExclusive(tmp);
    const before = done;
    opts.onProgress?.(done, op.dst);
    try {
      const moved = opts.transfer(
        op.src,
        tmp,
        op.dst,
        (total) => {
          done = before + total;
          opts.onProgress?.(done, op.dst);
        },
        opts.signal,
      );
      if (opts.signal) {
        const signal = opts.signal;
        let onAbort: () => void = () => {};
        const aborted = new Promise<never>((_, reject) => {
          onAbort = () => reject(interrupted());
          signal.addEventListener('abort', onAbort, { once: true });
        });
        moved.catch(() => {});
        try {
          await Promise.race([moved, aborted]);
        } catch (e) {
          // Interrupted: let the transfer stop first, or it may still open (and so re-create) the temporary.
          if (signal.aborted) await settled(moved, TRANSFER_SETTLE_MS);
          throw e;
        } finally {
          signal.removeEventListener('abort', onAbort);
        }
      } else {
        await moved;
      }
      await dst.setAttrs(tmp, {
        mode: targetMode(op.info.mode, job.preserve),
        ...(job.preserve ? { atime: op.info.atime, mtime: op.info.mtime } : {}),
      });
      await dst.replace(tmp, op.dst);
    } catch (e) {
      await dst.unlink(tmp).catch(() => {});
      throw isCliError(e) ? e : cliError('CLI_ERR_CP_FAILED', `${dst.show(op.dst)}: ${(e as Error).message}`, '', e);
    }
    done = before + op.info.size;
    opts.onProgress?.(done, op.dst);
  }
  // Directories last, deepest first, so setting a directory's time is not undone by writing into it.
  for (const op of created.reverse()) {
    if (job.preserve) await dst.setAttrs(op.dst, { mode: op.info.mode, atime: op.info.atime, mtime: op.info.mtime });
    else if (!op.exists) await dst.setAttrs(op.dst, { mode: targetMode(op.info.mode, false) });
  }
}
