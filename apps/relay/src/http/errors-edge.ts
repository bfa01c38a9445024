/**
 * The one place where failures become HTTP answers: every non-2xx body is
 * { statusCode, code, error, message }. Coded errors keep their code; malformed requests are
 * RLY_ERR_BAD_REQUEST; unknown routes RLY_ERR_NOT_FOUND; anything else RLY_ERR_INTERNAL with nothing
 * of the internals in the answer (the log has it).
 */
import type { FastifyError, FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { AuthError } from '@mssh/auth';
import { HEADERS, type WireErrorBody } from '@mssh/protocol';
import { z } from 'zod';
import { RelayError, relayError } from '../errors.js';
import { isDatabaseUnavailable } from '../db/database.js';

/** fastify's own client errors (bad JSON, body too large, wrong content type...) and what to tell the client. */
function clientErrorMessage(err: FastifyError): string {
  switch (err.code) {
    case 'FST_ERR_CTP_BODY_TOO_LARGE':
      return 'request body is too large';
    case 'FST_ERR_CTP_INVALID_MEDIA_TYPE':
    case 'FST_ERR_CTP_INVALID_CONTENT_LENGTH':
      return 'unsupported content type; send application/json';
    case 'FST_ERR_CTP_EMPTY_JSON_BODY':
      return 'the JSON body is empty';
    case 'FST_ERR_CTP_INVALID_JSON_BODY':
    default:
      return err.statusCode === 400 && /JSON/i.test(err.message) ? 'the body is not valid JSON' : 'malformed request';
  }
}

export function toErrorBody(err: unknown): { body: WireErrorBody; internal: boolean } {
  if (err instanceof RelayError || err instanceof AuthError)
    return { body: err.toBody(), internal: err.statusCode >= 500 };
  if (err instanceof z.ZodError)
    return { body: relayError('RLY_ERR_BAD_REQUEST', describeZodError(err)).toBody(), internal: false };
  const fe = err as Partial<FastifyError> | null;
  if (
    fe &&
    typeof fe === 'object' &&
    (fe.validation || (typeof fe.statusCode === 'number' && fe.statusCode >= 400 && fe.statusCode < 500))
  ) {
    return {
      body: relayError(
        'RLY_ERR_BAD_REQUEST',
        fe.validation ? 'malformed request' : clientErrorMessage(fe as FastifyError),
      ).toBody(),
      internal: false,
    };
  }
  if (isDatabaseUnavailable(err)) return { body: relayError('RLY_ERR_DATABASE_UNAVAILABLE').toBody(), internal: true };
  return { body: relayError('RLY_ERR_INTERNAL').toBody(), internal: true };
}

/** "name: host names are ...; password: ..." */
export function describeZodError(err: z.ZodError): string {
  return err.issues
    .slice(0, 5)
    .map((i) => `${i.path.length ? i.path.join('.') : 'body'}: ${i.message}`)
    .join('; ');
}

/** Parse a request part with a zod schema, or throw RLY_ERR_BAD_REQUEST naming what is wrong. */
export function parseOr400<S extends z.ZodType>(schema: S, value: unknown): z.infer<S> {
  const r = schema.safeParse(value);
  if (!r.success) throw relayError('RLY_ERR_BAD_REQUEST', describeZodError(r.error));
  return r.data;
}

export function sendErrorBody(reply: FastifyReply, body: WireErrorBody): FastifyReply {
  return reply
    .code(body.statusCode)
    .header(HEADERS.errorCode, body.code)
    .type('application/json; charset=utf-8')
    .send(body);
}

export function installErrorHandling(app: FastifyInstance): void {
  app.setErrorHandler((err: unknown, request: FastifyRequest, reply: FastifyReply) => {
    const { body, internal } = toErrorBody(err);
    if (internal) request.log.error({ err }, 'request failed');
    else request.log.debug({ code: body.code, msg: body.message }, 'request refused');
    if (err instanceof RelayError && err.retryAfterSeconds !== undefined)
      reply.header('retry-after', String(err.retryAfterSeconds));
    return sendErrorBody(reply, body);
  });
  app.setNotFoundHandler((request: FastifyRequest, reply: FastifyReply) => {
    return sendErrorBody(
      reply,
      relayError('RLY_ERR_NOT_FOUND', `no route ${request.method} ${request.url.split('?')[0]}`).toBody(),
    );
  });
}
