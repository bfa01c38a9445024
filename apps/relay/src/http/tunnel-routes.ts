/**
 * POST /v1/tunnel/:host: a client's byte stream to an enrolled machine's SSH target.
 *
 *   client --HTTP/2 stream (JWT)--> this route --gate.admit(user, host, 'https', source)--> agent --> sshd
 *
 * fastify routes the request and runs the auth preHandler; the session gate (session/gate.ts) admits the
 * session or refuses it with a coded RelayError, answered here as HTTP status + code. An admitted session
 * hijacks the reply and works on the raw HTTP/2 stream (no body buffering: a pass-through content-type
 * parser). The relay only ever
 * opens sessions to enrolled agent names that dialled in; it never dials what a client names.
 */
import type { Http2ServerRequest } from 'node:http2';
import type { FastifyPluginAsync, FastifyReply } from 'fastify';
import { HEADERS, HOST_NAME_RE, isValidRunId } from '@mssh/protocol';
import { RelayError, relayError } from '../errors.js';
import type { AdmittedSession, SessionGate } from '../session/gate.js';
import type { RequestAuth } from './auth-types.js';

export interface TunnelRoutesOptions {
  /**
   * The session gate (session/gate.ts): grant, host, caps, agent stream and the committed session.start;
   * this route only authenticates, translates a refusal into its HTTP answer and splices.
   */
  gate: SessionGate;
}

function sendError(reply: FastifyReply, err: RelayError): FastifyReply {
  return reply
    .code(err.statusCode)
    .header(HEADERS.errorCode, err.code)
    .header('content-type', 'application/json; charset=utf-8')
    .send(err.toBody());
}

export const tunnelRoutes: FastifyPluginAsync<TunnelRoutesOptions> = async (app, opts) => {
  const { gate } = opts;
  if (typeof app.authenticate !== 'function')
    throw new Error('tunnelRoutes needs the server to decorate app.authenticate');

  // Tunnel bodies are raw byte streams of any length: never buffer or parse them.
  app.removeAllContentTypeParsers();
  app.addContentTypeParser('application/octet-stream', (_req, _payload, done) => done(null, undefined));
  app.addContentTypeParser('*', (_req, _payload, done) => done(null, undefined));

  // One log line per tunnel ("tunnel closed", below, at info on the instance logger) instead of fastify's
  // request/response lines plus opened/closed: at hundreds of sessions per second logging was ~8 % of
  // the relay's CPU. Warnings and errors of the route still reach the log.
  const log = app.log;
  app.post<{ Params: { host: string } }>(
    '/v1/tunnel/:host',
    { preHandler: app.authenticate, logLevel: 'warn' },
    async (request, reply) => {
      const host = request.params.host;
      if (typeof host !== 'string' || !HOST_NAME_RE.test(host)) {
        return sendError(
          reply,
          relayError(
            'RLY_ERR_BAD_REQUEST',
            'host names are 1-63 chars of a-z, 0-9 and -, starting with a letter or digit',
          ),
        );
      }
      const raw = request.raw as unknown as Partial<Http2ServerRequest> & { httpVersionMajor: number };
      if (raw.httpVersionMajor !== 2 || !raw.stream) {
        return sendError(
          reply,
          relayError('RLY_ERR_BAD_REQUEST', 'tunnels need HTTP/2; use mssh (or an HTTP/2 client) to open one'),
        );
      }
      const auth: RequestAuth | null = request.auth;
      if (!auth) return sendError(reply, relayError('RLY_ERR_INTERNAL', 'request was not authenticated'));
      // The many-machine run (`mssh exec`) this session is part of: checked strictly, never stored unchecked.
      const run = request.headers[HEADERS.runId];
      if (run !== undefined && (typeof run !== 'string' || !isValidRunId(run)))
        return sendError(reply, relayError('RLY_ERR_BAD_RUN_ID'));
      const runId = typeof run === 'string' ? run : null;
      const source = request.ip ?? null;
      const stream = raw.stream;
      // Keep errors on the client stream from ever going unhandled while the agent side opens.
      stream.on('error', (err) => request.log.debug({ err: err.message }, 'client tunnel stream error'));

      let session: AdmittedSession;
      try {
        session = await gate.admit({
          principal: { name: auth.user, admin: auth.admin, role: auth.role, authAt: auth.checkedAt },
          host,
          door: 'https',
          source,
          runId,
        });
      } catch (err) {
        if (!(err instanceof RelayError)) throw err; // the edge error handler answers (and logs) the unexpected
        if (stream.destroyed || stream.closed) {
          reply.hijack(); // nobody left to tell
          return reply;
        }
        return sendError(reply, err);
      }
      reply.hijack();
      const { sessionId } = session;
      if (stream.destroyed || stream.closed) {
        // The client gave up while the agent was connecting: cancel the agent side.
        session.cancel('client_closed');
        return;
      }
      try {
        stream.respond({ ':status': 200, 'content-type': 'application/octet-stream', [HEADERS.sessionId]: sessionId });
      } catch (err) {
        request.log.debug({ err: (err as Error).message, sessionId }, 'client stream gone before the answer');
        session.cancel('client_closed');
        return;
      }
      request.log.debug({ sessionId, host, user: auth.user }, 'tunnel opened');
      const summary = await session.splice(stream);
      log.info(
        {
          reqId: request.id,
          sessionId,
          host,
          user: auth.user,
          source,
          bytesFromClient: summary.bytesFromClient,
          bytesToClient: summary.bytesToClient,
          reason: summary.reason,
        },
        'tunnel closed',
      );
    },
  );
};
