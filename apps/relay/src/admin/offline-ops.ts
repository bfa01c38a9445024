/**
 * The admin commands' way in: through the running relay's admin socket, or (relay stopped) straight on
 * the database the data dir's relay uses (admin-target.ts refuses anything else). Says which on stderr.
 *
 *   mssh-relay user add ... --> admin socket --> running relay      (relay up)
 *                           \-> AdminService on the database       (relay down: no live sessions to end)
 *
 * On PGlite the command holds the data directory's lock while on the database (data-dir-lock.ts): a relay
 * that holds it is starting (or stopping), so the command waits up to BUSY_WAIT_MS for its admin socket.
 */
import { sanitizeForTerminal } from '@mssh/protocol';
import type { StoreConfig } from '../config.js';
import { AdminSocketClient, type AdminOps } from './admin-client.js';
import { resolveAdminTarget, runningRelay, targetLine, type AdminTarget } from './admin-target.js';
import { adminBusy, tryLockDataDir } from '../data-dir-lock.js';

export type RelayInfo = { url: string; fingerprint: string; publicKeyPin?: string };

/** The URL and fingerprint an enrolment token names, read when the relay is not running. */
export const NO_RELAY_INFO = async (): Promise<RelayInfo> => ({ url: '', fingerprint: '' });

/** How long an admin command waits for a relay that holds the data directory to answer on its socket. */
export const BUSY_WAIT_MS = 10_000;
const BUSY_POLL_MS = 200;

export async function adminOps(
  cfg: StoreConfig,
  relayInfo: () => Promise<RelayInfo> = NO_RELAY_INFO,
  stderr: { write(s: string): unknown } = process.stderr,
  opts: { busyWaitMs?: number } = {},
): Promise<AdminOps> {
  let target = await resolveAdminTarget(cfg);
  let release = () => {};
  // PGlite allows one process only: hold the data directory's lock while on it (data-dir-lock.ts).
  if (target.via === 'database' && target.database.kind === 'pglite') {
    const got = await lockOrRelay(cfg, opts.busyWaitMs ?? BUSY_WAIT_MS);
    if ('target' in got) target = got.target;
    else release = got.release;
  }
  stderr.write(`${sanitizeForTerminal(targetLine(target))}\n`);
  if (target.via === 'admin-socket') return new AdminSocketClient(target.socket);
  let ops: AdminOps;
  try {
    // The database code (drizzle, pg or PGlite) loads only here: through the socket it is not needed.
    const { openOfflineOps } = await import('./offline-db-ops.js');
    ops = await openOfflineOps(cfg, relayInfo);
  } catch (e) {
    release();
    throw e;
  }
  return {
    ...ops,
    async close() {
      try {
        await ops.close();
      } finally {
        release();
      }
    },
  };
}

/**
 * The data directory's lock, or (a relay holds it and its admin socket answers within `waitMs`: it was
 * starting) the way through that relay; else RLY_CLI_ERR_DATA_DIR_BUSY, without opening the database.
 */
async function lockOrRelay(
  cfg: StoreConfig,
  waitMs: number,
): Promise<{ release: () => void } | { target: AdminTarget }> {
  const t0 = Date.now();
  for (let i = 0; i < 100_000; i++) {
    const lock = tryLockDataDir(cfg.dataDir, 'admin command');
    if (!lock.held) return { release: lock.release };
    if (await runningRelay(cfg.dataDir)) {
      const target = await resolveAdminTarget(cfg);
      if (target.via === 'admin-socket') return { target };
    }
    if (Date.now() - t0 >= waitMs) throw adminBusy(cfg.dataDir, lock, Date.now() - t0);
    await new Promise((r) => setTimeout(r, Math.min(BUSY_POLL_MS, Math.max(1, t0 + waitMs - Date.now()))));
  }
  throw new Error('unreachable: the wait is bounded by time');
}

/** Run `fn` on the ops and close them whatever happens. */
export async function withOps<T>(ops: AdminOps, fn: (ops: AdminOps) => Promise<T>): Promise<T> {
  try {
    return await fn(ops);
  } finally {
    await ops.close();
  }
}
