import { eq, lt, sql } from 'drizzle-orm';
import { revokedTokens } from '@mssh/migrations';
import type { Db } from './database.js';

/** JWT ids revoked before their expiry (logout). */
export class RevokedTokenRepository {
  constructor(private readonly db: Db) {}

  async revoke(jti: string, expiresAt: Date): Promise<void> {
    await this.db.insert(revokedTokens).values({ jti, expiresAt }).onConflictDoNothing({ target: revokedTokens.jti });
  }

  async isRevoked(jti: string): Promise<boolean> {
    const rows = await this.db
      .select({ jti: revokedTokens.jti })
      .from(revokedTokens)
      .where(eq(revokedTokens.jti, jti))
      .limit(1);
    return rows.length > 0;
  }

  /** Forget revocations of tokens that have expired anyway (plus a margin for clock tolerance). */
  async purgeExpired(): Promise<number> {
    const rows = await this.db
      .delete(revokedTokens)
      .where(lt(revokedTokens.expiresAt, sql`now() - interval '5 minutes'`))
      .returning({ jti: revokedTokens.jti });
    return rows.length;
  }
}
