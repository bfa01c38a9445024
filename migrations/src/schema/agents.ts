import { pgTable, uuid, text, integer, jsonb, timestamp } from 'drizzle-orm/pg-core';

/** One enrolled machine. `name` is what users type; `publicKey` is the agent's Ed25519 identity (SPKI DER, base64). */
export const agents = pgTable('agents', {
  id: uuid('id').primaryKey().defaultRandom(),
  name: text('name').notNull().unique(),
  publicKey: text('public_key').notNull().unique(),
  /** The target's SSH host keys as reported by the agent (OpenSSH one-line format). */
  hostKeys: jsonb('host_keys').$type<string[]>().notNull().default([]),
  agentVersion: text('agent_version'),
  protocolVersion: integer('protocol_version'),
  enrolledAt: timestamp('enrolled_at', { withTimezone: true }).notNull().defaultNow(),
  lastSeenAt: timestamp('last_seen_at', { withTimezone: true }),
  revokedAt: timestamp('revoked_at', { withTimezone: true }),
  /** The admin's labels (key=value, libs/protocol labels.ts); never set by the agent. */
  labels: jsonb('labels').$type<Record<string, string>>().notNull().default({}),
  /** What the agent reports of its machine (OS, kernel, arch, target mode), sanitised; shown only. */
  facts: jsonb('facts').$type<Record<string, string>>().notNull().default({}),
});
