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
  createdAt: Date;
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
   * What request authentication needs, in ONE round trip (it runs for every API request and tunnel):
   * the token's user (null when gone) and whether the token id was revoked.
   */
  async findForToken(name: string, jti: string): Promise<{ user: UserRecord | null; revoked: boolean }> {
    const res = await this.db.execute(sql`SELECT EXISTS (SELECT 1 FROM revoked_tokens WHERE jti = ${jti}) AS revoked,
        u.id, u.name, u.password_hash, u.is_admin, u.role, u.disabled_at, u.created_at
      FROM (SELECT 1) AS one LEFT JOIN users AS u ON u.name = ${name}`);
    const row = (res as unknown as { rows: Array<Record<string, unknown>> }).rows[0] ?? {};
    const date = (v: unknown): Date | null => (v === null || v === undefined ? null : v instanceof Date ? v : new Date(String(v)));
    const user: UserRecord | null = row.id == null ? null : {
      id: String(row.id), name: String(row.name), passwordHash: String(row.password_hash), isAdmin: row.is_admin === true,
      role: row.role == null ? null : String(row.role), disabledAt: date(row.disabled_at), createdAt: date(row.created_at)!,
    };
    return { user, revoked: row.revoked === true };
  }

  async list(): Promise<UserRecord[]> {
    return this.db.select().from(users).orderBy(asc(users.name));
  }

  /** Disable (at a time) or enable (null) a user; the updated row, or null when there is no such user. */
  async setDisabled(name: string, at: Date | null): Promise<UserRecord | null> {
    const rows = await this.db.update(users).set({ disabledAt: at }).where(eq(users.name, name)).returning();
    return rows[0] ?? null;
  }

  async setPasswordHash(name: string, passwordHash: string): Promise<UserRecord | null> {
    const rows = await this.db.update(users).set({ passwordHash }).where(eq(users.name, name)).returning();
    return rows[0] ?? null;
  }

  async setRole(name: string, role: string | null): Promise<UserRecord | null> {
    const rows = await this.db.update(users).set({ role }).where(eq(users.name, name)).returning();
    return rows[0] ?? null;
  }

  async count(): Promise<number> {
    const [row] = await this.db.select({ n: count() }).from(users);
    return row?.n ?? 0;
  }
}
