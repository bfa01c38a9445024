import type { FastifyPluginAsync } from 'fastify';
import { AuditQuery, PATHS, SessionsQuery } from '@mssh/protocol';
import type { AuditLog } from '../../audit/audit-log.js';
import { parseOr400 } from '../errors-edge.js';
import '../auth-types.js';

/** The audit trail for admin tokens (`mssh admin audit`, `mssh admin sessions`); others get 403. */
export const adminAuditRoutes: FastifyPluginAsync<{ auditLog: AuditLog }> = async (app, { auditLog }) => {
  app.addHook('preHandler', app.authenticate);
  app.addHook('preHandler', app.requireAdmin);

  app.get(PATHS.adminAudit, async (request) => {
    const q = parseOr400(AuditQuery, request.query);
    return { events: await auditLog.events(q) };
  });

  app.get(PATHS.adminSessions, async (request) => {
    const q = parseOr400(SessionsQuery, request.query);
    return { sessions: await auditLog.sessions(q) };
  });
};
