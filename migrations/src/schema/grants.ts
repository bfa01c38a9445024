import { pgTable, uuid, text, timestamp, uniqueIndex } from 'drizzle-orm/pg-core';

/**
 * Who may reach which hosts. `subjectKind` is 'user' (subject = user name) or 'role' (subject = role name);
 * `pattern` is a glob over host names (`*` any run of characters, `?` one character), or, for a label
 * grant, '' with `selector` the canonical label selector (`env=staging,role=web`: every pair must match).
 * Admins need no grant.
 */
export const grants = pgTable(
  'grants',
  {
    id: uuid('id').primaryKey().defaultRandom(),
    subjectKind: text('subject_kind').notNull(),
    subject: text('subject').notNull(),
    pattern: text('pattern').notNull(),
    selector: text('selector').notNull().default(''),
    createdBy: text('created_by').notNull(),
    createdAt: timestamp('created_at', { withTimezone: true }).notNull().defaultNow(),
  },
  (t) => [uniqueIndex('grants_subject_pattern_selector_uq').on(t.subjectKind, t.subject, t.pattern, t.selector)],
);
