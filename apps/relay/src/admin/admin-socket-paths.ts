/**
 * The admin socket as its clients see it: where it is, its paths, whether it answers. Kept apart from
 * admin-socket.ts (the server, with fastify) so that `mssh-relay user add` and the other admin commands
 * load only this while the relay runs (see scripts/build-app.mjs --split).
 */
import { connect } from 'node:net';
import { join } from 'node:path';
import type { DatabaseTarget } from './database-record.js';

export const ADMIN_SOCKET_NAME = 'admin.sock';
export const LOCAL_ADMIN_ACTOR = 'local-admin';
/** The routes of http/routes/admin-ops.ts under /admin, plus /admin/info, /admin/audit/prune, /admin/keys/rotate and /admin/drain. */
export const ADMIN_SOCKET_PATHS = {
  users: '/admin/users',
  user: (name: string) => `/admin/users/${encodeURIComponent(name)}`,
  grants: '/admin/grants',
  grantsRemove: '/admin/grants/remove',
  agents: '/admin/agents',
  relays: '/admin/relays',
  agent: (name: string) => `/admin/agents/${encodeURIComponent(name)}`,
  enroll: '/admin/agents/enroll',
  info: '/admin/info',
  auditPrune: '/admin/audit/prune',
  keysRotate: '/admin/keys/rotate',
  /** POST: begin the drain (`mssh-relay drain`), answers DrainReport; GET: its progress, DrainStatus. */
  drain: '/admin/drain',
} as const;

/** Unix socket paths are limited to 107 bytes on Linux. */
export const MAX_SOCKET_PATH = 107;

export function adminSocketPath(dataDir: string): string {
  return join(dataDir, ADMIN_SOCKET_NAME);
}

/** Does something accept connections on this unix socket? */
export function socketAnswers(path: string, timeoutMs = 2_000): Promise<boolean> {
  return new Promise((resolve) => {
    const s = connect(path);
    const t = setTimeout(() => {
      s.destroy();
      resolve(false);
    }, timeoutMs);
    s.once('connect', () => {
      clearTimeout(t);
      s.destroy();
      resolve(true);
    });
    s.once('error', () => {
      clearTimeout(t);
      resolve(false);
    });
  });
}

export interface AdminSocketInfo {
  relayUrl: string;
  relayFingerprint: string;
  pid: number;
  /** The database this relay uses (Postgres URL without the password), so admin commands can say so. */
  database?: DatabaseTarget;
  dataDir?: string;
}
