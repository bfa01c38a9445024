import type { FastifyPluginAsync } from 'fastify';
import type { AdminService } from '../../admin/admin-service.js';
import { adminOpsRoutes } from './admin-ops.js';
import '../auth-types.js';

/** Administration over the API, for admin tokens (`mssh admin ...`): the routes of admin-ops.ts under /v1/admin. */
export const adminRoutes: FastifyPluginAsync<{ admin: AdminService }> = async (app, { admin }) => {
  app.addHook('preHandler', app.authenticate);
  app.addHook('preHandler', app.requireAdmin);
  await app.register(adminOpsRoutes, {
    prefix: '/v1/admin',
    admin,
    actor: (request) => ({ actor: request.auth!.user, source: request.ip }),
  });
};
