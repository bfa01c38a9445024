import http2 from 'node:http2';
import type { Readable, Writable } from 'node:stream';
import { cliError, type CliError } from '../errors.js';
import { endedCleanly } from '../relay-client/relay-client.js';
import { assertHostName } from '../ssh/ssh-via-relay.js';
import { openLoggedInRelay, type CliContext } from './context.js';
import { machineNameOf } from './ssh-config.js';

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
): Promise<number> {
  return new Promise<number>((resolve, reject) => {
    let lastError: Error | null = null;
    let consumerGone = false;
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
    stream.pipe(stdout, { end: false });
    stdin.pipe(stream);
  });
}

/** `mssh proxy HOST` (or `HOST.mssh`), for `ssh -o ProxyCommand='mssh proxy %n'`. */
export async function proxy(ctx: CliContext, args: { host: string }): Promise<number> {
  const host = machineNameOf(args.host);
  assertHostName(host);
  const { client } = await openLoggedInRelay(ctx, { keepaliveMs: 15_000 });
  try {
    const tunnel = await client.openTunnel(host);
    // Our parent (ssh, which runs `exec mssh proxy ...`) is gone when we have been re-parented.
    const parent = process.ppid;
    return await spliceTunnel(
      tunnel.stream,
      ctx.io.stdin,
      ctx.io.stdout,
      host,
      () => client.endedByRelay(tunnel, host),
      () => process.ppid !== parent,
    );
  } finally {
    await client.close();
  }
}
