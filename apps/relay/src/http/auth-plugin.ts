/**
 * Decorates the root instance (so every route plugin sees them) with the two preHandlers of
 * http/auth-types.ts. Failures are thrown as coded AuthErrors for the edge error handler.
 */
import type { FastifyInstance, FastifyRequest } from 'fastify';
import { AuthError } from '@mssh/auth';
import type { AuthService } from '../auth/auth-service.js';
import './auth-types.js';

export function installAuth(app: FastifyInstance, auth: AuthService): void {
  app.decorateRequest('auth', null);
  app.decorate('authenticate', async function authenticate(request: FastifyRequest) {
    try {
      request.auth = await auth.authenticate(request.headers.authorization);
    } catch (e) {
      if (e instanceof AuthError && e.code !== 'AUTH_ERR_MISSING_TOKEN') auth.noteRejected(request.ip, e.code);
      throw e;
    }
  });
  app.decorate('requireAdmin', async function requireAdmin(request: FastifyRequest) {
    if (!request.auth) throw new AuthError('AUTH_ERR_MISSING_TOKEN');
    if (!request.auth.admin) throw new AuthError('AUTH_ERR_FORBIDDEN');
  });
}
