/**
 * One `mssh-agent run` per state directory. Two agents with the same identity replace each other on the
 * relay over and over (each new link evicts the other's, cutting its sessions), so the second one must
 * refuse to start.
 *
 * The lock is an OS lock, flock(2) on DIR/agent.lock, held by this process for as long as it lives:
 *   - Node has no flock in core, so the one-shot helper `flock --nonblock 3` (util-linux, Essential on
 *     Debian and present on every mainstream Linux) is handed our open file as its fd 3. flock locks
 *     belong to the open file description, which the helper shares with us; it exits at once and the lock
 *     stays with our descriptor. No helper process stays behind, no native module is built.
 *   - The kernel drops the lock when our descriptor closes, i.e. when the process ends in any way,
 *     SIGKILL and power loss included: there is no stale lock to detect or clean up.
 *   - Our descriptor is close-on-exec (Node opens files with O_CLOEXEC), so shells and other children of
 *     the agent (embedded SSH server sessions) never inherit it and cannot keep it past the agent.
 *   - The file sits in the 0700 state directory with mode 0600: another user cannot take it (an abstract
 *     unix socket, the other lock-without-native-code option, can be bound by any local user first).
 * The holder writes its pid into the file after taking the lock, only to name it in the refusal.
 */
import { spawnSync } from 'node:child_process';
import { closeSync, constants, ftruncateSync, openSync, readFileSync, writeSync } from 'node:fs';
import { join } from 'node:path';
import { AgentError } from '../errors.js';

export const LOCK_FILE = 'agent.lock';
/** flock(1) exit status when the lock is held by someone else (--conflict-exit-code). */
const CONFLICT = 75;

export interface StateLock {
  path: string;
  /** false when flock(1) is not installed and the agent runs unlocked (logged as a warning). */
  locked: boolean;
  release(): void;
}

/**
 * Take the state directory's lock for the life of this process, or throw AGT_ERR_STATE_DIR_LOCKED naming
 * the pid that holds it.
 */
export function lockStateDir(dir: string, opts: { flock?: string; pid?: number } = {}): StateLock {
  const path = join(dir, LOCK_FILE);
  let fd: number;
  try {
    // Not O_TRUNC: the file holds the current holder's pid until we have the lock.
    fd = openSync(path, constants.O_RDWR | constants.O_CREAT, 0o600);
  } catch (err) {
    throw new AgentError(
      'AGT_ERR_STATE_DIR',
      `cannot open ${path} (${(err as NodeJS.ErrnoException).code ?? (err as Error).message}); check the --state-dir and its permissions`,
      { cause: err },
    );
  }
  const r = spawnSync(opts.flock ?? 'flock', ['--nonblock', '--conflict-exit-code', String(CONFLICT), '3'], {
    stdio: ['ignore', 'ignore', 'pipe', fd],
    timeout: 10_000,
  });
  if (r.error && (r.error as NodeJS.ErrnoException).code === 'ENOENT') {
    return { path, locked: false, release: () => closeSync(fd) };
  }
  if (r.status === CONFLICT) {
    const holder = readHolder(path);
    closeSync(fd);
    const who = holder ? `another mssh-agent (pid ${holder})` : 'another mssh-agent';
    throw new AgentError(
      'AGT_ERR_STATE_DIR_LOCKED',
      `${who} is already running on the state directory ${dir}\n` +
        `Two agents with one identity would keep replacing each other on the relay. Stop that one first${holder ? ` (kill ${holder})` : ''}, ` +
        'or give this one its own machine name: mssh-agent enroll ... --state-dir OTHER_DIR.',
    );
  }
  if (r.status !== 0) {
    closeSync(fd);
    const why = r.error
      ? r.error.message
      : `flock exited ${r.status ?? r.signal}: ${r.stderr?.toString().trim() || 'no message'}`;
    throw new AgentError(
      'AGT_ERR_STATE_DIR',
      `cannot lock ${path} (${why}); check the --state-dir (a local file system that supports flock)`,
    );
  }
  try {
    ftruncateSync(fd, 0);
    writeSync(fd, `${opts.pid ?? process.pid}\n`, 0);
  } catch {
    // The pid only names the holder in a refusal; the lock holds without it.
  }
  return { path, locked: true, release: () => closeSync(fd) };
}

function readHolder(path: string): number | null {
  try {
    const m = /^(\d{1,10})\s*$/.exec(readFileSync(path, 'utf8'));
    return m ? Number(m[1]) : null;
  } catch {
    return null;
  }
}
