/**
 * Session caps: how many sessions one user, one agent and the whole relay may have open at once.
 * A slot is taken before a session stream is opened and given back exactly once when it ends; a cap
 * reached refuses the new session only (429/503 with a code), never one already running.
 *
 *   take(user, agent) --over a cap--> RelayError RLY_ERR_{USER,AGENT,RELAY}_SESSION_LIMIT
 *                     --ok---------> release()  (idempotent)
 */
import { relayError } from '../errors.js';

export interface SessionCapLimits {
  /** Open sessions per mssh user (default 64). */
  maxSessionsPerUser: number;
  /** Open sessions per agent (default 256). */
  maxSessionsPerAgent: number;
  /** Open sessions on this relay (default 4096). */
  maxSessions: number;
}

export const DEFAULT_SESSION_CAPS: SessionCapLimits = {
  maxSessionsPerUser: 64,
  maxSessionsPerAgent: 256,
  maxSessions: 4096,
};

/**
 * Which caps a session counts against on this relay. In a fleet a session crosses two relays and each
 * cap applies exactly once: the relay the client entered counts the user and relay caps (`entry`), the
 * relay holding the agent's link counts the agent cap (`holding`); a session that stays on one relay
 * counts all three (`local`).
 */
export type CapScope = 'local' | 'entry' | 'holding';

export class SessionCaps {
  private readonly byUser = new Map<string, number>();
  private readonly byAgent = new Map<string, number>();
  private total = 0;
  readonly limits: SessionCapLimits;

  constructor(limits: Partial<SessionCapLimits> = {}) {
    this.limits = { ...DEFAULT_SESSION_CAPS, ...limits };
  }

  count(q: { user?: string; agent?: string } = {}): number {
    if (q.user !== undefined) return this.byUser.get(q.user) ?? 0;
    if (q.agent !== undefined) return this.byAgent.get(q.agent) ?? 0;
    return this.total;
  }

  /** Throws the cap's RelayError when one is reached now; takes nothing (a refusal before any work). */
  check(user: string, agent: string, scope: CapScope = 'local'): void {
    const { maxSessions, maxSessionsPerUser, maxSessionsPerAgent } = this.limits;
    const userCaps = scope !== 'holding';
    const agentCap = scope !== 'entry';
    if (userCaps && this.total >= maxSessions) {
      throw relayError(
        'RLY_ERR_RELAY_SESSION_LIMIT',
        `the relay already carries ${maxSessions} sessions (--max-sessions); try again later`,
      );
    }
    if (userCaps && (this.byUser.get(user) ?? 0) >= maxSessionsPerUser) {
      throw relayError(
        'RLY_ERR_USER_SESSION_LIMIT',
        `${user} already has ${maxSessionsPerUser} sessions open (--max-sessions-per-user); close one first`,
      );
    }
    if (agentCap && (this.byAgent.get(agent) ?? 0) >= maxSessionsPerAgent) {
      throw relayError(
        'RLY_ERR_AGENT_SESSION_LIMIT',
        `${agent} already has ${maxSessionsPerAgent} sessions open (--max-sessions-per-agent); close one first`,
      );
    }
  }

  /** Throws the cap's RelayError when one is reached; else holds a slot until release() is called. */
  take(user: string, agent: string, scope: CapScope = 'local'): () => void {
    this.check(user, agent, scope);
    const userCaps = scope !== 'holding';
    const agentCap = scope !== 'entry';
    if (userCaps) {
      this.total++;
      bump(this.byUser, user, 1);
    }
    if (agentCap) bump(this.byAgent, agent, 1);
    let released = false;
    return () => {
      if (released) return;
      released = true;
      if (userCaps) {
        this.total--;
        bump(this.byUser, user, -1);
      }
      if (agentCap) bump(this.byAgent, agent, -1);
    };
  }
}

function bump(m: Map<string, number>, k: string, d: number): void {
  const n = (m.get(k) ?? 0) + d;
  if (n <= 0) m.delete(k);
  else m.set(k, n);
}
