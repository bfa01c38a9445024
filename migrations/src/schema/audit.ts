import { sql } from 'drizzle-orm';
import { pgTable, bigserial, text, timestamp, jsonb, index } from 'drizzle-orm/pg-core';

/** Append-only audit trail. Each row: dotted type, stable code, actor, target host, source, details. */
export const auditEvents = pgTable(
  'audit_events',
  {
    id: bigserial('id', { mode: 'number' }).primaryKey(),
    time: timestamp('time', { withTimezone: true }).notNull().defaultNow(),
    type: text('type').notNull(),
    code: text('code').notNull(),
    relayId: text('relay_id').notNull(),
    actor: text('actor'),
    host: text('host'),
    source: text('source'),
    sessionId: text('session_id'),
    /** The many-machine run (`mssh exec`) a session row belongs to; null for every other row. */
    runId: text('run_id'),
    details: jsonb('details').$type<Record<string, unknown>>().notNull().default({}),
  },
  (t) => [
    index('audit_events_time_idx').on(t.time),
    index('audit_events_type_idx').on(t.type),
    index('audit_events_session_idx').on(t.sessionId),
    index('audit_events_run_idx')
      .on(t.runId)
      .where(sql`run_id IS NOT NULL`),
  ],
);
