import { keyLineFromBlob, parseSshPublicKeyLine, sanitizeForTerminal } from '@mssh/protocol';
import { cliError } from '../errors.js';
import { hostKeyRefusal } from '../known-hosts/host-key-policy.js';
import { openLoggedInRelay, printJson, println, type CliContext } from './context.js';
import { answerFromPins, parseOpensshQuery, printKnownHostsLines } from './known-hosts-pinned.js';

/** `mssh known-hosts list [--json]`: one line per pinned key: NAME TYPE FINGERPRINT. */
export async function knownHostsList(ctx: CliContext, args: { json: boolean } = { json: false }): Promise<number> {
  const keys = ctx.knownHosts.entries();
  if (args.json) {
    printJson(
      ctx,
      keys.map((k) => ({
        hosts: k.hosts,
        type: k.type,
        fingerprint: k.fingerprint,
        publicKey: keyLineFromBlob(k.blob),
        line: k.line,
      })),
    );
    return 0;
  }
  if (keys.length === 0) {
    println(ctx.io.stderr, `No host keys pinned yet (${ctx.knownHosts.path}).`);
    return 0;
  }
  const rows = keys.map((k) => [sanitizeForTerminal(k.hosts), sanitizeForTerminal(k.type), k.fingerprint]);
  const w = Math.max(...rows.map((r) => r[0]!.length));
  const t = Math.max(...rows.map((r) => r[1]!.length));
  for (const [hosts, type, fp] of rows) println(ctx.io.stdout, `${hosts!.padEnd(w)}  ${type!.padEnd(t)}  ${fp}`);
  return 0;
}

/** `mssh known-hosts forget HOST`: drop every key pinned for HOST, so the next connection pins afresh. */
export async function knownHostsForget(ctx: CliContext, args: { host: string }): Promise<number> {
  const host = args.host.toLowerCase();
  const n = ctx.knownHosts.forget(host);
  if (n === 0) println(ctx.io.stderr, `No host keys were pinned for ${sanitizeForTerminal(host)}.`);
  else
    println(
      ctx.io.stdout,
      `Forgot ${n} host key${n === 1 ? '' : 's'} for ${host}; the next connection pins the key the relay attests.`,
    );
  return 0;
}

/**
 * `mssh known-hosts openssh HOST [TYPE KEY]`, for OpenSSH's `KnownHostsCommand ... %H %t %K` (written by
 * `mssh config ssh`): print known_hosts lines for HOST, as OpenSSH searches it (`laptop.mssh`,
 * `[laptop.mssh]:2222`). The keys pinned for the machine win; with none pinned, the keys the relay attests
 * (pinned once the server presented one of them), so a later change is refused exactly as with `mssh ssh`.
 * OpenSSH (StrictHostKeyChecking yes) then accepts the server only if it presents one of these keys.
 *
 * With the presented key (TYPE KEY; OpenSSH passes NONE NONE when it only asks which key types to
 * prefer): a key that differs from the pinned one gets the mssh fix on stderr, where OpenSSH shows it
 * next to its own (useless here) `ssh-keygen -R` advice; with nothing pinned and a key the relay does
 * not attest, the agent is asked to rescan first (its SSH server's keys may just have been replaced).
 * Without TYPE KEY (a block written by an older mssh), the attested keys are pinned at once, as before.
 */
export async function knownHostsOpenssh(
  ctx: CliContext,
  args: { host: string; keyType?: string; key?: string },
): Promise<number> {
  const q = parseOpensshQuery(args);
  const fromPins = answerFromPins(ctx, q);
  if (fromPins !== null) return fromPins;
  const { field, name, withKey, presented } = q;
  const print = (blobs: Buffer[]) => printKnownHostsLines(ctx, field, blobs);
  const { client } = await openLoggedInRelay(ctx);
  let blobs: Buffer[];
  try {
    const parse = (lines: string[]) => lines.flatMap((l) => parseSshPublicKeyLine(l)?.blob ?? []);
    blobs = parse((await client.getHost(name)).hostKeys);
    if (presented && !blobs.some((b) => b.equals(presented))) {
      const fresh = await client.refreshHostKeys(name).then(
        (h) => parse(h.hostKeys),
        () => null,
      );
      if (fresh && fresh.length > 0) blobs = fresh;
    }
  } finally {
    await client.close();
  }
  if (blobs.length === 0) {
    throw cliError(
      'CLI_ERR_HOST_KEY_NOT_ATTESTED',
      `cannot verify ${name}: the relay attests no SSH host keys for it`,
      `The agent on ${name} reports its keys when it connects; restart it there.`,
    );
  }
  if (presented && !blobs.some((b) => b.equals(presented))) {
    const e = hostKeyRefusal(name, presented, { kind: 'not-attested', attested: blobs }, ctx.knownHosts.path);
    println(ctx.io.stderr, `mssh: ${e.message} [${e.code}]`);
    if (e.hint) println(ctx.io.stderr, `mssh: ${e.hint}`);
    return 0; // nothing known: OpenSSH refuses (StrictHostKeyChecking yes)
  }
  // Pin when the server showed an attested key (or when an older block gives us no key at all); the
  // NONE NONE call before the key exchange only orders the key types.
  if (presented || !withKey) for (const b of blobs) ctx.knownHosts.add(name, b);
  return print(blobs);
}
