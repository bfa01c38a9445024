/**
 * Machine labels: `key=value` pairs an admin puts on a machine (`env=prod`, `role=db`, `site=berlin`).
 * They are the admin's statement about the machine (an agent never sets them), shown by `mssh ls`,
 * filtered on (`mssh ls env=prod`) and matched by label grants (`mssh admin grant alice --labels
 * env=staging,role=web`). The one place their syntax is decided, for relay and client alike.
 *
 * Rules (each failure names its rule):
 *   key_syntax    keys are 1-63 chars of a-z, 0-9 and . _ / -, starting with a letter or digit
 *   value_syntax  values are 1-63 printable ASCII characters without spaces and without , (the
 *                 selector separator)
 *   too_many      at most 32 labels per machine (and per selector)
 *   missing_equals  a label is written key=value
 *   duplicate_key a key appears twice in one list
 */

export const LABEL_KEY_RE = /^[a-z0-9][a-z0-9._/-]{0,62}$/;
export const LABEL_VALUE_RE = /^[\x21-\x2b\x2d-\x7e]{1,63}$/;
export const MAX_LABELS = 32;

export type Labels = Record<string, string>;
export type LabelRule = 'key_syntax' | 'value_syntax' | 'too_many' | 'missing_equals' | 'duplicate_key';

/** A label (or label list) that breaks one of the rules; `rule` says which. */
export class LabelSyntaxError extends Error {
  constructor(
    readonly rule: LabelRule,
    message: string,
  ) {
    super(message);
    this.name = 'LabelSyntaxError';
  }
}

const show = (s: string): string => JSON.stringify(s.length > 80 ? `${s.slice(0, 80)}...` : s);

export function labelKeyProblem(key: string): LabelSyntaxError | null {
  if (typeof key === 'string' && LABEL_KEY_RE.test(key)) return null;
  return new LabelSyntaxError(
    'key_syntax',
    `label key ${show(String(key))} is invalid (rule key_syntax): keys are 1-63 characters of a-z, 0-9, ., _, / and -, starting with a letter or digit`,
  );
}

export function labelValueProblem(key: string, value: string): LabelSyntaxError | null {
  if (typeof value === 'string' && LABEL_VALUE_RE.test(value)) return null;
  return new LabelSyntaxError(
    'value_syntax',
    `label value ${show(String(value))} of ${show(key)} is invalid (rule value_syntax): values are 1-63 printable ASCII characters, no spaces and no commas`,
  );
}

/** Throws LabelSyntaxError unless every key, value and the count are valid. */
export function assertValidLabels(labels: Labels): void {
  const keys = Object.keys(labels);
  if (keys.length > MAX_LABELS) {
    throw new LabelSyntaxError(
      'too_many',
      `${keys.length} labels is too many (rule too_many): a machine carries at most ${MAX_LABELS}`,
    );
  }
  for (const k of keys) {
    const p = labelKeyProblem(k) ?? labelValueProblem(k, labels[k]!);
    if (p) throw p;
  }
}

/** `key=value` -> [key, value]; throws LabelSyntaxError naming the rule. */
export function parseLabel(arg: string): [string, string] {
  const i = arg.indexOf('=');
  if (i < 0) {
    throw new LabelSyntaxError(
      'missing_equals',
      `${show(arg)} is not a label (rule missing_equals): write key=value, e.g. env=prod`,
    );
  }
  const key = arg.slice(0, i);
  const value = arg.slice(i + 1);
  const p = labelKeyProblem(key) ?? labelValueProblem(key, value);
  if (p) throw p;
  return [key, value];
}

/** Several `key=value` (repeated --label flags, or a selector's parts) -> Labels; a key twice is an error. */
export function parseLabels(args: readonly string[]): Labels {
  const out: Labels = {};
  for (const a of args) {
    const [k, v] = parseLabel(a);
    if (Object.hasOwn(out, k)) {
      throw new LabelSyntaxError('duplicate_key', `label key ${show(k)} is given twice (rule duplicate_key)`);
    }
    out[k] = v;
  }
  assertValidLabels(out);
  return out;
}

/** A label selector: `env=staging,role=web` (every pair must match). */
export function parseSelector(s: string): Labels {
  const parts = s.split(',');
  const sel = parseLabels(parts);
  return sel;
}

/** The canonical text of a selector: pairs sorted by key, joined with commas. */
export function formatSelector(sel: Labels): string {
  return Object.keys(sel)
    .sort()
    .map((k) => `${k}=${sel[k]}`)
    .join(',');
}

/** Does the machine carry every pair of the selector? An empty selector matches nothing. */
export function matchesSelector(labels: Labels, sel: Labels): boolean {
  const keys = Object.keys(sel);
  if (keys.length === 0) return false;
  for (const k of keys) if (!Object.hasOwn(labels, k) || labels[k] !== sel[k]) return false;
  return true;
}

/** `mssh admin agents label NAME env=staging role-`: set these, remove those. */
export interface LabelEdits {
  set: Labels;
  remove: string[];
}

export function parseLabelEdits(args: readonly string[]): LabelEdits {
  const set: Labels = {};
  const remove: string[] = [];
  const seen = new Set<string>();
  for (const a of args) {
    let key: string;
    if (!a.includes('=') && a.endsWith('-')) {
      key = a.slice(0, -1);
      const p = labelKeyProblem(key);
      if (p) throw p;
      remove.push(key);
    } else {
      const [k, v] = parseLabel(a);
      key = k;
      set[k] = v;
    }
    if (seen.has(key)) {
      throw new LabelSyntaxError('duplicate_key', `label key ${show(key)} is given twice (rule duplicate_key)`);
    }
    seen.add(key);
  }
  return { set, remove };
}

/** The labels after the edits; throws LabelSyntaxError (too_many) when they would exceed the limit. */
export function applyLabelEdits(labels: Labels, edits: LabelEdits): Labels {
  const out: Labels = { ...labels };
  for (const k of edits.remove) delete out[k];
  Object.assign(out, edits.set);
  assertValidLabels(out);
  const sorted: Labels = {};
  for (const k of Object.keys(out).sort()) sorted[k] = out[k]!;
  return sorted;
}

/** Labels as one short line for a table: `env=prod,role=db`, or `-` when there are none. */
export function formatLabels(labels: Labels | undefined): string {
  const s = labels ? formatSelector(labels) : '';
  return s === '' ? '-' : s;
}

// ---- host filters (`mssh ls web-* env=prod --online`, the TUI filter box) ----

/** Host name globs (`*` any run, `?` one character) OR'ed, and label pairs AND'ed. */
export interface HostFilter {
  globs: string[];
  labels: Labels;
}

/** Each argument with `=` is a label pair; every other is a name glob. Throws LabelSyntaxError. */
export function parseHostFilter(args: readonly string[]): HostFilter {
  const globs: string[] = [];
  const pairs: string[] = [];
  for (const a of args) (a.includes('=') ? pairs : globs).push(a);
  return { globs, labels: parseLabels(pairs) };
}

/** Wildcard match of a host name (`*`, `?`), linear: no regex, no backtracking blow-up. */
export function hostGlobMatch(pattern: string, host: string): boolean {
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

/** Does the host pass the filter? No globs: any name; every label pair must be carried. */
export function matchesHostFilter(host: { name: string; labels?: Labels }, f: HostFilter): boolean {
  if (f.globs.length > 0 && !f.globs.some((g) => hostGlobMatch(g, host.name))) return false;
  const labels = host.labels ?? {};
  for (const k of Object.keys(f.labels)) if (labels[k] !== f.labels[k]) return false;
  return true;
}
