import type { FastifyPluginAsync } from 'fastify';
import { HostName, PATHS, type HostsResponse } from '@mssh/protocol';
import { z } from 'zod';
import type { HostService } from '../../hosts/host-service.js';
import { parseOr400 } from '../errors-edge.js';
import '../auth-types.js';

/** The enrolled machines, for authenticated users. */
export const hostRoutes: FastifyPluginAsync<{ hosts: HostService }> = async (app, { hosts }) => {
  app.addHook('preHandler', app.authenticate);

  app.get(PATHS.hosts, async (): Promise<HostsResponse> => ({ hosts: await hosts.list() }));

  app.get(`${PATHS.hosts}/:name`, async (request) => {
    const { name } = parseOr400(z.object({ name: HostName }), request.params);
    return hosts.get(name);
  });
};
