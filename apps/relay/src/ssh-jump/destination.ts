/**
 * Where a direct-tcpip request (`ssh -J`, `ssh -W`) may go: only an enrolled machine, by its name, that
 * the user may reach, on port 22. Nothing is ever dialled: the name picks an agent link. Addresses,
 * localhost, the relay itself and unknown or unreachable names are all refused with the same answer, so
 * the listener does not reveal which names exist.
 */
import { isValidHostName } from '@mssh/protocol';
import type { AccessService, JumpUser } from './seams.js';

/** A refusal carries the relay's wire code, sent to the client in the channel-open failure. */
export type DestinationDecision = { ok: true; host: string } | { ok: false; reason: string; code: 'RLY_ERR_BAD_REQUEST' | 'RLY_ERR_NO_GRANT' };

export const JUMP_TARGET_PORT = 22;

/** `laptop`, `LAPTOP`, `laptop.mssh` -> `laptop`; anything else as given (lower-cased). */
export function destinationName(destHost: string): string {
  const s = destHost.trim().toLowerCase();
  return s.endsWith('.mssh') ? s.slice(0, -'.mssh'.length) : s;
}

export async function decideDestination(
  deps: { hostExists(name: string): Promise<boolean>; access: AccessService },
  user: JumpUser,
  destHost: unknown,
  destPort: unknown,
): Promise<DestinationDecision> {
  if (typeof destHost !== 'string' || typeof destPort !== 'number') return { ok: false, reason: 'malformed request', code: 'RLY_ERR_BAD_REQUEST' };
  const name = destinationName(destHost);
  if (!isValidHostName(name)) return { ok: false, reason: 'not a machine name (addresses are never dialled)', code: 'RLY_ERR_BAD_REQUEST' };
  if (destPort !== JUMP_TARGET_PORT) return { ok: false, reason: `port ${destPort}: only port 22 of an enrolled machine`, code: 'RLY_ERR_BAD_REQUEST' };
  if (!(await deps.hostExists(name)) || !(await deps.access.canReach(user, name))) {
    return { ok: false, reason: 'no enrolled machine of that name that this user may reach', code: 'RLY_ERR_NO_GRANT' };
  }
  return { ok: true, host: name };
}
