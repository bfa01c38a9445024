/**
 * The relay's database: Postgres through node-postgres (DATABASE_URL) or embedded PGlite in the data dir.
 * One drizzle schema and one set of SQL migrations for both; migrations are applied on open.
 */
import { mkdirSync } from 'node:fs';
import type pg from 'pg';
import type { PGlite } from '@electric-sql/pglite';
import { readMigrationFiles } from 'drizzle-orm/migrator';
import type { PgDatabase } from 'drizzle-orm/pg-core';
import { migrationsFolder, schema } from '@mssh/migrations';
import { cliFailure, rootMessage } from '../errors.js';

/** The drizzle database, whichever driver is underneath. */
// eslint-disable-next-line @typescript-eslint/no-explicit-any
export type Db = PgDatabase<any, typeof schema>;

export interface OpenDatabaseOptions {
  /** postgres:// URL; when set, PGlite is not used. */
  databaseUrl?: string;
  /** PGlite data directory (used when databaseUrl is not set). */
  pgliteDir?: string;
  /** Called with errors of idle pooled connections (Postgres restarts); they must not crash the process. */
  onPoolError?: (err: Error) => void;
}

export interface Database {
  db: Db;
  kind: 'pg' | 'pglite';
  close(): Promise<void>;
  /**
   * The Postgres connection pool right now (the metrics endpoint): connections open, idle, and queries
   * waiting for one. Absent for PGlite, which has no pool.
   */
  poolStats?(): { total: number; idle: number; waiting: number };
}

/** Key of the session advisory lock that serialises migrations of relays sharing one Postgres. */
const MIGRATION_LOCK = 0x6d737368; // "mssh"

/** Hide the password of a database URL before printing it. */
export function redactDatabaseUrl(url: string): string {
  try {
    const u = new URL(url);
    if (u.password) u.password = '***';
    return u.toString();
  } catch {
    return '(unparsable database URL)';
  }
}

export async function openDatabase(opts: OpenDatabaseOptions): Promise<Database> {
  if (opts.databaseUrl) return openPostgres(opts.databaseUrl, opts.onPoolError);
  if (!opts.pgliteDir) throw new Error('openDatabase: neither databaseUrl nor pgliteDir given');
  return openPglite(opts.pgliteDir);
}

// Each driver (and its drizzle adapter) is loaded when it is opened: a relay uses one of them, and the
// admin commands that go through the running relay's socket none.
async function openPostgres(url: string, onPoolError?: (err: Error) => void): Promise<Database> {
  const [{ default: pgDriver }, { drizzle: drizzlePg }, { migrate: migratePg }] = await Promise.all([
    import('pg'),
    import('drizzle-orm/node-postgres'),
    import('drizzle-orm/node-postgres/migrator'),
  ]);
  const pool = new pgDriver.Pool({
    connectionString: url,
    max: 10,
    connectionTimeoutMillis: 10_000,
    idleTimeoutMillis: 30_000,
  });
  pool.on('error', (err) => onPoolError?.(err));
  let client: pg.PoolClient;
  try {
    client = await pool.connect();
  } catch (e) {
    await pool.end().catch(() => {});
    throw cliFailure(
      `cannot connect to the database at ${redactDatabaseUrl(url)}: ${(e as Error).message}`,
      'Check --database-url / DATABASE_URL and that Postgres is running and reachable.',
      e,
    );
  }
  try {
    // A relay running as a restricted role (docs/audit.md, "Database roles") cannot create anything: when
    // the owner has already applied every migration (`mssh-relay migrate`), there is nothing to do.
    if ((await pendingMigrations(client)) !== 0) {
      await client.query('SELECT pg_advisory_lock($1)', [MIGRATION_LOCK]);
      try {
        await migratePg(drizzlePg(client), { migrationsFolder: migrationsFolder() });
      } finally {
        await client.query('SELECT pg_advisory_unlock($1)', [MIGRATION_LOCK]);
      }
    }
  } catch (e) {
    client.release();
    await pool.end().catch(() => {});
    const denied = /permission denied|must be owner/i.test(rootMessage(e));
    throw cliFailure(
      `cannot apply the database migrations at ${redactDatabaseUrl(url)}: ${rootMessage(e)}`,
      denied
        ? 'This database role may not change the schema: run `mssh-relay migrate --database-url URL` with the owner role\'s URL first (docs/audit.md, "Database roles").'
        : 'Check that the database user may create tables, and that the database belongs to mssh.',
      e,
    );
  }
  client.release();
  const db = drizzlePg({ client: pool, schema });
  return {
    db,
    kind: 'pg',
    close: () => pool.end(),
    poolStats: () => ({ total: pool.totalCount, idle: pool.idleCount, waiting: pool.waitingCount }),
  };
}

/**
 * How many of this build's migrations the database lacks (the same rule as drizzle's migrator: those newer
 * than the last applied one), or -1 when that cannot be read (no migrations table yet, or no right to read it).
 */
export async function pendingMigrations(client: pg.ClientBase): Promise<number> {
  const files = readMigrationFiles({ migrationsFolder: migrationsFolder() });
  let last: number | null = null;
  try {
    const r = await client.query<{ created_at: string | null }>(
      'SELECT created_at FROM drizzle.__drizzle_migrations ORDER BY created_at DESC LIMIT 1',
    );
    last = r.rows[0]?.created_at == null ? null : Number(r.rows[0].created_at);
  } catch {
    return -1;
  }
  return files.filter((m) => last === null || last < m.folderMillis).length;
}

async function openPglite(dir: string): Promise<Database> {
  const [{ PGlite }, { drizzle: drizzlePglite }, { migrate: migratePglite }] = await Promise.all([
    import('@electric-sql/pglite'),
    import('drizzle-orm/pglite'),
    import('drizzle-orm/pglite/migrator'),
  ]);
  let client: PGlite;
  try {
    mkdirSync(dir, { recursive: true, mode: 0o700 });
    client = await PGlite.create(dir);
  } catch (e) {
    throw cliFailure(
      `cannot open the embedded database in ${dir}: ${rootMessage(e)}`,
      'Check the data directory permissions and free disk space, or use Postgres with --database-url.',
      e,
    );
  }
  const db = drizzlePglite({ client, schema });
  try {
    await migratePglite(db, { migrationsFolder: migrationsFolder() });
  } catch (e) {
    await client.close().catch(() => {});
    throw cliFailure(
      `cannot apply the database migrations in ${dir}: ${rootMessage(e)}`,
      'The embedded database may be damaged or from a newer mssh-relay; restore it or start with an empty data dir.',
      e,
    );
  }
  return { db, kind: 'pglite', close: () => client.close() };
}

export { rootMessage } from '../errors.js';

const DB_DOWN_CODES = new Set([
  'ECONNREFUSED',
  'ECONNRESET',
  'ETIMEDOUT',
  'EPIPE',
  'ENOTFOUND',
  'EHOSTUNREACH',
  '57P01',
  '57P02',
  '57P03',
  '08000',
  '08001',
  '08003',
  '08004',
  '08006',
]);
const DB_DOWN_MESSAGE =
  /Connection terminated|timeout exceeded when trying to connect|Client has encountered a connection error|not queryable|the database system is (shutting down|starting up)|terminating connection/i;

/** Is this (or its cause chain) a failure to reach the database, rather than a bug? */
export function isDatabaseUnavailable(err: unknown): boolean {
  let cur = err;
  for (let i = 0; i < 8 && cur; i++) {
    const e = cur as { code?: unknown; message?: unknown; cause?: unknown; errors?: unknown };
    if (typeof e.code === 'string' && DB_DOWN_CODES.has(e.code)) return true;
    if (typeof e.message === 'string' && DB_DOWN_MESSAGE.test(e.message)) return true;
    if (Array.isArray(e.errors) && e.errors.some((x) => isDatabaseUnavailable(x))) return true;
    cur = e.cause;
  }
  return false;
}
