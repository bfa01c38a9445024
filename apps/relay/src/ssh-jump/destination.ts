/**
 * Where a direct-tcpip request (`ssh -J`, `ssh -W`) may go: a machine, by its name, on port 22.
 * Addresses, ports other than 22 and malformed requests are refused here (RLY_ERR_BAD_REQUEST), before
 * the session gate is asked: nothing is ever dialled, a name only picks an agent link. Whether the user
 * may reach the machine and whether it is enrolled and online is the gate's to decide (session/gate.ts),
 * with the same answers as on the HTTPS door.
 */
import { isValidHostName } from '@mssh/protocol';

/** A refusal carries the relay's wire code, sent to the client in the channel-open failure. */
export type DestinationDecision =
  { ok: true; host: string } | { ok: false; reason: string; code: 'RLY_ERR_BAD_REQUEST' };

export const JUMP_TARGET_PORT = 22;

/** `laptop`, `LAPTOP`, `laptop.mssh` -> `laptop`; anything else as given (lower-cased). */
export function destinationName(destHost: string): string {
  const s = destHost.trim().toLowerCase();
  return s.endsWith('.mssh') ? s.slice(0, -'.mssh'.length) : s;
}

export function decideDestination(destHost: unknown, destPort: unknown): DestinationDecision {
  if (typeof destHost !== 'string' || typeof destPort !== 'number')
    return { ok: false, reason: 'malformed request', code: 'RLY_ERR_BAD_REQUEST' };
  const name = destinationName(destHost);
  if (!isValidHostName(name))
    return { ok: false, reason: 'not a machine name (addresses are never dialled)', code: 'RLY_ERR_BAD_REQUEST' };
  if (destPort !== JUMP_TARGET_PORT)
    return { ok: false, reason: `port ${destPort}: only port 22 of an enrolled machine`, code: 'RLY_ERR_BAD_REQUEST' };
  return { ok: true, host: name };
}
