/**
 * The part of `mssh known-hosts openssh` (OpenSSH's KnownHostsCommand) that needs no relay: a machine
 * whose keys are pinned is answered from known_hosts alone. That is every connection after the first,
 * and the lean entry (lean-main.ts) answers it without loading the rest of mssh; a machine with nothing
 * pinned goes on to the relay (known-hosts.ts).
 */
import { keyLineFromBlob } from '@mssh/protocol';
import { cliError } from '../errors.js';
import { hostKeyRefusal } from '../known-hosts/host-key-policy.js';
import { assertHostName, machineNameOf } from '../ssh/openssh-names.js';
import type { CliContext } from './context.js';

export interface OpensshKeyQuery {
  /** The host field as OpenSSH gave it (`laptop.mssh`, `[laptop.mssh]:2222`): the lines must carry it. */
  field: string;
  /** The machine name. */
  name: string;
  /** TYPE KEY were given (a block of this mssh; an older one passes the host only). */
  withKey: boolean;
  /** The key the server presented; null before the key exchange (NONE NONE) or without TYPE KEY. */
  presented: Buffer | null;
}

export function parseOpensshQuery(args: { host: string; keyType?: string; key?: string }): OpensshKeyQuery {
  const field = args.host.trim();
  if (!/^[\x21-\x7e]+$/.test(field) || field.includes(','))
    throw cliError(
      'CLI_ERR_USAGE',
      `${JSON.stringify(field.slice(0, 100))} is not a host name`,
      'Usage: mssh known-hosts openssh HOST [TYPE KEY] (from ssh_config: KnownHostsCommand mssh known-hosts openssh %H %t %K)',
    );
  const name = machineNameOf(field);
  assertHostName(name);
  const withKey = args.keyType !== undefined;
  const presented =
    withKey && args.keyType !== 'NONE' && args.key && args.key !== 'NONE' ? Buffer.from(args.key, 'base64') : null;
  return { field, name, withKey, presented };
}

export function printKnownHostsLines(ctx: CliContext, field: string, blobs: Buffer[]): number {
  ctx.io.stdout.write(blobs.map((b) => `${field} ${keyLineFromBlob(b)}\n`).join(''));
  return 0;
}

/**
 * The answer when keys are pinned for the machine (exit code 0), else null. OpenSSH's call before the key
 * exchange (NONE NONE: which key types to prefer; blocks of this mssh set HostKeyAlgorithms, so OpenSSH
 * no longer makes it) is answered from the pins only: with none, nothing is printed and OpenSSH keeps its
 * default order. Asking the relay there cost a process start and a round trip, and a refusal (no grant)
 * made OpenSSH stop with "KnownHostsCommand failed" before it read the proxy's SSH disconnect message. A presented key that differs
 * from the pinned one gets the mssh fix on stderr, where OpenSSH shows it next to its own (useless here)
 * `ssh-keygen -R` advice; OpenSSH then refuses the server, which presented none of the printed keys.
 */
export function answerFromPins(ctx: CliContext, q: OpensshKeyQuery): number | null {
  const pinned = ctx.knownHosts.lookup(q.name).map((k) => k.blob);
  if (pinned.length === 0) return q.withKey && !q.presented ? 0 : null;
  if (q.presented && !pinned.some((p) => p.equals(q.presented!))) {
    const e = hostKeyRefusal(q.name, q.presented, { kind: 'changed', pinned }, ctx.knownHosts.path);
    ctx.io.stderr.write(`mssh: ${e.message} [${e.code}]\n${e.hint ? `mssh: ${e.hint}\n` : ''}`);
  }
  return printKnownHostsLines(ctx, q.field, pinned);
}
