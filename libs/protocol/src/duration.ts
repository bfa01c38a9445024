/**
 * The one duration grammar of every command line and of the API: a whole number and a unit, `45s`,
 * `90m`, `12h`, `30d`, `2w`. Used by `--stale-after`, `--older-than`, `--since`/`--until` and the audit
 * API's ages. A bare number is refused (`--since 24`: hours? days?) except where it always meant seconds
 * (`--stale-after 45`, kept for compatibility: `{ bareSeconds: true }`).
 *
 * Not `ms` or `parse-duration`: both read a bare number as milliseconds and accept fractions, signs and
 * words ("1.5h", "-1d", "2 days"), which would widen what the flags accept and the docs describe.
 */
const UNIT_MS = { s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000, w: 604_800_000 } as const;

/** Milliseconds, or null when `s` is not a duration. Zero is a duration (`0s`); callers needing more check. */
export function parseDuration(s: string, opts: { bareSeconds?: boolean } = {}): number | null {
  const m = /^(\d{1,9})([smhdw]?)$/.exec(s.trim());
  if (!m || (!m[2] && !opts.bareSeconds)) return null;
  return Number(m[1]) * UNIT_MS[(m[2] || 's') as keyof typeof UNIT_MS];
}
