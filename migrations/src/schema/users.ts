import { pgTable, uuid, text, boolean, timestamp, integer } from 'drizzle-orm/pg-core';

export const users = pgTable('users', {
  id: uuid('id').primaryKey().defaultRandom(),
  name: text('name').notNull().unique(),
  passwordHash: text('password_hash').notNull(),
  isAdmin: boolean('is_admin').notNull().default(false),
  /** Optional role name; grants may name a role (`mssh admin grant --role ops 'db-*'`). */
  role: text('role'),
  disabledAt: timestamp('disabled_at', { withTimezone: true }),
  /**
   * Every token carries the generation it was issued under (claim `gen`) and the user's id (`uid`); a
   * password reset, a disable or a role change adds one, which ends every token issued before it.
   */
  tokenGeneration: integer('token_generation').notNull().default(0),
  createdAt: timestamp('created_at', { withTimezone: true }).notNull().defaultNow(),
});
