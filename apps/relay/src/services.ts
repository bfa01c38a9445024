/**
 * The relay's application services over its repositories. main.ts (and the route tests) call this once.
 */
import type { FleetRelayInfo } from '@mssh/protocol';
import type { TokenService } from '@mssh/auth';
import type { Repositories } from './db/index.js';
import type { RelayAuditSink } from './audit/audit-sink.js';
import type { TunnelRouter } from './tunnel/types.js';
import { AuthService } from './auth/auth-service.js';
import { HostService } from './hosts/host-service.js';
import { EnrollService } from './enrolment/enroll-service.js';
import { AdminService } from './admin/admin-service.js';
import { SshKeyService } from './ssh-jump/ssh-key-service.js';
import { AccessService } from './access/access-service.js';
import { AuditLog } from './audit/audit-log.js';
import type { LiveSessionInfo } from './audit/session-recorder.js';
import { UserChanges } from './auth/user-changes.js';
import { createHostAccessRecheck, type HostAccessRecheck } from './access/host-access-recheck.js';

export interface RelayServices {
  auth: AuthService;
  hosts: HostService;
  enrolment: EnrollService;
  admin: AdminService;
  sshKeys: SshKeyService;
  access: AccessService;
  /** For the HTTP layer's own events (session.denied). */
  audit: RelayAuditSink;
  auditLog: AuditLog;
  /** Key removals, disables, role and password changes, for live connections (the SSH jump listener). */
  userChanges: UserChanges;
  /** End this relay's running sessions to a machine that no grant matches any more (labels changed). */
  recheckHost: HostAccessRecheck;
}

export function createServices(deps: {
  repos: Repositories;
  tokens: TokenService;
  audit: RelayAuditSink;
  router: TunnelRouter;
  relay: () => { url: string; fingerprint: string; publicKeyPin?: string };
  /** Where the SSH jump listener is bound (host name clients dial, actual port); null when it is off. */
  sshJump?: () => { host: string; port: number } | null;
  minProtocolVersion?: number;
  /** Machines not seen for this long are stale (default 30 days). */
  staleAfterMs?: number;
  /** This relay's id in the audit trail (audit.pruned rows). */
  relayId?: string;
  /** Live sessions of this relay (SessionRecorder.active), for fresh byte counts. */
  liveSessions?: () => LiveSessionInfo[];
  /** Cap on concurrent password hashes at login (limits/hash-slots.ts). */
  hashSlots?: { run<T>(fn: () => Promise<T>): Promise<T> };
  /** In a fleet: machines online through any relay. */
  fleetOnline?: () => Promise<Set<string>>;
  /** The fleet's relays (or this relay alone). */
  relays?: () => Promise<FleetRelayInfo[]>;
  /**
   * In a fleet: tell the other relays that a machine's labels changed, or (null) that a grant was removed;
   * each rechecks its own sessions.
   */
  publishHostAccessChanged?: (host: string | null) => void;
}): RelayServices {
  const { repos, tokens, audit, router } = deps;
  const userChanges = new UserChanges();
  const access = new AccessService({ grants: repos.grants, agents: repos.agents });
  const recheckHost = createHostAccessRecheck({ router, users: repos.users, access });
  return {
    auth: new AuthService({
      tokens,
      users: repos.users,
      revokedTokens: repos.revokedTokens,
      audit,
      hashSlots: deps.hashSlots,
    }),
    hosts: new HostService({
      agents: repos.agents,
      router,
      staleAfterMs: deps.staleAfterMs,
      fleetOnline: deps.fleetOnline,
    }),
    enrolment: new EnrollService({
      db: repos.db,
      agents: repos.agents,
      enrollTokens: repos.enrollTokens,
      audit,
      minProtocolVersion: deps.minProtocolVersion,
    }),
    sshKeys: new SshKeyService({
      keys: repos.sshKeys,
      users: repos.users,
      audit,
      jump: deps.sshJump,
      changes: userChanges,
    }),
    admin: new AdminService({
      users: repos.users,
      agents: repos.agents,
      grants: repos.grants,
      enrollTokens: repos.enrollTokens,
      audit,
      relay: deps.relay,
      router,
      staleAfterMs: deps.staleAfterMs,
      changes: userChanges,
      relays: deps.relays,
      fleetOnline: deps.fleetOnline,
      hostAccessChanged: (host) => {
        deps.publishHostAccessChanged?.(host);
        return recheckHost(host);
      },
      grantsChanged: () => {
        deps.publishHostAccessChanged?.(null);
        return recheckHost(null);
      },
    }),
    access,
    audit,
    auditLog: new AuditLog({ db: repos.db, relayId: deps.relayId ?? 'unknown', live: deps.liveSessions }),
    userChanges,
    recheckHost,
  };
}
