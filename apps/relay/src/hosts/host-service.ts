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
  constructor(private readonly deps: { agents: AgentRepository; router: TunnelRouter; staleAfterMs?: number; clock?: () => Date }) {}

  private get staleAfterMs(): number {
    return this.deps.staleAfterMs ?? DEFAULT_STALE_AFTER_MS;
  }

  private now(): Date {
    return this.deps.clock?.() ?? new Date();
  }

  async list(): Promise<HostInfo[]> {
    return (await this.deps.agents.list()).map((a) => this.info(a));
  }

  /** RLY_ERR_UNKNOWN_HOST unless an agent (not revoked) is enrolled under this name. */
  async get(name: string): Promise<HostInfo> {
    const a = await this.deps.agents.findByName(name);
    if (!a || a.revokedAt) throw relayError('RLY_ERR_UNKNOWN_HOST', `no machine named "${name}" is enrolled; see mssh ls`);
    return this.info(a);
  }

  exists(name: string): Promise<boolean> {
    return this.deps.agents.exists(name);
  }

  /** Counts only: no names. */
  async health(): Promise<Health> {
    return {
      status: 'ok',
      agentsOnline: this.deps.router.onlineNames().length,
      agentsEnrolled: await this.deps.agents.countEnrolled(),
      activeSessions: this.deps.router.activeSessions(),
      agentsStale: await this.deps.agents.countStale(new Date(this.now().getTime() - this.staleAfterMs)),
    };
  }

  private info(a: AgentRecord): HostInfo {
    const keys: string[] = [];
    const fps: string[] = [];
    for (const line of a.hostKeys) {
      const fp = fingerprintKeyLine(line);
      if (fp) {
        keys.push(line);
        fps.push(fp);
      }
    }
    const online = this.deps.router.isOnline(a.name);
    return {
      name: a.name,
      online,
      lastSeen: a.lastSeenAt ? a.lastSeenAt.toISOString() : null,
      hostKeys: keys,
      hostKeyFingerprints: fps,
      agentVersion: a.agentVersion,
      protocolVersion: a.protocolVersion,
      stale: !online && isStale(a, this.now(), this.staleAfterMs),
    };
  }
}
