/**
 * What the jump listener needs from the rest of the relay, as narrow injected interfaces. main.ts wires
 * them to the same parts the HTTPS tunnel uses: the grants (access/), the router's session caps, and the
 * audit session-start gate (audit/session-recorder.ts).
 */

import type { RecordedSession } from '../tunnel/types.js';

/** An authenticated mssh user as access rules see it. */
export interface JumpUser {
  name: string;
  admin: boolean;
  role: string | null;
}

/** Who may reach which machine (the grants service implements it). */
export interface AccessService {
  /** ctx.source: the SSH client's address (for the audit row of a refusal). */
  canReach(user: JumpUser, host: string, ctx?: { source: string | null }): Promise<boolean>;
  filterReachable<T extends { name: string }>(user: JumpUser, hosts: T[]): Promise<T[]>;
}

/** Session admission caps / rate limits. `release` is called once the session ends. */
export interface SessionCaps {
  acquire(e: { user: string; host: string; source: string | null; via: 'jump' }): Promise<{ ok: true; release(): void } | { ok: false; message: string }>;
}

/** Records a session before its first byte moves; a rejection refuses the session. */
export interface SessionRecorder {
  start(e: { sessionId: string; user: string; host: string; source: string | null; via: 'jump' }): Promise<RecordedSession>;
}

/** For tests of the listener alone: every user reaches every enrolled machine. */
export const REACH_EVERY_ENROLLED_HOST: AccessService = {
  canReach: async () => true,
  filterReachable: async (_user, hosts) => hosts,
};

/** For tests of the listener alone: no session caps. */
export const NO_CAPS: SessionCaps = {
  acquire: async () => ({ ok: true, release: () => undefined }),
};

