/** Machines not seen for a while are "stale" (shown in `mssh ls`, counted in /healthz). */

export const DEFAULT_STALE_AFTER_MS = 30 * 86_400_000;

/** Not seen since `staleAfterMs` ago; a machine never seen counts from its enrolment. */
export function isStale(a: { lastSeenAt: Date | null; enrolledAt: Date }, now: Date, staleAfterMs: number): boolean {
  const seen = a.lastSeenAt ?? a.enrolledAt;
  return now.getTime() - seen.getTime() > staleAfterMs;
}

/** "30d", "12h", "90m", "45s" (or plain seconds) -> milliseconds; null when not a positive duration. */
export function parseDuration(s: string): number | null {
  const m = /^(\d{1,9})([smhd]?)$/.exec(s.trim());
  if (!m) return null;
  const n = Number(m[1]);
  if (n <= 0) return null;
  const unit = { '': 1000, s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000 }[m[2] as '' | 's' | 'm' | 'h' | 'd'];
  return n * unit;
}
