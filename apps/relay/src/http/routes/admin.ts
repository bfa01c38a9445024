import type { FastifyPluginAsync } from 'fastify';
import { CreateEnrollTokenRequest, CreateUserRequest, PATHS } from '@mssh/protocol';
import type { AdminService } from '../../admin/admin-service.js';
import { parseOr400 } from '../errors-edge.js';
import '../auth-types.js';

/** Administration over the API, for admin tokens (`mssh admin ...`). */
export const adminRoutes: FastifyPluginAsync<{ admin: AdminService }> = async (app, { admin }) => {
  app.addHook('preHandler', app.authenticate);
  app.addHook('preHandler', app.requireAdmin);

  app.post(PATHS.adminUsers, async (request, reply) => {
    const body = parseOr400(CreateUserRequest, request.body);
    return reply.code(201).send(await admin.createUser(body, { actor: request.auth!.user, source: request.ip }));
  });

  app.post(PATHS.adminAgentEnroll, async (request, reply) => {
    const { name } = parseOr400(CreateEnrollTokenRequest, request.body);
    return reply.code(201).send(await admin.createEnrollToken(name, { actor: request.auth!.user, source: request.ip }));
  });
};
