/**
 * Who may reach which machine. Admins reach everything; every other user reaches only the hosts matched
 * by a grant to them or to their role (`mssh admin grant`): a name glob, or a label selector whose every
 * key=value pair the machine carries (`--labels env=staging,role=web`). Labels are the admin's; the
 * facts an agent reports are never matched. Decided from the database at each use, so a revoked grant
 * (or a relabelled machine) applies to the next session at once.
 *
 * Cost: ONE query per decision (the user's and role's grants together), plus one for the machine's
 * labels only when a label grant exists and no name glob matched. filterReachable reads labels from the
 * host list it is given. The HTTPS tunnel route and the SSH jump listener call exactly canReach() and
 * filterReachable().
 */
import { matchesSelector, parseSelector, type Labels } from '@mssh/protocol';
import type { AgentRepository, GrantRepository } from '../db/index.js';
import { matchesAny } from './glob.js';

/** The caller as authentication loaded it. */
export interface AccessSubject {
  name: string;
  admin: boolean;
  role: string | null;
}

function selectorsOf(texts: readonly string[]): Labels[] {
  const out: Labels[] = [];
  for (const t of texts) {
    try {
      out.push(parseSelector(t));
    } catch {
      // a stored selector that no longer parses matches nothing
    }
  }
  return out;
}

/** Does a name glob or a label selector of the rules match this host? */
export function rulesMatch(
  rules: { patterns: readonly string[]; selectors: readonly Labels[] },
  host: { name: string; labels?: Labels },
): boolean {
  if (matchesAny(rules.patterns, host.name)) return true;
  const labels = host.labels ?? {};
  return rules.selectors.some((s) => matchesSelector(labels, s));
}

export class AccessService {
  constructor(
    private readonly deps: {
      grants: Pick<GrantRepository, 'rulesFor'>;
      agents?: Pick<AgentRepository, 'labelsOf'>;
    },
  ) {}

  async canReach(user: AccessSubject, host: string): Promise<boolean> {
    if (user.admin) return true;
    const rules = await this.deps.grants.rulesFor(user.name, user.role);
    if (matchesAny(rules.patterns, host)) return true;
    const selectors = selectorsOf(rules.selectors);
    if (selectors.length === 0 || !this.deps.agents) return false;
    const labels = await this.deps.agents.labelsOf(host);
    if (!labels) return false;
    return selectors.some((s) => matchesSelector(labels, s));
  }

  /** The hosts (anything with a `name` and its `labels`) this user may reach, in the given order. One query at most. */
  async filterReachable<T extends { name: string; labels?: Labels }>(
    user: AccessSubject,
    hosts: readonly T[],
  ): Promise<T[]> {
    if (user.admin) return [...hosts];
    if (hosts.length === 0) return [];
    const rules = await this.deps.grants.rulesFor(user.name, user.role);
    const compiled = { patterns: rules.patterns, selectors: selectorsOf(rules.selectors) };
    return hosts.filter((h) => rulesMatch(compiled, h));
  }
}
