/**
 * Users' sessions: login (password -> JWT), request authentication (JWT -> who), logout (revocation).
 * No fastify here; the HTTP layer calls these and maps the coded errors.
 */
import { AuthError, dummyVerifyPassword, verifyPassword, type TokenService } from '@mssh/auth';
import type { LoginRequest, LoginResponse, WhoamiResponse } from '@mssh/protocol';
import type { RevokedTokenRepository, UserRepository } from '../db/index.js';
import type { RelayAuditSink } from '../audit/audit-sink.js';
import type { RequestAuth } from '../http/auth-types.js';

export interface AuthServiceDeps {
  tokens: TokenService;
  users: UserRepository;
  revokedTokens: RevokedTokenRepository;
  audit: RelayAuditSink;
  /** Token lifetime (default JWT_DEFAULT_TTL_SECONDS). */
  tokenTtlSeconds?: number;
  /** Cap on concurrent password hashes (limits/hash-slots.ts); unlimited when absent. */
  hashSlots?: { run<T>(fn: () => Promise<T>): Promise<T> };
}

export class AuthService {
  constructor(private readonly deps: AuthServiceDeps) {}

  /**
   * Same answer (AUTH_ERR_BAD_CREDENTIALS) and the same work for an unknown user as for a wrong password
   * (also of a disabled account). Only the right password of a disabled account learns that it is disabled.
   */
  async login(req: LoginRequest, source: string): Promise<LoginResponse> {
    const { users, tokens, audit } = this.deps;
    const hashing = <T>(fn: () => Promise<T>): Promise<T> => (this.deps.hashSlots ? this.deps.hashSlots.run(fn) : fn());
    const user = await users.findByName(req.user);
    if (!user) {
      await hashing(() => dummyVerifyPassword(req.password));
      audit.userLogin({ user: req.user, source, ok: false, reason: 'unknown_user' });
      throw new AuthError('AUTH_ERR_BAD_CREDENTIALS');
    }
    const ok = await hashing(() => verifyPassword(user.passwordHash, req.password));
    if (!ok) {
      audit.userLogin({ user: user.name, source, ok: false, reason: 'bad_password' });
      throw new AuthError('AUTH_ERR_BAD_CREDENTIALS');
    }
    if (user.disabledAt) {
      // Said only now that the password proved who is asking: a wrong password gets the answer above.
      audit.userLogin({ user: user.name, source, ok: false, reason: 'disabled' });
      throw new AuthError('AUTH_ERR_USER_DISABLED', 'your account was disabled by an admin; ask an admin to enable it');
    }
    const t = await tokens.sign({
      user: user.name,
      userId: user.id,
      generation: user.tokenGeneration,
      admin: user.isAdmin,
      ttlSeconds: this.deps.tokenTtlSeconds,
    });
    audit.userLogin({ user: user.name, source, ok: true });
    return { token: t.token, expiresAt: t.expiresAt.toISOString(), user: user.name, admin: user.isAdmin };
  }

  /**
   * Who is calling: verifies the `Authorization: Bearer <jwt>` header value, refuses revoked tokens, users
   * that no longer exist (by id: a user created again under the same name is another user) or are
   * disabled, and tokens of an older token generation (AUTH_ERR_SESSION_ENDED: a password reset, disable or
   * role change since). One grouped lookup per request, as before. Throws AuthError.
   */
  async authenticate(authorization: string | undefined): Promise<RequestAuth> {
    const m = /^Bearer[ ]+([^\s]+)\s*$/i.exec(authorization ?? '');
    if (!m) throw new AuthError('AUTH_ERR_MISSING_TOKEN');
    const checkedAt = performance.now();
    const v = await this.deps.tokens.verify(m[1]!);
    const { revoked, user } = await this.deps.users.findForToken(v.userId, v.jti);
    if (revoked) throw new AuthError('AUTH_ERR_TOKEN_REVOKED');
    if (!user) throw new AuthError('AUTH_ERR_INVALID_TOKEN', 'the account of this token no longer exists');
    if (user.disabledAt)
      throw new AuthError(
        'AUTH_ERR_USER_DISABLED',
        'your account was disabled by an admin; ask an admin to enable it (mssh admin users enable NAME)',
      );
    if (user.tokenGeneration !== v.generation) throw new AuthError('AUTH_ERR_SESSION_ENDED');
    // The row loaded here is all the access check needs too (admin, role): no second user lookup.
    return { user: user.name, admin: user.isAdmin, role: user.role, jti: v.jti, exp: v.exp, checkedAt };
  }

  /** A bearer token was refused (token.rejected, sampled per source by the sink). */
  noteRejected(source: string, code: string): void {
    this.deps.audit.tokenRejected({ source, code });
  }

  /** Revoke the caller's token (until it would have expired anyway). */
  async logout(auth: RequestAuth, source: string): Promise<void> {
    await this.deps.revokedTokens.revoke(auth.jti, new Date(auth.exp * 1000));
    this.deps.audit.userLogout({ user: auth.user, source, jti: auth.jti });
  }

  whoami(auth: RequestAuth): WhoamiResponse {
    return { user: auth.user, admin: auth.admin, expiresAt: new Date(auth.exp * 1000).toISOString() };
  }
}
