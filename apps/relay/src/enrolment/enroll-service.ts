/**
 * Agent enrolment: an agent presents a one-time token issued for its name, its Ed25519 identity public
 * key and its target's SSH host keys. The token claim and the agent row are one transaction: a refused
 * enrolment (wrong name, taken name) leaves the token unused, and is audited as agent.enroll_failed.
 */
import { MIN_PROTOCOL_VERSION, parseSshPublicKeyLine, type EnrollRequest, type EnrollResponse } from '@mssh/protocol';
import type { AgentRecord, AgentRepository, Db, EnrollTokenRepository } from '../db/index.js';
import type { RelayAuditSink } from '../audit/audit-sink.js';
import { type RelayError, relayError } from '../errors.js';
import { parseAgentPublicKey } from '../tunnel/agent-proof.js';

export interface EnrollServiceDeps {
  db: Db;
  agents: AgentRepository;
  enrollTokens: EnrollTokenRepository;
  audit: RelayAuditSink;
  minProtocolVersion?: number;
}

class Refusal extends Error {
  constructor(readonly error: RelayError) {
    super(error.message);
  }
}

export class EnrollService {
  constructor(private readonly deps: EnrollServiceDeps) {}

  async enroll(req: EnrollRequest, source: string): Promise<EnrollResponse> {
    const { db, agents, enrollTokens, audit } = this.deps;
    if (req.protocolVersion < (this.deps.minProtocolVersion ?? MIN_PROTOCOL_VERSION)) {
      throw relayError(
        'RLY_ERR_PROTOCOL_TOO_OLD',
        `agent protocol ${req.protocolVersion} is too old for this relay; upgrade mssh-agent`,
      );
    }
    if (!parseAgentPublicKey(req.publicKey)) {
      throw relayError('RLY_ERR_BAD_REQUEST', 'publicKey must be an Ed25519 public key (SPKI DER, base64)');
    }
    for (const line of req.hostKeys) {
      if (!parseSshPublicKeyLine(line))
        throw relayError('RLY_ERR_BAD_REQUEST', 'a host key is not a well-formed OpenSSH public key');
    }
    let agent: AgentRecord;
    let tokenCreatedBy: string;
    try {
      ({ agent, tokenCreatedBy } = await db.transaction(async (tx) => {
        const claimed = await enrollTokens.claim(req.token, tx);
        if (!claimed) {
          throw new Refusal(
            relayError(
              'RLY_ERR_ENROLL_TOKEN_INVALID',
              'enrolment token is unknown, used or expired; ask an admin for a new one (mssh-relay agent enroll NAME)',
            ),
          );
        }
        if (claimed.name !== req.name) {
          throw new Refusal(
            relayError(
              'RLY_ERR_ENROLL_NAME_MISMATCH',
              `this enrolment token was issued for "${claimed.name}", not "${req.name}"`,
            ),
          );
        }
        // A revoked machine of that name is replaced (an admin issued this fresh token for it).
        await agents.forgetRevoked(req.name, tx);
        const r = await agents.create(
          {
            name: req.name,
            publicKey: req.publicKey,
            hostKeys: [...new Set(req.hostKeys)],
            agentVersion: req.agentVersion,
            protocolVersion: req.protocolVersion,
            labels: claimed.labels, // the admin's, from the token: never the agent's say
          },
          tx,
        );
        if (!r.ok) {
          throw new Refusal(
            r.conflict === 'name'
              ? relayError('RLY_ERR_NAME_TAKEN', `a machine named "${req.name}" is already enrolled`)
              : relayError(
                  'RLY_ERR_BAD_REQUEST',
                  'this agent key is already enrolled under another name; enrol with a fresh identity',
                ),
          );
        }
        return { agent: r.agent, tokenCreatedBy: claimed.createdBy };
      }));
    } catch (e) {
      if (e instanceof Refusal) {
        // A refused enrolment is audited (agent.enroll_failed, sampled per source): reused or guessed
        // tokens and wrong names are what an intruder's attempts look like.
        audit.enrollFailed({ name: req.name, source, code: e.error.code, message: e.error.message });
        throw e.error;
      }
      throw e;
    }
    audit.agentEnrolled({
      agentId: agent.id,
      name: agent.name,
      source,
      tokenCreatedBy,
      agentVersion: req.agentVersion,
      protocolVersion: req.protocolVersion,
    });
    return { agentId: agent.id, name: agent.name, agentEndpoint: null };
  }
}
