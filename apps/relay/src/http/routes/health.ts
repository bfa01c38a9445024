import type { FastifyPluginAsync } from 'fastify';
import { HEADERS, PATHS, WIRE_ERRORS } from '@mssh/protocol';
import type { HostService } from '../../hosts/host-service.js';
import { httpReason } from '../../errors.js';

/**
 * Anonymous liveness with counts only (never names); `limits` adds the edge's in-memory state sizes.
 * And readiness for a load balancer (issue 19): GET /readyz answers 200 {status: serving} until the relay
 * starts draining, then 503 {status: draining, code: RLY_ERR_DRAINING} at once. No authentication, no
 * database, no lookup: a balancer polls it.
 */
export const healthRoutes: FastifyPluginAsync<{
  hosts: HostService;
  limits?: () => EdgeLimitCounts;
  /** Is the relay draining (drain-state.ts)? Absent: always serving. */
  draining?: () => boolean;
}> = async (app, { hosts, limits, draining }) => {
  app.get(PATHS.healthz, async () => (limits ? { ...(await hosts.health()), limits: limits() } : hosts.health()));

  const DRAINING = JSON.stringify({
    status: 'draining',
    statusCode: 503,
    code: 'RLY_ERR_DRAINING',
    error: httpReason(503),
    message: WIRE_ERRORS.RLY_ERR_DRAINING.message,
  });
  const SERVING = JSON.stringify({ status: 'serving' });
  app.get(PATHS.readyz, { logLevel: 'warn' }, async (_request, reply) => {
    reply.header('cache-control', 'no-store').type('application/json; charset=utf-8');
    if (draining?.()) return reply.code(503).header(HEADERS.errorCode, 'RLY_ERR_DRAINING').send(DRAINING);
    return reply.code(200).send(SERVING);
  });
};

export interface EdgeLimitCounts {
  /** Entries of the failed-login limiters (per address and per user name); swept every minute. */
  limiterEntries: number;
  /** Addresses with live API connections or unanswered requests. */
  sourcesTracked: number;
}
