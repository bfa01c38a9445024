/**
 * POST /v1/tunnel/:host: a client's byte stream to an enrolled machine's SSH target.
 *
 *   client --HTTP/2 stream (JWT)--> this route --router.openSession(host)--> agent --> sshd
 *
 * fastify routes the request and runs the auth preHandler; then the route hijacks the reply and works on
 * the raw HTTP/2 stream (no body buffering: a pass-through content-type parser). The relay only ever
 * opens sessions to enrolled agent names that dialled in; it never dials what a client names.
 */
import { randomUUID } from 'node:crypto';
import { constants as h2c, type Http2ServerRequest, type ServerHttp2Stream } from 'node:http2';
import type { FastifyPluginAsync, FastifyReply } from 'fastify';
import { HEADERS, HOST_NAME_RE } from '@mssh/protocol';
import { RelayError, relayError } from '../errors.js';
import type { RecordedSession, SessionLedger, TunnelRouter } from '../tunnel/types.js';
import type { RequestAuth } from './auth-types.js';

export interface TunnelRoutesOptions {
  router: TunnelRouter;
  /** Is a machine with this name enrolled (whether or not its agent is connected)? */
  hostExists: (name: string) => Promise<boolean>;
  /** May this user reach this host? (AccessService.canReach: one query at most, admins none.) */
  canReach: (user: { name: string; admin: boolean; role: string | null }, host: string) => Promise<boolean>;
  /**
   * The session-start gate: when given, nothing is forwarded until the start is committed to the audit
   * trail, and a start that cannot be recorded is refused (RLY_ERR_DATABASE_UNAVAILABLE).
   */
  ledger?: SessionLedger;
  /** A session was refused before it started (session.denied). */
  onDenied?: (e: { user: string; host: string; source: string | null; reason: string; code: string }) => void;
}

function sendError(reply: FastifyReply, err: RelayError): FastifyReply {
  return reply.code(err.statusCode).header('content-type', 'application/json; charset=utf-8').send(err.toBody());
}

/** Answer an error on a hijacked raw stream, if it can still carry an answer. */
function respondRawError(stream: ServerHttp2Stream, err: RelayError): void {
  try {
    if (stream.destroyed || stream.closed) return;
    if (stream.headersSent) {
      stream.close(h2c.NGHTTP2_CANCEL);
      return;
    }
    stream.respond({ ':status': err.statusCode, 'content-type': 'application/json; charset=utf-8', [HEADERS.errorCode]: err.code });
    // The client may still be sending its half: once our answer is out, reset the stream politely.
    stream.end(JSON.stringify(err.toBody()), () => {
      if (!stream.destroyed && !stream.closed) stream.close(h2c.NGHTTP2_NO_ERROR);
    });
  } catch {
    try { stream.destroy(); } catch { /* already gone */ }
  }
}

/** Session caps (tunnel/session-caps.ts): a refusal by one of them is audited as session.denied, reason cap. */
const CAP_CODES = new Set<string>(['RLY_ERR_USER_SESSION_LIMIT', 'RLY_ERR_AGENT_SESSION_LIMIT', 'RLY_ERR_RELAY_SESSION_LIMIT']);

export const tunnelRoutes: FastifyPluginAsync<TunnelRoutesOptions> = async (app, opts) => {
  const { router, hostExists, canReach, ledger } = opts;
  const denied = (user: string, host: string, source: string | null, reason: string, code: string): void => {
    try { opts.onDenied?.({ user, host, source, reason, code }); } catch { /* the sink logs its own failures */ }
  };
  if (typeof app.authenticate !== 'function') throw new Error('tunnelRoutes needs the server to decorate app.authenticate');

  // Tunnel bodies are raw byte streams of any length: never buffer or parse them.
  app.removeAllContentTypeParsers();
  app.addContentTypeParser('application/octet-stream', (_req, _payload, done) => done(null, undefined));
  app.addContentTypeParser('*', (_req, _payload, done) => done(null, undefined));

  // One log line per tunnel ("tunnel closed", below, at info on the instance logger) instead of fastify's
  // request/response lines plus opened/closed: at hundreds of sessions per second logging was ~8 % of
  // the relay's CPU. Warnings and errors of the route still reach the log.
  const log = app.log;
  app.post<{ Params: { host: string } }>('/v1/tunnel/:host', { preHandler: app.authenticate, logLevel: 'warn' }, async (request, reply) => {
    const host = request.params.host;
    if (typeof host !== 'string' || !HOST_NAME_RE.test(host)) {
      return sendError(reply, relayError('RLY_ERR_BAD_REQUEST', 'host names are 1-63 chars of a-z, 0-9 and -, starting with a letter or digit'));
    }
    const raw = request.raw as unknown as Partial<Http2ServerRequest> & { httpVersionMajor: number };
    if (raw.httpVersionMajor !== 2 || !raw.stream) {
      return sendError(reply, relayError('RLY_ERR_BAD_REQUEST', 'tunnels need HTTP/2; use mssh (or an HTTP/2 client) to open one'));
    }
    const auth: RequestAuth | null = request.auth;
    if (!auth) return sendError(reply, relayError('RLY_ERR_INTERNAL', 'request was not authenticated'));
    const source = request.ip ?? null;
    // Access first, and the same answer for unknown and ungranted machines (no hint that one exists).
    if (!(await canReach({ name: auth.user, admin: auth.admin, role: auth.role }, host))) {
      denied(auth.user, host, source, 'no_grant', 'RLY_ERR_NO_GRANT');
      return sendError(reply, relayError('RLY_ERR_NO_GRANT', `you have no grant for a machine named ${host}; ask an admin (mssh admin grant ${auth.user} ${host})`));
    }
    // A connected agent is an enrolled one: only look the name up when it is not online.
    if (!router.isOnline(host)) {
      if (!(await hostExists(host))) {
        denied(auth.user, host, source, 'unknown_host', 'RLY_ERR_UNKNOWN_HOST');
        return sendError(reply, relayError('RLY_ERR_UNKNOWN_HOST', `no machine named ${host} is enrolled`));
      }
      denied(auth.user, host, source, 'host_offline', 'RLY_ERR_AGENT_OFFLINE');
      return sendError(reply, relayError('RLY_ERR_AGENT_OFFLINE', `${host} is enrolled but its agent is not connected`));
    }

    // A session cap reached is a refusal, not a session: answer and audit it before anything is recorded.
    try {
      router.checkSessionSlot?.(auth.user, host);
    } catch (err) {
      if (!(err instanceof RelayError)) throw err;
      denied(auth.user, host, source, 'cap', err.code);
      return sendError(reply, err);
    }

    const stream = raw.stream;
    reply.hijack();
    const sessionId = randomUUID();
    const meta = { sessionId, user: auth.user };
    // Keep errors on the client stream from ever going unhandled while the agent side opens.
    stream.on('error', (err) => request.log.debug({ err: err.message, sessionId }, 'client tunnel stream error'));
    // Start-before-bytes: the session.start is committed before the 200 and the splice, or the session
    // is refused. The commit and the agent's open run side by side (neither forwards a byte).
    const opening = router.openSession(host, meta);
    const recording = ledger?.start({ sessionId, user: auth.user, host, source, via: 'https', agentId: router.agentIdOf?.(host) || undefined });
    const [opened, recorded] = await Promise.allSettled([opening, recording]);
    const record: RecordedSession | undefined = recorded.status === 'fulfilled' ? recorded.value : undefined;
    if (opened.status === 'rejected') {
      const err: unknown = opened.reason;
      const e = err instanceof RelayError ? err : relayError('RLY_ERR_INTERNAL', undefined, err);
      if (!(err instanceof RelayError)) request.log.error({ err, sessionId }, 'opening a session failed');
      if (e.code === 'RLY_ERR_AGENT_OFFLINE') denied(auth.user, host, source, 'host_offline', e.code);
      else if (CAP_CODES.has(e.code)) denied(auth.user, host, source, 'cap', e.code);
      record?.end({ reason: 'error', bytesFromClient: 0, bytesToClient: 0 });
      respondRawError(stream, e);
      return;
    }
    const agentStream = opened.value;
    if (recorded.status === 'rejected') {
      const err: unknown = recorded.reason;
      const e = err instanceof RelayError ? err : relayError('RLY_ERR_DATABASE_UNAVAILABLE', undefined, err);
      request.log.error({ err: (err as Error).cause ?? err, sessionId, host, user: auth.user }, 'session refused: its start could not be recorded');
      agentStream.close(h2c.NGHTTP2_CANCEL);
      respondRawError(stream, e);
      return;
    }
    if (stream.destroyed || stream.closed) {
      // The client gave up while the agent was connecting: cancel the agent side.
      agentStream.close(h2c.NGHTTP2_CANCEL);
      record?.end({ reason: 'client_closed', bytesFromClient: 0, bytesToClient: 0 });
      return;
    }
    try {
      stream.respond({ ':status': 200, 'content-type': 'application/octet-stream', [HEADERS.sessionId]: sessionId });
    } catch (err) {
      request.log.debug({ err: (err as Error).message, sessionId }, 'client stream gone before the answer');
      agentStream.close(h2c.NGHTTP2_CANCEL);
      record?.end({ reason: 'client_closed', bytesFromClient: 0, bytesToClient: 0 });
      return;
    }
    request.log.debug({ sessionId, host, user: auth.user }, 'tunnel opened');
    const summary = await router.spliceSession(stream, agentStream, { ...meta, host, source, record, authAt: auth.checkedAt });
    log.info(
      { reqId: request.id, sessionId, host, user: auth.user, source, bytesFromClient: summary.bytesFromClient, bytesToClient: summary.bytesToClient, reason: summary.reason },
      'tunnel closed',
    );
  });
};
