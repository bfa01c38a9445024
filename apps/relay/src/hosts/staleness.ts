/** Machines not seen for a while are "stale" (shown in `mssh ls`, counted in /healthz). */

export const DEFAULT_STALE_AFTER_MS = 30 * 86_400_000;

/** Not seen since `staleAfterMs` ago; a machine never seen counts from its enrolment. */
export function isStale(a: { lastSeenAt: Date | null; enrolledAt: Date }, now: Date, staleAfterMs: number): boolean {
  const seen = a.lastSeenAt ?? a.enrolledAt;
  return now.getTime() - seen.getTime() > staleAfterMs;
}
