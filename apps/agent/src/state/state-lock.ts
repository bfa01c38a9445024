/**
 * One `mssh-agent run` per state directory. Two agents with the same identity replace each other on the
 * relay over and over (each new link evicts the other's, cutting its sessions), so the second one must
 * refuse to start.
 *
 * The lock is an OS lock, flock(2) on DIR/agent.lock, held by this process for as long as it lives
 * (@mssh/cli-kit file-lock.ts says how, and why that way; the state directory is 0700, the file 0600).
 * The holder writes its pid into the file after taking the lock, only to name it in the refusal.
 */
import { join } from 'node:path';
import { tryLockFile } from '@mssh/cli-kit';
import { AgentError } from '../errors.js';

export const LOCK_FILE = 'agent.lock';

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
  const r = tryLockFile(path, { flock: opts.flock, pid: opts.pid });
  if (r.kind === 'taken') return { path, locked: r.locked, release: r.release };
  if (r.kind === 'held') {
    const holder = r.holder;
    const who = holder ? `another mssh-agent (pid ${holder})` : 'another mssh-agent';
    throw new AgentError(
      'AGT_ERR_STATE_DIR_LOCKED',
      `${who} is already running on the state directory ${dir}\n` +
        `Two agents with one identity would keep replacing each other on the relay. Stop that one first${holder ? ` (kill ${holder})` : ''}, ` +
        'or give this one its own machine name: mssh-agent enroll ... --state-dir OTHER_DIR.',
    );
  }
  if (r.stage === 'open') {
    throw new AgentError(
      'AGT_ERR_STATE_DIR',
      `cannot open ${path} (${r.why}); check the --state-dir and its permissions`,
      { cause: r.cause },
    );
  }
  throw new AgentError(
    'AGT_ERR_STATE_DIR',
    `cannot lock ${path} (${r.why}); check the --state-dir (a local file system that supports flock)`,
  );
}
