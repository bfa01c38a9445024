import { pgTable, uuid, text, timestamp, index } from 'drizzle-orm/pg-core';

/** SSH public keys users registered (`mssh keys add`) to log in to the relay's SSH jump listener. */
export const sshKeys = pgTable(
  'ssh_keys',
  {
    id: uuid('id').primaryKey().defaultRandom(),
    userName: text('user_name').notNull(),
    /** OpenSSH one-line form: "type base64 [comment]". */
    publicKey: text('public_key').notNull(),
    /** SHA256:... fingerprint, unique: one key belongs to one user. */
    fingerprint: text('fingerprint').notNull().unique(),
    comment: text('comment'),
    createdAt: timestamp('created_at', { withTimezone: true }).notNull().defaultNow(),
  },
  (t) => [index('ssh_keys_user_idx').on(t.userName)],
);
