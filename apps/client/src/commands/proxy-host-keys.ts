/**
 * `mssh proxy --known-hosts-dir DIR HOST`, as `mssh config ssh` writes it: the proxy checks the host key
 * itself and gives OpenSSH the keys to accept, so one process serves each OpenSSH connection where two
 * did (the ProxyCommand and a KnownHostsCommand, issue 21 item 5: Ansible with ControlMaster off).
 *
 *   ssh ──stdin──▶ mssh proxy ──tunnel──▶ relay ──▶ agent ──▶ sshd
 *       ◀─stdout── version, KEXINIT ◀──────────────────────────┘
 *                  KEX reply (host key K_S): held here until
 *                    pinned keys for NAME: K_S must be one of them, else CLI_ERR_HOST_KEY_CHANGED
 *                    none pinned: the keys the relay attests (rescanned once if K_S is not among them);
 *                                 K_S must be one of them (then they are pinned), else NOT_ATTESTED
 *                  then DIR/HOST gets those keys (`* TYPE KEY` lines, written atomically, 0600),
 *                  and only then is the reply passed on
 *
 * OpenSSH reads its UserKnownHostsFile (DIR/%n in the generated block) to verify the host key only after
 * it has received the server's key exchange reply (sshconnect.c check_host_key, called from the kex
 * verify_host_key callback); the file is written before that reply is passed on, so OpenSSH always reads
 * the keys of this connection. (The block also sets HostKeyAlgorithms, so OpenSSH does not read the file
 * earlier to order key types.) A refusal is sent in place of the reply as an SSH disconnect message that
 * OpenSSH prints, with the mssh code and fix. Each file holds one machine's keys, so its lines match any
 * host name (`*`): OpenSSH looks a machine up as `NAME.mssh`, or `[NAME.mssh]:PORT` with another port.
 */
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { PATHS, keyLineFromBlob, parseSshPublicKeyLine } from '@mssh/protocol';
import { cliError } from '../errors.js';
import { writePrivateFile } from '../config/secure-files.js';
import { hostKeyRefusal } from '../known-hosts/host-key-policy.js';
import type { TunnelClient } from '../relay-client/tunnel-client.js';
import { HostKeyWatch } from '../ssh/kex-host-key.js';
import type { CliContext } from './context.js';
import type { TunnelGate } from './proxy.js';

/** The directory `mssh config ssh` names, under the mssh config directory. */
export const OPENSSH_KNOWN_HOSTS_DIR = 'openssh-known-hosts';

/** DIR/HOST, HOST as OpenSSH expands %n (what `mssh proxy` was given): one file per name. */
export function knownHostsFileFor(dir: string, hostArg: string): string {
  // The caller checked that hostArg names a machine (a-z, 0-9, -, an optional .mssh, any case).
  if (!/^[A-Za-z0-9][A-Za-z0-9.-]*$/.test(hostArg)) {
    throw cliError(
      'CLI_ERR_BAD_HOST_NAME',
      `${JSON.stringify(hostArg.slice(0, 100))} is not a machine name`,
      'Connect to NAME.mssh, where NAME is a machine `mssh ls` shows.',
    );
  }
  return join(dir, hostArg);
}

/** The file's text: one `* TYPE BASE64` line per key. */
export function opensshKnownHostsText(blobs: Buffer[]): string {
  return blobs.map((b) => `* ${keyLineFromBlob(b)}\n`).join('');
}

/** Written atomically and 0600, and only when it changed (most connections find it as they left it). */
function writeKnownHosts(path: string, blobs: Buffer[]): void {
  const text = opensshKnownHostsText(blobs);
  try {
    if (existsSync(path) && readFileSync(path, 'utf8') === text) return;
  } catch {
    // unreadable: write it again
  }
  writePrivateFile(path, text);
}

const hostKeysAnswer = {
  safeParse(v: unknown): { success: true; data: string[] } | { success: false } {
    const keys = (v as { hostKeys?: unknown } | null)?.hostKeys;
    return Array.isArray(keys) && keys.every((k) => typeof k === 'string')
      ? { success: true, data: keys }
      : { success: false };
  },
};

function blobsOf(lines: string[]): Buffer[] {
  return lines.flatMap((l) => parseSshPublicKeyLine(l)?.blob ?? []);
}

/**
 * Check `presented` (null: it could not be read, see kex-host-key.ts) for machine `name` and write the
 * keys OpenSSH must accept to `file`; throws the refusal. With the key unread, OpenSSH's own check against
 * the file is all there is: nothing new is pinned then.
 */
export async function checkForOpenssh(
  ctx: CliContext,
  client: TunnelClient,
  name: string,
  presented: Buffer | null,
  file: string,
): Promise<void> {
  const same = (b: Buffer) => presented !== null && b.equals(presented);
  const pinned = ctx.knownHosts.lookup(name).map((k) => k.blob);
  if (pinned.length > 0) {
    // Written first, refusal or not: should a refusal not reach OpenSSH, its own check refuses too.
    writeKnownHosts(file, pinned);
    if (presented && !pinned.some(same))
      throw hostKeyRefusal(name, presented, { kind: 'changed', pinned }, ctx.knownHosts.path);
    return;
  }
  const ask = async (method: 'GET' | 'POST', path: string) =>
    blobsOf(
      await client.call(method, path, { schema: hostKeysAnswer, host: name, body: method === 'POST' ? {} : undefined }),
    );
  let attested = await ask('GET', PATHS.host(name));
  if (presented && !attested.some(same)) {
    // The SSH server's keys may just have been replaced: the agent is asked to look again (rate-limited).
    const fresh = await ask('POST', PATHS.hostKeysRefresh(name)).catch(() => null);
    if (fresh && fresh.length > 0) attested = fresh;
  }
  if (presented && !attested.some(same))
    throw hostKeyRefusal(name, presented, { kind: 'not-attested', attested }, ctx.knownHosts.path);
  if (attested.length === 0)
    throw cliError(
      'CLI_ERR_HOST_KEY_NOT_ATTESTED',
      `cannot verify ${name}: the relay attests no SSH host keys for it`,
      `The agent on ${name} reports its keys when it connects; restart it there.`,
    );
  if (presented) for (const b of attested) ctx.knownHosts.add(name, b);
  writeKnownHosts(file, attested);
}

/**
 * The gate `mssh proxy` puts on the target's side of the tunnel (proxy.ts spliceTunnel): the bytes up to
 * the key exchange reply pass at once, the reply waits for `check`.
 */
export function hostKeyGate(check: (presented: Buffer | null) => Promise<void>): TunnelGate {
  return (server, client, out) =>
    new Promise<Error | null>((resolve) => {
      const watch = new HostKeyWatch();
      let pending: Buffer = Buffer.alloc(0);
      let passed = 0;
      let settled = false;
      const stop = () => {
        server.removeListener('data', onData);
        server.removeListener('close', onClose);
        client.removeListener('data', onClient);
      };
      const settle = (v: Error | null) => {
        if (settled) return;
        settled = true;
        resolve(v);
      };
      const onClient = (d: Buffer) => {
        watch.client(d);
        if (watch.clientRead) client.removeListener('data', onClient);
      };
      const onClose = () => {
        stop();
        settle(null); // spliceTunnel reports how the tunnel ended
      };
      const onData = (d: Buffer) => {
        pending = pending.length > 0 ? Buffer.concat([pending, d]) : d;
        const n = watch.server(d);
        if (n > passed) {
          out.write(pending.subarray(0, n - passed));
          pending = pending.subarray(n - passed);
          passed = n;
        }
        if (!watch.done) return;
        server.pause();
        stop();
        check(watch.found).then(
          () => {
            try {
              if (pending.length > 0 && !server.destroyed) server.unshift(pending);
            } catch {
              // the tunnel went meanwhile: spliceTunnel reports it
            }
            settle(null);
          },
          (e: unknown) => settle(e instanceof Error ? e : new Error(String(e))),
        );
      };
      client.on('data', onClient);
      server.on('data', onData);
      server.on('close', onClose);
    });
}
