import { pgTable, text, timestamp, bigint, index } from 'drizzle-orm/pg-core';

/**
 * Live and finished sessions, one row each: the relay inserts it (with the session.start audit event, in one
 * transaction) before the first byte is forwarded, updates the byte counters periodically, and sets endedAt
 * when the session ends. Rows with endedAt NULL owned by a relay id at that relay's next start are sessions
 * a crashed relay left open: they are closed with end reason relay_crashed. The audit trail itself stays in
 * audit_events (append-only); this table is the mutable index for `mssh admin sessions`.
 */
export const sessions = pgTable(
  'sessions',
  {
    id: text('id').primaryKey(),
    relayId: text('relay_id').notNull(),
    /** The relay that held the agent link (in a fleet, the entry relay forwards to it; else relay_id). */
    holdingRelayId: text('holding_relay_id'),
    userName: text('user_name').notNull(),
    host: text('host').notNull(),
    source: text('source'),
    via: text('via').notNull().default('https'),
    startedAt: timestamp('started_at', { withTimezone: true }).notNull().defaultNow(),
    endedAt: timestamp('ended_at', { withTimezone: true }),
    bytesUp: bigint('bytes_up', { mode: 'number' }).notNull().default(0),
    bytesDown: bigint('bytes_down', { mode: 'number' }).notNull().default(0),
    endReason: text('end_reason'),
    progressAt: timestamp('progress_at', { withTimezone: true }),
    /** The many-machine run (`mssh exec`) the session belongs to (x-mssh-run); null for any other session. */
    runId: text('run_id'),
  },
  (t) => [index('sessions_open_idx').on(t.relayId, t.endedAt), index('sessions_started_idx').on(t.startedAt)],
);
