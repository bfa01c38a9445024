import { pgTable, text, timestamp, integer, uuid, primaryKey, index } from 'drizzle-orm/pg-core';
import { agents } from './agents.js';

/**
 * The relays of a fleet sharing this database (docs/fleet.md). Each relay upserts its row at start and
 * keeps `lease_until` in the future (a heartbeat); a relay whose lease has expired is out of the fleet:
 * a survivor marks it `lost`, closes its open sessions as relay_crashed and drops its presence rows.
 */
export const relays = pgTable('relays', {
  /** The relay's stable id (<data-dir>/relay-id). */
  id: text('id').primaryKey(),
  /** Where its peers dial it (https://HOST:PORT of --peer-listen / --peer-url); null: no peer listener. */
  peerUrl: text('peer_url'),
  /** SHA-256 fingerprint of its peer certificate: the pin its peers check, both ways (mutual TLS). */
  peerFingerprint: text('peer_fingerprint'),
  /** The URL clients and agents use (the balancer's name behind a balancer). */
  publicUrl: text('public_url'),
  version: text('version').notNull(),
  pid: integer('pid'),
  startedAt: timestamp('started_at', { withTimezone: true }).notNull().defaultNow(),
  leaseUntil: timestamp('lease_until', { withTimezone: true }).notNull(),
  /** serving | draining | stopped | lost */
  state: text('state').notNull().default('serving'),
  /** When the row last changed state (stopped or lost: when it left the fleet). */
  stateAt: timestamp('state_at', { withTimezone: true }).notNull().defaultNow(),
});

/**
 * Which relay holds a link of which agent, right now: one row per (agent, relay); an agent with
 * `--links 2` has two. Written by the holding relay when the link is verified, deleted when it ends; rows
 * of a relay whose lease expired are ignored at once and deleted by the survivor that declares it lost.
 */
export const agentPresence = pgTable(
  'agent_presence',
  {
    agentId: uuid('agent_id')
      .notNull()
      .references(() => agents.id, { onDelete: 'cascade' }),
    agentName: text('agent_name').notNull(),
    relayId: text('relay_id')
      .notNull()
      .references(() => relays.id, { onDelete: 'cascade' }),
    since: timestamp('since', { withTimezone: true }).notNull().defaultNow(),
  },
  (t) => [primaryKey({ columns: [t.agentId, t.relayId] }), index('agent_presence_name_idx').on(t.agentName)],
);
