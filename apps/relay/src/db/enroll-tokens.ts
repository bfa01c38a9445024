import { createHash, randomBytes } from 'node:crypto';
import { and, eq, gt, isNull, sql } from 'drizzle-orm';
import { enrollTokens } from '@mssh/migrations';
import type { Db } from './database.js';

/** Only the SHA-256 of an enrolment token is stored. */
export function hashEnrollToken(token: string): string {
  return createHash('sha256').update(token, 'utf8').digest('hex');
}

export interface ClaimedEnrollToken {
  id: string;
  name: string;
  createdBy: string;
  labels: Record<string, string>;
}

export class EnrollTokenRepository {
  constructor(private readonly db: Db) {}

  /** Issue a one-time token for `name`, valid for ttlSeconds. Returns the clear token (shown once). */
  async create(input: {
    name: string;
    createdBy: string;
    ttlSeconds: number;
    now?: Date;
    labels?: Record<string, string>;
  }): Promise<{ token: string; expiresAt: Date }> {
    const token = randomBytes(32).toString('base64url');
    const expiresAt = new Date((input.now ?? new Date()).getTime() + input.ttlSeconds * 1000);
    await this.db.insert(enrollTokens).values({
      tokenHash: hashEnrollToken(token),
      name: input.name,
      createdBy: input.createdBy,
      expiresAt,
      labels: input.labels ?? {},
    });
    return { token, expiresAt };
  }

  /** The still-usable token's name, without claiming it; null when unknown, used or expired. */
  async peek(token: string, tx: Db = this.db): Promise<ClaimedEnrollToken | null> {
    const rows = await tx
      .select({
        id: enrollTokens.id,
        name: enrollTokens.name,
        createdBy: enrollTokens.createdBy,
        labels: enrollTokens.labels,
      })
      .from(enrollTokens)
      .where(
        and(
          eq(enrollTokens.tokenHash, hashEnrollToken(token)),
          isNull(enrollTokens.usedAt),
          gt(enrollTokens.expiresAt, sql`now()`),
        ),
      )
      .limit(1);
    return rows[0] ?? null;
  }

  /**
   * Claim the token: one atomic UPDATE, so two concurrent claims cannot both succeed. Null when the token
   * is unknown, already used or expired.
   */
  async claim(token: string, tx: Db = this.db): Promise<ClaimedEnrollToken | null> {
    const rows = await tx
      .update(enrollTokens)
      .set({ usedAt: sql`now()` })
      .where(
        and(
          eq(enrollTokens.tokenHash, hashEnrollToken(token)),
          isNull(enrollTokens.usedAt),
          gt(enrollTokens.expiresAt, sql`now()`),
        ),
      )
      .returning({
        id: enrollTokens.id,
        name: enrollTokens.name,
        createdBy: enrollTokens.createdBy,
        labels: enrollTokens.labels,
      });
    return rows[0] ?? null;
  }
}
