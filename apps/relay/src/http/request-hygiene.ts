/**
 * What every API request costs the relay beyond its route, kept small under a flood (issue 16 item 3):
 *
 *   request headers --JSON body not complete within bodyTimeoutMs--> 408 RLY_ERR_BODY_TIMEOUT, stream closed
 *   answer sent     --5xx--> one warn line (a drain's 503 RLY_ERR_DRAINING: debug);  anything else --> one
 *                   debug line (off at the default level)
 *
 * fastify's own request logging (two info lines per request) is off: a flood of refused logins wrote
 * 120k lines (24 MB). Security-relevant outcomes are in the audit trail, refusals by the per-address
 * limits in a summary line every 10 s (source-limits.ts); `--log-level debug` shows every request.
 */
import { PassThrough, type Readable } from 'node:stream';
import { constants as h2c, type Http2ServerRequest } from 'node:http2';
import type { FastifyInstance } from 'fastify';
import { HEADERS } from '@mssh/protocol';
import { relayError } from '../errors.js';

/** Tunnel bodies are the session's byte stream, read by the route itself: no deadline. */
const STREAMING_PREFIX = '/v1/tunnel/';

/** onTimeout: told of each timed-out request (the per-address limits count it against its connection). */
export function installBodyTimeout(
  app: FastifyInstance,
  bodyTimeoutMs: number,
  onTimeout?: (raw: Http2ServerRequest) => void,
): void {
  app.addHook('preParsing', (request, reply, payload, done) => {
    const raw = request.raw as unknown as Http2ServerRequest & { complete?: boolean };
    if (
      request.method === 'GET' ||
      request.method === 'HEAD' ||
      raw.complete ||
      request.routeOptions.url?.startsWith(STREAMING_PREFIX)
    ) {
      done(null, payload);
      return;
    }
    const body = new PassThrough();
    const timer = setTimeout(() => {
      payload.unpipe(body);
      // The answer is the error handler's 408; once it is written, the stream is closed (the client's
      // half with it: it still owes the body).
      const stream = raw.stream;
      if (stream) {
        const close = () => {
          try {
            if (!stream.closed && !stream.destroyed) stream.close(h2c.NGHTTP2_NO_ERROR);
          } catch {
            // already gone
          }
        };
        stream.once('finish', close);
        setTimeout(close, 5_000).unref();
      }
      onTimeout?.(raw);
      body.destroy(
        relayError(
          'RLY_ERR_BODY_TIMEOUT',
          `the request body did not arrive within ${Math.round(bodyTimeoutMs / 1000)} s`,
        ),
      );
    }, bodyTimeoutMs);
    timer.unref();
    const clear = () => clearTimeout(timer);
    body.once('end', clear);
    body.once('close', clear);
    (payload as Readable).once('close', clear);
    // Answered before the body was read (unknown route, wrong content type): no deadline left to keep.
    reply.raw.once('finish', clear);
    // The body parser listens for the error; when the request was answered without parsing, nobody
    // does, and an unheard 'error' would crash the relay (found by the fuzz e2e test).
    body.on('error', () => {});
    payload.pipe(body);
    done(null, body);
  });
}

export function installRequestLogging(app: FastifyInstance): void {
  app.addHook('onResponse', (request, reply, done) => {
    const status = reply.statusCode;
    // A draining relay's 503s (/readyz polled by the balancer, refused tunnel opens) are the drain working:
    // the drain's own log lines say so once, not once per request.
    if (status >= 500 && reply.getHeader(HEADERS.errorCode) !== 'RLY_ERR_DRAINING') {
      request.log.warn(
        { method: request.method, url: request.url, status, ms: Math.round(reply.elapsedTime), source: request.ip },
        'request failed',
      );
    } else if ((request.log as unknown as { isLevelEnabled(level: string): boolean }).isLevelEnabled('debug')) {
      request.log.debug(
        { method: request.method, url: request.url, status, ms: Math.round(reply.elapsedTime), source: request.ip },
        'request',
      );
    }
    done();
  });
}
