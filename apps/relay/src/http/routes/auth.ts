import type { FastifyPluginAsync } from 'fastify';
import type { TokenService } from '@mssh/auth';
import { LoginRequest, PATHS } from '@mssh/protocol';
import type { AuthService } from '../../auth/auth-service.js';
import { parseOr400 } from '../errors-edge.js';
import type { LoginGuard } from '../../limits/login-guard.js';
import '../auth-types.js';

/** Login, logout, whoami, and the public keys that verify the relay's tokens. */
export const authRoutes: FastifyPluginAsync<{
  auth: AuthService;
  tokens: TokenService;
  loginGuard?: LoginGuard;
}> = async (app, { auth, tokens, loginGuard }) => {
  app.get(PATHS.jwks, async (_req, reply) => {
    reply.header('cache-control', 'public, max-age=300');
    return tokens.jwks();
  });

  app.post(PATHS.login, async (request) => {
    const body = parseOr400(LoginRequest, request.body);
    // request.ip: the socket address, or the rightmost untrusted X-Forwarded-For hop behind --trusted-proxy.
    if (!loginGuard) return auth.login(body, request.ip);
    return loginGuard.attempt(body.user, request.ip, () => auth.login(body, request.ip));
  });

  app.post(PATHS.logout, { preHandler: app.authenticate }, async (request, reply) => {
    await auth.logout(request.auth!, request.ip);
    return reply.code(204).send();
  });

  app.get(PATHS.whoami, { preHandler: app.authenticate }, async (request) => auth.whoami(request.auth!));
};
