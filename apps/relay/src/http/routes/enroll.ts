import type { FastifyPluginAsync } from 'fastify';
import { EnrollRequest, PATHS } from '@mssh/protocol';
import type { EnrollService } from '../../enrolment/enroll-service.js';
import { parseOr400 } from '../errors-edge.js';

/** Agent enrolment: no JWT, the one-time enrolment token in the body is the credential. */
export const enrollRoutes: FastifyPluginAsync<{ enrolment: EnrollService }> = async (app, { enrolment }) => {
  app.post(PATHS.enroll, async (request, reply) => {
    const body = parseOr400(EnrollRequest, request.body);
    const res = await enrolment.enroll(body, request.ip);
    return reply.code(201).send(res);
  });
};
