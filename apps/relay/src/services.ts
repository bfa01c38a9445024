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

export interface RelayServices {
  auth: AuthService;
  hosts: HostService;
  enrolment: EnrollService;
  admin: AdminService;
}

export function createServices(deps: {
  repos: Repositories;
  tokens: TokenService;
  audit: RelayAuditSink;
  router: TunnelRouter;
  relay: () => { url: string; fingerprint: string };
  minProtocolVersion?: number;
  /** Cap on concurrent password hashes at login (limits/hash-slots.ts). */
  hashSlots?: { run<T>(fn: () => Promise<T>): Promise<T> };
}): RelayServices {
  const { repos, tokens, audit, router } = deps;
  return {
    auth: new AuthService({ tokens, users: repos.users, revokedTokens: repos.revokedTokens, audit, hashSlots: deps.hashSlots }),
    hosts: new HostService({ agents: repos.agents, router }),
    enrolment: new EnrollService({ db: repos.db, agents: repos.agents, enrollTokens: repos.enrollTokens, audit, minProtocolVersion: deps.minProtocolVersion }),
    admin: new AdminService({ users: repos.users, agents: repos.agents, enrollTokens: repos.enrollTokens, audit, relay: deps.relay }),
  };
}
