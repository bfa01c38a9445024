import { fingerprintKeyLine, type HostInfo } from '@mssh/protocol';
import type { AgentRecord, AgentRepository } from '../db/index.js';
import type { TunnelRouter } from '../tunnel/types.js';
import { relayError } from '../errors.js';
import { DEFAULT_STALE_AFTER_MS, isStale } from './staleness.js';

export interface Health {
  status: 'ok';
  agentsOnline: number;
  agentsEnrolled: number;
  activeSessions: number;
  /** Enrolled machines not seen for longer than --stale-after. */
  agentsStale: number;
}

/** What users see of enrolled machines: name, online, last seen, attested host keys. */
export class HostService {
  /** The database counts of the last /healthz, and when they were read (see health()). */
  private counts: { at: number; value: Promise<{ enrolled: number; stale: number }> } | null = null;

  constructor(
    private readonly deps: {
      agents: AgentRepository;
      router: TunnelRouter;
      staleAfterMs?: number;
      clock?: () => Date;
      healthCountsTtlMs?: number;
      /** In a fleet: the machines online through any relay (fleet/fleet.ts onlineNames). */
      fleetOnline?: () => Promise<Set<string>>;
    },
  ) {}

  private get staleAfterMs(): number {
    return this.deps.staleAfterMs ?? DEFAULT_STALE_AFTER_MS;
  }

  private now(): Date {
    return this.deps.clock?.() ?? new Date();
  }

  async list(): Promise<HostInfo[]> {
    const [agents, fleet] = await Promise.all([this.deps.agents.list(), this.deps.fleetOnline?.()]);
    return agents.map((a) => this.info(a, fleet));
  }

  /** RLY_ERR_UNKNOWN_HOST unless an agent (not revoked) is enrolled under this name. */
  async get(name: string): Promise<HostInfo> {
    const a = await this.deps.agents.findByName(name);
    if (!a || a.revokedAt)
      throw relayError('RLY_ERR_UNKNOWN_HOST', `no machine named "${name}" is enrolled; see mssh ls`);
    return this.info(a, await this.deps.fleetOnline?.());
  }

  exists(name: string): Promise<boolean> {
    return this.deps.agents.exists(name);
  }

  /** Counts only: no names. */
  /**
   * /healthz is unauthenticated: the two database counts in it are read at most once per
   * healthCountsTtlMs (default 500 ms) and shared by every request in between, so that a flood of
   * /healthz costs no database work (on the embedded PGlite a query runs on the relay's event loop and
   * would delay every session). The in-memory counts (online, sessions) are always current.
   */
  async health(): Promise<Health> {
    const ttl = this.deps.healthCountsTtlMs ?? 500;
    const t = performance.now();
    if (!this.counts || t - this.counts.at >= ttl) {
      const value = (async () => ({
        enrolled: await this.deps.agents.countEnrolled(),
        stale: await this.deps.agents.countStale(new Date(this.now().getTime() - this.staleAfterMs)),
      }))();
      const entry = { at: t, value };
      this.counts = entry;
      // A failed read is not kept: the next request tries again.
      value.catch(() => {
        if (this.counts === entry) this.counts = null;
      });
    }
    const { enrolled, stale } = await this.counts.value;
    return {
      status: 'ok',
      agentsOnline: this.deps.router.onlineNames().length,
      agentsEnrolled: enrolled,
      activeSessions: this.deps.router.activeSessions(),
      agentsStale: stale,
    };
  }

  private info(a: AgentRecord, fleetOnline?: Set<string>): HostInfo {
    const keys: string[] = [];
    const fps: string[] = [];
    for (const line of a.hostKeys) {
      const fp = fingerprintKeyLine(line);
      if (fp) {
        keys.push(line);
        fps.push(fp);
      }
    }
    const online = this.deps.router.isOnline(a.name) || (fleetOnline?.has(a.name) ?? false);
    return {
      name: a.name,
      online,
      lastSeen: a.lastSeenAt ? a.lastSeenAt.toISOString() : null,
      hostKeys: keys,
      hostKeyFingerprints: fps,
      agentVersion: a.agentVersion,
      protocolVersion: a.protocolVersion,
      stale: !online && isStale(a, this.now(), this.staleAfterMs),
      labels: a.labels ?? {},
      facts: a.facts ?? {},
    };
  }
}
