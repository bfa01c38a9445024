/** Host (agent) names: lower-case DNS-label-like, 1..63 chars. */
export const HOST_NAME_RE = /^[a-z0-9][a-z0-9-]{0,62}$/;
/** User names: same alphabet plus . _ and up to 64 chars. */
export const USER_NAME_RE = /^[a-z0-9][a-z0-9._-]{0,63}$/;

export function isValidHostName(name: string): boolean {
  return HOST_NAME_RE.test(name);
}
export function isValidUserName(name: string): boolean {
  return USER_NAME_RE.test(name);
}

/**
 * Strip control characters (C0, DEL, C1, and the Unicode bidi overrides) from anything that came over
 * the network before it is printed to a terminal.
 */
export function sanitizeForTerminal(s: string): string {
  // eslint-disable-next-line no-control-regex
  return s.replace(/[\u0000-\u0008\u000b-\u001f\u007f-\u009f\u202a-\u202e\u2066-\u2069]/g, '');
}
