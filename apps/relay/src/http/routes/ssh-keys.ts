import type { FastifyPluginAsync } from 'fastify';
import { AddSshKeyRequest, PATHS, type SshKeysResponse } from '@mssh/protocol';
import { z } from 'zod';
import type { SshKeyService } from '../../ssh-jump/ssh-key-service.js';
import { parseOr400 } from '../errors-edge.js';
import '../auth-types.js';

/** The caller's own SSH public keys for the jump listener (`mssh keys`). */
export const sshKeyRoutes: FastifyPluginAsync<{ sshKeys: SshKeyService }> = async (app, { sshKeys }) => {
  app.addHook('preHandler', app.authenticate);

  app.get(PATHS.sshKeys, async (request): Promise<SshKeysResponse> => sshKeys.listResponse(request.auth!.user));

  app.post(PATHS.sshKeys, async (request, reply) => {
    const { publicKey } = parseOr400(AddSshKeyRequest, request.body);
    return reply.code(201).send(await sshKeys.add(request.auth!.user, publicKey, request.ip));
  });

  app.delete(`${PATHS.sshKeys}/:fingerprint`, async (request, reply) => {
    const { fingerprint } = parseOr400(
      z.object({ fingerprint: z.string().regex(/^SHA256:[A-Za-z0-9+/]{43}$/, 'a SHA256:... key fingerprint') }),
      request.params,
    );
    await sshKeys.remove(request.auth!.user, fingerprint, request.ip);
    return reply.code(204).send();
  });
};
