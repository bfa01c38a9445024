/**
 * Which relay and database an admin command (`user`, `grant`, `agent`, `keys`, `audit prune`) acts on:
 *
 *   relay running on the data dir (its admin.sock answers)  -> through the socket, on the relay's database;
 *                                                             a --database-url naming another one is refused
 *   relay stopped, data dir made by `mssh-relay serve`      -> on the database directly, if it is the one
 *                                                             recorded in <data-dir>/database.json
 *   no relay and no such data dir                           -> refused (nothing is created)
 *
 * and the one line that tells the operator which it was.
 */
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { userInfo } from 'node:os';
import { codedCliError } from '../errors.js';
import { DEFAULT_DATA_DIR, defaultDataDir } from '../config.js';
import { pgliteDir } from '../data-dir.js';
import { adminSocketPath, socketAnswers, type AdminSocketInfo } from './admin-socket-paths.js';
import { AdminSocketClient } from './admin-client.js';
import {
  databaseRecordPath,
  readDatabaseRecord,
  requestedDatabase,
  sameDatabase,
  withPasswordPlaceholder,
  type DatabaseTarget,
} from './database-record.js';

export type AdminTarget =
  | { via: 'admin-socket'; dataDir: string; socket: string; info: AdminSocketInfo }
  | { via: 'database'; dataDir: string; database: DatabaseTarget };

/** "postgres://user@host:5432/db" or "PGlite <data-dir>/db". */
export function databaseName(t: DatabaseTarget, dataDir: string): string {
  return t.kind === 'postgres' ? t.url : `PGlite ${pgliteDir(dataDir)}`;
}

/** The running relay's answer on its admin socket, or null when none answers. */
export async function runningRelay(dataDir: string): Promise<{ socket: string; info: AdminSocketInfo } | null> {
  const socket = adminSocketPath(dataDir);
  if (!existsSync(socket) || !(await socketAnswers(socket))) return null;
  return { socket, info: await new AdminSocketClient(socket).info() };
}

/** "/root/.local/share/mssh-relay (the default for user root: ~/.local/share/mssh-relay)" or the dir alone. */
export function describeDataDir(dataDir: string): string {
  if (dataDir !== defaultDataDir()) return dataDir;
  let user = '';
  try {
    user = ` for user ${userInfo().username}`;
  } catch {
    // no passwd entry: say less
  }
  return `${dataDir} (the default${user}: ${DEFAULT_DATA_DIR}; --data-dir or MSSH_DATA_DIR to choose)`;
}

/** Made by `mssh-relay serve`: it records the database there (older versions left only relay-id). */
export function isRelayDataDir(dataDir: string): boolean {
  return existsSync(databaseRecordPath(dataDir)) || existsSync(join(dataDir, 'relay-id'));
}

/** What was asked for, as said in messages. */
function asked(requested: DatabaseTarget, dataDir: string): string {
  return requested.kind === 'postgres'
    ? `${requested.url} (--database-url or DATABASE_URL)`
    : `${databaseName(requested, dataDir)} (no --database-url or DATABASE_URL given)`;
}

/** The fix for a refused database: give the relay's own, or pick the data dir that goes with the other. */
function useTheRelaysDatabase(relays: DatabaseTarget, requested: DatabaseTarget): string {
  const other = requested.kind === 'postgres' ? `, or pass the --data-dir of the relay that uses ${requested.url}` : '';
  return relays.kind === 'postgres'
    ? `Pass the relay's database with its password: --database-url '${withPasswordPlaceholder(relays.url)}' (or DATABASE_URL)${other}.`
    : `Leave out --database-url and unset DATABASE_URL to use the relay's PGlite${other}.`;
}

/**
 * Decide where an admin command acts; throws RLY_CLI_ERR_NO_DATA_DIR or RLY_CLI_ERR_DATABASE_MISMATCH
 * instead of opening (or creating) a database the relay does not use.
 */
export async function resolveAdminTarget(cfg: { dataDir: string; databaseUrl?: string }): Promise<AdminTarget> {
  const requested = requestedDatabase(cfg.databaseUrl);
  const running = await runningRelay(cfg.dataDir);
  if (running) {
    const theirs = running.info.database;
    // Through the socket the command acts on the relay's database; asking for another one is a mistake.
    if (cfg.databaseUrl && theirs && !sameDatabase(theirs, requested)) {
      throw codedCliError(
        'RLY_CLI_ERR_DATABASE_MISMATCH',
        `the relay running on ${cfg.dataDir} (pid ${running.info.pid}) uses ${databaseName(theirs, cfg.dataDir)}, not ${asked(requested, cfg.dataDir)}`,
        `Leave out --database-url (and DATABASE_URL) to act through the running relay on its database, or pass the --data-dir of the relay that uses ${databaseName(requested, cfg.dataDir)}.`,
      );
    }
    return { via: 'admin-socket', dataDir: cfg.dataDir, ...running };
  }
  if (!isRelayDataDir(cfg.dataDir)) {
    const what = existsSync(cfg.dataDir)
      ? 'no relay has been started with the data directory'
      : 'no relay data directory at';
    throw codedCliError(
      'RLY_CLI_ERR_NO_DATA_DIR',
      `${what} ${describeDataDir(cfg.dataDir)}, and no relay runs there`,
      'Run `mssh-relay serve` first (it creates the data directory), or pass the data directory your relay runs with: --data-dir DIR (or MSSH_DATA_DIR).',
    );
  }
  const recorded = readDatabaseRecord(cfg.dataDir);
  if (recorded && !sameDatabase(recorded, requested)) {
    throw codedCliError(
      'RLY_CLI_ERR_DATABASE_MISMATCH',
      `the relay of ${cfg.dataDir} (not running) uses ${databaseName(recorded, cfg.dataDir)}, not ${asked(requested, cfg.dataDir)}`,
      useTheRelaysDatabase(recorded, requested),
    );
  }
  // Opening PGlite where there is none would create an empty database: never what an admin command means.
  // Without a record (a data dir of an older version) a missing db/ also says the relay runs on Postgres.
  if (requested.kind === 'pglite' && !existsSync(pgliteDir(cfg.dataDir))) {
    throw codedCliError(
      'RLY_CLI_ERR_DATABASE_MISMATCH',
      recorded
        ? `the relay of ${cfg.dataDir} (not running) uses PGlite, but ${pgliteDir(cfg.dataDir)} is missing`
        : `the relay of ${cfg.dataDir} (not running) does not use PGlite (there is no ${pgliteDir(cfg.dataDir)}), so it runs on Postgres`,
      recorded
        ? 'Restore that directory from a backup; `mssh-relay serve` would start on an empty database.'
        : "Pass its database with the password: --database-url 'postgres://USER:PASSWORD@HOST:5432/DB' (or DATABASE_URL), as given to `mssh-relay serve`.",
    );
  }
  return { via: 'database', dataDir: cfg.dataDir, database: requested };
}

/**
 * `serve`: refuse to start a data directory on another database than the one it was started with (its
 * users, machines and keys are there; a forgotten DATABASE_URL would otherwise bring up an empty PGlite).
 */
export function checkServeDatabase(cfg: { dataDir: string; databaseUrl?: string }): void {
  const recorded = readDatabaseRecord(cfg.dataDir);
  const requested = requestedDatabase(cfg.databaseUrl);
  if (!recorded || sameDatabase(recorded, requested)) return;
  throw codedCliError(
    'RLY_CLI_ERR_DATABASE_MISMATCH',
    `the data directory ${cfg.dataDir} was started with ${databaseName(recorded, cfg.dataDir)}, not ${asked(requested, cfg.dataDir)}`,
    `${recorded.kind === 'postgres' ? `Start it with --database-url '${withPasswordPlaceholder(recorded.url)}' (or DATABASE_URL)` : 'Start it without --database-url and DATABASE_URL'}, ` +
      `or use another --data-dir for a relay on ${requested.kind === 'postgres' ? requested.url : 'PGlite'}; to switch this one over on purpose, remove ${databaseRecordPath(cfg.dataDir)} first.`,
  );
}

/** The line every admin command prints on stderr: which relay and database it acted on. */
export function targetLine(t: AdminTarget): string {
  if (t.via === 'admin-socket') {
    const db = t.info.database ? databaseName(t.info.database, t.dataDir) : 'not reported by this relay';
    return `(relay pid ${t.info.pid} via admin socket ${t.socket}, database ${db})`;
  }
  return `(relay not running: on the database directly, ${databaseName(t.database, t.dataDir)}; data dir ${t.dataDir})`;
}

/** Where `info` learnt the database from, and what it is (no password). */
export interface InfoDatabase {
  kind: 'postgres' | 'pglite' | 'unknown';
  /** The Postgres URL without its password, or the PGlite directory; null when unknown. */
  where: string | null;
  source: 'running-relay' | 'recorded' | 'flags';
  /** Set when a --database-url was given that differs (admin commands refuse it). */
  differsFromFlags: string | null;
  /** Why it is unknown (an unreadable record). */
  problem?: string;
}

/**
 * `info`'s database: the running relay's (it says which), else the one recorded by the last `serve`,
 * else what the flags ask for; a --database-url that differs is pointed out.
 */
export function infoDatabaseOf(
  cfg: { dataDir: string; databaseUrl?: string },
  running: { info: AdminSocketInfo } | null,
): InfoDatabase {
  const requested = requestedDatabase(cfg.databaseUrl);
  const of = (t: DatabaseTarget, source: InfoDatabase['source']): InfoDatabase => ({
    kind: t.kind,
    where: t.kind === 'postgres' ? t.url : pgliteDir(cfg.dataDir),
    source,
    differsFromFlags:
      cfg.databaseUrl && !sameDatabase(t, requested)
        ? requested.kind === 'postgres'
          ? requested.url
          : 'PGlite'
        : null,
  });
  if (running?.info.database) return of(running.info.database, 'running-relay');
  let recorded: DatabaseTarget | null;
  try {
    recorded = readDatabaseRecord(cfg.dataDir);
  } catch (e) {
    return { kind: 'unknown', where: null, source: 'recorded', differsFromFlags: null, problem: (e as Error).message };
  }
  if (recorded) return of(recorded, 'recorded');
  return { ...of(requested, 'flags'), differsFromFlags: null };
}

/** `info`'s "Database:" line for `infoDatabaseOf`. */
export function infoDatabase(
  cfg: { dataDir: string; databaseUrl?: string },
  running: { info: AdminSocketInfo } | null,
): string {
  const d = infoDatabaseOf(cfg, running);
  if (d.kind === 'unknown') return `unknown (${d.problem})`;
  const differs = d.differsFromFlags ? `; not ${d.differsFromFlags} as given, which admin commands refuse` : '';
  const show = `${d.kind} ${d.where}`;
  if (d.source === 'running-relay') return `${show} (used by the running relay${differs})`;
  if (d.source === 'recorded')
    return `${show} (${running ? 'the running relay does not say; ' : ''}recorded by the last \`mssh-relay serve\`${differs})`;
  return `${show} (from the flags: no \`mssh-relay serve\` has recorded one for this data directory yet)`;
}
