/**
 * `mssh admin audit` (the audit trail, filtered) and `mssh admin sessions` (who is connected where, since
 * when, bytes so far). Admin login needed. Everything the relay sent goes through sanitizeForTerminal
 * before it reaches the terminal (control characters escaped, one row per event); --json prints one JSON
 * array (apps/client/README.md, "JSON output").
 */
import {
  isValidRunId,
  parseTimeArg,
  resolveAuditTypeFilter,
  sanitizeForTerminal,
  type AuditEventInfo,
  type SessionInfo,
} from '@mssh/protocol';
import { cliError } from '../errors.js';
import { printJson, println, withLoggedInRelay, type CliContext } from './context.js';

export interface AdminAuditArgs {
  user?: string;
  host?: string;
  type?: string;
  since?: string;
  until?: string;
  limit?: string;
  /** --run ID: only the rows of one `mssh exec` run. */
  run?: string;
  json: boolean;
}

export interface AdminSessionsArgs {
  active: boolean;
  limit?: string;
  json: boolean;
}

function timeArg(flag: string, v: string | undefined, now: Date): string | undefined {
  if (v === undefined) return undefined;
  const t = parseTimeArg(v, now);
  if (!t)
    throw cliError(
      'CLI_ERR_USAGE',
      `${flag} ${JSON.stringify(v)} is neither an age nor a time`,
      `Use an age like 90s, 30m, 24h, 7d, 2w or an ISO time like 2026-11-26T09:00:00Z.`,
    );
  return t.toISOString();
}

function limitArg(v: string | undefined): string | undefined {
  if (v === undefined) return undefined;
  if (!/^\d{1,5}$/.test(v) || Number(v) < 1 || Number(v) > 10_000)
    throw cliError(
      'CLI_ERR_USAGE',
      `--limit ${JSON.stringify(v)} is not a number from 1 to 10000`,
      'Pass e.g. --limit 500.',
    );
  return v;
}

function runArg(v: string | undefined): string | undefined {
  if (v === undefined) return undefined;
  if (!isValidRunId(v))
    throw cliError(
      'CLI_ERR_USAGE',
      `--run ${JSON.stringify(v.slice(0, 80))} is not a run id`,
      'Give the id `mssh exec` printed in its summary, e.g. --run 1f0c6a2b9d3e4f57.',
    );
  return v;
}

const clean = (v: unknown, max = 200): string => {
  const s = v === null || v === undefined ? '-' : typeof v === 'string' ? v : JSON.stringify(v);
  const t = sanitizeForTerminal(s);
  return t.length > max ? `${t.slice(0, max - 1)}…` : t || '-';
};

function table(header: string[], rows: string[][]): string {
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i]!.length)));
  const line = (cells: string[]) => cells.map((c, i) => (i === cells.length - 1 ? c : c.padEnd(widths[i]!))).join('  ');
  return [line(header), ...rows.map(line)].join('\n') + '\n';
}

/** Byte counts (session.end) get their own columns, so the cut DETAILS never hides them. */
const byteCell = (v: unknown): string => (typeof v === 'number' && Number.isFinite(v) && v >= 0 ? formatBytes(v) : '-');

export function formatAuditTable(events: AuditEventInfo[]): string {
  return table(
    ['TIME', 'TYPE', 'CODE', 'ACTOR', 'HOST', 'SOURCE', 'UP', 'DOWN', 'DETAILS'],
    events.map((e) => {
      const { bytesFromClient, bytesToClient, ...details } = e.details ?? {};
      const rest = e.runId ? { ...details, run: e.runId } : details;
      return [
        clean(e.time, 30),
        clean(e.type, 40),
        clean(e.code, 12),
        clean(e.actor, 64),
        clean(e.host, 63),
        clean(e.source, 64),
        byteCell(bytesFromClient),
        byteCell(bytesToClient),
        Object.keys(rest).length ? clean(rest, 160) : '-',
      ];
    }),
  );
}

export function formatBytes(n: number): string {
  if (n < 1024) return `${n} B`;
  const units = ['KiB', 'MiB', 'GiB', 'TiB'];
  let v = n;
  let i = -1;
  while (v >= 1024 && i < units.length - 1) {
    v /= 1024;
    i++;
  }
  return `${v.toFixed(v < 10 ? 1 : 0)} ${units[i]}`;
}

export function formatDuration(ms: number): string {
  const s = Math.max(0, Math.round(ms / 1000));
  if (s < 60) return `${s}s`;
  if (s < 3600) return `${Math.floor(s / 60)}m${String(s % 60).padStart(2, '0')}s`;
  return `${Math.floor(s / 3600)}h${String(Math.floor((s % 3600) / 60)).padStart(2, '0')}m`;
}

export function formatSessionsTable(sessions: SessionInfo[]): string {
  return table(
    ['USER', 'HOST', 'SOURCE', 'VIA', 'STARTED', 'DURATION', 'UP', 'DOWN', 'STATE'],
    sessions.map((s) => [
      clean(s.user, 64),
      clean(s.host, 63),
      clean(s.source, 64),
      clean(s.via, 8),
      clean(s.startedAt, 30),
      formatDuration(s.durationMs),
      formatBytes(s.bytesFromClient),
      formatBytes(s.bytesToClient),
      s.active ? 'active' : `ended (${clean(s.endReason, 20)})`,
    ]),
  );
}

/** `mssh admin audit [--user U] [--host H] [--type T] [--since 24h] [--until T] [--run ID] [--limit N] [--json]`. */
export async function adminAudit(ctx: CliContext, args: AdminAuditArgs): Promise<number> {
  const now = ctx.now();
  let type: string | undefined;
  if (args.type !== undefined) {
    const r = resolveAuditTypeFilter(args.type);
    if (!r.ok) throw cliError('CLI_ERR_USAGE', r.message, r.hint);
    type = r.type;
  }
  const query: Record<string, string | undefined> = {
    user: args.user,
    host: args.host,
    type,
    since: timeArg('--since', args.since, now),
    until: timeArg('--until', args.until, now),
    limit: limitArg(args.limit),
    run: runArg(args.run),
  };
  return withLoggedInRelay(ctx, async (client) => {
    const events = await client.auditEvents(query);
    if (args.json) {
      printJson(ctx, events);
      return 0;
    }
    ctx.io.stdout.write(formatAuditTable(events));
    if (events.length === 0) println(ctx.io.stderr, 'No audit events match; widen --since or drop a filter.');
    return 0;
  });
}

/** `mssh admin sessions [--active] [--limit N] [--json]`. */
export async function adminSessions(ctx: CliContext, args: AdminSessionsArgs): Promise<number> {
  const query = { active: args.active ? 'true' : undefined, limit: limitArg(args.limit) };
  return withLoggedInRelay(ctx, async (client) => {
    const sessions = await client.sessions(query);
    if (args.json) {
      printJson(ctx, sessions);
      return 0;
    }
    ctx.io.stdout.write(formatSessionsTable(sessions));
    if (sessions.length === 0) println(ctx.io.stderr, args.active ? 'No sessions are open.' : 'No sessions yet.');
    return 0;
  });
}
