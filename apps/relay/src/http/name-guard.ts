/**
 * Names never carry control characters. Every request's path parameters, query values and the name
 * fields of its JSON body (user, name, subject, role, pattern, host) are checked before validation; a
 * NUL or any other C0/C1 control character is refused with 400 RLY_ERR_BAD_REQUEST, instead of reaching the
 * database (Postgres refuses NUL in text: that was a 500) or a terminal. A refused login is audited
 * (user.login USR001W, reason invalid_name, the name with its control characters written as \uXXXX).
 */
import type { FastifyInstance, FastifyRequest } from 'fastify';
import { PATHS } from '@mssh/protocol';
import { relayError } from '../errors.js';

// eslint-disable-next-line no-control-regex -- the characters a name may not carry
const CONTROL = /[\u0000-\u001f\u007f-\u009f]/;
/** Body fields that hold names (passwords and keys are not names and are not checked). */
const NAME_FIELDS = ['user', 'name', 'subject', 'role', 'pattern', 'host'] as const;

export function hasControlChars(s: string): boolean {
  return CONTROL.test(s);
}

/** The first name-like value with a control character, as "where.field", or null. */
export function findControlChars(
  request: Pick<FastifyRequest, 'params' | 'query' | 'body'>,
): { where: string; value: string } | null {
  const scan = (where: string, obj: unknown, fields?: readonly string[]): { where: string; value: string } | null => {
    if (
      !obj ||
      typeof obj !== 'object' ||
      (Object.getPrototypeOf(obj) !== Object.prototype && Object.getPrototypeOf(obj) !== null)
    )
      return null;
    for (const [k, v] of Object.entries(obj as Record<string, unknown>)) {
      if (fields && !fields.includes(k)) continue;
      for (const x of Array.isArray(v) ? v : [v]) {
        if (typeof x === 'string' && CONTROL.test(x)) return { where: `${where}.${k}`, value: x };
      }
    }
    return null;
  };
  return scan('params', request.params) ?? scan('query', request.query) ?? scan('body', request.body, NAME_FIELDS);
}

export function installNameGuard(
  app: FastifyInstance,
  opts: { onLoginRefused?: (e: { user: string; source: string }) => void } = {},
): void {
  app.addHook('preValidation', async (request) => {
    const bad = findControlChars(request);
    if (!bad) return;
    if (bad.where === 'body.user' && request.routeOptions.url === PATHS.login)
      opts.onLoginRefused?.({ user: bad.value, source: request.ip });
    throw relayError('RLY_ERR_BAD_REQUEST', `${bad.where} contains control characters; names never do`);
  });
}
