/**
 * buildServer(deps): the relay's fastify instance, not listening. main.ts listens; tests use inject().
 *
 *   client --HTTPS h2/http1.1 (JWT bearer)--> fastify: /healthz, /readyz, /v1/auth/*, /v1/hosts, /v1/admin/*,
 *                                                      /v1/agents/enroll, /v1/tunnel/:host, /v1/ssh-keys,
 *                                                      /install/* (no JWT: the one-line agent install)
 *   agent  --TLS, ALPN mssh-agent/1---------> router.acceptAgentSocket (never reaches fastify)
 */
import fastify, { LogController, type FastifyInstance } from 'fastify';
import type { Logger } from 'pino';
import type { TokenService } from '@mssh/auth';
import type { TunnelRouter } from '../tunnel/types.js';
import type { AuthService } from '../auth/auth-service.js';
import type { AdminService } from '../admin/admin-service.js';
import type { EnrollService } from '../enrolment/enroll-service.js';
import type { HostService } from '../hosts/host-service.js';
import type { SshKeyService } from '../ssh-jump/ssh-key-service.js';
import type { AccessService } from '../access/access-service.js';
import type { RelayAuditSink } from '../audit/audit-sink.js';
import { createRelayHttpServer, type RelayHttpServer } from './server-factory.js';
import { installErrorHandling } from './errors-edge.js';
import { installAuth } from './auth-plugin.js';
import { healthRoutes } from './routes/health.js';
import { authRoutes } from './routes/auth.js';
import { hostRoutes } from './routes/hosts.js';
import { enrollRoutes } from './routes/enroll.js';
import { adminRoutes } from './routes/admin.js';
import { sshKeyRoutes } from './routes/ssh-keys.js';
import { tunnelRoutes } from './tunnel-routes.js';
import { adminAuditRoutes } from './routes/admin-audit.js';
import type { AuditLog } from '../audit/audit-log.js';
import type { SessionGate } from '../session/gate.js';
import type { ConnectionLimits } from './connection-limits.js';
import type { LoginGuard } from '../limits/login-guard.js';
import { installProtocolFloor } from './protocol-floor.js';
import { installNameGuard } from './name-guard.js';
import { trustedProxyMatcher } from '../limits/source-address.js';
import { installBodyTimeout, installRequestLogging } from './request-hygiene.js';
import type { DrainState } from '../drain-state.js';
import type { AgentBundle } from '../agent-bundle/agent-bundle.js';
import { installRoutes } from './routes/install.js';
import { floodLogger, floodMessage } from './h2-flood-guard.js';

/** JSON bodies are small: credentials, names, keys. Tunnels stream and are not subject to it. */
export const JSON_BODY_LIMIT = 64 * 1024;

export interface ServerDeps {
  tls: { key: string | Buffer; cert: string | Buffer };
  logger: Logger;
  router: TunnelRouter;
  tokens: TokenService;
  auth: AuthService;
  hosts: HostService;
  enrolment: EnrollService;
  admin: AdminService;
  sshKeys: SshKeyService;
  access: AccessService;
  auditLog: AuditLog;
  /** The session gate (session/gate.ts): the tunnel route admits every session through it. */
  gate: SessionGate;
  /** For the edge's own audit rows (refused login names). */
  audit?: RelayAuditSink;
  /** How long shutdown waits for API connections to finish before cutting them (default 2 s). */
  closeGraceMs?: number;
  /** Issue 3 limits (flags of `serve`); every field has a default. */
  hardening?: HttpHardening;
  /**
   * The relay's drain (issue 19): /readyz answers 503 from its first instant, and every client connection
   * gets a GOAWAY then (running tunnels go on). Absent: always serving.
   */
  drain?: DrainState;
  /**
   * The self-contained agent for the one-line install (agent-bundle/agent-bundle.ts): GET /install/agent.sh
   * and /install/mssh-agent-linux-x64.tar.gz. Absent: those paths are not served (404 RLY_ERR_NOT_FOUND).
   */
  agentBundle?: AgentBundle;
}

export interface HttpHardening {
  /** CIDRs whose X-Forwarded-For is believed (rightmost untrusted hop); none: the socket address. */
  trustedProxies?: string[];
  /** JSON body cap (default JSON_BODY_LIMIT). */
  maxBodyBytes?: number;
  connection?: Partial<ConnectionLimits>;
  loginGuard?: LoginGuard;
  /** Oldest client protocol (x-mssh-protocol header) accepted. */
  minProtocolVersion?: number;
  /** A JSON body must have arrived this long after the request's headers (default 10 s; tunnels exempt). */
  bodyTimeoutMs?: number;
  /** Each connection or request refused by the per-address limits, RLY_ERR_SOURCE_LIMIT (metrics). */
  onSourceLimited?: () => void;
}

export function buildServer(deps: ServerDeps): FastifyInstance {
  const hard = deps.hardening ?? {};
  let relayServer: RelayHttpServer | undefined;
  const httpLogger = deps.logger.child({ component: 'relay.http' });
  const trusted = hard.trustedProxies ?? [];
  const logFlood = floodLogger((fields, msg) => httpLogger.warn(fields, msg));
  const app = fastify({
    http2: true,
    https: { key: deps.tls.key, cert: deps.tls.cert, allowHTTP1: true },
    http2SessionTimeout: 0,
    serverFactory: (handler) => {
      relayServer = createRelayHttpServer(handler, {
        key: deps.tls.key,
        cert: deps.tls.cert,
        acceptAgentSocket: (socket) => deps.router.acceptAgentSocket(socket),
        onSessionError: (err) => httpLogger.debug({ err: err.message }, 'HTTP/2 session error'),
        onFlood: (r) => logFlood({ peer: r.peer, kind: r.kind, count: r.count }, floodMessage(r, r.peer, 'connection')),
        limits: hard.connection,
        isTrustedProxy: trustedProxyMatcher(trusted),
        onRefusals: (r) =>
          httpLogger.warn(
            r,
            `per-address limits refused ${r.connections} connection(s) and ${r.streams} request(s), closed ${r.sessionsClosed} connection(s) in the last 10 s (most from ${r.top})`,
          ),
        onRefused: hard.onSourceLimited,
      });
      return relayServer.server;
    },
    loggerInstance: httpLogger,
    bodyLimit: hard.maxBodyBytes ?? JSON_BODY_LIMIT,
    // X-Forwarded-For reaches fastify normalised (bare addresses; see http/source-limits.ts admit()).
    trustProxy: trusted.length > 0 ? trusted : false,
    // Two info lines per request made a flood fill the disk (issue 16 item 3): see request-hygiene.ts.
    logController: new LogController({ disableRequestLogging: true }),
    // Request ids are ours, never taken from a client header.
    requestIdHeader: false,
    // While closing, in-flight requests finish normally and GOAWAY stops new ones (fastify's own 503
    // body would not carry a code).
    return503OnClosing: false,
  }) as unknown as FastifyInstance;

  installErrorHandling(app);
  installRequestLogging(app);
  installBodyTimeout(app, hard.bodyTimeoutMs ?? 10_000, (raw) => relayServer?.sourceLimits.strike(raw.stream));
  installAuth(app, deps.auth);
  installNameGuard(app, { onLoginRefused: deps.audit ? (e) => deps.audit!.loginRefusedName(e) : undefined });
  if (hard.minProtocolVersion !== undefined) installProtocolFloor(app, hard.minProtocolVersion);

  // Stop taking new requests on every API connection when the server closes; long tunnels end with
  // router.close(), then whatever is left is cut after the grace period.
  app.addHook('preClose', async () => {
    await relayServer?.closeConnections(deps.closeGraceMs ?? 2_000);
  });

  app.addHook('onClose', async () => hard.loginGuard?.close());

  deps.drain?.onBegin(() => {
    const n = relayServer?.goawayAll() ?? 0;
    httpLogger.info(
      { connections: n },
      `draining: GOAWAY sent on ${n} client connection(s); their running tunnels go on`,
    );
  });

  app.register(healthRoutes, {
    hosts: deps.hosts,
    draining: deps.drain ? () => deps.drain!.draining : undefined,
    limits: () => ({
      limiterEntries: hard.loginGuard?.entries ?? 0,
      sourcesTracked: relayServer?.sourceLimits.size ?? 0,
    }),
  });
  app.register(authRoutes, { auth: deps.auth, tokens: deps.tokens, loginGuard: hard.loginGuard });
  app.register(hostRoutes, {
    hosts: deps.hosts,
    access: deps.access,
    refreshHostKeys: deps.router.refreshHostKeys ? (name) => deps.router.refreshHostKeys!(name) : undefined,
  });
  app.register(enrollRoutes, { enrolment: deps.enrolment });
  app.register(adminRoutes, { admin: deps.admin });
  app.register(sshKeyRoutes, { sshKeys: deps.sshKeys });
  app.register(adminAuditRoutes, { auditLog: deps.auditLog });
  app.register(tunnelRoutes, { gate: deps.gate });
  if (deps.agentBundle) app.register(installRoutes, { bundle: deps.agentBundle, relay: () => deps.admin.relayInfo });
  return app;
}
