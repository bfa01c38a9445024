import { createReadStream } from 'node:fs';
import type { FastifyPluginAsync } from 'fastify';
import { PATHS } from '@mssh/protocol';
import type { AgentBundle } from '../../agent-bundle/agent-bundle.js';
import { renderInstallScript } from '../../agent-bundle/install-script.js';
import { BackoffLimiter } from '../../limits/backoff-limiter.js';
import { limitKey } from '../../limits/source-address.js';
import { relayError, RelayError } from '../../errors.js';

export interface InstallRouteOptions {
  bundle: AgentBundle;
  /** The relay's public URL, certificate fingerprint and public key pin (the port is known once listening). */
  relay: () => { url: string; fingerprint: string; publicKeyPin?: string };
  /** Tarball downloads per address and minute before RLY_ERR_DOWNLOAD_LIMIT (default 10). */
  downloadsPerMinute?: number;
}

/**
 * The one-line agent install (issue 20), unauthenticated (the enrolment token the script is run with is the
 * secret; the script and the tarball are not): GET /install/agent.sh and /install/mssh-agent-linux-x64.tar.gz,
 * on HTTP/2 and HTTP/1.1 alike. Tarball downloads are limited per address (RLY_ERR_DOWNLOAD_LIMIT, 429 with
 * Retry-After), besides the per-address connection and request limits every route has. The tarball is built
 * at the first request (agent-bundle.ts): that request waits for it, the relay's start does not.
 */
export const installRoutes: FastifyPluginAsync<InstallRouteOptions> = async (app, opts) => {
  const downloads = new BackoffLimiter({
    limit: opts.downloadsPerMinute ?? 10,
    windowMs: 60_000,
    baseBlockMs: 60_000,
    maxBlockMs: 10 * 60_000,
  });
  app.addHook('onClose', async () => downloads.close());

  const bundle = async () => {
    try {
      return await opts.bundle.get();
    } catch (err) {
      if (err instanceof RelayError) {
        app.log.info({ reason: err.cause }, `agent download refused: ${err.code}`);
        throw err;
      }
      app.log.error({ err }, 'building the agent bundle failed');
      throw relayError('RLY_ERR_INTERNAL', 'building the agent bundle failed; see the relay log', err);
    }
  };

  app.get(PATHS.installScript, async (_request, reply) => {
    const info = await bundle();
    const relay = opts.relay();
    if (!relay.publicKeyPin) throw relayError('RLY_ERR_AGENT_BUNDLE_UNAVAILABLE', 'the relay knows no public key pin');
    return reply
      .header('cache-control', 'no-store')
      .type('text/x-shellscript; charset=utf-8')
      .send(
        renderInstallScript({
          relayUrl: relay.url,
          publicKeyPin: relay.publicKeyPin,
          fingerprint: relay.fingerprint,
          tarballPath: PATHS.installTarball,
          tarballSha256: info.sha256,
          version: info.version,
        }),
      );
  });

  app.get(PATHS.installTarball, async (request, reply) => {
    const key = limitKey(request.ip);
    const verdict = downloads.check(key);
    if (!verdict.ok) {
      const seconds = Math.max(1, Math.ceil(verdict.retryAfterMs / 1000));
      const e = relayError(
        'RLY_ERR_DOWNLOAD_LIMIT',
        `too many agent downloads from your address; try again in ${seconds} s`,
      );
      e.retryAfterSeconds = seconds;
      throw e;
    }
    downloads.fail(key);
    const info = await bundle();
    return reply
      .header('cache-control', 'no-store')
      .header('content-length', String(info.size))
      .header('x-mssh-sha256', info.sha256)
      .type('application/gzip')
      .send(createReadStream(info.file));
  });
};
