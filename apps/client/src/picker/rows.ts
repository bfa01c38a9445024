/**
 * One picker row per machine: status, name, labels, last seen, my sessions, round-trip time to the relay,
 * host key fingerprint (the pinned one when known_hosts has it, else the strongest key the relay attests).
 */
import { fingerprintBlob, formatLabels, sanitizeForTerminal, type HostInfo } from '@mssh/protocol';
import blessed from 'blessed';
import { formatAge, primaryFingerprint } from '../commands/ls.js';
import type { KnownHostsFile } from '../known-hosts/known-hosts-file.js';

export type HostStatus = 'online' | 'offline' | 'stale';
const STALE_MS = 30 * 86_400_000;

/** The relay's verdict on staleness (its --stale-after) when it gives one, else 30 days since last seen. */
export function hostStatus(h: Pick<HostInfo, 'online' | 'lastSeen'> & { stale?: boolean }, now: Date): HostStatus {
  if (h.online) return 'online';
  if (h.stale !== undefined) return h.stale ? 'stale' : 'offline';
  const t = h.lastSeen ? Date.parse(h.lastSeen) : NaN;
  return Number.isFinite(t) && now.getTime() - t > STALE_MS ? 'stale' : 'offline';
}

/** The machine's labels as `env=prod,role=db` (sorted; '-' for none, or from a relay before labels). */
export function hostLabels(h: HostInfo): string {
  return sanitizeForTerminal(formatLabels(h.labels));
}

/** `pinned SHA256:...` (known_hosts) or `attested SHA256:...` (relay), cut with '…' to `width`. */
export function hostKeyColumn(h: HostInfo, knownHosts: KnownHostsFile, width = 80): string {
  const pinned = knownHosts.lookup(h.name);
  const fp = pinned.length > 0 ? fingerprintBlob(pinned[0]!.blob) : primaryFingerprint(h.hostKeys);
  if (fp === '-') return '-';
  const text = `${pinned.length > 0 ? 'pinned  ' : 'attested'} ${fp}`;
  return text.length <= width ? text : `${text.slice(0, Math.max(1, width - 1))}…`;
}

export interface RowContext {
  now: Date;
  rttMs: number | null;
  mine: (host: string) => number;
  knownHosts: KnownHostsFile;
  /** Terminal columns. */
  width: number;
}

const STATUS_COLOR: Record<HostStatus, string> = { online: 'green', offline: 'red', stale: 'yellow' };
export const COLUMNS = ['STATUS', 'NAME', 'LABELS', 'LAST SEEN', 'MINE', 'RTT', 'HOST KEY'];
const WIDTHS = [8, 16, 8, 10, 5, 7];

export function headerLine(): string {
  return COLUMNS.map((c, i) => (i < WIDTHS.length ? c.padEnd(WIDTHS[i]!) : c)).join('');
}

function highlight(name: string, positions: number[]): string {
  let out = '';
  for (let i = 0; i < name.length; i++) {
    const c = blessed.escape(name[i]!);
    out += positions.includes(i) ? `{yellow-fg}{bold}${c}{/bold}{/yellow-fg}` : c;
  }
  return out;
}

/** The row text (blessed tags) for a host, with the filter matches (`positions` in its name) highlighted. */
export function formatRow(h: HostInfo, positions: number[], ctx: RowContext): string {
  const name = sanitizeForTerminal(h.name);
  const status = hostStatus(h, ctx.now);
  const pad = (s: string, w: number) => (s.length >= w ? `${s.slice(0, w - 2)}… ` : s.padEnd(w));
  const namePadding = ' '.repeat(Math.max(1, WIDTHS[1]! - name.length));
  const shownName =
    name.length >= WIDTHS[1]! ? blessed.escape(pad(name, WIDTHS[1]!)) : `${highlight(name, positions)}${namePadding}`;
  return [
    `{${STATUS_COLOR[status]}-fg}${pad(status, WIDTHS[0]!)}{/${STATUS_COLOR[status]}-fg}`,
    shownName,
    blessed.escape(pad(hostLabels(h), WIDTHS[2]!)),
    pad(h.online ? 'now' : formatAge(h.lastSeen, ctx.now), WIDTHS[3]!),
    pad(String(ctx.mine(h.name)), WIDTHS[4]!),
    pad(ctx.rttMs === null ? '-' : `${ctx.rttMs}ms`, WIDTHS[5]!),
    blessed.escape(hostKeyColumn(h, ctx.knownHosts, ctx.width - WIDTHS.reduce((a, b) => a + b, 0) - 1)),
  ].join('');
}
