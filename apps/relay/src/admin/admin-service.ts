/**
 * Administration shared by the REST admin routes (admin JWT), the local admin socket and the offline CLI:
 * users (create, list, disable/enable, password, role), grants, agents (enrolment tokens, list, revoke,
 * forget). Every change is audited.
 */
import { hashPassword } from '@mssh/auth';
import {
  ENROLL_TOKEN_TTL_SECONDS,
  LabelSyntaxError,
  applyLabelEdits,
  assertValidLabels,
  parseSelector,
  formatSelector,
  type LabelAgentRequest,
  type LabelAgentResponse,
  type Labels,
  fingerprintBlob,
  fingerprintKeyLine,
  type AgentAdminInfo,
  type CreateEnrollTokenResponse,
  type DisableUserResponse,
  type FleetRelayInfo,
  type GrantInfo,
  type GrantRequest,
  type RevokeAgentResponse,
  type UserInfo,
} from '@mssh/protocol';
import type {
  AgentRecord,
  AgentRepository,
  EnrollTokenRepository,
  GrantRepository,
  UserRecord,
  UserRepository,
} from '../db/index.js';
import type { RelayAuditSink } from '../audit/audit-sink.js';
import { AUDIT } from '../audit/codes.js';
import { relayError } from '../errors.js';
import { grantPatternProblem } from '../access/glob.js';
import type { TunnelRouter } from '../tunnel/types.js';
import { DEFAULT_STALE_AFTER_MS, isStale } from '../hosts/staleness.js';
import type { UserChanges } from '../auth/user-changes.js';

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
  /** sha256//... of the relay certificate's public key, for the one-line install (curl --pinnedpubkey). */
  relayPublicKeyPin?: string;
}

export interface AdminServiceDeps {
  users: UserRepository;
  agents: AgentRepository;
  grants: GrantRepository;
  enrollTokens: EnrollTokenRepository;
  audit: RelayAuditSink;
  /** The relay's public URL and certificate fingerprint (asked at each use: the port is known only once listening). */
  relay: () => { url: string; fingerprint: string; publicKeyPin?: string };
  /** The live tunnels (absent when the CLI works on the database of a stopped relay). */
  router?: Pick<TunnelRouter, 'isOnline' | 'closeSessionsOfUser' | 'closeAgent'>;
  enrollTokenTtlSeconds?: number;
  /** Machines not seen for this long are stale (default 30 days). */
  staleAfterMs?: number;
  clock?: () => Date;
  /** Told of disables, role and password changes once committed (the jump listener closes what they end). */
  changes?: UserChanges;
  /** The fleet's relays (fleet/store.ts list, or this relay alone). */
  relays?: () => Promise<FleetRelayInfo[]>;
  /** In a fleet: machines online through any relay. */
  fleetOnline?: () => Promise<Set<string>>;
  /**
   * A machine's labels changed: end the running sessions to it that no grant matches any more (on every
   * relay of the fleet); resolves to how many ended here. Absent offline (no live sessions).
   */
  hostAccessChanged?: (host: string) => Promise<number>;
  /** A grant was removed: recheck every live session the same way (all relays); resolves to how many ended here. */
  grantsChanged?: () => Promise<number>;
}

/** A LabelSyntaxError as the coded 400 (its message names the rule). */
function labelError(e: unknown): never {
  if (e instanceof LabelSyntaxError) throw relayError('RLY_ERR_BAD_LABEL', e.message);
  throw e;
}

export function userInfo(u: UserRecord): UserInfo {
  return {
    name: u.name,
    admin: u.isAdmin,
    role: u.role,
    disabled: u.disabledAt !== null,
    disabledAt: u.disabledAt ? u.disabledAt.toISOString() : null,
    createdAt: u.createdAt.toISOString(),
  };
}

function identityFingerprint(publicKey: string): string {
  return fingerprintBlob(Buffer.from(publicKey, 'base64'));
}

export class AdminService {
  constructor(private readonly deps: AdminServiceDeps) {}

  get relayInfo(): { url: string; fingerprint: string; publicKeyPin?: string } {
    return this.deps.relay();
  }

  private now(): Date {
    return this.deps.clock?.() ?? new Date();
  }

  private emit(
    kind: { type: string; code: string },
    by: AdminActor,
    extra: { host?: string; details?: Record<string, unknown> },
  ): void {
    this.deps.audit.emit({
      ...kind,
      actor: by.actor,
      source: by.source,
      host: extra.host ?? null,
      details: extra.details ?? {},
    });
  }

  // ------------------------------------------------------------ users

  /** Expects a validated CreateUserRequest. A taken name is RLY_ERR_NAME_TAKEN. */
  async createUser(req: { name: string; password: string; admin: boolean }, by: AdminActor): Promise<CreatedUser> {
    const user = await this.deps.users.create({
      name: req.name,
      passwordHash: await hashPassword(req.password),
      isAdmin: req.admin,
    });
    if (!user) throw relayError('RLY_ERR_NAME_TAKEN', `a user named "${req.name}" already exists`);
    this.deps.audit.userCreated({ user: user.name, admin: user.isAdmin, actor: by.actor, source: by.source });
    return { name: user.name, admin: user.isAdmin, createdAt: user.createdAt.toISOString() };
  }

  async listUsers(): Promise<UserInfo[]> {
    return (await this.deps.users.list()).map(userInfo);
  }

  private unknownUser(name: string): never {
    throw relayError('RLY_ERR_UNKNOWN_USER', `no user named "${name}"; see mssh admin users list`);
  }

  /**
   * Disable a user: their tokens fail from the next request on (authentication reads the row each time),
   * and for good: the token generation is bumped, so enabling the user again does not revive them.
   * With killSessions, their live sessions end now too (reason user_disabled), and so do their jump
   * connections; without it, new channels on those connections are refused.
   */
  async disableUser(name: string, opts: { killSessions: boolean }, by: AdminActor): Promise<DisableUserResponse> {
    const before = await this.deps.users.findByName(name);
    if (!before) this.unknownUser(name);
    const u = before.disabledAt ? before : await this.deps.users.setDisabled(name, this.now());
    if (!u) this.unknownUser(name);
    const sessionsEnded = opts.killSessions ? (this.deps.router?.closeSessionsOfUser(name, 'user_disabled') ?? 0) : 0;
    this.deps.changes?.emit({ kind: 'disabled', user: name, killSessions: opts.killSessions });
    this.emit(AUDIT.userDisabled, by, { details: { user: name, killSessions: opts.killSessions, sessionsEnded } });
    return { ...userInfo(u), sessionsEnded };
  }

  async enableUser(name: string, by: AdminActor): Promise<UserInfo> {
    const u = await this.deps.users.setDisabled(name, null);
    if (!u) this.unknownUser(name);
    this.emit(AUDIT.userEnabled, by, { details: { user: name } });
    return userInfo(u);
  }

  async setPassword(name: string, password: string, by: AdminActor): Promise<UserInfo> {
    if (!(await this.deps.users.findByName(name))) this.unknownUser(name);
    // Ends every token issued before (token generation bumped): a reset locks out whoever had the old password.
    const u = await this.deps.users.setPasswordHash(name, await hashPassword(password));
    if (!u) this.unknownUser(name);
    this.deps.changes?.emit({ kind: 'password_changed', user: name });
    this.emit(AUDIT.userPasswordChanged, by, { details: { user: name } });
    return userInfo(u);
  }

  /**
   * Set or clear the role. Everything the user holds was judged under the old role, so it ends: their
   * tokens (token generation bumped: AUTH_ERR_SESSION_ENDED), their live sessions on both doors (reason
   * role_changed) and their jump connections. They log in again under the new role.
   */
  async setRole(name: string, role: string | null, by: AdminActor): Promise<UserInfo> {
    const before = await this.deps.users.findByName(name);
    if (!before) this.unknownUser(name);
    const u = await this.deps.users.setRole(name, role);
    if (!u) this.unknownUser(name);
    const sessionsEnded = this.deps.router?.closeSessionsOfUser(name, 'role_changed') ?? 0;
    this.deps.changes?.emit({ kind: 'role_changed', user: name, from: before.role, to: role });
    this.emit(AUDIT.userRoleChanged, by, { details: { user: name, from: before.role, to: role, sessionsEnded } });
    return userInfo(u);
  }

  // ------------------------------------------------------------ grants

  /** Expects a validated GrantRequest. A grant to a user that does not exist is RLY_ERR_UNKNOWN_USER. */
  /** The grant as stored: a name glob (selector '') or a canonical label selector (pattern ''). */
  private grantKey(req: GrantRequest): { pattern: string; selector: string } {
    if (req.labels !== undefined) {
      if (req.pattern !== undefined)
        throw relayError('RLY_ERR_BAD_REQUEST', 'a grant has either a host name pattern or --labels, not both');
      let selector = '';
      try {
        selector = formatSelector(parseSelector(req.labels));
      } catch (e) {
        labelError(e);
      }
      return { pattern: '', selector };
    }
    const problem = grantPatternProblem(req.pattern ?? '');
    if (problem) throw relayError('RLY_ERR_BAD_REQUEST', problem);
    return { pattern: req.pattern!, selector: '' };
  }

  private grantDetails(req: GrantRequest, key: { pattern: string; selector: string }): Record<string, unknown> {
    return {
      subjectKind: req.subjectKind,
      subject: req.subject,
      ...(key.selector !== '' ? { labels: key.selector } : { pattern: key.pattern }),
    };
  }

  /** Expects a validated GrantRequest. A grant to a user that does not exist is RLY_ERR_UNKNOWN_USER. */
  async addGrant(req: GrantRequest, by: AdminActor): Promise<{ changed: boolean }> {
    const key = this.grantKey(req);
    if (req.subjectKind === 'user' && !(await this.deps.users.findByName(req.subject))) this.unknownUser(req.subject);
    const changed = await this.deps.grants.add({
      subjectKind: req.subjectKind,
      subject: req.subject,
      ...key,
      createdBy: by.actor,
    });
    if (changed) this.emit(AUDIT.grantAdded, by, { details: this.grantDetails(req, key) });
    return { changed };
  }

  async removeGrant(req: GrantRequest, by: AdminActor): Promise<{ changed: boolean }> {
    const key = this.grantKey(req);
    const changed = await this.deps.grants.remove({ subjectKind: req.subjectKind, subject: req.subject, ...key });
    if (!changed) {
      const what = key.selector !== '' ? `labels ${key.selector}` : `"${key.pattern}"`;
      throw relayError(
        'RLY_ERR_UNKNOWN_GRANT',
        `there is no grant of ${what} to ${req.subjectKind} "${req.subject}"; see mssh admin grants`,
      );
    }
    // Removing a grant takes effect at once: running sessions no remaining grant matches end (grant_revoked).
    const sessionsEnded = (await this.deps.grantsChanged?.()) ?? 0;
    this.emit(AUDIT.grantRemoved, by, { details: { ...this.grantDetails(req, key), sessionsEnded } });
    return { changed };
  }

  async listGrants(): Promise<GrantInfo[]> {
    return (await this.deps.grants.list()).map((g) => ({
      subjectKind: g.subjectKind,
      subject: g.subject,
      ...(g.selector !== '' ? { labels: g.selector } : { pattern: g.pattern }),
      createdBy: g.createdBy,
      createdAt: g.createdAt.toISOString(),
    }));
  }

  // ------------------------------------------------------------ agents

  /**
   * Expects a valid host name. A name enrolled (and not revoked) is RLY_ERR_NAME_TAKEN; a revoked name may
   * be enrolled again (the new enrolment replaces the revoked row).
   */
  async createEnrollToken(name: string, by: AdminActor, labels: Labels = {}): Promise<IssuedEnrollToken> {
    try {
      assertValidLabels(labels);
    } catch (e) {
      labelError(e);
    }
    const existing = await this.deps.agents.findByName(name);
    if (existing && !existing.revokedAt) {
      throw relayError(
        'RLY_ERR_NAME_TAKEN',
        `a machine named "${name}" is already enrolled; pick another name, or revoke or forget it first`,
      );
    }
    const { token, expiresAt } = await this.deps.enrollTokens.create({
      name,
      createdBy: by.actor,
      ttlSeconds: this.deps.enrollTokenTtlSeconds ?? ENROLL_TOKEN_TTL_SECONDS,
      labels,
    });
    const relay = this.deps.relay();
    return {
      name,
      token,
      expiresAt: expiresAt.toISOString(),
      relayUrl: relay.url,
      relayFingerprint: relay.fingerprint,
      ...(relay.publicKeyPin ? { relayPublicKeyPin: relay.publicKeyPin } : {}),
    };
  }

  agentInfo(a: AgentRecord, fleet?: Set<string>): AgentAdminInfo {
    const online = !a.revokedAt && ((this.deps.router?.isOnline(a.name) ?? false) || (fleet?.has(a.name) ?? false));
    return {
      name: a.name,
      online,
      lastSeen: a.lastSeenAt ? a.lastSeenAt.toISOString() : null,
      enrolledAt: a.enrolledAt.toISOString(),
      revokedAt: a.revokedAt ? a.revokedAt.toISOString() : null,
      stale: !online && !a.revokedAt && isStale(a, this.now(), this.deps.staleAfterMs ?? DEFAULT_STALE_AFTER_MS),
      protocolVersion: a.protocolVersion,
      agentVersion: a.agentVersion,
      identityFingerprint: identityFingerprint(a.publicKey),
      hostKeyFingerprints: a.hostKeys.map((k) => fingerprintKeyLine(k)).filter((f): f is string => f !== null),
      labels: a.labels ?? {},
      facts: a.facts ?? {},
    };
  }

  async listAgents(): Promise<AgentAdminInfo[]> {
    const [agents, fleet] = await Promise.all([this.deps.agents.listAll(), this.deps.fleetOnline?.()]);
    return agents.map((a) => this.agentInfo(a, fleet));
  }

  async listRelays(): Promise<FleetRelayInfo[]> {
    return this.deps.relays ? this.deps.relays() : [];
  }

  /**
   * Set and remove labels of an enrolled machine (audited agent.labels_changed with from and to). Who may
   * reach it changes at once: running sessions no grant matches any more end (reason grant_revoked).
   */
  async labelAgent(name: string, req: LabelAgentRequest, by: AdminActor): Promise<LabelAgentResponse> {
    const current = await this.deps.agents.findByName(name);
    if (!current || current.revokedAt)
      throw relayError('RLY_ERR_UNKNOWN_HOST', `no machine named "${name}" is enrolled; see mssh admin agents list`);
    let labels: Labels;
    try {
      labels = applyLabelEdits(current.labels ?? {}, { set: req.set, remove: req.remove });
    } catch (e) {
      labelError(e);
    }
    const before = await this.deps.agents.setLabels(name, labels);
    if (!before)
      throw relayError('RLY_ERR_UNKNOWN_HOST', `no machine named "${name}" is enrolled; see mssh admin agents list`);
    const sessionsEnded = (await this.deps.hostAccessChanged?.(name)) ?? 0;
    this.emit(AUDIT.agentLabelsChanged, by, {
      host: name,
      details: { agentId: before.id, from: before.labels ?? {}, to: labels, sessionsEnded },
    });
    return { name, labels, before: before.labels ?? {}, sessionsEnded };
  }

  /** Refuse the agent from now on and drop its live link and sessions (reason agent_revoked). */
  async revokeAgent(name: string, by: AdminActor): Promise<RevokeAgentResponse> {
    const a = await this.deps.agents.revoke(name, this.now());
    if (!a)
      throw relayError('RLY_ERR_UNKNOWN_HOST', `no machine named "${name}" is enrolled; see mssh admin agents list`);
    const wasOnline = this.deps.router?.closeAgent(name, 'agent_revoked', a.id) ?? false;
    this.emit(AUDIT.agentRevoked, by, { host: name, details: { agentId: a.id, wasOnline } });
    return { ...this.agentInfo(a), wasOnline };
  }

  /** Delete the agent's row (drop its link first): the name is free and its key unknown. */
  async forgetAgent(name: string, by: AdminActor): Promise<{ name: string; wasOnline: boolean }> {
    const a = await this.deps.agents.findByName(name);
    if (!a)
      throw relayError('RLY_ERR_UNKNOWN_HOST', `no machine named "${name}" is enrolled; see mssh admin agents list`);
    await this.deps.agents.forget(name);
    const wasOnline = this.deps.router?.closeAgent(name, 'agent_revoked', a.id) ?? false;
    this.emit(AUDIT.agentForgotten, by, { host: name, details: { agentId: a.id, wasOnline } });
    return { name, wasOnline };
  }
}
