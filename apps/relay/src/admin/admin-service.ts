/**
 * Administration shared by the REST admin routes (admin JWT), the local admin socket and the offline CLI:
 * create users, issue enrolment tokens.
 */
import { hashPassword } from '@mssh/auth';
import { ENROLL_TOKEN_TTL_SECONDS, type CreateEnrollTokenResponse } from '@mssh/protocol';
import type { AgentRepository, EnrollTokenRepository, UserRepository } from '../db/index.js';
import type { RelayAuditSink } from '../audit/audit-sink.js';
import { relayError } from '../errors.js';

/** Who asks, for the audit trail. */
export interface AdminActor {
  actor: string;
  source: string;
}

export interface CreatedUser {
  name: string;
  admin: boolean;
  createdAt: string;
}

/** An enrolment token, plus what the agent needs to reach and pin this relay. */
export interface IssuedEnrollToken extends CreateEnrollTokenResponse {
  relayUrl: string;
  relayFingerprint: string;
}

export interface AdminServiceDeps {
  users: UserRepository;
  agents: AgentRepository;
  enrollTokens: EnrollTokenRepository;
  audit: RelayAuditSink;
  /** The relay's public URL and certificate fingerprint (asked at each use: the port is known only once listening). */
  relay: () => { url: string; fingerprint: string };
  enrollTokenTtlSeconds?: number;
}

export class AdminService {
  constructor(private readonly deps: AdminServiceDeps) {}

  get relayInfo(): { url: string; fingerprint: string } {
    return this.deps.relay();
  }

  /** Expects a validated CreateUserRequest. A taken name is RLY_ERR_NAME_TAKEN. */
  async createUser(req: { name: string; password: string; admin: boolean }, by: AdminActor): Promise<CreatedUser> {
    const user = await this.deps.users.create({ name: req.name, passwordHash: await hashPassword(req.password), isAdmin: req.admin });
    if (!user) throw relayError('RLY_ERR_NAME_TAKEN', `a user named "${req.name}" already exists`);
    this.deps.audit.userCreated({ user: user.name, admin: user.isAdmin, actor: by.actor, source: by.source });
    return { name: user.name, admin: user.isAdmin, createdAt: user.createdAt.toISOString() };
  }

  /** Expects a valid host name. A name already enrolled is RLY_ERR_NAME_TAKEN. */
  async createEnrollToken(name: string, by: AdminActor): Promise<IssuedEnrollToken> {
    if (await this.deps.agents.findByName(name)) {
      throw relayError('RLY_ERR_NAME_TAKEN', `a machine named "${name}" is already enrolled; pick another name`);
    }
    const { token, expiresAt } = await this.deps.enrollTokens.create({
      name, createdBy: by.actor, ttlSeconds: this.deps.enrollTokenTtlSeconds ?? ENROLL_TOKEN_TTL_SECONDS,
    });
    const relay = this.deps.relay();
    return { name, token, expiresAt: expiresAt.toISOString(), relayUrl: relay.url, relayFingerprint: relay.fingerprint };
  }
}
