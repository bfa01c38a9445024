/**
 * The audit API (admin token): `GET /v1/admin/audit` (events, filtered) and `GET /v1/admin/sessions`
 * (one row per session, live byte counts for running ones). Also the age/time syntax the CLIs accept.
 */
import { parseDuration } from './duration.js';
import { RUN_ID_RE } from './names.js';
import { z } from 'zod';

const IsoTime = z.string().refine((s) => Number.isFinite(Date.parse(s)), 'must be an ISO 8601 time');

export const AUDIT_QUERY_MAX_LIMIT = 10_000;

export const AuditQuery = z.object({
  user: z.string().min(1).max(64).optional(),
  host: z.string().min(1).max(63).optional(),
  /** Exact type (`session.start`) or a prefix ending in `.*` (`session.*`). */
  type: z
    .string()
    .min(1)
    .max(64)
    .regex(/^[a-z_]+(\.[a-z_]+)?(\.\*)?$/, 'a dotted type like session.start, or a prefix like session.*')
    .optional(),
  since: IsoTime.optional(),
  until: IsoTime.optional(),
  /** Only the rows of one many-machine run (`mssh exec`): its sessions' start, end and denials. */
  run: z.string().regex(RUN_ID_RE, 'a run id: 8-64 characters of 0-9, a-f and -').optional(),
  limit: z.coerce.number().int().min(1).max(AUDIT_QUERY_MAX_LIMIT).default(100),
});
export type AuditQuery = z.infer<typeof AuditQuery>;

export const AuditEventInfo = z.object({
  id: z.number(),
  time: z.string(),
  type: z.string(),
  code: z.string(),
  relayId: z.string(),
  actor: z.string().nullable(),
  host: z.string().nullable(),
  source: z.string().nullable(),
  sessionId: z.string().nullable(),
  /** The many-machine run (`mssh exec`) the row belongs to; absent from relays before run ids. */
  runId: z.string().nullable().optional(),
  details: z.record(z.string(), z.unknown()),
});
export type AuditEventInfo = z.infer<typeof AuditEventInfo>;
export const AuditEventsResponse = z.object({ events: z.array(AuditEventInfo) });
export type AuditEventsResponse = z.infer<typeof AuditEventsResponse>;

export const SessionsQuery = z.object({
  active: z
    .enum(['true', 'false', '1', '0'])
    .optional()
    .transform((v) => v === 'true' || v === '1'),
  limit: z.coerce.number().int().min(1).max(AUDIT_QUERY_MAX_LIMIT).default(100),
});

export const SessionInfo = z.object({
  sessionId: z.string(),
  /** The relay the client entered (it records the session). */
  relayId: z.string(),
  /** In a fleet: the relay that held the agent's link (relayId itself for a session that stayed on one). */
  holdingRelayId: z.string().nullable().optional(),
  user: z.string(),
  host: z.string(),
  source: z.string().nullable(),
  via: z.string(),
  startedAt: z.string(),
  endedAt: z.string().nullable(),
  durationMs: z.number(),
  bytesFromClient: z.number(),
  bytesToClient: z.number(),
  endReason: z.string().nullable(),
  /** The many-machine run (`mssh exec`) the session belongs to, if any. */
  runId: z.string().nullable().optional(),
  active: z.boolean(),
});
export type SessionInfo = z.infer<typeof SessionInfo>;
export const SessionsResponse = z.object({ sessions: z.array(SessionInfo) });
export type SessionsResponse = z.infer<typeof SessionsResponse>;

/** An age ("24h": that long before now) or an ISO time, as a Date; null when neither. */
export function parseTimeArg(s: string, now: Date): Date | null {
  const age = parseDuration(s);
  if (age !== null) return new Date(now.getTime() - age);
  if (!/^\d{4}-\d{2}-\d{2}/.test(s.trim())) return null;
  const t = Date.parse(s.trim());
  return Number.isFinite(t) ? new Date(t) : null;
}

/**
 * Every audit event type the relay writes (the catalogue of apps/relay/src/audit/codes.ts and docs/audit.md;
 * a relay test keeps the two equal). `mssh admin audit --type` checks its argument against it.
 */
export const AUDIT_EVENT_TYPES = [
  'user.login',
  'user.logout',
  'user.created',
  'user.disabled',
  'user.enabled',
  'user.password_changed',
  'user.role_changed',
  'token.rejected',
  'agent.enrolled',
  'agent.enroll_failed',
  'agent.connected',
  'agent.rejected',
  'agent.disconnected',
  'agent.revoked',
  'agent.forgotten',
  'agent.labels_changed',
  'session.start',
  'session.end',
  'session.denied',
  'grant.added',
  'grant.removed',
  'key.rotated',
  'ssh_key.added',
  'ssh_key.removed',
  'relay.started',
  'relay.draining',
  'relay.stopped',
  'relay.lost',
  'audit.pruned',
] as const;

export type AuditTypeFilter = { ok: true; type: string } | { ok: false; message: string; hint: string };

/**
 * The `type` filter for an audit query, from what a user typed: an exact type (`session.start`), a
 * prefix (`session.*`), or a short form: a category alone (`session` = `session.*`) or the last part of
 * exactly one type (`login` = `user.login`, `denied` = `session.denied`). Anything else is refused with
 * the valid types (an ambiguous short form with the types it could mean).
 */
export function resolveAuditTypeFilter(input: string, types: readonly string[] = AUDIT_EVENT_TYPES): AuditTypeFilter {
  const t = input.trim().toLowerCase();
  const categories = [...new Set(types.map((x) => x.split('.')[0]!))];
  if (types.includes(t)) return { ok: true, type: t };
  if (t.endsWith('.*') && categories.includes(t.slice(0, -2))) return { ok: true, type: t };
  if (categories.includes(t)) return { ok: true, type: `${t}.*` };
  const bySuffix = types.filter((x) => x.split('.')[1] === t);
  if (bySuffix.length === 1) return { ok: true, type: bySuffix[0]! };
  const shown = JSON.stringify(input.slice(0, 64));
  if (bySuffix.length > 1) {
    return {
      ok: false,
      message: `--type ${shown} could mean ${bySuffix.join(' or ')}`,
      hint: `Name one: --type ${bySuffix[0]}.`,
    };
  }
  return {
    ok: false,
    message: `--type ${shown} is not an audit event type`,
    hint: `Valid types: ${types.join(', ')}; a prefix like session.* (or just session); or the last part of one type, e.g. login for user.login.`,
  };
}
