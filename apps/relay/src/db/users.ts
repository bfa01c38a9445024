import { asc, count, eq, sql } from 'drizzle-orm';
import { users } from '@mssh/migrations';
import type { Db } from './database.js';

export interface UserRecord {
  id: string;
  name: string;
  passwordHash: string;
  isAdmin: boolean;
  role: string | null;
  disabledAt: Date | null;
  /** Tokens carry the generation they were issued under; a password reset, disable or role change bumps it. */
  tokenGeneration: number;
  createdAt: Date;
}

/** `token_generation + 1`, for the updates that end a user's tokens. */
const nextGeneration = sql`${users.tokenGeneration} + 1`;

/** At most this many token lookups share one query. */
export const MAX_LOOKUP_BATCH = 256;

interface PendingLookup {
  /** The token's user id (a UUID, checked by the token service). */
  userId: string;
  jti: string;
  resolve: (v: { user: UserRecord | null; revoked: boolean }) => void;
  reject: (err: unknown) => void;
}

export class UserRepository {
  constructor(private readonly db: Db) {}

  /** Create a user; null when the name is taken. */
  async create(u: { name: string; passwordHash: string; isAdmin: boolean }): Promise<UserRecord | null> {
    const rows = await this.db.insert(users).values(u).onConflictDoNothing({ target: users.name }).returning();
    return rows[0] ?? null;
  }

  async findByName(name: string): Promise<UserRecord | null> {
    const rows = await this.db.select().from(users).where(eq(users.name, name)).limit(1);
    return rows[0] ?? null;
  }

  /**
   * What request authentication needs (it runs for every API request and tunnel): the token's user by its
   * immutable id (null when gone: a user deleted and created again under the same name is another row),
   * with its active flag, role and token generation, and whether the token id was revoked.
   *
   * Lookups are grouped: one is sent at once when none is in flight; those asked for while one is in
   * flight go together in the next query (one round trip and one statement for all of them, at most
   * MAX_LOOKUP_BATCH per query). Each answer still comes from a query sent AFTER it was asked for, so a
   * revocation or a disabled account committed before a request arrives is seen by that request, as
   * with a query per request. Under load (many tunnels opening at once) this was one query per session
   * start and the largest share of the relay's database round trips (bench/README.md, finding 10).
   */
  findForToken(userId: string, jti: string): Promise<{ user: UserRecord | null; revoked: boolean }> {
    return new Promise((resolve, reject) => {
      this.waiting.push({ userId, jti, resolve, reject });
      if (!this.lookupInFlight) this.sendLookups();
    });
  }

  private waiting: PendingLookup[] = [];
  private lookupInFlight = false;

  private sendLookups(): void {
    const batch = this.waiting.splice(0, MAX_LOOKUP_BATCH);
    if (batch.length === 0) return;
    this.lookupInFlight = true;
    this.lookup(batch)
      .then(
        (answers) => batch.forEach((w, i) => w.resolve(answers[i]!)),
        (err: unknown) => batch.forEach((w) => w.reject(err)),
      )
      .finally(() => {
        this.lookupInFlight = false;
        this.sendLookups();
      });
  }

  /** One query for every (user id, jti) of `batch`, answers in the same order. */
  private async lookup(batch: readonly PendingLookup[]): Promise<Array<{ user: UserRecord | null; revoked: boolean }>> {
    const list = (xs: string[]) =>
      sql.join(
        xs.map((x) => sql`${x}`),
        sql`, `,
      );
    const res = await this.db
      .execute(sql`SELECT k.i, EXISTS (SELECT 1 FROM revoked_tokens AS r WHERE r.jti = k.jti) AS revoked,
        u.id, u.name, u.password_hash, u.is_admin, u.role, u.disabled_at, u.token_generation, u.created_at
      FROM unnest(ARRAY[${list(batch.map((w) => w.userId))}]::uuid[], ARRAY[${list(batch.map((w) => w.jti))}]::text[])
        WITH ORDINALITY AS k(uid, jti, i)
      LEFT JOIN users AS u ON u.id = k.uid`);
    // What pg and PGlite give for these columns: text, numbers, booleans and timestamps.
    const rows = (res as unknown as { rows: Array<Record<string, string | number | boolean | Date | null>> }).rows;
    const date = (v: string | number | boolean | Date | null | undefined): Date | null =>
      v === null || v === undefined ? null : v instanceof Date ? v : new Date(String(v));
    const answers = new Array<{ user: UserRecord | null; revoked: boolean }>(batch.length);
    for (const row of rows) {
      const user: UserRecord | null =
        row.id == null
          ? null
          : {
              id: String(row.id),
              name: String(row.name),
              passwordHash: String(row.password_hash),
              isAdmin: row.is_admin === true,
              role: row.role == null ? null : String(row.role),
              disabledAt: date(row.disabled_at),
              tokenGeneration: Number(row.token_generation),
              createdAt: date(row.created_at)!,
            };
      answers[Number(row.i) - 1] = { user, revoked: row.revoked === true };
    }
    for (let i = 0; i < batch.length; i++) {
      if (!answers[i]) throw new Error(`user lookup returned no row for entry ${i + 1} of ${batch.length}`);
    }
    return answers;
  }

  async list(): Promise<UserRecord[]> {
    return this.db.select().from(users).orderBy(asc(users.name));
  }

  /**
   * Disable (at a time) or enable (null) a user; the updated row, or null when there is no such user.
   * Disabling bumps the token generation, so enabling the user again does not revive their old tokens.
   */
  async setDisabled(name: string, at: Date | null): Promise<UserRecord | null> {
    const rows = await this.db
      .update(users)
      .set(at ? { disabledAt: at, tokenGeneration: nextGeneration } : { disabledAt: null })
      .where(eq(users.name, name))
      .returning();
    return rows[0] ?? null;
  }

  /** A new password ends every token issued before it (token generation bumped). */
  async setPasswordHash(name: string, passwordHash: string): Promise<UserRecord | null> {
    const rows = await this.db
      .update(users)
      .set({ passwordHash, tokenGeneration: nextGeneration })
      .where(eq(users.name, name))
      .returning();
    return rows[0] ?? null;
  }

  /** A role change ends every token issued before it (token generation bumped): they were judged under the old role. */
  async setRole(name: string, role: string | null): Promise<UserRecord | null> {
    const rows = await this.db
      .update(users)
      .set({ role, tokenGeneration: nextGeneration })
      .where(eq(users.name, name))
      .returning();
    return rows[0] ?? null;
  }

  async count(): Promise<number> {
    const [row] = await this.db.select({ n: count() }).from(users);
    return row?.n ?? 0;
  }
}
