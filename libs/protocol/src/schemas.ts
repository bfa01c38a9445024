import { z } from 'zod';
import { HOST_NAME_RE, USER_NAME_RE } from './names.js';

/** An OpenSSH public key line: "<type> <base64> [comment]" (comment dropped on the wire). */
export const SshPublicKey = z
  .string()
  .max(16 * 1024)
  .regex(
    /^(ssh-ed25519|ssh-rsa|ecdsa-sha2-nistp256|ecdsa-sha2-nistp384|ecdsa-sha2-nistp521|sk-ssh-ed25519@openssh\.com|sk-ecdsa-sha2-nistp256@openssh\.com) [A-Za-z0-9+/=]+$/,
  );

export const HostName = z
  .string()
  .regex(HOST_NAME_RE, 'host names are 1-63 chars of a-z, 0-9 and -, starting with a letter or digit');
export const UserName = z
  .string()
  .regex(USER_NAME_RE, 'user names are 1-64 chars of a-z, 0-9, ., _ and -, starting with a letter or digit');

/** Short version strings, printable ASCII only. */
export const VersionString = z
  .string()
  .max(64)
  .regex(/^[\x20-\x7e]*$/);

/**
 * What an agent reports about its machine (OS, kernel, arch, agent version, target mode). Shown only:
 * grants never match on facts. Each value is sanitised and cut to 128 characters by the relay.
 */
export const AgentFacts = z.object({
  os: z.string().max(256).optional(),
  kernel: z.string().max(256).optional(),
  arch: z.string().max(256).optional(),
  agentVersion: z.string().max(256).optional(),
  target: z.string().max(256).optional(),
});
export type AgentFacts = z.infer<typeof AgentFacts>;

// ---- auth ----
export const LoginRequest = z.object({ user: z.string().min(1).max(64), password: z.string().min(1).max(1024) });
export type LoginRequest = z.infer<typeof LoginRequest>;
export const LoginResponse = z.object({
  token: z.string(),
  expiresAt: z.string(), // ISO time
  user: z.string(),
  admin: z.boolean(),
});
export type LoginResponse = z.infer<typeof LoginResponse>;
export const WhoamiResponse = z.object({ user: z.string(), admin: z.boolean(), expiresAt: z.string() });
export type WhoamiResponse = z.infer<typeof WhoamiResponse>;

// ---- hosts ----
export const HostInfo = z.object({
  name: z.string(),
  online: z.boolean(),
  lastSeen: z.string().nullable(), // ISO time, null = never connected
  /** The target's SSH host public keys, as reported by its agent (OpenSSH one-line format, no comment). */
  hostKeys: z.array(z.string()),
  /** SHA256 fingerprints of hostKeys, same order, OpenSSH style "SHA256:...". */
  hostKeyFingerprints: z.array(z.string()),
  agentVersion: z.string().nullable(),
  protocolVersion: z.number().int().nullable(),
  /** Not seen for longer than the relay's --stale-after (default 30 days). */
  stale: z.boolean().optional(),
  /** The admin's labels (key=value). Absent from relays before labels. */
  labels: z.record(z.string(), z.string()).optional(),
  /** What the agent reports (shown only; grants never match on it). */
  facts: z.record(z.string(), z.string()).optional(),
});
export type HostInfo = z.infer<typeof HostInfo>;
export const HostsResponse = z.object({ hosts: z.array(HostInfo) });
export type HostsResponse = z.infer<typeof HostsResponse>;

// ---- agent enrolment (agent -> relay, HTTPS, no JWT: the one-time token is the credential) ----
export const EnrollRequest = z.object({
  token: z.string().min(16).max(256),
  name: HostName,
  /** Agent identity public key, Ed25519, SPKI DER base64. */
  publicKey: z.string().min(1).max(256),
  hostKeys: z.array(SshPublicKey).max(16),
  agentVersion: VersionString,
  protocolVersion: z.number().int().min(0).max(1_000_000),
});
export type EnrollRequest = z.infer<typeof EnrollRequest>;
export const EnrollResponse = z.object({
  agentId: z.string(),
  name: z.string(),
  /** Where the agent dials its link: null means "the same host:port as the relay URL" (ALPN shared port). */
  agentEndpoint: z.string().nullable(),
});
export type EnrollResponse = z.infer<typeof EnrollResponse>;

// ---- admin ----
export const CreateUserRequest = z.object({
  name: UserName,
  password: z.string().min(8).max(1024),
  admin: z.boolean().default(false),
});
export type CreateUserRequest = z.infer<typeof CreateUserRequest>;
/** `labels` are checked by the relay (labels.ts), so that a bad one is RLY_ERR_BAD_LABEL naming its rule. */
export const CreateEnrollTokenRequest = z.object({
  name: HostName,
  labels: z.record(z.string().max(256), z.string().max(256)).optional(),
});
export const CreateEnrollTokenResponse = z.object({ name: z.string(), token: z.string(), expiresAt: z.string() });
export type CreateEnrollTokenResponse = z.infer<typeof CreateEnrollTokenResponse>;

/** Role names: the user-name alphabet. */
export const RoleName = z
  .string()
  .regex(USER_NAME_RE, 'role names are 1-64 chars of a-z, 0-9, ., _ and -, starting with a letter or digit');

export const UserInfo = z.object({
  name: z.string(),
  admin: z.boolean(),
  role: z.string().nullable(),
  disabled: z.boolean(),
  disabledAt: z.string().nullable(),
  createdAt: z.string(),
});
export type UserInfo = z.infer<typeof UserInfo>;
export const UsersResponse = z.object({ users: z.array(UserInfo) });
export type UsersResponse = z.infer<typeof UsersResponse>;
export const DisableUserRequest = z.object({ killSessions: z.boolean().default(false) });
export type DisableUserRequest = z.infer<typeof DisableUserRequest>;
export const DisableUserResponse = UserInfo.extend({ sessionsEnded: z.number().int() });
export type DisableUserResponse = z.infer<typeof DisableUserResponse>;
export const SetPasswordRequest = z.object({ password: z.string().min(8).max(1024) });
export const SetRoleRequest = z.object({ role: RoleName.nullable() });
export type SetRoleRequest = z.infer<typeof SetRoleRequest>;

/**
 * A grant: `subject` (a user, or every user of a role) may reach the hosts matching `pattern`, a glob
 * over host names (`*` any run, `?` one character; otherwise a-z, 0-9 and -).
 */
const GrantFields = z.object({
  subjectKind: z.enum(['user', 'role']),
  subject: UserName,
  pattern: z
    .string()
    .min(1)
    .max(128)
    .regex(/^[a-z0-9*?-]+$/, 'grant patterns are host name characters (a-z, 0-9, -) plus the wildcards * and ?')
    .optional(),
  /**
   * A label selector instead of a pattern: `env=staging,role=web` (every pair must match). Checked by the
   * relay (RLY_ERR_BAD_LABEL naming the rule) and stored in canonical order.
   */
  labels: z.string().min(1).max(4096).optional(),
});
/** Exactly one of `pattern` (a name glob) and `labels` (a label selector). */
export const GrantRequest = GrantFields.refine((g) => (g.pattern === undefined) !== (g.labels === undefined), {
  message: 'a grant has either a host name pattern or a label selector (--labels), not both and not neither',
});
export type GrantRequest = z.infer<typeof GrantRequest>;
export const GrantInfo = z.object({
  subjectKind: z.enum(['user', 'role']),
  subject: z.string(),
  pattern: z.string().optional(),
  labels: z.string().optional(),
  createdBy: z.string(),
  createdAt: z.string(),
});
export type GrantInfo = z.infer<typeof GrantInfo>;
export const GrantsResponse = z.object({ grants: z.array(GrantInfo) });
export type GrantsResponse = z.infer<typeof GrantsResponse>;
export const GrantChangeResponse = z.object({ changed: z.boolean() });

/** An agent as admins see it (`mssh admin agents list`). */
export const AgentAdminInfo = z.object({
  name: z.string(),
  online: z.boolean(),
  lastSeen: z.string().nullable(),
  enrolledAt: z.string(),
  revokedAt: z.string().nullable(),
  stale: z.boolean(),
  protocolVersion: z.number().int().nullable(),
  agentVersion: z.string().nullable(),
  /** SHA256 of the agent's identity key (SPKI DER). */
  identityFingerprint: z.string(),
  hostKeyFingerprints: z.array(z.string()),
  labels: z.record(z.string(), z.string()).optional(),
  facts: z.record(z.string(), z.string()).optional(),
});
export type AgentAdminInfo = z.infer<typeof AgentAdminInfo>;
export const AgentsResponse = z.object({ agents: z.array(AgentAdminInfo) });
export type AgentsResponse = z.infer<typeof AgentsResponse>;
/**
 * A relay of the fleet (`mssh admin relays`, `mssh-relay fleet`). state: serving, draining, stopped (left
 * cleanly) or lost (its lease expired: crashed or cut off). A single relay without a fleet lists itself.
 */
export const FleetRelayInfo = z.object({
  id: z.string(),
  /** Where peers dial it; null without --peer-listen. */
  peerUrl: z.string().nullable(),
  publicUrl: z.string().nullable(),
  version: z.string(),
  pid: z.number().int().nullable(),
  startedAt: z.string(),
  leaseUntil: z.string().nullable(),
  state: z.enum(['serving', 'draining', 'stopped', 'lost']),
  /** Agents whose link it holds. */
  agents: z.number().int(),
  /** Open sessions that entered through it. */
  sessions: z.number().int(),
  /** The relay that answered. */
  self: z.boolean(),
});
export type FleetRelayInfo = z.infer<typeof FleetRelayInfo>;
export const RelaysResponse = z.object({ relays: z.array(FleetRelayInfo) });
export type RelaysResponse = z.infer<typeof RelaysResponse>;
export const RevokeAgentResponse = AgentAdminInfo.extend({ wasOnline: z.boolean() });
/** POST /v1/admin/agents/:name/labels: `set` these pairs, `remove` those keys. */
export const LabelAgentRequest = z.object({
  set: z.record(z.string().max(256), z.string().max(256)).default({}),
  remove: z.array(z.string().max(256)).max(64).default([]),
});
export type LabelAgentRequest = z.infer<typeof LabelAgentRequest>;
export const LabelAgentResponse = z.object({
  name: z.string(),
  labels: z.record(z.string(), z.string()),
  before: z.record(z.string(), z.string()),
  /** Running sessions ended because the new labels no longer grant them (fleet-wide, this relay's count). */
  sessionsEnded: z.number().int(),
});
export type LabelAgentResponse = z.infer<typeof LabelAgentResponse>;
export type RevokeAgentResponse = z.infer<typeof RevokeAgentResponse>;

// ---- agent link (relay is the HTTP/2 client on the agent's socket) ----
/**
 * POST /mssh/hello: the relay asks; the agent answers 200 with AgentHello as JSON. The signature is an
 * Ed25519 signature over the TLS exported keying material (label AGENT_PROOF_EKM_LABEL, 32 bytes) of
 * this very TLS connection, so it is fresh and cannot be replayed on another connection.
 */
export const AgentHello = z.object({
  name: HostName,
  publicKey: z.string().min(1).max(256), // SPKI DER base64
  signature: z.string().min(1).max(256), // base64
  hostKeys: z.array(SshPublicKey).max(16),
  agentVersion: VersionString,
  protocolVersion: z.number().int().min(0).max(1_000_000),
  /** What the agent knows of its machine; optional (agents before it do not send it). Shown only. */
  facts: AgentFacts.optional(),
});
export type AgentHello = z.infer<typeof AgentHello>;

/** The agent's answer to POST /mssh/host-keys: its target's host keys now (or from its last scan). */
export const AgentHostKeys = z.object({ hostKeys: z.array(SshPublicKey).max(16) });
export type AgentHostKeys = z.infer<typeof AgentHostKeys>;
/**
 * POST /mssh/welcome: the relay tells the agent the verdict (request body is AgentWelcome JSON; the agent
 * answers 204, or 409 when it declines the link because another of its links holds this relay already:
 * the relay then drops this link and keeps the other). On ok=false the relay closes the link right
 * after; the agent logs code and message.
 */
export const AgentWelcome = z.object({
  ok: z.boolean(),
  code: z.string().optional(),
  message: z.string().optional(),
  /** When true, the agent must not retry until re-enrolled (revoked, unknown key). */
  permanent: z.boolean().optional(),
  /**
   * The welcoming relay's stable id (its `<data-dir>/relay-id`), on ok=true. An agent holding links to
   * several relays of a fleet (`mssh-agent run --links K`) tells them apart by it, and declines a second
   * link to a relay it already holds (it answers the welcome 409). Absent from relays before the fleet.
   */
  relayId: z.string().max(128).optional(),
});
export type AgentWelcome = z.infer<typeof AgentWelcome>;

/** SSH public keys a user registered for the relay's SSH jump listener (`mssh keys`). */
export const SshKeyInfo = z.object({
  fingerprint: z.string(),
  type: z.string(),
  /** "type base64", no comment. */
  publicKey: z.string(),
  comment: z.string().nullable(),
  createdAt: z.string(),
});
export type SshKeyInfo = z.infer<typeof SshKeyInfo>;
/**
 * Where the relay's SSH jump listener listens: the relay's public host name and the port it is bound to
 * (so `mssh keys` prints a working `ssh -J user@host:port`); null when the listener is off. Optional on
 * the wire: relays before it do not send it.
 */
export const SshJumpInfo = z.object({ host: z.string(), port: z.number().int().min(1).max(65535) });
export type SshJumpInfo = z.infer<typeof SshJumpInfo>;
export const SshKeysResponse = z.object({ keys: z.array(SshKeyInfo), jump: SshJumpInfo.nullable().optional() });
export type SshKeysResponse = z.infer<typeof SshKeysResponse>;
/** POST /v1/ssh-keys: an OpenSSH public key line, "type base64 [comment]". */
export const AddSshKeyRequest = z.object({
  publicKey: z
    .string()
    .min(1)
    .max(16 * 1024),
});
export type AddSshKeyRequest = z.infer<typeof AddSshKeyRequest>;
/** POST /v1/ssh-keys answers the key registered, and where the jump listener is. */
export const AddSshKeyResponse = SshKeyInfo.extend({ jump: SshJumpInfo.nullable().optional() });
export type AddSshKeyResponse = z.infer<typeof AddSshKeyResponse>;
