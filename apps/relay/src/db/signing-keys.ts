import { and, asc, isNull, ne, sql } from 'drizzle-orm';
import { signingKeys } from '@mssh/migrations';
import { generateSigningKey, type SigningKey } from '@mssh/auth';
import type { Db } from './database.js';

/** Key of the transaction advisory lock that keeps relays sharing a database from each creating a first key. */
const KEY_CREATION_LOCK = 0x6d73736b; // "mssk"

export class SigningKeyRepository {
  constructor(private readonly db: Db) {}

  async list(tx: Db = this.db): Promise<SigningKey[]> {
    const rows = await tx.select().from(signingKeys).orderBy(asc(signingKeys.createdAt));
    return rows.map((r) => ({
      kid: r.kid,
      privateJwk: r.privateJwk,
      publicJwk: r.publicJwk,
      createdAt: r.createdAt,
      retiredAt: r.retiredAt,
    }));
  }

  /** All keys; on first start (no usable key), create one. */
  async loadOrCreate(): Promise<{ keys: SigningKey[]; created: boolean }> {
    const existing = await this.list();
    if (existing.some((k) => !k.retiredAt)) return { keys: existing, created: false };
    return this.db.transaction(async (tx) => {
      await tx.execute(sql`SELECT pg_advisory_xact_lock(${KEY_CREATION_LOCK})`);
      const again = await this.list(tx);
      if (again.some((k) => !k.retiredAt)) return { keys: again, created: false };
      const k = await generateSigningKey();
      await tx.insert(signingKeys).values({
        kid: k.kid,
        privateJwk: k.privateJwk as Record<string, unknown>,
        publicJwk: k.publicJwk as Record<string, unknown>,
      });
      return { keys: await this.list(tx), created: true };
    });
  }

  /**
   * Key rotation: add a fresh key (it signs from now on) and retire every other usable key (they no
   * longer sign, but still verify the tokens they issued). Returns the new kid and the retired ones.
   */
  async rotate(): Promise<{ kid: string; retired: string[]; keys: SigningKey[] }> {
    return this.db.transaction(async (tx) => {
      await tx.execute(sql`SELECT pg_advisory_xact_lock(${KEY_CREATION_LOCK})`);
      const k = await generateSigningKey();
      await tx.insert(signingKeys).values({
        kid: k.kid,
        privateJwk: k.privateJwk as Record<string, unknown>,
        publicJwk: k.publicJwk as Record<string, unknown>,
      });
      const retired = await tx
        .update(signingKeys)
        .set({ retiredAt: sql`now()` })
        .where(and(isNull(signingKeys.retiredAt), ne(signingKeys.kid, k.kid)))
        .returning({ kid: signingKeys.kid });
      return { kid: k.kid, retired: retired.map((r) => r.kid), keys: await this.list(tx) };
    });
  }
}
