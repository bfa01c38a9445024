/**
 * Wire constants shared by relay, agent and client. Changing any of these is a protocol change:
 * bump PROTOCOL_VERSION and keep the relay accepting the previous one where it can.
 */

/** Protocol version spoken by this build (agent link and client tunnel). */
export const PROTOCOL_VERSION = 1;
/** Oldest protocol version the relay accepts by default. */
export const MIN_PROTOCOL_VERSION = 1;
/** Software version of this build. */
export const SOFTWARE_VERSION = '0.1.0';

/** ALPN id an agent offers when it dials the relay; API clients offer h2 / http/1.1. */
export const AGENT_ALPN = 'mssh-agent/1';

/** Label for TLS exported keying material that the agent signs to prove its key (RFC 5705). */
export const AGENT_PROOF_EKM_LABEL = 'EXPORTER-mssh-agent-proof';
export const AGENT_PROOF_EKM_LENGTH = 32;

/** Headers (HTTP/2 lower-case). */
export const HEADERS = {
  protocolVersion: 'x-mssh-protocol',
  softwareVersion: 'x-mssh-version',
  sessionId: 'x-mssh-session',
  user: 'x-mssh-user',
  errorCode: 'x-mssh-error',
  /**
   * Client -> relay, on a tunnel request: the id of the many-machine run (`mssh exec`, `mssh cp`) the
   * session belongs to (RUN_ID_RE). The relay stores it with the session and its audit rows; a bad one is
   * refused 400 RLY_ERR_BAD_RUN_ID. Absent for every other session.
   */
  runId: 'x-mssh-run',
} as const;

/**
 * Paths.
 * - Client -> relay (HTTP/2, JWT bearer): API under /v1, tunnels at POST /v1/tunnel/:host.
 * - Relay -> agent (HTTP/2 where the RELAY is the client, on the socket the agent dialled):
 *   POST /mssh/hello, POST /mssh/welcome, POST /mssh/session.
 */
export const PATHS = {
  login: '/v1/auth/login',
  logout: '/v1/auth/logout',
  whoami: '/v1/auth/whoami',
  jwks: '/.well-known/jwks.json',
  healthz: '/healthz',
  /** Readiness for a load balancer: 200 {status: serving}, 503 {status: draining, code: RLY_ERR_DRAINING}. */
  readyz: '/readyz',
  hosts: '/v1/hosts',
  host: (name: string) => `/v1/hosts/${encodeURIComponent(name)}`,
  /** POST: ask the machine's agent to scan its SSH server's host keys again (rate-limited); answers HostInfo. */
  hostKeysRefresh: (name: string) => `/v1/hosts/${encodeURIComponent(name)}/host-keys/refresh`,
  tunnel: (name: string) => `/v1/tunnel/${encodeURIComponent(name)}`,
  enroll: '/v1/agents/enroll',
  sshKeys: '/v1/ssh-keys',
  sshKey: (fingerprint: string) => `/v1/ssh-keys/${encodeURIComponent(fingerprint)}`,
  adminUsers: '/v1/admin/users',
  adminAgentEnroll: '/v1/admin/agents/enroll',
  /** GET list; POST /:name/disable|enable|password|role. */
  adminUser: (name: string) => `/v1/admin/users/${encodeURIComponent(name)}`,
  /** GET list, POST add; POST /v1/admin/grants/remove removes. */
  adminGrants: '/v1/admin/grants',
  adminGrantsRemove: '/v1/admin/grants/remove',
  /** GET list; POST /:name/revoke; DELETE /:name forgets. */
  adminAgents: '/v1/admin/agents',
  adminRelays: '/v1/admin/relays',
  adminAgent: (name: string) => `/v1/admin/agents/${encodeURIComponent(name)}`,
  adminAudit: '/v1/admin/audit',
  adminSessions: '/v1/admin/sessions',
  /** GET, unauthenticated: the agent's install script (sh), with this relay's URL, key pin and tarball sha256 in it. */
  installScript: '/install/agent.sh',
  /** GET, unauthenticated: the self-contained agent (Node runtime included) for linux-x64. */
  installTarball: '/install/mssh-agent-linux-x64.tar.gz',
  agentHello: '/mssh/hello',
  agentWelcome: '/mssh/welcome',
  agentSession: '/mssh/session',
  /** relay -> agent: scan the target's host keys again (the agent rate-limits scans); 200 AgentHostKeys. */
  agentHostKeys: '/mssh/host-keys',
} as const;

/** JWT claims. */
export const JWT_ISSUER = 'mssh-relay';
export const JWT_AUDIENCE = 'mssh';
export const JWT_DEFAULT_TTL_SECONDS = 12 * 60 * 60;

/** Enrolment tokens. */
export const ENROLL_TOKEN_TTL_SECONDS = 60 * 60;

/**
 * HTTP/2 flow control (see shared DESIGN.md: big windows froze the link when both directions were
 * saturated; these are the measured-safe values).
 */
export const H2_STREAM_WINDOW = 1024 * 1024;
export const H2_CONNECTION_WINDOW = 4 * 1024 * 1024;
export const H2_SETTINGS = {
  initialWindowSize: H2_STREAM_WINDOW,
  maxConcurrentStreams: 10_000,
  enablePush: false,
} as const;

/** Agent link keepalive: PING every interval, link considered dead if no answer within timeout. */
export const AGENT_PING_INTERVAL_MS = 5_000;
export const AGENT_PING_TIMEOUT_MS = 10_000;

/**
 * Node cancels an HTTP/2 PING on a session that sent or received a GOAWAY (ERR_HTTP2_PING_CANCEL): on an
 * agent link that was asked to move, that is not a sign of a dead peer.
 */
export function isPingCancel(err: Error): boolean {
  return (err as Error & { code?: string }).code === 'ERR_HTTP2_PING_CANCEL';
}

/** Agent reconnect backoff. */
export const RECONNECT_BASE_MS = 250;
export const RECONNECT_CAP_MS = 30_000;
export const RECONNECT_HEALTHY_RESET_MS = 60_000;

/** Default ports. */
export const DEFAULT_RELAY_PORT = 8443;
/** The relay's SSH jump listener (`ssh -J user@relay:2222 login@machine`), on the host of --listen. */
export const DEFAULT_SSH_JUMP_PORT = 2222;
