import http2 from 'node:http2';
import type { Readable, Writable } from 'node:stream';
import { sanitizeForTerminal } from '@mssh/protocol';
import { cliError, isCliError, type CliError } from '../errors.js';
import { endedCleanly, TunnelClient, type Tunnel } from '../relay-client/tunnel-client.js';
import { assertHostName, loginIdOf, machineNameOf } from '../ssh/openssh-names.js';
import { sshDisconnectBytes, sshDisconnectPacket } from '../ssh/ssh-disconnect.js';
import type { CliContext } from './context.js';
import { openLoggedIn } from './logged-in.js';
import { checkForOpenssh, hostKeyGate, knownHostsFileFor } from './proxy-host-keys.js';

/**
 * Splice stdin/stdout onto a tunnel stream: stdin → request body, response body → stdout, binary-safe
 * with backpressure both ways (pipe). stdin EOF half-closes the tunnel; when the far side ends, we end
 * ours. Resolves 0 when the tunnel ended cleanly; rejects CLI_ERR_TUNNEL_BROKEN when it was reset, or
 * the reason the relay gave for resetting it (`endedByRelay`: account disabled, role changed).
 *
 * `clientGone`, when given, is asked every second once stdin has ended: OpenSSH never half-closes its
 * ProxyCommand's stdin, it closes it when it exits, and when it was killed (no SIGHUP for us) nothing
 * else tells us: a target that never answers would keep the tunnel, and the session on the relay, open
 * for ever (issue 17.2). When it says yes, the tunnel is cancelled.
 */
export function spliceTunnel(
  stream: http2.ClientHttp2Stream,
  stdin: Readable,
  stdout: Writable,
  host: string,
  endedByRelay?: () => CliError | null,
  clientGone?: () => boolean,
  gate?: TunnelGate,
): Promise<number> {
  return new Promise<number>((resolve, reject) => {
    let lastError: Error | null = null;
    let consumerGone = false;
    let refused: Error | null = null;
    let watch: NodeJS.Timeout | null = null;
    const detach = () => {
      stdin.unpipe(stream);
      stdin.pause();
    };
    stdout.on('error', () => {
      // The consumer (ssh) went away: nothing left to deliver to.
      consumerGone = true;
      detach();
      if (!stream.closed) stream.close(http2.constants.NGHTTP2_CANCEL);
    });
    stream.on('error', (e) => (lastError = e));
    stream.on('end', () => {
      detach();
      if (!stream.writableEnded) stream.end();
    });
    if (clientGone) {
      stdin.once('end', () => {
        watch = setInterval(() => {
          if (!clientGone()) return;
          consumerGone = true;
          if (!stream.closed) stream.close(http2.constants.NGHTTP2_CANCEL);
        }, 1_000);
        watch.unref();
      });
    }
    stream.on('close', () => {
      if (watch) clearInterval(watch);
      detach();
      if (refused) return reject(refused);
      if (consumerGone || (endedCleanly(stream) && stream.readableEnded)) return resolve(0);
      const why = endedByRelay?.();
      if (why) return reject(why);
      reject(
        cliError(
          'CLI_ERR_TUNNEL_BROKEN',
          `the tunnel to ${host} was cut${lastError ? ` (${lastError.message})` : stream.rstCode ? ` (HTTP/2 code ${stream.rstCode})` : ''}`,
          'Check `mssh ls`: the machine or its agent may have gone offline.',
        ),
      );
    });
    stdin.pipe(stream);
    if (!gate) {
      stream.pipe(stdout, { end: false });
      return;
    }
    void gate(stream, stdin, stdout).then((refusal) => {
      if (stream.closed) return;
      if (refusal === null) {
        stream.pipe(stdout, { end: false });
        return;
      }
      // Told inside the SSH stream (OpenSSH prints it; a ControlPersist master discards our stderr), then
      // the tunnel is cancelled and the refusal is what this command fails with.
      refused = refusal;
      detach();
      stdout.write(sshDisconnectPacket(refusalText(refusal)), () => {
        if (!stream.closed) stream.close(http2.constants.NGHTTP2_CANCEL);
      });
    });
  });
}

/**
 * Runs before the target's bytes flow to stdout: it passes on what it has read and, when it resolves
 * null, the rest (put back with unshift) flows; resolving with an error refuses the tunnel (told to
 * OpenSSH in an SSH disconnect message). `client` is stdin, already being piped to the tunnel.
 */
export type TunnelGate = (server: http2.ClientHttp2Stream, client: Readable, out: Writable) => Promise<Error | null>;

/** One line for OpenSSH: `mssh: CODE: message. hint`. */
export function refusalText(e: unknown): string {
  const err = isCliError(e) ? e : null;
  return err
    ? `mssh: ${err.code ? `${err.code}: ` : ''}${err.message}. ${err.hint}`
    : `mssh: CLI_ERR_INTERNAL: unexpected error: ${(e as Error)?.message ?? String(e)}`;
}

export interface ProxyArgs {
  host: string;
  /** --login-id ID (written by `mssh config ssh`): run only for the login whose id this is (ssh/openssh-names.ts). */
  loginId?: string;
  /**
   * --known-hosts-dir DIR (written by `mssh config ssh`): check the host key here and write the keys
   * OpenSSH must accept to DIR/HOST, its UserKnownHostsFile (proxy-host-keys.ts).
   */
  knownHostsDir?: string;
}

/**
 * `mssh proxy HOST` (or `HOST.mssh`), for `ssh -o ProxyCommand='mssh proxy %n'`. Loaded by the lean
 * entry (lean-main.ts): it uses TunnelClient, not the full RelayClient.
 *
 * A refusal before the tunnel carries the target's bytes (not logged in, no grant, machine offline...) is
 * also told inside the SSH stream (ssh/ssh-disconnect.ts), as well as on stderr: a ControlPersist master
 * discards our stderr, and OpenSSH prints the disconnect message.
 */
export async function proxy(ctx: CliContext, args: ProxyArgs): Promise<number> {
  let client: TunnelClient | null = null;
  let host = args.host;
  let tunnel: Tunnel;
  let knownHostsFile: string | null = null;
  try {
    host = machineNameOf(args.host);
    assertHostName(host);
    const check = args.loginId === undefined ? undefined : checkLoginId(args.loginId);
    if (args.knownHostsDir !== undefined) knownHostsFile = knownHostsFileFor(args.knownHostsDir, args.host);
    ({ client } = await openLoggedIn(ctx, { keepaliveMs: 15_000, check }, (c, o) => new TunnelClient(c, o)));
    tunnel = await client.openTunnel(host);
  } catch (e) {
    await client?.close();
    await tellSsh(ctx, e);
    throw e;
  }
  const c = client;
  try {
    // Our parent (ssh, which runs `exec mssh proxy ...`) is gone when we have been re-parented.
    const parent = process.ppid;
    const file = knownHostsFile;
    return await spliceTunnel(
      tunnel.stream,
      ctx.io.stdin,
      ctx.io.stdout,
      host,
      () => c.endedByRelay(tunnel, host),
      () => process.ppid !== parent,
      file === null ? undefined : hostKeyGate((presented) => checkForOpenssh(ctx, c, host, presented, file)),
    );
  } finally {
    await c.close();
  }
}

/** The login in use must be the one the ssh config was written for (its ControlPath is that login's). */
function checkLoginId(expected: string): (url: string, user: string | undefined) => void {
  return (url, user) => {
    const id = loginIdOf(url, user);
    if (id === expected.toLowerCase()) return;
    throw cliError(
      'CLI_ERR_LOGIN_CHANGED',
      `the mssh block of your ssh config was written for another mssh login (id ${sanitizeForTerminal(expected.slice(0, 20))}); you are logged in as ${user ?? '?'} at ${url} (id ${id})`,
      'Run `mssh config ssh --install` to write it for this login (shared OpenSSH connections stay apart per login), or log in as the other user again.',
    );
  };
}

/**
 * Answer OpenSSH as a minimal SSH server that disconnects with the mssh code and text, unless stdout is a
 * terminal (someone ran `mssh proxy` by hand). Then wait (at most 3 s) for ssh to read it and close our
 * stdin, so it is not told "Broken pipe" instead.
 */
async function tellSsh(ctx: CliContext, e: unknown): Promise<void> {
  const out = ctx.io.stdout as Writable & { isTTY?: boolean };
  if (out.isTTY || out.destroyed || !out.writable) return;
  const text = refusalText(e);
  await new Promise<void>((resolve) => {
    const stdin = ctx.io.stdin;
    const timer = setTimeout(done, 3_000);
    timer.unref();
    function done(): void {
      clearTimeout(timer);
      stdin.removeListener('end', done);
      stdin.removeListener('close', done);
      stdin.removeListener('error', done);
      stdin.pause();
      resolve();
    }
    out.once('error', done);
    stdin.once('end', done);
    stdin.once('close', done);
    stdin.once('error', done);
    stdin.resume(); // read (and drop) ssh's version line and KEXINIT until it goes
    out.write(sshDisconnectBytes(text));
  });
}
