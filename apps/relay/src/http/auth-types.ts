/**
 * Request authentication as seen by route plugins. Import this file (for its types) in any plugin that
 * uses `preHandler: app.authenticate` and reads `request.auth`.
 *
 *   preHandler: app.authenticate   -> 401 AUTH_ERR_* unless a valid, unrevoked bearer JWT of an active user
 *   preHandler: [app.authenticate, app.requireAdmin] -> also 403 AUTH_ERR_FORBIDDEN for non-admins
 */
import type { preHandlerAsyncHookHandler } from 'fastify';

export interface RequestAuth {
  /** mssh user name (the token's sub). */
  user: string;
  /** The user is an admin now (from the database, not only the token's claim). */
  admin: boolean;
  /** The user's role (grants may name it), from the same database row. */
  role: string | null;
  /** The token's id (revocation key). */
  jti: string;
  /** The token's expiry, seconds since the epoch. */
  exp: number;
  /**
   * When the user was checked (performance.now(), taken before the lookup was sent). An admin's
   * "end this user's sessions" at or after this moment also ends a session this request sets up later.
   */
  checkedAt: number;
}

declare module 'fastify' {
  interface FastifyInstance {
    /** preHandler: verify the bearer JWT and set request.auth, or answer 401. */
    authenticate: preHandlerAsyncHookHandler;
    /** preHandler, after authenticate: answer 403 unless request.auth.admin. */
    requireAdmin: preHandlerAsyncHookHandler;
  }
  interface FastifyRequest {
    /** Set by app.authenticate; null on routes that do not use it. */
    auth: RequestAuth | null;
  }
}
