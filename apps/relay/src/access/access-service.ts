/**
 * Who may reach which machine. Admins reach everything; every other user reaches only the hosts matched
 * by a grant to them or to their role (`mssh admin grant`). Decided from the database at each use, so a
 * revoked grant applies to the next session at once.
 *
 * Cost: at most ONE query per decision (the user's and role's patterns together); the caller passes the
 * user row it already loaded while authenticating. The HTTPS tunnel route and the SSH jump listener call
 * exactly canReach() and filterReachable().
 */
import type { GrantRepository } from '../db/index.js';
import { matchesAny } from './glob.js';

/** The caller as authentication loaded it. */
export interface AccessSubject {
  name: string;
  admin: boolean;
  role: string | null;
}

export class AccessService {
  constructor(private readonly deps: { grants: Pick<GrantRepository, 'patternsFor'> }) {}

  async canReach(user: AccessSubject, host: string): Promise<boolean> {
    if (user.admin) return true;
    return matchesAny(await this.deps.grants.patternsFor(user.name, user.role), host);
  }

  /** The hosts (anything with a `name`) this user may reach, in the given order. One query at most. */
  async filterReachable<T extends { name: string }>(user: AccessSubject, hosts: readonly T[]): Promise<T[]> {
    if (user.admin) return [...hosts];
    if (hosts.length === 0) return [];
    const patterns = await this.deps.grants.patternsFor(user.name, user.role);
    return hosts.filter((h) => matchesAny(patterns, h.name));
  }
}
