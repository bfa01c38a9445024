import { asc, count, eq } from 'drizzle-orm';
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
