/**
 * The client protocol floor: `mssh` sends its protocol and software version on every request
 * (x-mssh-protocol, x-mssh-version). A protocol below --min-protocol-version is answered 426
 * RLY_ERR_PROTOCOL_TOO_OLD with what to do; a request without the header (curl, a browser) is served.
 */
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { HEADERS, sanitizeForTerminal } from '@mssh/protocol';
import { relayError } from '../errors.js';
import { sendErrorBody } from './errors-edge.js';

export function installProtocolFloor(app: FastifyInstance, minProtocolVersion: number): void {
  app.addHook('onRequest', async (request: FastifyRequest, reply: FastifyReply) => {
    const raw = request.headers[HEADERS.protocolVersion];
    if (raw === undefined) return;
    const text = Array.isArray(raw) ? (raw[0] ?? '') : raw;
    const v = /^\d{1,9}$/.test(text.trim()) ? Number(text.trim()) : NaN;
    if (Number.isNaN(v)) {
      return sendErrorBody(
        reply,
        relayError('RLY_ERR_BAD_REQUEST', `${HEADERS.protocolVersion} must be a protocol number`).toBody(),
      );
    }
    if (v < minProtocolVersion) {
      const sw = request.headers[HEADERS.softwareVersion];
      const swText = typeof sw === 'string' ? ` (mssh ${sanitizeForTerminal(sw).slice(0, 32)})` : '';
      request.log.info({ protocol: v, min: minProtocolVersion }, 'client protocol too old');
      return sendErrorBody(
        reply,
        relayError(
          'RLY_ERR_PROTOCOL_TOO_OLD',
          `this client speaks protocol ${v}${swText}; the relay accepts ${minProtocolVersion} or newer: upgrade mssh`,
        ).toBody(),
      );
    }
  });
}
