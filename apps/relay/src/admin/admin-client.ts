/**
 * The CLI's side of the admin socket. Answers are the same JSON as the REST admin routes; errors are the
 * wire error body, turned back into a RelayError.
 */
import { request } from 'node:http';
import { isWireErrorBody, WIRE_ERRORS, type WireErrorCode } from '@mssh/protocol';
import { cliFailure, RelayError } from '../errors.js';
import type {
  AgentAdminInfo,
  DisableUserResponse,
  FleetRelayInfo,
  GrantInfo,
  GrantRequest,
  LabelAgentRequest,
  LabelAgentResponse,
  RevokeAgentResponse,
  UserInfo,
} from '@mssh/protocol';
import type { CreatedUser, IssuedEnrollToken } from './admin-service.js';
import type { PruneResult } from '../audit/audit-log.js';
import { ADMIN_SOCKET_PATHS, type AdminSocketInfo } from './admin-socket-paths.js';
import type { RotatedKey } from '../auth/token-keys.js';
import type { DrainReport, DrainStatus } from '../drain-state.js';

/** What the CLI admin commands need, through the socket or straight on the database. */
export interface AdminOps {
  readonly via: 'admin-socket' | 'database';
  createUser(req: { name: string; password: string; admin: boolean }): Promise<CreatedUser>;
  createEnrollToken(name: string, labels?: Record<string, string>): Promise<IssuedEnrollToken>;
  labelAgent(name: string, req: LabelAgentRequest): Promise<LabelAgentResponse>;
  listUsers(): Promise<UserInfo[]>;
  disableUser(name: string, killSessions: boolean): Promise<DisableUserResponse>;
  enableUser(name: string): Promise<UserInfo>;
  setPassword(name: string, password: string): Promise<UserInfo>;
  setRole(name: string, role: string | null): Promise<UserInfo>;
  addGrant(req: GrantRequest): Promise<{ changed: boolean }>;
  removeGrant(req: GrantRequest): Promise<{ changed: boolean }>;
  listGrants(): Promise<GrantInfo[]>;
  listAgents(): Promise<AgentAdminInfo[]>;
  revokeAgent(name: string): Promise<RevokeAgentResponse>;
  forgetAgent(name: string): Promise<{ name: string; wasOnline: boolean }>;
  listRelays(): Promise<FleetRelayInfo[]>;
  /** Delete audit events older than this many ms (audit.pruned records it). */
  pruneAudit(olderThanMs: number): Promise<PruneResult>;
  /** Add a new token signing key and retire the current one (key.rotated records it). */
  rotateKeys(): Promise<RotatedKey>;
  close(): Promise<void>;
}

export class AdminSocketClient implements AdminOps {
  readonly via = 'admin-socket' as const;
  constructor(
    private readonly path: string,
    private readonly timeoutMs = 30_000,
  ) {}

  createUser(req: { name: string; password: string; admin: boolean }): Promise<CreatedUser> {
    return this.call<CreatedUser>('POST', ADMIN_SOCKET_PATHS.users, req);
  }

  createEnrollToken(name: string, labels?: Record<string, string>): Promise<IssuedEnrollToken> {
    return this.call<IssuedEnrollToken>('POST', ADMIN_SOCKET_PATHS.enroll, { name, ...(labels ? { labels } : {}) });
  }

  labelAgent(name: string, req: LabelAgentRequest): Promise<LabelAgentResponse> {
    return this.call('POST', `${ADMIN_SOCKET_PATHS.agent(name)}/labels`, req);
  }

  async listUsers(): Promise<UserInfo[]> {
    return (await this.call<{ users: UserInfo[] }>('GET', ADMIN_SOCKET_PATHS.users)).users;
  }

  disableUser(name: string, killSessions: boolean): Promise<DisableUserResponse> {
    return this.call('POST', `${ADMIN_SOCKET_PATHS.user(name)}/disable`, { killSessions });
  }

  enableUser(name: string): Promise<UserInfo> {
    return this.call('POST', `${ADMIN_SOCKET_PATHS.user(name)}/enable`, {});
  }

  setPassword(name: string, password: string): Promise<UserInfo> {
    return this.call('POST', `${ADMIN_SOCKET_PATHS.user(name)}/password`, { password });
  }

  setRole(name: string, role: string | null): Promise<UserInfo> {
    return this.call('POST', `${ADMIN_SOCKET_PATHS.user(name)}/role`, { role });
  }

  addGrant(req: GrantRequest): Promise<{ changed: boolean }> {
    return this.call('POST', ADMIN_SOCKET_PATHS.grants, req);
  }

  removeGrant(req: GrantRequest): Promise<{ changed: boolean }> {
    return this.call('POST', ADMIN_SOCKET_PATHS.grantsRemove, req);
  }

  async listGrants(): Promise<GrantInfo[]> {
    return (await this.call<{ grants: GrantInfo[] }>('GET', ADMIN_SOCKET_PATHS.grants)).grants;
  }

  async listAgents(): Promise<AgentAdminInfo[]> {
    return (await this.call<{ agents: AgentAdminInfo[] }>('GET', ADMIN_SOCKET_PATHS.agents)).agents;
  }

  revokeAgent(name: string): Promise<RevokeAgentResponse> {
    return this.call('POST', `${ADMIN_SOCKET_PATHS.agent(name)}/revoke`, {});
  }

  forgetAgent(name: string): Promise<{ name: string; wasOnline: boolean }> {
    return this.call('DELETE', ADMIN_SOCKET_PATHS.agent(name));
  }

  async listRelays(): Promise<FleetRelayInfo[]> {
    return (await this.call<{ relays: FleetRelayInfo[] }>('GET', ADMIN_SOCKET_PATHS.relays)).relays;
  }

  pruneAudit(olderThanMs: number): Promise<PruneResult> {
    return this.call<PruneResult>('POST', ADMIN_SOCKET_PATHS.auditPrune, { olderThanMs });
  }

  rotateKeys(): Promise<RotatedKey> {
    return this.call<RotatedKey>('POST', ADMIN_SOCKET_PATHS.keysRotate, {});
  }

  info(): Promise<AdminSocketInfo> {
    return this.call<AdminSocketInfo>('GET', ADMIN_SOCKET_PATHS.info);
  }

  /** `mssh-relay drain`: begin the relay's drain (as SIGTERM does); answers once it has begun. */
  drain(): Promise<DrainReport> {
    return this.call<DrainReport>('POST', ADMIN_SOCKET_PATHS.drain, {});
  }

  drainStatus(): Promise<DrainStatus> {
    return this.call<DrainStatus>('GET', ADMIN_SOCKET_PATHS.drain);
  }

  async close(): Promise<void> {}

  private call<T>(method: string, path: string, body?: unknown): Promise<T> {
    const payload = body === undefined ? undefined : Buffer.from(JSON.stringify(body));
    return new Promise<T>((resolve, reject) => {
      const req = request(
        {
          socketPath: this.path,
          method,
          path,
          timeout: this.timeoutMs,
          headers: payload ? { 'content-type': 'application/json', 'content-length': payload.length } : {},
        },
        (res) => {
          const chunks: Buffer[] = [];
          let size = 0;
          res.on('data', (d: Buffer) => {
            size += d.length;
            if (size > 1024 * 1024) {
              req.destroy(new Error('answer too large'));
              return;
            }
            chunks.push(d);
          });
          res.on('end', () => {
            let parsed: unknown;
            try {
              parsed = JSON.parse(Buffer.concat(chunks).toString('utf8'));
            } catch {
              reject(
                cliFailure(
                  `the relay's admin socket gave an unreadable answer (HTTP ${res.statusCode})`,
                  'Check that the program on the socket is mssh-relay of the same version.',
                ),
              );
              return;
            }
            const status = res.statusCode ?? 0;
            if (status >= 200 && status < 300) {
              resolve(parsed as T);
              return;
            }
            if (isWireErrorBody(parsed) && parsed.code in WIRE_ERRORS) {
              reject(new RelayError(parsed.code as WireErrorCode, parsed.message));
              return;
            }
            reject(cliFailure(`the relay refused (HTTP ${status})`, 'See the relay log for details.'));
          });
          res.on('error', reject);
        },
      );
      req.on('timeout', () => req.destroy(new Error(`no answer within ${this.timeoutMs} ms`)));
      req.on('error', (e) =>
        reject(
          cliFailure(
            `cannot talk to the running relay on ${this.path}: ${e.message}`,
            'Check that mssh-relay is running and healthy, then try again.',
            e,
          ),
        ),
      );
      req.end(payload);
    });
  }
}
