/**
 * Grant patterns: globs over host names. `*` matches any run of characters (also none), `?` exactly one;
 * everything else matches itself. Host names are a-z, 0-9 and '-', so a valid pattern is made of those
 * plus `*` and `?` only (nothing to escape, no character classes).
 */
import { hostGlobMatch } from '@mssh/protocol';

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
 * Does the host name match the glob? An invalid pattern matches nothing. The match itself is
 * @mssh/protocol's hostGlobMatch: O(pattern x host) at worst, no regex, no backtracking blow-up.
 */
export function globMatch(pattern: string, host: string): boolean {
  return GRANT_PATTERN_RE.test(pattern) && hostGlobMatch(pattern, host);
}

export function matchesAny(patterns: readonly string[], host: string): boolean {
  for (const p of patterns) if (globMatch(p, host)) return true;
  return false;
}
