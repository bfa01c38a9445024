/** Host (agent) names: lower-case DNS-label-like, 1..63 chars. */
export const HOST_NAME_RE = /^[a-z0-9][a-z0-9-]{0,62}$/;
/** User names: same alphabet plus . _ and up to 64 chars. */
export const USER_NAME_RE = /^[a-z0-9][a-z0-9._-]{0,63}$/;

/**
 * Run ids (HEADERS.runId, `mssh admin audit --run ID`): 8-64 characters of lower-case hex and `-` that
 * start and end with a hex digit (mssh makes 16 hex digits; a UUID fits too).
 */
export const RUN_ID_RE = /^[0-9a-f][0-9a-f-]{6,62}[0-9a-f]$/;

export function isValidRunId(id: string): boolean {
  return RUN_ID_RE.test(id);
}

export function isValidHostName(name: string): boolean {
  return HOST_NAME_RE.test(name);
}
export function isValidUserName(name: string): boolean {
  return USER_NAME_RE.test(name);
}

// eslint-disable-next-line no-control-regex
const CONTROL_CHARS = /[\u0000-\u001f\u007f-\u009f\u202a-\u202e\u2066-\u2069]/g;
// eslint-disable-next-line no-control-regex
const BLOCK_CONTROL_CHARS = /[\u0000-\u0008\u000b-\u001f\u007f-\u009f\u202a-\u202e\u2066-\u2069]/g;
const NAMED_ESCAPES: Record<string, string> = { '\n': '\\n', '\r': '\\r', '\t': '\\t' };

function escapeControl(c: string): string {
  const named = NAMED_ESCAPES[c];
  if (named) return named;
  const n = c.charCodeAt(0);
  return n <= 0xff ? `\\x${n.toString(16).padStart(2, '0')}` : `\\u${n.toString(16).padStart(4, '0')}`;
}

/**
 * Make anything that came over the network (or from another user) safe to print on ONE terminal line:
 * every control character (C0 including newline, carriage return and tab; DEL; C1; the Unicode bidi
 * overrides and isolates) is shown as a visible escape (`\n`, `\r`, `\t`, `\x1b`, `\u202e`), so a
 * value can neither drive the terminal nor forge a line of its own (a failed login as
 * `evil\n{"level":30,...}` stays on its row). Backslashes are left as they are.
 */
export function sanitizeForTerminal(s: string): string {
  return s.replace(CONTROL_CHARS, escapeControl);
}

/**
 * The same for a text block whose line breaks are meant (an SSH banner, keyboard-interactive
 * instructions): newlines and tabs are kept, every other control character is escaped.
 */
export function sanitizeTextBlock(s: string): string {
  return s.replace(BLOCK_CONTROL_CHARS, escapeControl);
}

/**
 * JSON text for `--json` output: JSON.stringify already escapes C0; DEL, C1 and the bidi controls are
 * escaped too (`\u009b`), so the text is safe on a terminal and parses to the same value.
 */
export function jsonForTerminal(v: unknown, indent?: number): string {
  return JSON.stringify(v, null, indent).replace(
    /[\u007f-\u009f\u202a-\u202e\u2066-\u2069]/g,
    (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, '0')}`,
  );
}
