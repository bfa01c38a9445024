/**
 * Which database a data directory's relay uses. `mssh-relay serve` records it in
 * `<data-dir>/database.json` (0600) once the database is open; admin commands compare what they were
 * asked to open with it, so that none of them quietly acts on another database than the relay's.
 *
 * The record holds the Postgres URL without its password (and without password-like query parameters):
 * enough to name the database in messages and to compare, nothing to log in with.
 */
import { existsSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { z } from 'zod';
import { codedCliError } from '../errors.js';
import { pgliteDir } from '../data-dir.js';

export const DATABASE_RECORD_NAME = 'database.json';

/** Where a relay's data lives: Postgres (URL without secrets) or the embedded PGlite in `<data-dir>/db`. */
export type DatabaseTarget = { kind: 'postgres'; url: string } | { kind: 'pglite' };

const SECRET_PARAMS = ['password', 'sslpassword'];

/** The URL with the password (and password-like query parameters) removed; unparsable stays unparsable. */
export function withoutSecrets(url: string): string {
  try {
    const u = new URL(url);
    u.password = '';
    for (const p of SECRET_PARAMS) u.searchParams.delete(p);
    return u.toString();
  } catch {
    return '(unparsable database URL)';
  }
}

/** The database asked for: --database-url / DATABASE_URL, else the embedded PGlite. */
export function requestedDatabase(databaseUrl: string | undefined): DatabaseTarget {
  return databaseUrl ? { kind: 'postgres', url: withoutSecrets(databaseUrl) } : { kind: 'pglite' };
}

/**
 * What makes two Postgres URLs the same database: user, host, port and database name (host from the
 * `host` parameter for a unix socket, port 5432 by default). TLS settings, the password and other
 * parameters do not matter.
 */
function postgresIdentity(url: string): string {
  try {
    const u = new URL(url);
    const host = (u.hostname || u.searchParams.get('host') || '').toLowerCase();
    const port = u.port || u.searchParams.get('port') || '5432';
    return `${decodeURIComponent(u.username)}@${host}:${port}/${decodeURIComponent(u.pathname.replace(/^\//, ''))}`;
  } catch {
    return url;
  }
}

export function sameDatabase(a: DatabaseTarget, b: DatabaseTarget): boolean {
  if (a.kind === 'pglite' || b.kind === 'pglite') return a.kind === b.kind;
  return postgresIdentity(a.url) === postgresIdentity(b.url);
}

/** "postgres postgres://u@h:5432/db" or "pglite /data/db", for messages. */
export function describeDatabase(t: DatabaseTarget, dataDir: string): string {
  return t.kind === 'postgres' ? `postgres ${t.url}` : `pglite ${pgliteDir(dataDir)}`;
}

const RecordSchema = z.union([
  z.object({ kind: z.literal('postgres'), url: z.string().min(1) }),
  z.object({ kind: z.literal('pglite') }),
]);

export function databaseRecordPath(dataDir: string): string {
  return join(dataDir, DATABASE_RECORD_NAME);
}

/** The database the data directory's relay was last started with, or null when none is recorded. */
export function readDatabaseRecord(dataDir: string): DatabaseTarget | null {
  const path = databaseRecordPath(dataDir);
  if (!existsSync(path)) return null;
  let parsed: z.infer<typeof RecordSchema>;
  try {
    parsed = RecordSchema.parse(JSON.parse(readFileSync(path, 'utf8')));
  } catch (e) {
    throw codedCliError('RLY_CLI_ERR_DATABASE_RECORD',
      `cannot read ${path}, where mssh-relay serve records the database of this data directory: ${e instanceof SyntaxError ? 'not JSON' : (e as NodeJS.ErrnoException).code ?? 'not a database record'}`,
      `Remove it; the next \`mssh-relay serve\` with the right --database-url writes it again.`, e);
  }
  return parsed.kind === 'postgres' ? { kind: 'postgres', url: withoutSecrets(parsed.url) } : { kind: 'pglite' };
}

/** Record the database (0600, replaced atomically); called by serve once the database is open. */
export function writeDatabaseRecord(dataDir: string, t: DatabaseTarget): void {
  const path = databaseRecordPath(dataDir);
  const tmp = `${path}.${process.pid}.tmp`;
  const body = t.kind === 'postgres' ? { kind: t.kind, url: withoutSecrets(t.url) } : { kind: t.kind };
  writeFileSync(tmp, `${JSON.stringify({ ...body, note: 'written by mssh-relay serve; the password is not stored' }, null, 2)}\n`, { mode: 0o600 });
  renameSync(tmp, path);
}
