/**
 * What the fleet keeps in Postgres (migration 0006): the `relays` rows with their leases and the
 * `agent_presence` rows (which relay holds which agent). Every time comparison uses the database's clock
 * (now()), never a relay's own, so relays with skewed clocks still agree on whose lease has expired.
 */
import { sql } from 'drizzle-orm';
import type { FleetRelayInfo } from '@mssh/protocol';
import type { Db } from '../db/index.js';

export type RelayState = 'serving' | 'draining' | 'stopped' | 'lost';

/** A relay as `mssh admin relays` shows it. `state` is `lost` for a serving row whose lease has expired. */
export interface RelayInfo {
  id: string;
  peerUrl: string | null;
  publicUrl: string | null;
  version: string;
  pid: number | null;
  startedAt: Date;
  leaseUntil: Date;
  state: RelayState;
  stateAt: Date;
  agents: number;
  sessions: number;
}

/** A relay that holds a link of some agent, with what a peer needs to dial it. */
export interface Holder {
  relayId: string;
  peerUrl: string;
  peerFingerprint: string;
  /** The relay is draining: it asked its agents to move, so its row means "on the way to another relay". */
  draining: boolean;
}

export interface RegisterRelay {
  id: string;
  peerUrl: string | null;
  peerFingerprint: string | null;
  publicUrl: string | null;
  version: string;
  pid: number;
}

/** The wire form of a relays row (`self`: the relay that answers). */
export function toFleetRelayInfo(r: RelayInfo, selfId: string | null): FleetRelayInfo {
  return {
    id: r.id,
    peerUrl: r.peerUrl,
    publicUrl: r.publicUrl,
    version: r.version,
    pid: r.pid,
    startedAt: r.startedAt.toISOString(),
    leaseUntil: r.leaseUntil.toISOString(),
    state: r.state,
    agents: r.agents,
    sessions: r.sessions,
    self: r.id === selfId,
  };
}

const rowsOf = <T>(res: unknown): T[] => (res as { rows: T[] }).rows;
const ms = (n: number) => sql.raw(`interval '${Math.max(1, Math.round(n))} milliseconds'`);

export class FleetStore {
  constructor(
    private readonly db: Db,
    private readonly leaseMs: number,
  ) {}

  /** Insert or take over this relay's row: serving, a fresh lease. */
  async register(r: RegisterRelay): Promise<void> {
    await this.db
      .execute(sql`INSERT INTO relays (id, peer_url, peer_fingerprint, public_url, version, pid, started_at, lease_until, state, state_at)
      VALUES (${r.id}, ${r.peerUrl}, ${r.peerFingerprint}, ${r.publicUrl}, ${r.version}, ${r.pid}, now(), now() + ${ms(this.leaseMs)}, 'serving', now())
      ON CONFLICT (id) DO UPDATE SET peer_url = EXCLUDED.peer_url, peer_fingerprint = EXCLUDED.peer_fingerprint,
        public_url = EXCLUDED.public_url, version = EXCLUDED.version, pid = EXCLUDED.pid, started_at = now(),
        lease_until = EXCLUDED.lease_until, state = 'serving', state_at = now()`);
  }

  /**
   * Extend this relay's lease. 'lost' when the row is gone or another relay declared it lost (its lease
   * had expired): the caller must register again and rewrite its presence.
   */
  async renew(id: string): Promise<'ok' | 'lost'> {
    const rows = rowsOf<{ state: string }>(
      await this.db.execute(sql`UPDATE relays SET lease_until = now() + ${ms(this.leaseMs)}
        WHERE id = ${id} AND state IN ('serving', 'draining') RETURNING state`),
    );
    return rows.length === 1 ? 'ok' : 'lost';
  }

  async setState(id: string, state: RelayState): Promise<void> {
    await this.db.execute(sql`UPDATE relays SET state = ${state}, state_at = now() WHERE id = ${id}`);
  }

  /** This relay stopped cleanly: out of the fleet, and its presence rows gone with it. */
  async leave(id: string): Promise<void> {
    await this.db.execute(sql`WITH gone AS (DELETE FROM agent_presence WHERE relay_id = ${id} RETURNING 1)
      UPDATE relays SET state = 'stopped', state_at = now(), lease_until = now() WHERE id = ${id}`);
  }

  async addPresence(relayId: string, agentId: string, agentName: string): Promise<void> {
    await this.db.execute(sql`INSERT INTO agent_presence (agent_id, agent_name, relay_id, since)
      VALUES (${agentId}, ${agentName}, ${relayId}, now())
      ON CONFLICT (agent_id, relay_id) DO UPDATE SET agent_name = EXCLUDED.agent_name, since = now()`);
  }

  async removePresence(relayId: string, agentId: string): Promise<void> {
    await this.db.execute(sql`DELETE FROM agent_presence WHERE relay_id = ${relayId} AND agent_id = ${agentId}`);
  }

  /** Make this relay's presence rows exactly `agents` (after a database outage or a lost lease). */
  async replacePresence(relayId: string, agents: Array<{ id: string; name: string }>): Promise<void> {
    const rows = JSON.stringify(agents.map((a) => ({ agent_id: a.id, agent_name: a.name })));
    await this.db.execute(sql`WITH wanted AS (
        SELECT agent_id::uuid AS agent_id, agent_name FROM jsonb_to_recordset(${rows}::jsonb) AS v(agent_id text, agent_name text)),
      dropped AS (
        DELETE FROM agent_presence p WHERE p.relay_id = ${relayId} AND p.agent_id NOT IN (SELECT agent_id FROM wanted) RETURNING 1)
      INSERT INTO agent_presence (agent_id, agent_name, relay_id, since)
        SELECT w.agent_id, w.agent_name, ${relayId}, now() FROM wanted w JOIN agents a ON a.id = w.agent_id
      ON CONFLICT (agent_id, relay_id) DO UPDATE SET agent_name = EXCLUDED.agent_name`);
  }

  /**
   * The OTHER relays holding a link of this agent now, with a live lease and a peer address: serving
   * ones first, then the newest link first (after a failover the agent's new relay comes before a dead
   * one whose lease has not run out yet).
   */
  async holders(agentName: string, exceptRelayId: string): Promise<Holder[]> {
    const rows = rowsOf<{ relay_id: string; peer_url: string; peer_fingerprint: string; state: string }>(
      await this.db.execute(sql`SELECT p.relay_id, r.peer_url, r.peer_fingerprint, r.state
        FROM agent_presence p JOIN relays r ON r.id = p.relay_id
        WHERE p.agent_name = ${agentName} AND r.id <> ${exceptRelayId} AND r.state IN ('serving', 'draining')
          AND r.lease_until > now() AND r.peer_url IS NOT NULL AND r.peer_fingerprint IS NOT NULL
        ORDER BY (r.state = 'serving') DESC, p.since DESC
        LIMIT 8`),
    );
    return rows.map((r) => ({
      relayId: r.relay_id,
      peerUrl: r.peer_url,
      peerFingerprint: r.peer_fingerprint,
      draining: r.state === 'draining',
    }));
  }

  /** The member (live lease) presenting this peer certificate, or null: a non-member's link is refused. */
  async memberByFingerprint(fingerprint: string): Promise<string | null> {
    const rows = rowsOf<{ id: string }>(
      await this.db.execute(sql`SELECT id FROM relays
        WHERE peer_fingerprint = ${fingerprint} AND state IN ('serving', 'draining') AND lease_until > now()
        ORDER BY lease_until DESC LIMIT 1`),
    );
    return rows[0]?.id ?? null;
  }

  /** Names of agents held by a live relay (any relay, this one included). */
  async onlineNames(): Promise<string[]> {
    const rows = rowsOf<{ agent_name: string }>(
      await this.db.execute(sql`SELECT DISTINCT p.agent_name FROM agent_presence p JOIN relays r ON r.id = p.relay_id
        WHERE r.state IN ('serving', 'draining') AND r.lease_until > now()`),
    );
    return rows.map((r) => r.agent_name);
  }

  /**
   * Declare lost every relay whose lease expired more than graceMs ago, still marked serving or
   * draining, and drop its presence rows in the SAME statement: the row lock makes exactly one survivor win
   * each, and a relay that comes back (registers again, rewrites its presence) after the claim never has
   * its new rows deleted by a late second step. Returns what this call declared lost.
   */
  async claimLost(graceMs: number): Promise<Array<{ relayId: string; presenceDropped: number }>> {
    const rows = rowsOf<{ id: string; dropped: number | string }>(
      await this.db.execute(sql`WITH lost AS (
          UPDATE relays SET state = 'lost', state_at = now()
          WHERE state IN ('serving', 'draining') AND lease_until < now() - ${ms(graceMs)} RETURNING id),
        dropped AS (
          DELETE FROM agent_presence p USING lost WHERE p.relay_id = lost.id RETURNING p.relay_id)
        SELECT lost.id, (SELECT count(*) FROM dropped d WHERE d.relay_id = lost.id) AS dropped FROM lost`),
    );
    return rows.map((r) => ({ relayId: r.id, presenceDropped: Number(r.dropped) }));
  }

  /** Every relay row with its live counts: agents it holds, sessions it carries (open rows it entered). */
  async list(): Promise<RelayInfo[]> {
    type Row = {
      id: string;
      peer_url: string | null;
      public_url: string | null;
      version: string;
      pid: number | null;
      started_at: Date | string;
      lease_until: Date | string;
      state: RelayState;
      state_at: Date | string;
      expired: boolean;
      agents: number | string;
      sessions: number | string;
    };
    const rows = rowsOf<Row>(
      await this.db.execute(sql`SELECT r.id, r.peer_url, r.public_url, r.version, r.pid, r.started_at, r.lease_until,
          r.state, r.state_at, r.lease_until < now() AS expired,
          (SELECT count(*) FROM agent_presence p WHERE p.relay_id = r.id) AS agents,
          (SELECT count(*) FROM sessions s WHERE s.relay_id = r.id AND s.ended_at IS NULL) AS sessions
        FROM relays r ORDER BY r.started_at DESC`),
    );
    return rows.map((r) => ({
      id: r.id,
      peerUrl: r.peer_url,
      publicUrl: r.public_url,
      version: r.version,
      pid: r.pid,
      startedAt: new Date(r.started_at),
      leaseUntil: new Date(r.lease_until),
      state: (r.state === 'serving' || r.state === 'draining') && r.expired ? 'lost' : r.state,
      stateAt: new Date(r.state_at),
      agents: Number(r.agents),
      sessions: Number(r.sessions),
    }));
  }
}
