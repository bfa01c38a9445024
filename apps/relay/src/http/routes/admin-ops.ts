/**
 * The administration routes, mounted twice: under /v1/admin for admin JWTs (routes/admin.ts) and under
 * /admin on the local admin socket (actor local-admin). Same bodies, same answers.
 *
 *   users:  GET  /users                POST /users                   POST /users/:name/disable {killSessions}
 *           POST /users/:name/enable   POST /users/:name/password {password}   POST /users/:name/role {role|null}
 *   grants: GET  /grants               POST /grants {subjectKind, subject, pattern}   POST /grants/remove (same body)
 *   relays: GET  /relays (the fleet)
 *   grants take {subjectKind, subject, labels} instead of pattern for a label selector (env=prod,role=db)
 *   agents: GET  /agents               POST /agents/enroll {name, labels?}    POST /agents/:name/revoke   DELETE /agents/:name
 *           POST /agents/:name/labels {set, remove}
 */
import type { FastifyPluginAsync, FastifyRequest } from 'fastify';
import { z } from 'zod';
import {
  CreateEnrollTokenRequest,
  CreateUserRequest,
  LabelAgentRequest,
  DisableUserRequest,
  GrantRequest,
  HostName,
  SetPasswordRequest,
  SetRoleRequest,
  UserName,
} from '@mssh/protocol';
import type { AdminActor, AdminService } from '../../admin/admin-service.js';
import { parseOr400 } from '../errors-edge.js';

export interface AdminOpsRoutesOptions {
  admin: AdminService;
  actor: (request: FastifyRequest) => AdminActor;
}

const UserParams = z.object({ name: UserName });
const AgentParams = z.object({ name: HostName });

export const adminOpsRoutes: FastifyPluginAsync<AdminOpsRoutesOptions> = async (app, { admin, actor }) => {
  // users
  app.get('/users', async () => ({ users: await admin.listUsers() }));
  app.post('/users', async (request, reply) => {
    const body = parseOr400(CreateUserRequest, request.body);
    return reply.code(201).send(await admin.createUser(body, actor(request)));
  });
  app.post('/users/:name/disable', async (request) => {
    const { name } = parseOr400(UserParams, request.params);
    const { killSessions } = parseOr400(DisableUserRequest, request.body ?? {});
    return admin.disableUser(name, { killSessions }, actor(request));
  });
  app.post('/users/:name/enable', async (request) => {
    const { name } = parseOr400(UserParams, request.params);
    return admin.enableUser(name, actor(request));
  });
  app.post('/users/:name/password', async (request) => {
    const { name } = parseOr400(UserParams, request.params);
    const { password } = parseOr400(SetPasswordRequest, request.body);
    return admin.setPassword(name, password, actor(request));
  });
  app.post('/users/:name/role', async (request) => {
    const { name } = parseOr400(UserParams, request.params);
    const { role } = parseOr400(SetRoleRequest, request.body);
    return admin.setRole(name, role, actor(request));
  });

  // grants
  app.get('/grants', async () => ({ grants: await admin.listGrants() }));
  app.post('/grants', async (request, reply) => {
    const body = parseOr400(GrantRequest, request.body);
    const r = await admin.addGrant(body, actor(request));
    return reply.code(r.changed ? 201 : 200).send(r);
  });
  app.post('/grants/remove', async (request) => {
    const body = parseOr400(GrantRequest, request.body);
    return admin.removeGrant(body, actor(request));
  });

  // agents
  app.get('/agents', async () => ({ agents: await admin.listAgents() }));
  // the fleet
  app.get('/relays', async () => ({ relays: await admin.listRelays() }));
  app.post('/agents/enroll', async (request, reply) => {
    const { name, labels } = parseOr400(CreateEnrollTokenRequest, request.body);
    return reply.code(201).send(await admin.createEnrollToken(name, actor(request), labels ?? {}));
  });
  app.post('/agents/:name/revoke', async (request) => {
    const { name } = parseOr400(AgentParams, request.params);
    return admin.revokeAgent(name, actor(request));
  });
  app.post('/agents/:name/labels', async (request) => {
    const { name } = parseOr400(AgentParams, request.params);
    const body = parseOr400(LabelAgentRequest, request.body);
    return admin.labelAgent(name, body, actor(request));
  });
  app.delete('/agents/:name', async (request) => {
    const { name } = parseOr400(AgentParams, request.params);
    return admin.forgetAgent(name, actor(request));
  });
};
