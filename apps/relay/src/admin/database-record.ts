/**
 * Which database a data directory's relay uses. `mssh-relay serve` records it in
 * `<data-dir>/database.json` (0600) once the database is open; admin commands compare what they were
 * asked to open with it, so that none of them quietly acts on another database than the relay's.
 *
 * The record holds the Postgres URL without its password (and without password-like query parameters):
 * enough to name the database in messages and to compare, nothing to log in with.
 */
import { existsSync, readFileSync } from 'node:fs';
import { writePrivateFile } from '@mssh/cli-kit';
import { join } from 'node:path';
import { z } from 'zod';
import { codedCliError } from '../errors.js';

export const DATABASE_RECORD_NAME = 'database.json';

/** Where a relay's data lives: Postgres (URL without secrets) or the embedded PGlite in `<data-dir>/db`. */
export type DatabaseTarget = { kind: 'postgres'; url: string } | { kind: 'pglite' };

/**
 * A Postgres URL in parts, parsed by hand: libpq URLs such as `postgres://u@/db?host=/run/postgresql` are
 * not WHATWG URLs. The user info ends at the last `@` of the authority (a password may contain `@`).
 */
function splitPostgresUrl(
  url: string,
): { scheme: string; user: string | undefined; hostport: string; path: string; params: string[] } | null {
  const m = /^(postgres(?:ql)?):\/\/([^/?#]*)([^?#]*)(?:\?([^#]*))?/i.exec(url.trim());
  if (!m) return null;
  const authority = m[2]!;
  const at = authority.lastIndexOf('@');
  return {
    scheme: m[1]!.toLowerCase(),
    user: at >= 0 ? authority.slice(0, at).split(':')[0] : undefined,
    hostport: at >= 0 ? authority.slice(at + 1) : authority,
    path: m[3] ?? '',
    params: m[4] ? m[4].split('&').filter(Boolean) : [],
  };
}

const isSecretParam = (kv: string) => /^(ssl)?password=/i.test(kv);

/** The URL with the password (and password-like query parameters) removed. */
export function withoutSecrets(url: string): string {
  const u = splitPostgresUrl(url);
  if (!u) return '(unparsable database URL)';
  const params = u.params.filter((kv) => !isSecretParam(kv));
  return `${u.scheme}://${u.user !== undefined ? `${u.user}@` : ''}${u.hostport}${u.path}${params.length ? `?${params.join('&')}` : ''}`;
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
  const u = splitPostgresUrl(url);
  if (!u) return url;
  const q = new URLSearchParams(u.params.filter((kv) => !isSecretParam(kv)).join('&'));
  const dec = (s: string) => {
    try {
      return decodeURIComponent(s);
    } catch {
      return s;
    }
  };
  let host = u.hostport.toLowerCase();
  let port = '';
  const m = /^(.*?):(\d+)$/.exec(host);
  if (m && !host.includes(',')) [host, port] = [m[1]!, m[2]!];
  host ||= q.get('host') ?? '';
  port ||= q.get('port') ?? '5432';
  return `${dec(u.user ?? '')}@${host}:${port}/${dec(u.path.replace(/^\//, ''))}`;
}

export function sameDatabase(a: DatabaseTarget, b: DatabaseTarget): boolean {
  if (a.kind === 'pglite' || b.kind === 'pglite') return a.kind === b.kind;
  return postgresIdentity(a.url) === postgresIdentity(b.url);
}

/** `postgres://user:PASSWORD@host/db`: the URL to show in a fix, with a placeholder for the password. */
export function withPasswordPlaceholder(url: string): string {
  const u = splitPostgresUrl(withoutSecrets(url));
  if (!u) return url;
  return `${u.scheme}://${u.user || 'USER'}:PASSWORD@${u.hostport}${u.path}${u.params.length ? `?${u.params.join('&')}` : ''}`;
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
    throw codedCliError(
      'RLY_CLI_ERR_DATABASE_RECORD',
      `cannot read ${path}, where mssh-relay serve records the database of this data directory: ${e instanceof SyntaxError ? 'not JSON' : ((e as NodeJS.ErrnoException).code ?? 'not a database record')}`,
      `Remove it; the next \`mssh-relay serve\` with the right --database-url writes it again.`,
      e,
    );
  }
  return parsed.kind === 'postgres' ? { kind: 'postgres', url: withoutSecrets(parsed.url) } : { kind: 'pglite' };
}

/** Record the database (0600, replaced atomically); called by serve once the database is open. */
export function writeDatabaseRecord(dataDir: string, t: DatabaseTarget): void {
  const path = databaseRecordPath(dataDir);
  const body = t.kind === 'postgres' ? { kind: t.kind, url: withoutSecrets(t.url) } : { kind: t.kind };
  writePrivateFile(
    path,
    `${JSON.stringify({ ...body, note: 'written by mssh-relay serve; the password is not stored' }, null, 2)}\n`,
  );
}
