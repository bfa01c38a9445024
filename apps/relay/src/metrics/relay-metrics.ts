/**
 * The relay's Prometheus metrics (issue 20 item 4; the list and its meaning: docs/operations.md). The
 * only file of the relay that knows prom-client: the tunnel, the session gate, the audit writer and the
 * login guard each declare the narrow interface they call (TunnelMetrics, SessionGateMetrics,
 * AuditWriterMetrics, LoginMetrics) and get this implementation injected by relay.ts.
 *
 *   events (a session started, a login failed, an audit commit took 3 ms) --> counters, histograms
 *   state (links by state, running sessions, bytes, audit queue, pool) --> read from its owner when scraped
 *
 * Nothing here runs per chunk of data: the bytes are the bridge's own counters (the ones the audit's
 * progress writes read), summed when Prometheus asks. Label values come from fixed sets only (link
 * states, session end reasons, wire error codes, doors): never a user or host name.
 */
import { Counter, Gauge, Histogram, type Registry } from 'prom-client';
import { WIRE_ERRORS } from '@mssh/protocol';
import type { AuditWriterMetrics } from '../audit/audit-writer.js';
import type { LoginMetrics } from '../limits/login-guard.js';
import type { SessionGateMetrics } from '../session/gate.js';
import type { TunnelStats } from '../tunnel/router.js';
import type { SessionEndReason, SessionVia, TunnelMetrics } from '../tunnel/types.js';

/** Every session end reason, so that each series exists (at 0) from the start: rate() and alerts need it. */
const END_REASONS: Record<SessionEndReason, true> = {
  client_closed: true,
  agent_closed: true,
  relay_shutdown: true,
  agent_revoked: true,
  user_disabled: true,
  role_changed: true,
  grant_revoked: true,
  idle_timeout: true,
  agent_unresponsive: true,
  error: true,
  relay_crashed: true,
};
const DOORS: readonly SessionVia[] = ['https', 'jump'];
/** The gate's refusals (session/gate.ts), present from the start; any other wire code is added when seen. */
const REFUSAL_CODES = [
  'RLY_ERR_DRAINING',
  'RLY_ERR_NO_GRANT',
  'RLY_ERR_UNKNOWN_HOST',
  'RLY_ERR_AGENT_OFFLINE',
  'RLY_ERR_USER_SESSION_LIMIT',
  'RLY_ERR_AGENT_SESSION_LIMIT',
  'RLY_ERR_RELAY_SESSION_LIMIT',
  'RLY_ERR_DATABASE_UNAVAILABLE',
  'RLY_ERR_AGENT_FAILED',
] as const satisfies ReadonlyArray<keyof typeof WIRE_ERRORS>;
const LINK_STATES = ['handshaking', 'online', 'draining'] as const;

/** Seconds: a session set-up is a few database and agent round trips; an audit commit one statement. */
const SETUP_BUCKETS = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10];
const COMMIT_BUCKETS = [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10];

/** Where the scraped state is read; each is null until the part exists (a relay still starting). */
export interface RelayMetricSources {
  tunnel?: () => TunnelStats & { sessions: number };
  auditQueue?: () => number;
  dbPool?: () => { total: number; idle: number; waiting: number };
}

export interface RelayMetrics {
  /** The per-process registry these metrics (and the process metrics) are in: what GET /metrics serves. */
  readonly registry: Registry;
  readonly tunnel: TunnelMetrics;
  readonly gate: SessionGateMetrics;
  readonly audit: AuditWriterMetrics;
  readonly logins: LoginMetrics;
  /** A connection or request refused by the per-address limits (RLY_ERR_SOURCE_LIMIT). */
  sourceLimited(): void;
  /** Tell where the scraped state is read (relay.ts, once the parts are built). */
  readFrom(sources: RelayMetricSources): void;
}

/** A wire code as a label value: only codes of the fixed set, anything else counted as RLY_ERR_INTERNAL. */
function codeLabel(code: string): string {
  return Object.hasOwn(WIRE_ERRORS, code) ? code : 'RLY_ERR_INTERNAL';
}

export function createRelayMetrics(registry: Registry): RelayMetrics {
  const registers = [registry];
  let sources: RelayMetricSources = {};

  new Gauge({
    name: 'mssh_relay_agent_links',
    help: 'Agent links (TLS connections of agents) by state: handshaking, online, draining (asked to move)',
    labelNames: ['state'],
    registers,
    collect() {
      const s = sources.tunnel?.();
      for (const state of LINK_STATES) this.set({ state }, s ? s.links[state] : 0);
    },
  });
  new Gauge({
    name: 'mssh_relay_sessions_active',
    help: 'Sessions with an open stream to an agent right now',
    registers,
    collect() {
      this.set(sources.tunnel?.().sessions ?? 0);
    },
  });
  const started = new Counter({
    name: 'mssh_relay_sessions_started_total',
    help: 'Sessions spliced (bytes may flow), by door: https (the tunnel route) or jump (the SSH jump listener)',
    labelNames: ['via'],
    registers,
  });
  const denied = new Counter({
    name: 'mssh_relay_sessions_denied_total',
    help: 'Sessions refused before they started, by error code (RLY_ERR_NO_GRANT, RLY_ERR_AGENT_OFFLINE, ...)',
    labelNames: ['code'],
    registers,
  });
  const ended = new Counter({
    name: 'mssh_relay_sessions_ended_total',
    help: 'Sessions ended, by reason (the audit trail end_reason: client_closed, agent_closed, idle_timeout, ...)',
    labelNames: ['reason'],
    registers,
  });
  new Counter({
    name: 'mssh_relay_session_bytes_total',
    help: 'Session bytes forwarded: from_client (client to agent) and to_client (agent to client), running sessions included',
    labelNames: ['direction'],
    registers,
    collect() {
      const s = sources.tunnel?.();
      this.reset();
      this.inc({ direction: 'from_client' }, s?.bytesFromClient ?? 0);
      this.inc({ direction: 'to_client' }, s?.bytesToClient ?? 0);
    },
  });
  const setup = new Histogram({
    name: 'mssh_relay_session_setup_seconds',
    help: 'Time to admit a session: access checks, the agent opening its target, and the committed session.start',
    labelNames: ['via'],
    buckets: SETUP_BUCKETS,
    registers,
  });
  const logins = new Counter({
    name: 'mssh_relay_logins_total',
    help: 'Logins (password over HTTPS, key on the SSH jump listener), by result: ok or failed',
    labelNames: ['result'],
    registers,
  });
  const rateLimited = new Counter({
    name: 'mssh_relay_rate_limited_total',
    help: 'Attempts refused by a limit: RLY_ERR_RATE_LIMITED (failed-login back-off), RLY_ERR_SOURCE_LIMIT (per-address connections and requests)',
    labelNames: ['code'],
    registers,
  });
  new Gauge({
    name: 'mssh_relay_audit_queue_depth',
    help: 'Audit writes queued or in flight, not yet committed (grows while the database is unavailable)',
    registers,
    collect() {
      this.set(sources.auditQueue?.() ?? 0);
    },
  });
  const commit = new Histogram({
    name: 'mssh_relay_audit_commit_seconds',
    help: 'Audit transactions (one group commit of queued writes), by result: ok or error',
    labelNames: ['result'],
    buckets: COMMIT_BUCKETS,
    registers,
  });
  const commitFailures = new Counter({
    name: 'mssh_relay_audit_commit_failures_total',
    help: 'Audit transactions that failed (the writes are retried; session starts are refused meanwhile)',
    registers,
  });
  new Gauge({
    name: 'mssh_relay_db_pool_in_use',
    help: 'Postgres pool connections checked out by a query (0 with the embedded PGlite, which has no pool)',
    registers,
    collect() {
      const p = sources.dbPool?.();
      if (p) this.set(p.total - p.idle);
    },
  });
  new Gauge({
    name: 'mssh_relay_db_pool_waiting',
    help: 'Queries waiting for a Postgres pool connection (0 with the embedded PGlite)',
    registers,
    collect() {
      const p = sources.dbPool?.();
      if (p) this.set(p.waiting);
    },
  });

  // Every series of a fixed label set exists from the start, at 0.
  for (const via of DOORS) {
    started.inc({ via }, 0);
    setup.zero({ via });
  }
  for (const reason of Object.keys(END_REASONS)) ended.inc({ reason }, 0);
  for (const code of REFUSAL_CODES) denied.inc({ code }, 0);
  for (const result of ['ok', 'failed']) logins.inc({ result }, 0);
  for (const code of ['RLY_ERR_RATE_LIMITED', 'RLY_ERR_SOURCE_LIMIT']) rateLimited.inc({ code }, 0);
  for (const result of ['ok', 'error']) commit.zero({ result });

  return {
    registry,
    tunnel: {
      sessionStarted: (via) => started.inc({ via }),
      sessionEnded: (reason) => ended.inc({ reason: Object.hasOwn(END_REASONS, reason) ? reason : 'error' }),
    },
    gate: {
      admitted: (via, seconds) => setup.observe({ via }, seconds),
      refused: (code) => denied.inc({ code: codeLabel(code) }),
    },
    audit: {
      transaction(seconds, ok) {
        commit.observe({ result: ok ? 'ok' : 'error' }, seconds);
        if (!ok) commitFailures.inc();
      },
    },
    logins: {
      login: (ok) => logins.inc({ result: ok ? 'ok' : 'failed' }),
      blocked: () => rateLimited.inc({ code: 'RLY_ERR_RATE_LIMITED' }),
    },
    sourceLimited: () => rateLimited.inc({ code: 'RLY_ERR_SOURCE_LIMIT' }),
    readFrom(s) {
      sources = { ...sources, ...s };
    },
  };
}
