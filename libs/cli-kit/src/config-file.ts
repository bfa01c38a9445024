/**
 * Configuration files of `mssh-relay serve` and `mssh-agent run` (--config FILE, env MSSH_CONFIG): YAML,
 * parsed by the `yaml` package (eemeli/yaml) with a LineCounter, so that every problem names the file, the
 * line and the key. One format only; YAML because it has comments, lists and plain strings without quotes
 * (`listen: 0.0.0.0:8443`), and because its parser gives node positions (line numbers) for free.
 *
 *   flags  >  environment  >  this file  >  defaults        (the app's config.ts does the layering)
 *
 * The keys are the long option names of the command as written (`listen`, `drain-timeout`, `relay`),
 * taken from the commander command itself (configKeysOf), so a new flag has its key without more work.
 * This module only reads and shapes the file; the values are validated by the app's zod schema, which
 * names the file and the line of a bad value through the `line` kept here.
 *
 * Exported as `@mssh/cli-kit/config-file` (not from the index): `mssh`, which starts often, never loads yaml.
 */
import { closeSync, fstatSync, openSync, readFileSync } from 'node:fs';
import { LineCounter, isMap, isScalar, isSeq, parseDocument, type Node } from 'yaml';
import { CliError, EXIT } from './errors.js';

/** The part of a commander Option this module reads (no dependency on commander here). */
export interface OptionLike {
  long?: string;
  description: string;
  required: boolean;
  optional: boolean;
  variadic: boolean;
  parseArg?: unknown;
  attributeName(): string;
}
export interface CommandLike {
  readonly options: readonly OptionLike[];
}

/**
 * value    a flag with a value (`--listen <host:port>`): a scalar in the file (a number is taken as text)
 * boolean  a flag without a value (`--allow-forwarding`): true or false in the file
 * list     a repeatable flag (`--tls-san`, `--relay`: commander collects them with a parser): a YAML list
 *          (or one scalar) in the file
 */
export type ConfigKeyKind = 'value' | 'boolean' | 'list';
export interface ConfigKey {
  /** As written in the file: the long option name without `--`. */
  key: string;
  /** The camelCase attribute commander gives the option. */
  attribute: string;
  kind: ConfigKeyKind;
  description: string;
}

/** Every long option of `cmd` but those in `exclude` (e.g. `config` itself), as file keys. */
export function configKeysOf(cmd: CommandLike, exclude: readonly string[] = []): ConfigKey[] {
  const keys: ConfigKey[] = [];
  for (const o of cmd.options) {
    if (!o.long) continue;
    const key = o.long.replace(/^--/, '');
    if (exclude.includes(key)) continue;
    const kind: ConfigKeyKind =
      o.variadic || o.parseArg !== undefined ? 'list' : o.required || o.optional ? 'value' : 'boolean';
    keys.push({ key, attribute: o.attributeName(), kind, description: o.description });
  }
  return keys;
}

export interface ConfigFileValue {
  key: string;
  value: string | boolean | string[];
  /** 1-based line of the key in the file. */
  line: number;
}

export interface ConfigFile {
  /** The path as given (--config or MSSH_CONFIG). */
  path: string;
  /** By attribute name (camelCase, as commander names the flag). */
  values: Map<string, ConfigFileValue>;
}

/** The codes of one program: FILE for a file that cannot be read or holds bad keys/values, MODE for permissions. */
export interface ConfigFileCodes {
  FILE: string;
  MODE: string;
}

export interface LoadConfigFileOptions {
  keys: readonly ConfigKey[];
  codes: ConfigFileCodes;
  /** e.g. `mssh-relay serve --help` (the reference of the keys). */
  helpCommand: string;
  /** Whether this value is a secret (a file holding one must not be readable by others; see below). */
  isSecret?: (key: string, value: ConfigFileValue['value']) => boolean;
}

/**
 * Permissions of a file holding a secret, like OpenSSH for private keys: refused when others may read or
 * write it, or its group may write it (mode & 0o027). Group read stays allowed, so that root can own the
 * file and the service's group read it (`chown root:mssh-relay`, `chmod 640`).
 */
export const SECRET_FILE_FORBIDDEN_MODE = 0o027;

/** A CliError exiting 78 (EX_CONFIG): the file must change before another start helps. */
export function configFileError(code: string, message: string, hint: string, cause?: unknown): CliError {
  return new CliError(code, message, hint, { cause, exitCode: EXIT.CONFIG });
}

/** Edit distance, for "did you mean". */
function distance(a: string, b: string): number {
  const row = Array.from({ length: b.length + 1 }, (_, j) => j);
  for (let i = 1; i <= a.length; i++) {
    let prev = row[0]!;
    row[0] = i;
    for (let j = 1; j <= b.length; j++) {
      const cur = row[j]!;
      row[j] = Math.min(row[j]! + 1, row[j - 1]! + 1, prev + (a[i - 1] === b[j - 1] ? 0 : 1));
      prev = cur;
    }
  }
  return row[b.length]!;
}

export function didYouMean(word: string, candidates: readonly string[]): string | undefined {
  let best: string | undefined;
  let bestD = Infinity;
  for (const c of candidates) {
    const d = distance(word.toLowerCase(), c);
    if (d < bestD) [best, bestD] = [c, d];
  }
  return best !== undefined && bestD <= Math.max(2, Math.floor(word.length / 3)) ? best : undefined;
}

/** Read and shape a config file. Throws a coded CliError (exit 78) listing every problem with its line. */
export function loadConfigFile(path: string, opts: LoadConfigFileOptions): ConfigFile {
  const { codes } = opts;
  let text: string;
  let mode: number;
  try {
    const fd = openSync(path, 'r');
    try {
      mode = fstatSync(fd).mode;
      text = readFileSync(fd, 'utf8');
    } finally {
      closeSync(fd);
    }
  } catch (e) {
    const err = e as NodeJS.ErrnoException;
    const why =
      err.code === 'ENOENT'
        ? 'no such file'
        : err.code === 'EACCES'
          ? 'permission denied'
          : err.code === 'EISDIR'
            ? 'it is a directory'
            : (err.code ?? err.message);
    throw configFileError(
      codes.FILE,
      `cannot read the config file ${path}: ${why}`,
      'Check the path given with --config (or MSSH_CONFIG) and that this user may read the file.',
      e,
    );
  }

  const lineCounter = new LineCounter();
  const doc = parseDocument(text, { lineCounter, prettyErrors: false, uniqueKeys: true });
  const lineOf = (node: Node | null | undefined, fallback = 1) =>
    node?.range ? lineCounter.linePos(node.range[0]).line : fallback;
  const problems: string[] = [];
  const at = (line: number, what: string) => problems.push(`${path} line ${line}: ${what}`);
  const hint = `Keys are the long options of \`${opts.helpCommand}\` without --; see the README, "Configuration file".`;

  for (const e of doc.errors)
    at(
      lineCounter.linePos(e.pos[0]).line,
      `not valid YAML: ${e.message.split('\n')[0]!.replace(/ at line \d+.*$/, '')}`,
    );
  if (problems.length > 0) throw configFileError(codes.FILE, joinProblems(path, problems), hint);

  const values = new Map<string, ConfigFileValue>();
  const contents = doc.contents;
  if (contents === null || (isScalar(contents) && contents.value === null)) return { path, values }; // empty: no settings
  if (!isMap(contents)) {
    at(
      lineOf(contents),
      'the file must be a mapping of keys to values (`key: value` lines), not a list or a single value',
    );
    throw configFileError(codes.FILE, joinProblems(path, problems), hint);
  }
  const byKey = new Map(opts.keys.map((k) => [k.key, k]));
  let secret = false;
  for (const pair of contents.items) {
    const keyNode = pair.key as Node | null;
    const line = lineOf(keyNode);
    if (!isScalar(keyNode) || typeof keyNode.value !== 'string') {
      at(line, 'keys must be plain names such as `listen`');
      continue;
    }
    const name = keyNode.value;
    const spec = byKey.get(name);
    if (!spec) {
      const guess = didYouMean(name.replace(/^-+/, ''), [...byKey.keys()]);
      at(line, `unknown key \`${name}\`${guess ? ` (did you mean \`${guess}\`?)` : ''}`);
      continue;
    }
    const valueNode = pair.value as Node | null;
    const shaped = shape(spec, valueNode);
    if (typeof shaped === 'object' && !Array.isArray(shaped)) {
      at(lineOf(valueNode, line), `\`${name}\`: ${shaped.problem}`);
      continue;
    }
    if (opts.isSecret?.(name, shaped)) secret = true;
    values.set(spec.attribute, { key: name, value: shaped, line });
  }
  if (problems.length > 0) throw configFileError(codes.FILE, joinProblems(path, problems), hint);

  if (secret && process.platform !== 'win32' && (mode & SECRET_FILE_FORBIDDEN_MODE) !== 0) {
    const octal = (mode & 0o777).toString(8).padStart(3, '0');
    throw configFileError(
      codes.MODE,
      `the config file ${path} holds a secret but its mode ${octal} lets ${mode & 0o007 ? 'other users' : 'its group'} ${mode & 0o022 ? 'change' : 'read'} it`,
      `Run chmod 600 ${path} (or 640, owned by root with the service's group), or move the secret to the environment (e.g. an EnvironmentFile).`,
    );
  }
  return { path, values };
}

function joinProblems(path: string, problems: string[]): string {
  return problems.length === 1
    ? problems[0]!
    : `the config file ${path} has ${problems.length} problems:\n  ${problems.join('\n  ')}`;
}

/** One scalar as flag text: strings as they are, numbers as written; anything else is a problem. */
function scalarText(node: Node | null): string | { problem: string } {
  if (!isScalar(node))
    return {
      problem: isSeq(node)
        ? 'expected a single value, not a list'
        : isMap(node)
          ? 'expected a single value, not a mapping'
          : 'has no value (remove the line for the default)',
    };
  const v = node.value;
  if (typeof v === 'string') return v;
  if (typeof v === 'number' || typeof v === 'bigint') return node.source ?? String(v);
  if (v === null) return { problem: 'has no value (remove the line for the default)' };
  return { problem: `expected a value such as the flag takes, not ${typeof v === 'boolean' ? String(v) : 'that'}` };
}

function shape(spec: ConfigKey, node: Node | null): string | boolean | string[] | { problem: string } {
  if (spec.kind === 'boolean') {
    if (isScalar(node) && typeof node.value === 'boolean') return node.value;
    return { problem: 'expected true or false' };
  }
  if (spec.kind === 'list') {
    if (isSeq(node)) {
      const out: string[] = [];
      for (const item of node.items) {
        const t = scalarText(item as Node | null);
        if (typeof t !== 'string') return { problem: `each list item must be a single value (${t.problem})` };
        out.push(t);
      }
      return out;
    }
    if (isMap(node)) return { problem: 'expected a list of values (or one value), not a mapping' };
    const one = scalarText(node);
    return typeof one === 'string' ? [one] : one;
  }
  return scalarText(node);
}
