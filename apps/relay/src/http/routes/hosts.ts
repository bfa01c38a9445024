import type { FastifyPluginAsync } from 'fastify';
import { HostName, PATHS, type HostsResponse } from '@mssh/protocol';
import { z } from 'zod';
import type { HostService } from '../../hosts/host-service.js';
import type { AccessService } from '../../access/access-service.js';
import { relayError } from '../../errors.js';
import { parseOr400 } from '../errors-edge.js';
import '../auth-types.js';

/** The enrolled machines this user may reach (admins: all), for authenticated users. */
export interface HostRoutesOptions {
  hosts: HostService;
  access: AccessService;
  /** Ask the machine's agent to rescan its host keys (router.refreshHostKeys); stored by the relay. */
  refreshHostKeys?: (name: string) => Promise<string[]>;
}

export const hostRoutes: FastifyPluginAsync<HostRoutesOptions> = async (app, { hosts, access, refreshHostKeys }) => {
  app.addHook('preHandler', app.authenticate);

  app.get(PATHS.hosts, async (request): Promise<HostsResponse> => {
    const a = request.auth!;
    return { hosts: await access.filterReachable({ name: a.user, admin: a.admin, role: a.role }, await hosts.list()) };
  });

  app.get(`${PATHS.hosts}/:name`, async (request) => {
    const { name } = parseOr400(z.object({ name: HostName }), request.params);
    const a = request.auth!;
    // The same answer for an unknown and an ungranted machine: no grant, no hint that it exists.
    if (!(await access.canReach({ name: a.user, admin: a.admin, role: a.role }, name))) {
      throw relayError(
        'RLY_ERR_NO_GRANT',
        `you have no grant for a machine named "${name}"; ask an admin (mssh admin grant ${a.user} ${name})`,
      );
    }
    return hosts.get(name);
  });

  // A client was shown a host key the relay does not attest (nothing pinned yet): have the agent look
  // again, then answer as GET does. Keys only ever come from the agent; the pinned key still wins on
  // the client, so this never overrides a key a user has pinned.
  app.post(`${PATHS.hosts}/:name/host-keys/refresh`, async (request) => {
    const { name } = parseOr400(z.object({ name: HostName }), request.params);
    const a = request.auth!;
    if (!(await access.canReach({ name: a.user, admin: a.admin, role: a.role }, name))) {
      throw relayError(
        'RLY_ERR_NO_GRANT',
        `you have no grant for a machine named "${name}"; ask an admin (mssh admin grant ${a.user} ${name})`,
      );
    }
    if (!refreshHostKeys) throw relayError('RLY_ERR_AGENT_FAILED', 'this relay cannot ask agents for their host keys');
    await refreshHostKeys(name);
    return hosts.get(name);
  });
};
