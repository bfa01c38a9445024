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
 */
export function spliceTunnel(stream: http2.ClientHttp2Stream, stdin: Readable, stdout: Writable, host: string, endedByRelay?: () => CliError | null): Promise<number> {
  return new Promise<number>((resolve, reject) => {
    let lastError: Error | null = null;
    let consumerGone = false;
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
    stream.on('close', () => {
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
    return await spliceTunnel(tunnel.stream, ctx.io.stdin, ctx.io.stdout, host, () => client.endedByRelay(tunnel, host));
  } finally {
    await client.close();
  }
}
