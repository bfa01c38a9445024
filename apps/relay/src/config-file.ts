/**
 * The config file of `mssh-relay serve` (--config FILE or MSSH_CONFIG; YAML, @mssh/cli-kit/config-file)
 * and what `mssh-relay config show` prints. The keys are the long options of `serve` as written, taken
 * from the commander grammar itself (cli/program.ts serveOptions), so a new flag has its key at once.
 *
 *   flag  >  env  >  file  >  default          (config.ts layerSettings)
 *
 * A file holding a secret (a database-url with a password) must not be readable by others (mode & 0o027,
 * like OpenSSH's private keys): RLY_CLI_ERR_CONFIG_FILE_MODE. Every other problem of the file (unreadable,
 * not YAML, not a mapping, unknown key, bad value) is RLY_CLI_ERR_CONFIG_FILE with the file and line.
 */
import { Command } from 'commander';
import { configKeysOf, loadConfigFile, type ConfigFile, type ConfigKey } from '@mssh/cli-kit/config-file';
import { serveOptions, type Flags } from './cli/program.js';
import {
  CONFIG_FILE_CODES,
  ENV_ONLY,
  ServeConfigSchema,
  formatHostPort,
  layerSettings,
  parseLayered,
  sshJumpListen,
  type ListenAddress,
  type ServeConfig,
  type SettingSource,
} from './config.js';

/** Every option of `serve` but --config itself, as file keys. */
export const SERVE_CONFIG_KEYS: readonly ConfigKey[] = configKeysOf(serveOptions(new Command('serve')), ['config']);

/** Whether a Postgres URL carries a password (in the user part or as a parameter). */
export function hasPassword(url: unknown): boolean {
  if (typeof url !== 'string') return false;
  try {
    const u = new URL(url);
    return u.password !== '' || u.searchParams.has('password');
  } catch {
    return false;
  }
}

export function loadServeConfigFile(path: string): ConfigFile {
  return loadConfigFile(path, {
    keys: SERVE_CONFIG_KEYS,
    codes: CONFIG_FILE_CODES,
    helpCommand: 'mssh-relay serve --help',
    isSecret: (key, v) => key === 'database-url' && hasPassword(v),
  });
}

/** The file of --config, else of MSSH_CONFIG, else none. */
export function configFilePath(flags: Flags, env: NodeJS.ProcessEnv): string | undefined {
  const f = flags.config;
  if (typeof f === 'string' && f !== '') return f;
  return env.MSSH_CONFIG || undefined;
}

export interface ResolvedServeConfig {
  cfg: ServeConfig;
  sources: Record<string, SettingSource>;
  file: ConfigFile | undefined;
}

/** The settings of `serve`: flags, env, the config file (if any), defaults; every problem at once. */
export function resolveServeConfig(flags: Flags, env: NodeJS.ProcessEnv = process.env): ResolvedServeConfig {
  const path = configFilePath(flags, env);
  const file = path === undefined ? undefined : loadServeConfigFile(path);
  const layered = layerSettings(flags, env, file);
  return { cfg: parseLayered(ServeConfigSchema, layered), sources: layered.sources, file };
}

// ---------------------------------------------------------------- config show

export interface SettingRow {
  /** The file key (a long option), or the variable of an environment-only setting. */
  key: string;
  value: string;
  source: SettingSource;
}

/** A Postgres URL with its password shown as ***. */
export function redactUrl(url: string): string {
  try {
    const u = new URL(url);
    if (u.password) u.password = '***';
    if (u.searchParams.has('password')) u.searchParams.set('password', '***');
    return u.toString();
  } catch {
    return '(not a URL)';
  }
}

/** 30d, 12h, 90m, 45s: the largest unit that divides the time exactly. */
function formatMs(ms: number): string {
  for (const [unit, size] of [
    ['d', 86_400_000],
    ['h', 3_600_000],
    ['m', 60_000],
    ['s', 1000],
  ] as const)
    if (ms % size === 0) return `${ms / size}${unit}`;
  return `${ms}ms`;
}

const isListen = (v: unknown): v is ListenAddress =>
  typeof v === 'object' && v !== null && 'host' in v && 'port' in v && Object.keys(v).length === 2;

/** The effective value of one setting as text; secrets redacted. */
function display(attr: string, cfg: ServeConfig): string {
  const v = (cfg as Record<string, unknown>)[attr];
  switch (attr) {
    case 'databaseUrl':
      return typeof v === 'string' ? redactUrl(v) : '(none: the embedded PGlite in the data dir)';
    case 'bootstrapPassword':
      return v === undefined ? '(none)' : '***';
    case 'sshListen': {
      const jump = sshJumpListen(cfg);
      return jump ? formatHostPort(jump.host, jump.port) : 'off';
    }
    case 'staleAfter':
      return formatMs(cfg.staleAfter);
    case 'logFormat':
      return typeof v === 'string' ? v : '(pretty on a terminal, json otherwise)';
    case 'tlsCert':
    case 'tlsKey':
      return typeof v === 'string' ? v : '(self-signed, in the data dir)';
  }
  if (isListen(v)) return formatHostPort(v.host, v.port);
  if (Array.isArray(v)) return v.length > 0 ? v.join(', ') : '(none)';
  if (typeof v === 'string' || typeof v === 'number' || typeof v === 'boolean') return String(v);
  return '(none)';
}

/** Every setting of `serve` (each option, then the environment-only ones) with its value and source. */
export function settingRows(r: ResolvedServeConfig): SettingRow[] {
  const rows: SettingRow[] = SERVE_CONFIG_KEYS.map((k) => ({
    key: k.key,
    value: display(k.attribute, r.cfg),
    source: r.sources[k.attribute] ?? { kind: 'default' },
  }));
  for (const [attr, name] of Object.entries(ENV_ONLY))
    rows.push({ key: name, value: display(attr, r.cfg), source: r.sources[attr] ?? { kind: 'default' } });
  return rows;
}

export function sourceText(s: SettingSource): string {
  switch (s.kind) {
    case 'flag':
      return 'flag';
    case 'env':
      return `env ${s.name}`;
    case 'file':
      return `file:${s.line}`;
    case 'default':
      return 'default';
  }
}

/** `config show` as text: the file, then one aligned line per setting. */
export function formatSettings(r: ResolvedServeConfig): string {
  const rows = settingRows(r);
  const kw = Math.max(...rows.map((x) => x.key.length));
  const vw = Math.max(...rows.map((x) => x.value.length));
  const head = `config file: ${r.file ? r.file.path : 'none (--config FILE or MSSH_CONFIG)'}`;
  return [head, ...rows.map((x) => `${x.key.padEnd(kw)}  ${x.value.padEnd(vw)}  ${sourceText(x.source)}`)]
    .map((l) => l.trimEnd())
    .join('\n');
}

/** `config show --json`: { configFile, settings: [{ key, value, source, env?, line? }] }. */
export function settingsJson(r: ResolvedServeConfig): unknown {
  return {
    configFile: r.file?.path ?? null,
    settings: settingRows(r).map((x) => ({
      key: x.key,
      value: x.value,
      source: x.source.kind,
      ...(x.source.kind === 'env' ? { env: x.source.name } : {}),
      ...(x.source.kind === 'file' ? { line: x.source.line } : {}),
    })),
  };
}
