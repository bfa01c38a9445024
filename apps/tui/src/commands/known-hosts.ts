import { sanitizeForTerminal } from '@mssh/protocol';
import { println, type CliContext } from './context.js';

/** `mssh known-hosts list`: one line per pinned key: NAME TYPE FINGERPRINT. */
export async function knownHostsList(ctx: CliContext): Promise<number> {
  const keys = ctx.knownHosts.entries();
  if (keys.length === 0) {
    println(ctx.io.stderr, `No host keys pinned yet (${ctx.knownHosts.path}).`);
    return 0;
  }
  const w = Math.max(...keys.map((k) => k.hosts.length));
  const t = Math.max(...keys.map((k) => k.type.length));
  for (const k of keys) println(ctx.io.stdout, `${sanitizeForTerminal(k.hosts).padEnd(w)}  ${k.type.padEnd(t)}  ${k.fingerprint}`);
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
