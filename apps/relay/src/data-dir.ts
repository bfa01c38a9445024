import { chmodSync, mkdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { randomUUID } from 'node:crypto';
import { join } from 'node:path';
import { type CliError, cliFailure, codedCliError } from './errors.js';

/** Create the data directory (0700) or tighten it to 0700: it holds keys, the database and the admin socket. */
export function prepareDataDir(dir: string): void {
  try {
    mkdirSync(dir, { recursive: true, mode: 0o700 });
    if ((statSync(dir).mode & 0o077) !== 0) chmodSync(dir, 0o700);
  } catch (e) {
    throw cliFailure(
      `cannot create the data directory ${dir}: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`,
      'Choose a writable place with --data-dir (or MSSH_DATA_DIR).',
      e,
    );
  }
}

export function relayIdPath(dir: string): string {
  return join(dir, 'relay-id');
}

const RELAY_ID_RE = /^[0-9a-f-]{36}$/;

function damagedRelayId(path: string, why: string, cause?: unknown): CliError {
  return codedCliError(
    'RLY_CLI_ERR_RELAY_ID',
    `cannot read this relay's id from ${path}: ${why}`,
    `The audit trail and the crash recovery of open sessions use it: restore the file (one line, the UUID from a backup or from the relay_id column of the sessions table), or, to start as a new relay on purpose, move it away.`,
    cause,
  );
}

/**
 * This relay's id as recorded in `<data-dir>/relay-id`, or null when the file does not exist. Any other
 * failure (unreadable, a directory, not a UUID) is an error: starting with a new id would leave the
 * sessions a previous run left open for ever open, since crash recovery looks for this relay's own.
 */
export function readRelayId(dir: string): string | null {
  const path = relayIdPath(dir);
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    if (code === 'ENOENT') return null;
    throw damagedRelayId(path, code ?? (e as Error).message, e);
  }
  const id = text.trim();
  if (!RELAY_ID_RE.test(id)) throw damagedRelayId(path, 'the file does not hold a relay id (a UUID)');
  return id;
}

/**
 * This relay's id in the audit trail: read from the data dir, or created there (0600) when the data dir
 * has none yet. Called once at start (serve, and the admin commands acting on the database directly).
 */
export function loadOrCreateRelayId(dir: string): string {
  const existing = readRelayId(dir);
  if (existing !== null) return existing;
  const id = randomUUID();
  try {
    // 'wx': never replace a file that appeared in the meantime.
    writeFileSync(relayIdPath(dir), `${id}\n`, { mode: 0o600, flag: 'wx' });
  } catch (e) {
    const raced = (e as NodeJS.ErrnoException).code === 'EEXIST' ? readRelayId(dir) : null;
    if (raced !== null) return raced;
    throw cliFailure(
      `cannot create ${relayIdPath(dir)}: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`,
      'Check that the data directory is writable (--data-dir or MSSH_DATA_DIR).',
      e,
    );
  }
  return id;
}

export function pgliteDir(dataDir: string): string {
  return join(dataDir, 'db');
}
