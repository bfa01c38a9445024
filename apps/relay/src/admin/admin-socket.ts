/**
 * The local admin socket, `<data-dir>/admin.sock`: plain HTTP/1.1 on a unix socket, guarded by file
 * permissions (0600 in a 0700 directory). `mssh-relay user ...`, `agent ...` and `grant ...` use it while the relay
 * runs, so that nothing else opens the database (PGlite allows one process only).
 */
import { chmodSync, lstatSync, unlinkSync } from 'node:fs';
import fastify, { type FastifyInstance } from 'fastify';
import type { Logger } from 'pino';
import { cliFailure, relayError } from '../errors.js';
import type { RotatedKey } from '../auth/token-keys.js';
import { installErrorHandling, parseOr400 } from '../http/errors-edge.js';
import { adminOpsRoutes } from '../http/routes/admin-ops.js';
import type { AdminService } from './admin-service.js';
import type { AuditLog } from '../audit/audit-log.js';
import type { DatabaseTarget } from './database-record.js';
import {
  ADMIN_SOCKET_PATHS,
  LOCAL_ADMIN_ACTOR,
  MAX_SOCKET_PATH,
  socketAnswers,
  type AdminSocketInfo,
} from './admin-socket-paths.js';
import type { DrainReport, DrainStatus } from '../drain-state.js';
import { z } from 'zod';

export {
  ADMIN_SOCKET_NAME,
  ADMIN_SOCKET_PATHS,
  LOCAL_ADMIN_ACTOR,
  adminSocketPath,
  socketAnswers,
  type AdminSocketInfo,
} from './admin-socket-paths.js';

/**
 * Before serving: refuse when another relay answers on this data dir's socket; remove a stale socket
 * left by a relay that crashed.
 */
export async function claimAdminSocketPath(path: string): Promise<void> {
  if (Buffer.byteLength(path) > MAX_SOCKET_PATH) {
    throw cliFailure(`the admin socket path ${path} is too long for a unix socket`, 'Use a shorter --data-dir.');
  }
  let st;
  try {
    st = lstatSync(path);
  } catch {
    return;
  }
  if (!st.isSocket())
    throw cliFailure(`${path} exists and is not a socket`, 'Move it out of the data directory, then start again.');
  if (await socketAnswers(path)) {
    throw cliFailure(
      `another mssh-relay is already running with this data directory (${path} answers)`,
      'Stop it first, or use another --data-dir.',
    );
  }
  unlinkSync(path);
}

/** Signing key rotation on the running relay (auth/token-keys.ts rotateSigningKey). */
export interface KeyRotator {
  rotate(by: { actor: string; source: string }): Promise<RotatedKey>;
}

/** The running relay's drain (relay.ts): `mssh-relay drain` begins it and follows it here. */
export interface DrainControl {
  /** Begin the drain, as SIGTERM does (nothing again when it has begun); answers once it has begun. */
  begin(by: { actor: string; source: string }): DrainReport;
  status(): DrainStatus;
}

export interface AdminSocketDeps {
  admin: AdminService;
  logger: Logger;
  keys?: KeyRotator;
  drain?: DrainControl;
  auditLog?: AuditLog;
  /** Reported by GET /admin/info. */
  database?: DatabaseTarget;
  dataDir?: string;
}

export function buildAdminSocketServer(deps: AdminSocketDeps): FastifyInstance {
  const app = fastify({
    loggerInstance: deps.logger.child({ component: 'relay.admin-socket' }),
    bodyLimit: 64 * 1024,
    requestIdHeader: false,
  }) as unknown as FastifyInstance;
  installErrorHandling(app);
  const by = { actor: LOCAL_ADMIN_ACTOR, source: 'admin.sock' };
  app.register(adminOpsRoutes, { prefix: '/admin', admin: deps.admin, actor: () => by });
  app.post(ADMIN_SOCKET_PATHS.auditPrune, async (request) => {
    const { olderThanMs } = parseOr400(z.object({ olderThanMs: z.number().int().min(86_400_000) }), request.body);
    if (!deps.auditLog) throw relayError('RLY_ERR_NOT_FOUND', 'this relay does not serve audit pruning');
    return deps.auditLog.prune(new Date(Date.now() - olderThanMs), by);
  });
  app.post(ADMIN_SOCKET_PATHS.keysRotate, async (_request, reply) => {
    if (!deps.keys)
      return reply
        .code(404)
        .send(relayError('RLY_ERR_NOT_FOUND', 'key rotation is not available on this socket').toBody());
    return reply.code(201).send(await deps.keys.rotate(by));
  });
  app.post(ADMIN_SOCKET_PATHS.drain, async (_request, reply) => {
    if (!deps.drain) throw relayError('RLY_ERR_NOT_FOUND', 'this relay cannot drain through its admin socket');
    const report = deps.drain.begin(by);
    return reply.code(report.alreadyDraining ? 200 : 202).send(report);
  });
  app.get(ADMIN_SOCKET_PATHS.drain, async (): Promise<DrainStatus> => {
    if (!deps.drain) throw relayError('RLY_ERR_NOT_FOUND', 'this relay cannot drain through its admin socket');
    return deps.drain.status();
  });
  app.get(ADMIN_SOCKET_PATHS.info, async (): Promise<AdminSocketInfo> => ({
    relayUrl: deps.admin.relayInfo.url,
    relayFingerprint: deps.admin.relayInfo.fingerprint,
    pid: process.pid,
    ...(deps.database ? { database: deps.database } : {}),
    ...(deps.dataDir ? { dataDir: deps.dataDir } : {}),
  }));
  return app;
}

/** Listen on the socket (call claimAdminSocketPath first) with owner-only permissions. */
export async function startAdminSocket(deps: AdminSocketDeps & { path: string }): Promise<{ close(): Promise<void> }> {
  const app = buildAdminSocketServer(deps);
  const old = process.umask(0o177);
  try {
    await app.listen({ path: deps.path });
  } catch (e) {
    throw cliFailure(
      `cannot listen on the admin socket ${deps.path}: ${(e as Error).message}`,
      'Check the data directory permissions.',
      e,
    );
  } finally {
    process.umask(old);
  }
  chmodSync(deps.path, 0o600);
  return {
    async close() {
      await app.close();
      try {
        unlinkSync(deps.path);
      } catch {
        // fastify already removed it
      }
    },
  };
}
