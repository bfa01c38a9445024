import { describe, expect, it } from 'vitest';
import { z } from 'zod';
import { AuthError } from '@mssh/auth';
import { toErrorBody, parseOr400 } from './errors-edge.js';
import { relayError } from '../errors.js';

describe('edge error mapping', () => {
  it('keeps coded errors', () => {
    expect(toErrorBody(relayError('RLY_ERR_UNKNOWN_HOST', 'no machine named x')).body).toEqual({
      statusCode: 404,
      code: 'RLY_ERR_UNKNOWN_HOST',
      error: 'Not Found',
      message: 'no machine named x',
    });
    expect(toErrorBody(new AuthError('AUTH_ERR_FORBIDDEN')).body).toMatchObject({
      statusCode: 403,
      code: 'AUTH_ERR_FORBIDDEN',
      error: 'Forbidden',
    });
  });

  it('turns anything unexpected into RLY_ERR_INTERNAL without its details', () => {
    const r = toErrorBody(new Error('connection to 10.0.0.5:5432 refused, password=hunter2'));
    expect(r.internal).toBe(true);
    expect(r.body).toEqual({
      statusCode: 500,
      code: 'RLY_ERR_INTERNAL',
      error: 'Internal Server Error',
      message: 'internal error',
    });
    expect(toErrorBody('a string').body.code).toBe('RLY_ERR_INTERNAL');
    expect(toErrorBody(null).body.code).toBe('RLY_ERR_INTERNAL');
  });

  it('maps client errors from fastify and zod to RLY_ERR_BAD_REQUEST', () => {
    const tooLarge = Object.assign(new Error('Request body is too large'), {
      code: 'FST_ERR_CTP_BODY_TOO_LARGE',
      statusCode: 413,
    });
    expect(toErrorBody(tooLarge).body).toMatchObject({
      statusCode: 400,
      code: 'RLY_ERR_BAD_REQUEST',
      message: 'request body is too large',
    });
    expect(() => parseOr400(z.object({ name: z.string() }), { name: 3 })).toThrow(/name:/);
    expect(toErrorBody(z.object({ a: z.string() }).safeParse({}).error).body.code).toBe('RLY_ERR_BAD_REQUEST');
  });
});
