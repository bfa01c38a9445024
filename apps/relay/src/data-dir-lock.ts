/**
 * One process on a data directory's embedded database at a time. PGlite allows one process only: a second
 * one opening <data-dir>/db (an admin command while the relay was starting, before its admin socket
 * listened) damaged it ("unexpected data beyond EOF in block ... of relation ...").
 *
 * So every process that opens it holds an OS lock on <data-dir>/relay.lock (flock(2), @mssh/cli-kit
 * file-lock.ts) for as long as it has it open:
 *   serve                      from before it opens the database until it has stopped (also on Postgres:
 *                              one relay per data dir); a second serve refuses at once
 *   admin commands, migrate    while they work on PGlite without the relay (offline-ops.ts); when a relay
 *                              holds the lock they wait for its admin socket (it is starting) a few
 *                              seconds, then refuse with RLY_CLI_ERR_DATA_DIR_BUSY
 */
import { join } from 'node:path';
import { tryLockFile } from '@mssh/cli-kit';
import { type CliError, cliFailure, codedCliError } from './errors.js';

export const DATA_DIR_LOCK_FILE = 'relay.lock';

export function dataDirLockPath(dataDir: string): string {
  return join(dataDir, DATA_DIR_LOCK_FILE);
}

export type DataDirLock =
  { held: false; locked: boolean; release: () => void } | { held: true; holder: number | null; what: string | null };

/** Try once to lock the (existing) data directory for `what` ("serve", "user add", ...). */
export function tryLockDataDir(dataDir: string, what: string): DataDirLock {
  const path = dataDirLockPath(dataDir);
  const r = tryLockFile(path, { what });
  if (r.kind === 'taken') return { held: false, locked: r.locked, release: r.release };
  if (r.kind === 'held') return { held: true, holder: r.holder, what: r.what };
  throw cliFailure(
    `cannot ${r.stage === 'open' ? 'open' : 'lock'} ${path} (${r.why})`,
    'Check the --data-dir and its permissions (a local file system that supports flock).',
    r.cause,
  );
}

function holderOf(l: { holder: number | null; what: string | null }): string {
  if (!l.holder) return 'another mssh-relay process';
  return `another mssh-relay process (pid ${l.holder}${l.what ? `, ${l.what}` : ''})`;
}

/** `serve` on a data directory another process holds. */
export function serveBusy(dataDir: string, l: { holder: number | null; what: string | null }): CliError {
  const serving = l.what === 'serve';
  return codedCliError(
    'RLY_CLI_ERR_DATA_DIR_BUSY',
    `${holderOf(l)} holds the data directory ${dataDir}${serving ? ': a relay is already running (or starting or stopping) with it' : ''}`,
    serving
      ? `Stop it first${l.holder ? ` (kill ${l.holder})` : ''}, or use another --data-dir.`
      : 'An admin command is working on the database: start the relay again when it is done.',
  );
}

/** An admin command found the data directory held and no admin socket answering within the wait. */
export function adminBusy(
  dataDir: string,
  l: { holder: number | null; what: string | null },
  waitedMs: number | null,
): CliError {
  const stop = l.holder ? ` (kill ${l.holder})` : '';
  return codedCliError(
    'RLY_CLI_ERR_DATA_DIR_BUSY',
    `${holderOf(l)} holds the database of ${dataDir}${waitedMs === null ? '' : `, and no relay admin socket answered there within ${Math.round(waitedMs / 1000)} s`}: ` +
      (l.what === 'serve'
        ? `the relay is ${waitedMs === null ? 'running, starting' : 'starting'} or stopping`
        : 'another command is working on it'),
    `Try again in a moment (a started relay answers on its admin socket), or stop that process${stop}. The embedded database allows one process only, so this command did not open it.`,
  );
}
