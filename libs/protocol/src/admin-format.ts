/**
 * Plain-text tables of the admin listings, shared by `mssh admin ...` and `mssh-relay ...`. Every cell
 * goes through sanitizeForTerminal: names, versions and keys come from users and agents.
 */
import { sanitizeForTerminal } from './names.js';
import { formatLabels } from './labels.js';
import type { AgentAdminInfo, FleetRelayInfo, GrantInfo, UserInfo } from './schemas.js';

/** Columns padded to their widest cell, two spaces apart; the last column is not padded. */
export function formatTable(header: string[], rows: string[][]): string {
  const clean = rows.map((r) => r.map((c) => sanitizeForTerminal(c)));
  const widths = header.map((h, i) => Math.max(h.length, ...clean.map((r) => (r[i] ?? '').length)));
  const line = (cells: string[]) =>
    cells
      .map((c, i) => (i === cells.length - 1 ? c : c.padEnd(widths[i]!)))
      .join('  ')
      .trimEnd();
  return [line(header), ...clean.map(line)].join('\n') + '\n';
}

export function formatUsersTable(users: UserInfo[]): string {
  return formatTable(
    ['NAME', 'ADMIN', 'ROLE', 'STATUS', 'CREATED'],
    users.map((u) => [
      u.name,
      u.admin ? 'yes' : 'no',
      u.role ?? '-',
      u.disabled ? `disabled ${u.disabledAt ?? ''}`.trim() : 'active',
      u.createdAt,
    ]),
  );
}

export function formatGrantsTable(grants: GrantInfo[]): string {
  return formatTable(
    ['KIND', 'SUBJECT', 'PATTERN', 'BY', 'CREATED'],
    grants.map((g) => [g.subjectKind, g.subject, g.pattern ?? `labels:${g.labels ?? ''}`, g.createdBy, g.createdAt]),
  );
}

export function formatAgentsTable(agents: AgentAdminInfo[]): string {
  return formatTable(
    ['NAME', 'STATUS', 'LAST SEEN', 'PROTO', 'VERSION', 'LABELS', 'FACTS', 'IDENTITY', 'HOST KEYS'],
    agents.map((a) => [
      a.name,
      a.revokedAt ? 'revoked' : a.online ? 'online' : a.stale ? 'stale' : 'offline',
      a.lastSeen ?? 'never',
      a.protocolVersion === null ? '-' : String(a.protocolVersion),
      a.agentVersion ?? '-',
      formatLabels(a.labels),
      formatFacts(a.facts),
      a.identityFingerprint,
      a.hostKeyFingerprints.join(',') || '-',
    ]),
  );
}

/** Agent-reported facts as one short line (`linux 6.8 x64 sshd`), or `-`. */
export function formatFacts(facts: Record<string, string> | undefined): string {
  if (!facts) return '-';
  const parts = [facts.os, facts.kernel, facts.arch, facts.target].filter((p): p is string => !!p);
  return parts.length > 0 ? parts.join(' ') : '-';
}

/** `mssh admin relays` / `mssh-relay fleet`: one line per relay, the answering one marked with *. */
export function formatRelaysTable(relays: FleetRelayInfo[]): string {
  return formatTable(
    ['ID', 'STATE', 'AGENTS', 'SESSIONS', 'VERSION', 'UP SINCE', 'PEER ADDRESS'],
    relays.map((r) => [
      `${r.id}${r.self ? ' *' : ''}`,
      r.state,
      String(r.agents),
      String(r.sessions),
      r.version,
      r.startedAt,
      r.peerUrl ?? '-',
    ]),
  );
}
