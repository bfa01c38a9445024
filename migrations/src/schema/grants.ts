import { pgTable, uuid, text, timestamp, uniqueIndex } from 'drizzle-orm/pg-core';

/**
 * Who may reach which hosts. `subjectKind` is 'user' (subject = user name) or 'role' (subject = role name);
 * `pattern` is a glob over host names (`*` any run of characters, `?` one character). Admins need no grant.
 */
export const grants = pgTable(
  'grants',
  {
    id: uuid('id').primaryKey().defaultRandom(),
    subjectKind: text('subject_kind').notNull(),
    subject: text('subject').notNull(),
    pattern: text('pattern').notNull(),
    createdBy: text('created_by').notNull(),
    createdAt: timestamp('created_at', { withTimezone: true }).notNull().defaultNow(),
  },
  (t) => [uniqueIndex('grants_subject_pattern_uq').on(t.subjectKind, t.subject, t.pattern)],
);
