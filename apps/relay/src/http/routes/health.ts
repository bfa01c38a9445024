import type { FastifyPluginAsync } from 'fastify';
import { PATHS } from '@mssh/protocol';
import type { HostService } from '../../hosts/host-service.js';

/** Anonymous liveness with counts only (never names). */
export const healthRoutes: FastifyPluginAsync<{ hosts: HostService }> = async (app, { hosts }) => {
  app.get(PATHS.healthz, async () => hosts.health());
};
