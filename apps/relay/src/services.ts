/**
 * The relay's application services over its repositories. main.ts (and the route tests) call this once.
 */
import type { TokenService } from '@mssh/auth';
import type { Repositories } from './db/index.js';
import type { RelayAuditSink } from './audit/audit-sink.js';
import type { TunnelRouter } from './tunnel/types.js';
import { AuthService } from './auth/auth-service.js';
import { HostService } from './hosts/host-service.js';
import { EnrollService } from './enrolment/enroll-service.js';
import { AdminService } from './admin/admin-service.js';
import { AuditLog } from './audit/audit-log.js';
import type { LiveSessionInfo } from './audit/session-recorder.js';

export interface RelayServices {
  auth: AuthService;
  hosts: HostService;
  enrolment: EnrollService;
  admin: AdminService;
  auditLog: AuditLog;
}

export function createServices(deps: {
  repos: Repositories;
  tokens: TokenService;
  audit: RelayAuditSink;
  router: TunnelRouter;
  relay: () => { url: string; fingerprint: string };
  minProtocolVersion?: number;
  /** This relay's id in the audit trail (audit.pruned rows). */
  relayId?: string;
  /** Live sessions of this relay (SessionRecorder.active), for fresh byte counts. */
  liveSessions?: () => LiveSessionInfo[];
}): RelayServices {
  const { repos, tokens, audit, router } = deps;
  return {
    auth: new AuthService({ tokens, users: repos.users, revokedTokens: repos.revokedTokens, audit }),
    hosts: new HostService({ agents: repos.agents, router }),
    enrolment: new EnrollService({ db: repos.db, agents: repos.agents, enrollTokens: repos.enrollTokens, audit, minProtocolVersion: deps.minProtocolVersion }),
    admin: new AdminService({ users: repos.users, agents: repos.agents, enrollTokens: repos.enrollTokens, audit, relay: deps.relay }),
    auditLog: new AuditLog({ db: repos.db, relayId: deps.relayId ?? 'unknown', live: deps.liveSessions }),
  };
}
