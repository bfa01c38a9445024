import { and, asc, eq, or } from 'drizzle-orm';
import { grants } from '@mssh/migrations';
import type { Db } from './database.js';

export type GrantSubjectKind = 'user' | 'role';

export interface GrantRecord {
  subjectKind: GrantSubjectKind;
  subject: string;
  pattern: string;
  createdBy: string;
  createdAt: Date;
}

/** Who may reach which hosts (glob patterns over host names; see access/glob.ts). */
export class GrantRepository {
  constructor(private readonly db: Db) {}

  /** Add a grant; false when the very same grant exists already. */
  async add(g: {
    subjectKind: GrantSubjectKind;
    subject: string;
    pattern: string;
    createdBy: string;
  }): Promise<boolean> {
    const rows = await this.db.insert(grants).values(g).onConflictDoNothing().returning({ id: grants.id });
    return rows.length > 0;
  }

  /** Remove a grant; false when there was no such grant. */
  async remove(g: { subjectKind: GrantSubjectKind; subject: string; pattern: string }): Promise<boolean> {
    const rows = await this.db
      .delete(grants)
      .where(and(eq(grants.subjectKind, g.subjectKind), eq(grants.subject, g.subject), eq(grants.pattern, g.pattern)))
      .returning({ id: grants.id });
    return rows.length > 0;
  }

  async list(): Promise<GrantRecord[]> {
    const rows = await this.db
      .select({
        subjectKind: grants.subjectKind,
        subject: grants.subject,
        pattern: grants.pattern,
        createdBy: grants.createdBy,
        createdAt: grants.createdAt,
      })
      .from(grants)
      .orderBy(asc(grants.subjectKind), asc(grants.subject), asc(grants.pattern));
    return rows as GrantRecord[];
  }

  /**
   * The patterns granted to this user directly or through their role: ONE query (the tunnel open path
   * calls this once per session).
   */
  async patternsFor(user: string, role: string | null): Promise<string[]> {
    const byUser = and(eq(grants.subjectKind, 'user'), eq(grants.subject, user));
    const where = role ? or(byUser, and(eq(grants.subjectKind, 'role'), eq(grants.subject, role))) : byUser;
    const rows = await this.db.select({ pattern: grants.pattern }).from(grants).where(where);
    return rows.map((r) => r.pattern);
  }
}
