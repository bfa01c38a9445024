import { pgTable, uuid, text, jsonb, timestamp } from 'drizzle-orm/pg-core';

/** One-time enrolment tokens; only the SHA-256 of the token is stored. */
export const enrollTokens = pgTable('enroll_tokens', {
  id: uuid('id').primaryKey().defaultRandom(),
  tokenHash: text('token_hash').notNull().unique(),
  name: text('name').notNull(),
  createdBy: text('created_by').notNull(),
  createdAt: timestamp('created_at', { withTimezone: true }).notNull().defaultNow(),
  expiresAt: timestamp('expires_at', { withTimezone: true }).notNull(),
  usedAt: timestamp('used_at', { withTimezone: true }),
  /** Labels the machine gets when it enrols with this token. */
  labels: jsonb('labels').$type<Record<string, string>>().notNull().default({}),
});
