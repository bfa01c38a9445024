import { chmodSync, mkdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { randomUUID } from 'node:crypto';
import { join } from 'node:path';
import { cliFailure } from './errors.js';

/** Create the data directory (0700) or tighten it to 0700: it holds keys, the database and the admin socket. */
export function prepareDataDir(dir: string): void {
  try {
    mkdirSync(dir, { recursive: true, mode: 0o700 });
    if ((statSync(dir).mode & 0o077) !== 0) chmodSync(dir, 0o700);
  } catch (e) {
    throw cliFailure(`cannot create the data directory ${dir}: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`, 'Choose a writable place with --data-dir (or MSSH_DATA_DIR).', e);
  }
}

/** This relay's id in the audit trail: created once, kept in the data dir. */
export function relayId(dir: string): string {
  const path = join(dir, 'relay-id');
  try {
    const id = readFileSync(path, 'utf8').trim();
    if (/^[0-9a-f-]{36}$/.test(id)) return id;
  } catch {
    // first start
  }
  const id = randomUUID();
  writeFileSync(path, `${id}\n`, { mode: 0o600 });
  return id;
}

export function pgliteDir(dataDir: string): string {
  return join(dataDir, 'db');
}
