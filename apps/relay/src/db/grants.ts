import { and, asc, eq, or } from 'drizzle-orm';
import { grants } from '@mssh/migrations';
import type { Db } from './database.js';

export type GrantSubjectKind = 'user' | 'role';

export interface GrantRecord {
  subjectKind: GrantSubjectKind;
  subject: string;
  /** A host name glob, or '' for a label grant. */
  pattern: string;
  /** The canonical label selector (`env=staging,role=web`), or '' for a name grant. */
  selector: string;
  createdBy: string;
  createdAt: Date;
}

/** What a user may reach: name globs (access/glob.ts) and label selectors (canonical text). */
export interface GrantRules {
  patterns: string[];
  selectors: string[];
}

/** Who may reach which hosts (glob patterns over host names, or label selectors). */
export class GrantRepository {
  constructor(private readonly db: Db) {}

  /** Add a grant; false when the very same grant exists already. */
  async add(g: {
    subjectKind: GrantSubjectKind;
    subject: string;
    pattern: string;
    selector?: string;
    createdBy: string;
  }): Promise<boolean> {
    const rows = await this.db
      .insert(grants)
      .values({ ...g, selector: g.selector ?? '' })
      .onConflictDoNothing()
      .returning({ id: grants.id });
    return rows.length > 0;
  }

  /** Remove a grant; false when there was no such grant. */
  async remove(g: {
    subjectKind: GrantSubjectKind;
    subject: string;
    pattern: string;
    selector?: string;
  }): Promise<boolean> {
    const rows = await this.db
      .delete(grants)
      .where(
        and(
          eq(grants.subjectKind, g.subjectKind),
          eq(grants.subject, g.subject),
          eq(grants.pattern, g.pattern),
          eq(grants.selector, g.selector ?? ''),
        ),
      )
      .returning({ id: grants.id });
    return rows.length > 0;
  }

  async list(): Promise<GrantRecord[]> {
    const rows = await this.db
      .select({
        subjectKind: grants.subjectKind,
        subject: grants.subject,
        pattern: grants.pattern,
        selector: grants.selector,
        createdBy: grants.createdBy,
        createdAt: grants.createdAt,
      })
      .from(grants)
      .orderBy(asc(grants.subjectKind), asc(grants.subject), asc(grants.pattern), asc(grants.selector));
    return rows as GrantRecord[];
  }

  /**
   * The patterns granted to this user directly or through their role: ONE query (the tunnel open path
   * calls this once per session).
   */
  async patternsFor(user: string, role: string | null): Promise<string[]> {
    return (await this.rulesFor(user, role)).patterns;
  }

  /** The name patterns and label selectors granted to this user directly or through their role: ONE query. */
  async rulesFor(user: string, role: string | null): Promise<GrantRules> {
    const byUser = and(eq(grants.subjectKind, 'user'), eq(grants.subject, user));
    const where = role ? or(byUser, and(eq(grants.subjectKind, 'role'), eq(grants.subject, role))) : byUser;
    const rows = await this.db.select({ pattern: grants.pattern, selector: grants.selector }).from(grants).where(where);
    const patterns: string[] = [];
    const selectors: string[] = [];
    for (const r of rows) {
      if (r.selector !== '') selectors.push(r.selector);
      else patterns.push(r.pattern);
    }
    return { patterns, selectors };
  }
}
