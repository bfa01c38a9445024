/**
 * A machine's labels changed, or a grant was removed: the running sessions (to that machine, or to any)
 * on this relay whose user no longer has a grant matching the machine end now, recorded with reason
 * grant_revoked (the client is told so in the tunnel's reset code). Each relay of a fleet runs this for
 * its own sessions (fleet news 'host-access-changed', 'grants-changed').
 *
 *   admin: agents label web-1 env=prod -> recheck('web-1') -> for each user with a live session there:
 *     access.canReach(user as stored now, 'web-1')? keep : router.closeSessionsOfUserOn(user, host)
 */
import type { Logger } from 'pino';
import type { UserRepository } from '../db/index.js';
import type { TunnelRouter } from '../tunnel/types.js';
import type { AccessService } from './access-service.js';

/** Recheck the live sessions to one machine, or (host null) to every machine: how many ended. */
export type HostAccessRecheck = (host: string | null) => Promise<number>;

export function createHostAccessRecheck(deps: {
  router: Pick<TunnelRouter, 'sessionsOn' | 'closeSessionsOfUserOn' | 'hostsWithSessions' | 'noteAccessChange'>;
  users: Pick<UserRepository, 'findByName'>;
  access: Pick<AccessService, 'canReach'>;
  logger?: Logger;
}): HostAccessRecheck {
  return async (only) => {
    const { router } = deps;
    if (!router.sessionsOn || !router.closeSessionsOfUserOn) return 0;
    // First: a session still being set up (its access checked before now) is checked again once live.
    router.noteAccessChange?.();
    const hosts = only !== null ? [only] : (router.hostsWithSessions?.() ?? []);
    const found = new Map<string, Awaited<ReturnType<UserRepository['findByName']>>>();
    let ended = 0;
    for (const host of hosts) {
      for (const name of new Set(router.sessionsOn(host).map((s) => s.user))) {
        if (!found.has(name)) found.set(name, await deps.users.findByName(name));
        const u = found.get(name);
        const allowed = u ? await deps.access.canReach({ name, admin: u.isAdmin, role: u.role }, host) : false;
        if (allowed) continue;
        const n = router.closeSessionsOfUserOn(name, host, 'grant_revoked');
        deps.logger?.info({ user: name, host, sessions: n }, 'no grant matches the machine any more');
        ended += n;
      }
    }
    return ended;
  };
}
