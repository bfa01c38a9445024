/**
 * The admin commands' way in: through the running relay's admin socket, or (relay stopped) straight on
 * the database the data dir's relay uses (admin-target.ts refuses anything else). Says which on stderr.
 *
 *   mssh-relay user add ... --> admin socket --> running relay      (relay up)
 *                           \-> AdminService on the database       (relay down: no live sessions to end)
 */
import { sanitizeForTerminal } from '@mssh/protocol';
import type { StoreConfig } from '../config.js';
import { AdminSocketClient, type AdminOps } from './admin-client.js';
import { resolveAdminTarget, targetLine } from './admin-target.js';

export type RelayInfo = { url: string; fingerprint: string; publicKeyPin?: string };

/** The URL and fingerprint an enrolment token names, read when the relay is not running. */
export const NO_RELAY_INFO = async (): Promise<RelayInfo> => ({ url: '', fingerprint: '' });

export async function adminOps(
  cfg: StoreConfig,
  relayInfo: () => Promise<RelayInfo> = NO_RELAY_INFO,
  stderr: { write(s: string): unknown } = process.stderr,
): Promise<AdminOps> {
  const target = await resolveAdminTarget(cfg);
  stderr.write(`${sanitizeForTerminal(targetLine(target))}\n`);
  if (target.via === 'admin-socket') return new AdminSocketClient(target.socket);
  // The database code (drizzle, pg or PGlite) loads only here: through the socket it is not needed.
  const { openOfflineOps } = await import('./offline-db-ops.js');
  return openOfflineOps(cfg, relayInfo);
}

/** Run `fn` on the ops and close them whatever happens. */
export async function withOps<T>(ops: AdminOps, fn: (ops: AdminOps) => Promise<T>): Promise<T> {
  try {
    return await fn(ops);
  } finally {
    await ops.close();
  }
}
