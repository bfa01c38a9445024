import { and, asc, count, eq, isNotNull, isNull, lt, or } from 'drizzle-orm';
import { agents } from '@mssh/migrations';
import type { Db } from './database.js';
import type { AgentDirectory, EnrolledAgent } from '../tunnel/types.js';

export interface AgentRecord {
  id: string;
  name: string;
  publicKey: string;
  hostKeys: string[];
  agentVersion: string | null;
  protocolVersion: number | null;
  enrolledAt: Date;
  lastSeenAt: Date | null;
  revokedAt: Date | null;
  labels: Record<string, string>;
  facts: Record<string, string>;
}

export interface NewAgent {
  name: string;
  publicKey: string;
  hostKeys: string[];
  agentVersion: string;
  protocolVersion: number;
  labels?: Record<string, string>;
}

export type CreateAgentResult = { ok: true; agent: AgentRecord } | { ok: false; conflict: 'name' | 'publicKey' };

/** Enrolled agents. Also the tunnel's AgentDirectory. */
export class AgentRepository implements AgentDirectory {
  constructor(private readonly db: Db) {}

  async findByPublicKey(publicKey: string): Promise<EnrolledAgent | null> {
    const rows = await this.db
      .select({ id: agents.id, name: agents.name, publicKey: agents.publicKey, revokedAt: agents.revokedAt })
      .from(agents)
      .where(eq(agents.publicKey, publicKey))
      .limit(1);
    return rows[0] ?? null;
  }

  async markConnected(
    id: string,
    info: {
      hostKeys: string[];
      agentVersion: string;
      protocolVersion: number;
      at: Date;
      /** Sanitised by the caller; absent (older agent) leaves the stored facts alone. */
      facts?: Record<string, string>;
    },
  ): Promise<void> {
    await this.db
      .update(agents)
      .set({
        hostKeys: info.hostKeys,
        agentVersion: info.agentVersion,
        protocolVersion: info.protocolVersion,
        lastSeenAt: info.at,
        ...(info.facts ? { facts: info.facts } : {}),
      })
      .where(eq(agents.id, id));
  }

  /** Replace the labels of the (not revoked) machine; the row as it was before, or null when there is none. */
  async setLabels(name: string, labels: Record<string, string>): Promise<AgentRecord | null> {
    return this.db.transaction(async (tx) => {
      const rows = await tx
        .select()
        .from(agents)
        .where(and(eq(agents.name, name), isNull(agents.revokedAt)))
        .for('update')
        .limit(1);
      const before = rows[0];
      if (!before) return null;
      await tx.update(agents).set({ labels }).where(eq(agents.id, before.id));
      return before;
    });
  }

  /** The labels of the (not revoked) machine, or null when none is enrolled under the name. */
  async labelsOf(name: string): Promise<Record<string, string> | null> {
    const rows = await this.db
      .select({ labels: agents.labels })
      .from(agents)
      .where(and(eq(agents.name, name), isNull(agents.revokedAt)))
      .limit(1);
    return rows[0]?.labels ?? null;
  }

  async updateHostKeys(id: string, hostKeys: string[]): Promise<void> {
    await this.db.update(agents).set({ hostKeys }).where(eq(agents.id, id));
  }

  async markSeen(id: string, at: Date): Promise<void> {
    await this.db.update(agents).set({ lastSeenAt: at }).where(eq(agents.id, id));
  }

  /** Insert an agent (optionally inside a transaction); reports which unique value is taken instead of throwing. */
  async create(a: NewAgent, tx: Db = this.db): Promise<CreateAgentResult> {
    const rows = await tx.insert(agents).values(a).onConflictDoNothing().returning();
    const agent = rows[0];
    if (agent) return { ok: true, agent };
    const byName = await tx.select({ id: agents.id }).from(agents).where(eq(agents.name, a.name)).limit(1);
    return { ok: false, conflict: byName.length > 0 ? 'name' : 'publicKey' };
  }

  /** Every agent, revoked ones too, by name (admin listing). */
  async listAll(): Promise<AgentRecord[]> {
    return this.db.select().from(agents).orderBy(asc(agents.name));
  }

  /** Mark the agent revoked (idempotent: an earlier revocation time is kept). Null when there is no such agent. */
  async revoke(name: string, at: Date): Promise<AgentRecord | null> {
    const rows = await this.db
      .update(agents)
      .set({ revokedAt: at })
      .where(and(eq(agents.name, name), isNull(agents.revokedAt)))
      .returning();
    return rows[0] ?? (await this.findByName(name));
  }

  /** Delete the agent row (revoked or not); the name can then be enrolled afresh. False when there was none. */
  async forget(name: string, tx: Db = this.db): Promise<boolean> {
    const rows = await tx.delete(agents).where(eq(agents.name, name)).returning({ id: agents.id });
    return rows.length > 0;
  }

  /** Delete the row of a revoked agent with this name (re-enrolment of a revoked name). */
  async forgetRevoked(name: string, tx: Db = this.db): Promise<boolean> {
    const rows = await tx
      .delete(agents)
      .where(and(eq(agents.name, name), isNotNull(agents.revokedAt)))
      .returning({ id: agents.id });
    return rows.length > 0;
  }

  /** Enrolled (not revoked) agents not seen since `before` (or never seen and enrolled before it). */
  async countStale(before: Date): Promise<number> {
    const [row] = await this.db
      .select({ n: count() })
      .from(agents)
      .where(
        and(
          isNull(agents.revokedAt),
          or(lt(agents.lastSeenAt, before), and(isNull(agents.lastSeenAt), lt(agents.enrolledAt, before))),
        ),
      );
    return row?.n ?? 0;
  }

  /** Agents that are not revoked, by name. */
  async list(): Promise<AgentRecord[]> {
    return this.db.select().from(agents).where(isNull(agents.revokedAt)).orderBy(asc(agents.name));
  }

  /** The agent with this name, revoked or not. */
  async findByName(name: string): Promise<AgentRecord | null> {
    const rows = await this.db.select().from(agents).where(eq(agents.name, name)).limit(1);
    return rows[0] ?? null;
  }

  /** Is a non-revoked agent enrolled under this name? */
  async exists(name: string): Promise<boolean> {
    const rows = await this.db
      .select({ id: agents.id })
      .from(agents)
      .where(and(eq(agents.name, name), isNull(agents.revokedAt)))
      .limit(1);
    return rows.length > 0;
  }

  async countEnrolled(): Promise<number> {
    const [row] = await this.db.select({ n: count() }).from(agents).where(isNull(agents.revokedAt));
    return row?.n ?? 0;
  }
}
