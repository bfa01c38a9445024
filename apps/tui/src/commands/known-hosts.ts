import { keyLineFromBlob, parseSshPublicKeyLine, sanitizeForTerminal } from '@mssh/protocol';
import { cliError } from '../errors.js';
import { assertHostName } from '../ssh/ssh-via-relay.js';
import { openLoggedInRelay, printJson, println, type CliContext } from './context.js';
import { machineNameOf } from './ssh-config.js';

/** `mssh known-hosts list [--json]`: one line per pinned key: NAME TYPE FINGERPRINT. */
export async function knownHostsList(ctx: CliContext, args: { json: boolean } = { json: false }): Promise<number> {
  const keys = ctx.knownHosts.entries();
  if (args.json) {
    printJson(ctx, keys.map((k) => ({ hosts: k.hosts, type: k.type, fingerprint: k.fingerprint, publicKey: keyLineFromBlob(k.blob), line: k.line })));
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
  else println(ctx.io.stdout, `Forgot ${n} host key${n === 1 ? '' : 's'} for ${host}; the next connection pins the key the relay attests.`);
  return 0;
}

/**
 * `mssh known-hosts openssh HOST`, for OpenSSH's `KnownHostsCommand ... %H` (written by `mssh config ssh`):
 * print known_hosts lines for HOST, as OpenSSH searches it (`laptop.mssh`, `[laptop.mssh]:2222`). The keys
 * pinned for the machine win; with none pinned, the keys the relay attests are pinned now and printed, so a
 * later change is refused exactly as with `mssh ssh`. OpenSSH (StrictHostKeyChecking yes) then accepts the
 * server only if it presents one of these keys; with nothing printed it refuses.
 */
export async function knownHostsOpenssh(ctx: CliContext, args: { host: string }): Promise<number> {
  const field = args.host.trim();
  if (!/^[\x21-\x7e]+$/.test(field) || field.includes(',')) throw cliError('CLI_ERR_USAGE', `${JSON.stringify(field.slice(0, 100))} is not a host name`, 'Usage: mssh known-hosts openssh HOST (from ssh_config: KnownHostsCommand mssh known-hosts openssh %H)');
  const name = machineNameOf(field);
  assertHostName(name);
  let blobs = ctx.knownHosts.lookup(name).map((k) => k.blob);
  if (blobs.length === 0) {
    const { client } = await openLoggedInRelay(ctx);
    let attested: string[];
    try {
      attested = (await client.getHost(name)).hostKeys;
    } finally {
      await client.close();
    }
    blobs = attested.flatMap((l) => parseSshPublicKeyLine(l)?.blob ?? []);
    if (blobs.length === 0) {
      throw cliError('CLI_ERR_HOST_KEY_NOT_ATTESTED', `cannot verify ${name}: the relay attests no SSH host keys for it`, `The agent on ${name} reports its keys when it connects; restart it there.`);
    }
    for (const b of blobs) ctx.knownHosts.add(name, b);
  }
  for (const b of blobs) println(ctx.io.stdout, `${field} ${keyLineFromBlob(b)}`);
  return 0;
}
