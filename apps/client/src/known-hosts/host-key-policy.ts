/**
 * The host key rule (shared DESIGN.md "Host keys"): a machine is known by its own name. A key pinned for
 * that name wins: any other key is refused, even if the relay now attests it. With nothing pinned, the
 * presented key is accepted silently only if it is one the relay attests for the machine, and is then
 * pinned. Nobody is ever asked to type "yes".
 */
import { fingerprintBlob, parseSshPublicKeyLine, sanitizeForTerminal } from '@mssh/protocol';
import { cliError, type CliError } from '../errors.js';
import type { HostKeyCheck } from '../ssh/host-key-check.js';
import { typeOfBlob, type KnownHostsFile } from './known-hosts-file.js';

export type HostKeyDecision =
  /** The presented key is one of the pinned ones. */
  | { kind: 'known' }
  /** Nothing pinned and the relay attests the presented key: accept and pin it. */
  | { kind: 'pin' }
  /** Keys are pinned and the presented one is not among them. */
  | { kind: 'changed'; pinned: Buffer[] }
  /** Nothing pinned and the relay does not attest the presented key. */
  | { kind: 'not-attested'; attested: Buffer[] };

export function decideHostKey(input: { presented: Buffer; pinned: Buffer[]; attested: string[] }): HostKeyDecision {
  const { presented, pinned } = input;
  if (pinned.length > 0) {
    return pinned.some((p) => p.equals(presented)) ? { kind: 'known' } : { kind: 'changed', pinned };
  }
  const attested = input.attested.flatMap((line) => {
    const k = parseSshPublicKeyLine(line);
    return k ? [k.blob] : [];
  });
  return attested.some((a) => a.equals(presented)) ? { kind: 'pin' } : { kind: 'not-attested', attested };
}

function describe(blob: Buffer): string {
  return `${fingerprintBlob(blob)} (${sanitizeForTerminal(typeOfBlob(blob)) || 'unknown type'})`;
}

/** The refusal for a 'changed' or 'not-attested' decision. */
export function hostKeyRefusal(
  host: string,
  presented: Buffer,
  decision: HostKeyDecision,
  knownHostsPath: string,
): CliError {
  if (decision.kind === 'changed') {
    return cliError(
      'CLI_ERR_HOST_KEY_CHANGED',
      `HOST KEY FOR ${host} HAS CHANGED: pinned ${decision.pinned.map(describe).join(', ')}; presented ${describe(presented)}`,
      `Someone may be intercepting the connection, or ${host}'s SSH keys were replaced. Only if you know they were replaced, run \`mssh known-hosts forget ${host}\` and connect again.`,
    );
  }
  if (decision.kind === 'not-attested') {
    const line = `${host} ${typeOfBlob(presented)} ${presented.toString('base64')}`;
    if (decision.attested.length === 0) {
      return cliError(
        'CLI_ERR_HOST_KEY_NOT_ATTESTED',
        `cannot verify ${host}: the relay attests no SSH host keys for it, and it presented ${describe(presented)}`,
        `The agent on ${host} reports its keys when it connects; restart it there. If you checked the key on the machine yourself, add \`${line}\` to ${knownHostsPath}.`,
      );
    }
    return cliError(
      'CLI_ERR_HOST_KEY_NOT_ATTESTED',
      `refusing ${host}: it presented host key ${describe(presented)}, which is not one the relay attests for it (${decision.attested.map(fingerprintBlob).join(', ')})`,
      `Someone may be intercepting the connection, or the agent on ${host} still reports other keys (it was asked to look again; if its SSH server's keys just changed, try again in a few seconds). If you checked the key on the machine yourself, add \`${line}\` to ${knownHostsPath}.`,
    );
  }
  throw new Error(`not a refusal: ${decision.kind}`);
}

/** ssh2's default host key algorithm order (ssh2 1.x), used after the preferred ones. */
const DEFAULT_HOST_KEY_ALGORITHMS = [
  'ssh-ed25519',
  'ecdsa-sha2-nistp256',
  'ecdsa-sha2-nistp384',
  'ecdsa-sha2-nistp521',
  'rsa-sha2-512',
  'rsa-sha2-256',
  'ssh-rsa',
];

/**
 * Put the algorithms of the given key types first, so a server with several host keys presents the one
 * we know (as OpenSSH orders by known_hosts). Null when there is nothing to prefer.
 */
export function preferredHostKeyAlgorithms(keyTypes: string[]): string[] | null {
  const first: string[] = [];
  for (const t of keyTypes) {
    const algos = t === 'ssh-rsa' ? ['rsa-sha2-512', 'rsa-sha2-256', 'ssh-rsa'] : [t];
    for (const a of algos) if (DEFAULT_HOST_KEY_ALGORITHMS.includes(a) && !first.includes(a)) first.push(a);
  }
  if (first.length === 0) return null;
  return [...first, ...DEFAULT_HOST_KEY_ALGORITHMS.filter((a) => !first.includes(a))];
}

/**
 * The HostKeyCheck for `mssh ssh host`: pinned keys from known_hosts, else the relay's attested keys
 * (`attested`, from GET /v1/hosts/:name; only consulted when nothing is pinned).
 */
export function createHostKeyCheck(opts: {
  host: string;
  knownHosts: KnownHostsFile;
  attested: string[];
  /**
   * Nothing is pinned and the presented key is not attested: ask the relay to have the agent rescan
   * (its SSH server's keys may have been replaced since the agent last reported), and answer the fresh
   * attested keys. Asked once per check; a failure keeps the keys known before.
   */
  refresh?: () => Promise<string[]>;
}): HostKeyCheck {
  const { host, knownHosts } = opts;
  const pinned = knownHosts.lookup(host);
  const types =
    pinned.length > 0 ? pinned.map((k) => k.type) : opts.attested.flatMap((l) => parseSshPublicKeyLine(l)?.type ?? []);
  let refreshed = false;
  return {
    algorithms: preferredHostKeyAlgorithms(types),
    async verify(presented: Buffer) {
      // Re-read: another mssh may have pinned meanwhile, and a rekey must see our own pin.
      const now = knownHosts.lookup(host).map((k) => k.blob);
      let decision = decideHostKey({ presented, pinned: now, attested: opts.attested });
      if (decision.kind === 'not-attested' && opts.refresh && !refreshed) {
        // Only ever with nothing pinned: a pinned key is never replaced by a fresh attestation.
        refreshed = true;
        opts.attested = await opts.refresh().catch(() => opts.attested);
        decision = decideHostKey({
          presented,
          pinned: knownHosts.lookup(host).map((k) => k.blob),
          attested: opts.attested,
        });
      }
      if (decision.kind === 'known') return;
      if (decision.kind === 'pin') {
        knownHosts.add(host, presented);
        return;
      }
      throw hostKeyRefusal(host, presented, decision, knownHosts.path);
    },
  };
}
