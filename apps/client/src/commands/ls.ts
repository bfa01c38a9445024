import {
  fingerprintKeyLine,
  formatLabels,
  matchesHostFilter,
  parseHostFilter,
  parseSshPublicKeyLine,
  sanitizeForTerminal,
  type HostFilter,
  type HostInfo,
} from '@mssh/protocol';
import { withLabelRules } from '@mssh/cli-kit';
import { printJson, println, withLoggedInRelay, type CliContext } from './context.js';

const KEY_TYPE_ORDER = ['ssh-ed25519', 'ecdsa-sha2-nistp256', 'ecdsa-sha2-nistp384', 'ecdsa-sha2-nistp521', 'ssh-rsa'];

/** The fingerprint to show for a machine: its strongest attested key, computed here (not trusted from the relay). */
export function primaryFingerprint(hostKeys: string[]): string {
  const keys = hostKeys.flatMap((l) => {
    const k = parseSshPublicKeyLine(l);
    return k ? [{ type: k.type, line: l }] : [];
  });
  const rank = (t: string) => (KEY_TYPE_ORDER.includes(t) ? KEY_TYPE_ORDER.indexOf(t) : KEY_TYPE_ORDER.length);
  keys.sort((a, b) => rank(a.type) - rank(b.type));
  return keys.length ? (fingerprintKeyLine(keys[0]!.line) ?? '-') : '-';
}

export function formatAge(iso: string | null, now: Date): string {
  if (!iso) return 'never';
  const t = Date.parse(iso);
  if (!Number.isFinite(t)) return '?';
  const s = Math.max(0, Math.round((now.getTime() - t) / 1000));
  if (s < 60) return 'just now';
  if (s < 3600) return `${Math.floor(s / 60)}m ago`;
  if (s < 86_400) return `${Math.floor(s / 3600)}h ago`;
  return `${Math.floor(s / 86_400)}d ago`;
}

/** The `mssh ls` table; everything the relay sent is stripped of control characters. */
export function formatHostsTable(hosts: HostInfo[], now: Date): string {
  const rows = [...hosts]
    .sort((a, b) => a.name.localeCompare(b.name))
    .map((h) => [
      sanitizeForTerminal(h.name),
      h.online ? 'online' : h.stale ? 'stale' : 'offline',
      h.online ? 'now' : formatAge(h.lastSeen, now),
      sanitizeForTerminal(formatLabels(h.labels)),
      primaryFingerprint(h.hostKeys),
    ]);
  const header = ['NAME', 'STATUS', 'LAST SEEN', 'LABELS', 'HOST KEY'];
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i]!.length)));
  const line = (cells: string[]) => cells.map((c, i) => (i === cells.length - 1 ? c : c.padEnd(widths[i]!))).join('  ');
  return [line(header), ...rows.map(line)].join('\n') + '\n';
}

/** What `mssh ls` keeps: name globs (any), label pairs (all), and with --online only the connected. */
export interface LsFilter extends HostFilter {
  online: boolean;
}

/** `mssh ls 'web-*' env=prod --online`: CLI_ERR_BAD_LABEL (naming the rule) for a bad label pair. */
export function parseLsFilter(args: readonly string[], online: boolean): LsFilter {
  return { ...withLabelRules(() => parseHostFilter(args)), online };
}

export function filterHosts(hosts: HostInfo[], f: LsFilter): HostInfo[] {
  return hosts.filter((h) => (!f.online || h.online) && matchesHostFilter(h, f));
}

/** `mssh ls [FILTER...] [--online] [--json]`. */
export async function ls(
  ctx: CliContext,
  args: { json: boolean; filters?: string[]; online?: boolean },
): Promise<number> {
  const filter = parseLsFilter(args.filters ?? [], args.online === true);
  const filtered = filter.online || filter.globs.length > 0 || Object.keys(filter.labels).length > 0;
  return withLoggedInRelay(ctx, async (client, entry) => {
    const all = await client.listHosts();
    const hosts = filterHosts(all, filter);
    if (args.json) {
      printJson(ctx, hosts);
      return 0;
    }
    ctx.io.stdout.write(formatHostsTable(hosts, ctx.now()));
    if (hosts.length === 0 && filtered && all.length > 0) {
      println(ctx.io.stderr, `No machine matches the filter (${all.length} you may reach in all).`);
    } else if (hosts.length === 0) {
      println(
        ctx.io.stderr,
        entry.admin
          ? 'No machines yet. Enrol one with `mssh admin agents enroll NAME`.'
          : `No machines you may reach. Ask an admin for a grant (\`mssh admin grant ${sanitizeForTerminal(entry.user ?? 'USER')} 'PATTERN'\`).`,
      );
    }
    return 0;
  });
}
