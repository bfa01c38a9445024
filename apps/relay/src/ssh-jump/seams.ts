/**
 * What the jump listener needs from the rest of the relay besides the session gate (session/gate.ts),
 * as narrow injected interfaces: the authenticated user, and which machines a shell request lists.
 */

/** An authenticated mssh user as access rules see it. */
export interface JumpUser {
  name: string;
  admin: boolean;
  role: string | null;
}

/** Which of the machines a user may reach (the grants service implements it), for the shell's list. */
export interface MachineFilter {
  filterReachable<T extends { name: string }>(user: JumpUser, hosts: T[]): Promise<T[]>;
}

/** For tests of the listener alone: every user's list shows every enrolled machine. */
export const LIST_EVERY_MACHINE: MachineFilter = {
  filterReachable: async (_user, hosts) => hosts,
};
