import { pgTable, uuid, text, timestamp, index, uniqueIndex } from 'drizzle-orm/pg-core';

/** SSH public keys users registered (`mssh keys add`) to log in to the relay's SSH jump listener. */
export const sshKeys = pgTable(
  'ssh_keys',
  {
    id: uuid('id').primaryKey().defaultRandom(),
    userName: text('user_name').notNull(),
    /** OpenSSH one-line form: "type base64 [comment]". */
    publicKey: text('public_key').notNull(),
    /**
     * SHA256:... fingerprint, unique per user: keys are bound to a user, so the same key may be registered
     * by two users (the SSH user name picks the row at login) and registering a key never tells anyone
     * that another user has it.
     */
    fingerprint: text('fingerprint').notNull(),
    comment: text('comment'),
    createdAt: timestamp('created_at', { withTimezone: true }).notNull().defaultNow(),
  },
  (t) => [
    index('ssh_keys_user_idx').on(t.userName),
    uniqueIndex('ssh_keys_user_fingerprint_idx').on(t.userName, t.fingerprint),
  ],
);
