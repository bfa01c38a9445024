/**
 * Names OpenSSH hands to `mssh proxy` and `mssh known-hosts openssh`, and the login id the generated ssh
 * config carries (commands/ssh-config.ts). Small on purpose: the lean entry (lean-main.ts) loads it.
 */
import { createHash } from 'node:crypto';
import { isValidHostName } from '@mssh/protocol';
import { cliError } from '../errors.js';

export const MSSH_DOMAIN = 'mssh';

/**
 * The machine name in what OpenSSH hands us: `laptop.mssh`, `[laptop.mssh]:2222` (known_hosts form for
 * another port) or plain `laptop`; lower-cased, the `.mssh` suffix dropped.
 */
export function machineNameOf(arg: string): string {
  let s = arg.trim().toLowerCase();
  const m = /^\[([^\]]*)\](?::\d+)?$/.exec(s);
  if (m) s = m[1]!;
  if (s.endsWith(`.${MSSH_DOMAIN}`)) s = s.slice(0, -(MSSH_DOMAIN.length + 1));
  return s;
}

/**
 * The id of an mssh login (relay URL and user name): 12 hex digits of a SHA-256. The generated ssh config
 * puts it in ControlPath, so OpenSSH's (and Ansible's) shared connections of two logins never mix, and
 * hands it to `mssh proxy --login-id`, which refuses to run for any other login.
 */
export function loginIdOf(relayUrl: string, user: string | undefined): string {
  return createHash('sha256')
    .update(`${relayUrl}\n${user ?? ''}`)
    .digest('hex')
    .slice(0, 12);
}

export const LOGIN_ID_RE = /^[0-9a-f]{12}$/;

export function assertHostName(host: string): void {
  if (!isValidHostName(host)) {
    throw cliError(
      'CLI_ERR_BAD_HOST_NAME',
      `${JSON.stringify(host.slice(0, 100))} is not a machine name`,
      'Machines are reached by their enrolled name (1-63 characters of a-z, 0-9 and -), never by address; run `mssh ls` to see them.',
    );
  }
}
