/**
 * An OS lock on a file, held by this process until release() or until it ends in any way. Used for "one
 * process per directory": `mssh-agent run` on its state directory (apps/agent state/state-lock.ts) and
 * every `mssh-relay` process that opens the embedded PGlite database of a data directory (apps/relay
 * data-dir-lock.ts; PGlite allows one process only, a second one damages it).
 *
 * The lock is flock(2) on the file:
 *   - Node has no flock in core, so the one-shot helper `flock --nonblock 3` (util-linux, Essential on
 *     Debian and present on every mainstream Linux) is handed our open file as its fd 3. flock locks
 *     belong to the open file description, which the helper shares with us; it exits at once and the lock
 *     stays with our descriptor. No helper process stays behind, no native module is built.
 *   - The kernel drops the lock when our descriptor closes, i.e. when the process ends in any way,
 *     SIGKILL and power loss included: there is no stale lock to detect or clean up.
 *   - Our descriptor is close-on-exec (Node opens files with O_CLOEXEC), so children of the process never
 *     inherit it and cannot keep it past the process.
 *   - The file is created with mode 0600 (in an owner-only directory): another user cannot take it (an
 *     abstract unix socket, the other lock-without-native-code option, can be bound by any local user first).
 *   - Two opens of the file conflict even inside one process (the lock is per open file description).
 * The holder writes "PID[ WHAT]" into the file after taking the lock, only to name it in a refusal.
 */
import { spawnSync } from 'node:child_process';
import { closeSync, constants, ftruncateSync, openSync, readFileSync, writeSync } from 'node:fs';

/** flock(1) exit status when the lock is held by someone else (--conflict-exit-code). */
const CONFLICT = 75;

export type FileLockResult =
  /** Taken; `locked` is false when flock(1) is not installed and the caller runs unlocked. */
  | { kind: 'taken'; locked: boolean; release: () => void }
  /** Another open file holds it: `holder`/`what` as it wrote them, when readable. */
  | { kind: 'held'; holder: number | null; what: string | null }
  /** The file cannot be opened (`stage: 'open'`, `errno` set) or flock failed otherwise. */
  | { kind: 'failed'; stage: 'open' | 'lock'; why: string; cause?: unknown };

export interface FileLockOptions {
  /** The flock(1) binary (tests). */
  flock?: string;
  /** Written into the file (default: this process). */
  pid?: number;
  /** Written after the pid, to say what holds it ("serve", "user add", ...). */
  what?: string;
}

/** Try once, without waiting, to take the flock(2) lock on `path` (created 0600 if missing). */
export function tryLockFile(path: string, opts: FileLockOptions = {}): FileLockResult {
  let fd: number;
  try {
    // Not O_TRUNC: the file holds the current holder's pid until we have the lock.
    fd = openSync(path, constants.O_RDWR | constants.O_CREAT, 0o600);
  } catch (err) {
    return {
      kind: 'failed',
      stage: 'open',
      why: (err as NodeJS.ErrnoException).code ?? (err as Error).message,
      cause: err,
    };
  }
  const r = spawnSync(opts.flock ?? 'flock', ['--nonblock', '--conflict-exit-code', String(CONFLICT), '3'], {
    stdio: ['ignore', 'ignore', 'pipe', fd],
    timeout: 10_000,
  });
  if (r.error && (r.error as NodeJS.ErrnoException).code === 'ENOENT') {
    return { kind: 'taken', locked: false, release: onceClose(fd) };
  }
  if (r.status === CONFLICT) {
    closeSync(fd);
    return { kind: 'held', ...readHolder(path) };
  }
  if (r.status !== 0) {
    closeSync(fd);
    const why = r.error
      ? r.error.message
      : `flock exited ${r.status ?? r.signal}: ${r.stderr?.toString().trim() || 'no message'}`;
    return { kind: 'failed', stage: 'lock', why };
  }
  try {
    ftruncateSync(fd, 0);
    writeSync(fd, `${opts.pid ?? process.pid}${opts.what ? ` ${opts.what.replace(/[^\x20-\x7e]/g, '?')}` : ''}\n`, 0);
  } catch {
    // The pid only names the holder in a refusal; the lock holds without it.
  }
  return { kind: 'taken', locked: true, release: onceClose(fd) };
}

function onceClose(fd: number): () => void {
  let open = true;
  return () => {
    if (!open) return;
    open = false;
    closeSync(fd);
  };
}

function readHolder(path: string): { holder: number | null; what: string | null } {
  try {
    const m = /^(\d{1,10})(?: ([\x20-\x7e]{1,200}))?\s*$/.exec(readFileSync(path, 'utf8'));
    return m ? { holder: Number(m[1]), what: m[2] ?? null } : { holder: null, what: null };
  } catch {
    return { holder: null, what: null };
  }
}
