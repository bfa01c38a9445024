/**
 * Grant patterns: globs over host names. `*` matches any run of characters (also none), `?` exactly one;
 * everything else matches itself. Host names are a-z, 0-9 and '-', so a valid pattern is made of those
 * plus `*` and `?` only (nothing to escape, no character classes).
 */

export const GRANT_PATTERN_RE = /^[a-z0-9*?-]{1,128}$/;

/** Null when the pattern is valid, else what is wrong with it (for a 400 message). */
export function grantPatternProblem(pattern: string): string | null {
  if (typeof pattern !== 'string' || pattern.length === 0) return 'a grant pattern cannot be empty';
  if (pattern.length > 128) return 'a grant pattern is at most 128 characters';
  if (!GRANT_PATTERN_RE.test(pattern)) {
    return 'a grant pattern is made of host name characters (a-z, 0-9, -) and the wildcards * (any run) and ? (one character), e.g. web-* or db-?';
  }
  return null;
}

/**
 * Does the host name match the glob? An invalid pattern matches nothing. The classic two-pointer wildcard
 * match: O(pattern x host) at worst, no regex, no backtracking blow-up (`*a*a*a...b` stays cheap).
 */
export function globMatch(pattern: string, host: string): boolean {
  if (!GRANT_PATTERN_RE.test(pattern)) return false;
  let p = 0;
  let h = 0;
  let star = -1;
  let mark = 0;
  while (h < host.length) {
    const c = pattern[p];
    if (c === '?' || (c !== undefined && c !== '*' && c === host[h])) {
      p++;
      h++;
    } else if (c === '*') {
      star = p++;
      mark = h;
    } else if (star >= 0) {
      p = star + 1;
      h = ++mark;
    } else {
      return false;
    }
  }
  while (pattern[p] === '*') p++;
  return p === pattern.length;
}

export function matchesAny(patterns: readonly string[], host: string): boolean {
  for (const p of patterns) if (globMatch(p, host)) return true;
  return false;
}
