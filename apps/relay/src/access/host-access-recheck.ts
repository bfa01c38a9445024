/**
 * A machine's labels changed: the running sessions to it on this relay whose user no longer has a grant
 * matching it end now, recorded with reason grant_revoked (the client is told so in the tunnel's reset
 * code). Each relay of a fleet runs this for its own sessions (fleet news 'host-access-changed').
 *
 *   admin: agents label web-1 env=prod -> recheck('web-1') -> for each user with a live session there:
 *     access.canReach(user as stored now, 'web-1')? keep : router.closeSessionsOfUserOn(user, host)
 */
import type { Logger } from 'pino';
import type { UserRepository } from '../db/index.js';
import type { TunnelRouter } from '../tunnel/types.js';
import type { AccessService } from './access-service.js';

export type HostAccessRecheck = (host: string) => Promise<number>;

export function createHostAccessRecheck(deps: {
  router: Pick<TunnelRouter, 'sessionsOn' | 'closeSessionsOfUserOn'>;
  users: Pick<UserRepository, 'findByName'>;
  access: Pick<AccessService, 'canReach'>;
  logger?: Logger;
}): HostAccessRecheck {
  return async (host) => {
    const { router } = deps;
    if (!router.sessionsOn || !router.closeSessionsOfUserOn) return 0;
    const users = [...new Set(router.sessionsOn(host).map((s) => s.user))];
    let ended = 0;
    for (const name of users) {
      const u = await deps.users.findByName(name);
      const allowed = u ? await deps.access.canReach({ name, admin: u.isAdmin, role: u.role }, host) : false;
      if (allowed) continue;
      const n = router.closeSessionsOfUserOn(name, host, 'grant_revoked');
      deps.logger?.info({ user: name, host, sessions: n }, 'no grant matches the relabelled machine any more');
      ended += n;
    }
    return ended;
  };
}
