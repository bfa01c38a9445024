import type { FastifyPluginAsync } from 'fastify';
import { PATHS } from '@mssh/protocol';
import type { HostService } from '../../hosts/host-service.js';

/** Anonymous liveness with counts only (never names); `limits` adds the edge's in-memory state sizes. */
export const healthRoutes: FastifyPluginAsync<{ hosts: HostService; limits?: () => EdgeLimitCounts }> = async (
  app,
  { hosts, limits },
) => {
  app.get(PATHS.healthz, async () => (limits ? { ...(await hosts.health()), limits: limits() } : hosts.health()));
};

export interface EdgeLimitCounts {
  /** Entries of the failed-login limiters (per address and per user name); swept every minute. */
  limiterEntries: number;
  /** Addresses with live API connections or unanswered requests. */
  sourcesTracked: number;
}
