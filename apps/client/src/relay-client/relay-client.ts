/**
 * The relay's API as the client uses it: typed JSON requests on top of TunnelClient (tunnel-client.ts: the
 * pinned HTTP/2 session, retries, tunnels). Every failure is a CliError (errors.ts), with the relay's wire code mapped.
 *
 *   mssh ──HTTP/2 stream POST /v1/tunnel/:host──▶ relay ──▶ agent ──▶ sshd
 *        request body = our bytes, response body = sshd's bytes (one full-duplex stream)
 */
import {
  AgentsResponse,
  LabelAgentResponse,
  type LabelAgentRequest,
  RelaysResponse,
  type FleetRelayInfo,
  DisableUserResponse,
  GrantChangeResponse,
  GrantsResponse,
  RevokeAgentResponse,
  UserInfo,
  UsersResponse,
  type AgentAdminInfo,
  type GrantInfo,
  type GrantRequest,
  AuditEventsResponse,
  SessionsResponse,
  type AuditEventInfo,
  type SessionInfo,
  CreateEnrollTokenResponse,
  HostInfo,
  HostsResponse,
  LoginResponse,
  PATHS,
  AddSshKeyResponse,
  type SshKeyInfo,
  SshKeysResponse,
  WhoamiResponse,
  type CreateUserRequest,
} from '@mssh/protocol';
import { TunnelClient } from './tunnel-client.js';

function withQuery(path: string, query: Record<string, string | undefined>): string {
  const q = new URLSearchParams();
  for (const [k, v] of Object.entries(query)) if (v !== undefined && v !== '') q.set(k, v);
  const s = q.toString();
  return s ? `${path}?${s}` : path;
}

export {
  DRAINING_RETRY_PAUSE_MS,
  TunnelClient,
  endedCleanly,
  type AnswerSchema,
  type RelayClientOptions,
  type Tunnel,
} from './tunnel-client.js';

/** The relay's API, typed and checked: every call of the CLI and the TUI (tunnels come from TunnelClient). */
export class RelayClient extends TunnelClient {
  login(user: string, password: string): Promise<LoginResponse> {
    return this.call('POST', PATHS.login, { body: { user, password }, schema: LoginResponse, auth: false });
  }

  async logout(): Promise<void> {
    await this.call('POST', PATHS.logout, { body: {} });
  }

  whoami(): Promise<WhoamiResponse> {
    return this.call('GET', PATHS.whoami, { schema: WhoamiResponse });
  }

  async listHosts(): Promise<HostInfo[]> {
    return (await this.call('GET', PATHS.hosts, { schema: HostsResponse })).hosts;
  }

  getHost(name: string): Promise<HostInfo> {
    return this.call('GET', PATHS.host(name), { schema: HostInfo, host: name });
  }

  /** Have the machine's agent rescan its host keys (rate-limited there), then the host as getHost. */
  refreshHostKeys(name: string): Promise<HostInfo> {
    return this.call('POST', PATHS.hostKeysRefresh(name), { body: {}, schema: HostInfo, host: name });
  }

  async listSshKeys(): Promise<SshKeyInfo[]> {
    return (await this.call('GET', PATHS.sshKeys, { schema: SshKeysResponse })).keys;
  }

  addSshKey(publicKey: string): Promise<AddSshKeyResponse> {
    return this.call('POST', PATHS.sshKeys, { body: { publicKey }, schema: AddSshKeyResponse });
  }

  async removeSshKey(fingerprint: string): Promise<void> {
    await this.call('DELETE', PATHS.sshKey(fingerprint));
  }

  async createUser(req: CreateUserRequest): Promise<void> {
    await this.call('POST', PATHS.adminUsers, { body: req });
  }

  createEnrollToken(name: string, labels?: Record<string, string>): Promise<CreateEnrollTokenResponse> {
    const body = labels && Object.keys(labels).length > 0 ? { name, labels } : { name };
    return this.call('POST', PATHS.adminAgentEnroll, { body, schema: CreateEnrollTokenResponse, host: name });
  }

  labelAgent(name: string, req: LabelAgentRequest): Promise<LabelAgentResponse> {
    return this.call('POST', `${PATHS.adminAgent(name)}/labels`, { body: req, schema: LabelAgentResponse, host: name });
  }

  async listUsers(): Promise<UserInfo[]> {
    return (await this.call('GET', PATHS.adminUsers, { schema: UsersResponse })).users;
  }

  disableUser(name: string, killSessions: boolean): Promise<DisableUserResponse> {
    return this.call('POST', `${PATHS.adminUser(name)}/disable`, {
      body: { killSessions },
      schema: DisableUserResponse,
    });
  }

  enableUser(name: string): Promise<UserInfo> {
    return this.call('POST', `${PATHS.adminUser(name)}/enable`, { body: {}, schema: UserInfo });
  }

  setPassword(name: string, password: string): Promise<UserInfo> {
    return this.call('POST', `${PATHS.adminUser(name)}/password`, { body: { password }, schema: UserInfo });
  }

  setRole(name: string, role: string | null): Promise<UserInfo> {
    return this.call('POST', `${PATHS.adminUser(name)}/role`, { body: { role }, schema: UserInfo });
  }

  addGrant(req: GrantRequest): Promise<{ changed: boolean }> {
    return this.call('POST', PATHS.adminGrants, { body: req, schema: GrantChangeResponse });
  }

  removeGrant(req: GrantRequest): Promise<{ changed: boolean }> {
    return this.call('POST', PATHS.adminGrantsRemove, { body: req, schema: GrantChangeResponse });
  }

  async listGrants(): Promise<GrantInfo[]> {
    return (await this.call('GET', PATHS.adminGrants, { schema: GrantsResponse })).grants;
  }

  async listRelays(): Promise<FleetRelayInfo[]> {
    return (await this.call('GET', PATHS.adminRelays, { schema: RelaysResponse })).relays;
  }

  async listAgents(): Promise<AgentAdminInfo[]> {
    return (await this.call('GET', PATHS.adminAgents, { schema: AgentsResponse })).agents;
  }

  revokeAgent(name: string): Promise<RevokeAgentResponse> {
    return this.call('POST', `${PATHS.adminAgent(name)}/revoke`, { body: {}, schema: RevokeAgentResponse, host: name });
  }

  async forgetAgent(name: string): Promise<void> {
    await this.call('DELETE', PATHS.adminAgent(name), { host: name });
  }

  async auditEvents(query: Record<string, string | undefined>): Promise<AuditEventInfo[]> {
    return (await this.call('GET', withQuery(PATHS.adminAudit, query), { schema: AuditEventsResponse })).events;
  }

  async sessions(query: Record<string, string | undefined>): Promise<SessionInfo[]> {
    return (await this.call('GET', withQuery(PATHS.adminSessions, query), { schema: SessionsResponse })).sessions;
  }
}
