/**
 * The config file of `mssh-agent run` (--config FILE or MSSH_CONFIG; YAML, @mssh/cli-kit/config-file) and
 * what `mssh-agent config show` prints. The keys are the long options of `run` as written (`relay` is a
 * list), taken from the commander grammar itself (cli.ts runOptions), so a new flag has its key at once.
 *
 *   flag  >  env  >  file  >  default          (config.ts resolveRunConfig)
 *
 * Problems of the file (unreadable, not YAML, not a mapping, unknown key, bad value) are
 * AGT_ERR_CONFIG_FILE and name the file and line. No `run` setting is a secret, so the file's mode is not
 * checked (AGT_ERR_CONFIG_FILE_MODE is reserved for the day one is).
 */
import { Command } from 'commander';
import { configKeysOf, loadConfigFile, type ConfigFile, type ConfigKey } from '@mssh/cli-kit/config-file';
import { runOptions } from './cli.js';
import {
  CONFIG_FILE_CODES,
  formatTargetChoice,
  resolveRunConfig,
  type RunFlags,
  type SettingSource,
} from './config.js';
import type { ResolvedRunConfig } from './config.js';
import { formatHostPort } from './dial/endpoint.js';

/** Every option of `run` but --config itself, as file keys. */
export const RUN_CONFIG_KEYS: readonly ConfigKey[] = configKeysOf(runOptions(new Command('run')), ['config']);

export function loadRunConfigFile(path: string): ConfigFile {
  return loadConfigFile(path, {
    keys: RUN_CONFIG_KEYS,
    codes: CONFIG_FILE_CODES,
    helpCommand: 'mssh-agent run --help',
  });
}

/** The file of --config, else of MSSH_CONFIG, else none. */
export function configFilePath(flags: RunFlags, env: NodeJS.ProcessEnv): string | undefined {
  if (flags.config) return flags.config;
  return env.MSSH_CONFIG || undefined;
}

export interface ResolvedWithFile extends ResolvedRunConfig {
  file: ConfigFile | undefined;
}

/** The settings of `run`: flags, env, the config file (if any), defaults; every problem at once. */
export function resolveRunSettings(flags: RunFlags, env: NodeJS.ProcessEnv = process.env): ResolvedWithFile {
  const path = configFilePath(flags, env);
  const file = path === undefined ? undefined : loadRunConfigFile(path);
  return { ...resolveRunConfig(flags, env, file), file };
}

function display(attr: string, r: ResolvedRunConfig): string {
  const c = r.cfg;
  switch (attr) {
    case 'stateDir':
      return c.stateDir;
    case 'target':
      return c.target ? formatTargetChoice(c.target) : '(the one stored at enrolment)';
    case 'allowForwarding':
      return String(c.allowForwarding);
    case 'logLevel':
      return c.logLevel;
    case 'logFormat':
      return c.logFormat ?? '(pretty on a terminal, json otherwise)';
    case 'relay':
      return c.relays.length > 0 ? c.relays.map((u) => u.origin).join(', ') : '(none: the enrolled relay only)';
    case 'links':
      return String(c.links);
    case 'metricsListen':
      return c.metricsListen ? formatHostPort(c.metricsListen) : 'off';
  }
  return '(unknown)';
}

export interface SettingRow {
  key: string;
  value: string;
  source: SettingSource;
}

export function settingRows(r: ResolvedRunConfig): SettingRow[] {
  return RUN_CONFIG_KEYS.map((k) => ({
    key: k.key,
    value: display(k.attribute, r),
    source: r.sources[k.attribute] ?? { kind: 'default' },
  }));
}

const sourceText = (s: SettingSource) =>
  s.kind === 'env' ? `env ${s.name}` : s.kind === 'file' ? `file:${s.line}` : s.kind;

/** `config show` as text: the file, then one aligned line per setting. */
export function formatSettings(r: ResolvedWithFile): string {
  const rows = settingRows(r);
  const kw = Math.max(...rows.map((x) => x.key.length));
  const vw = Math.max(...rows.map((x) => x.value.length));
  const head = `config file: ${r.file ? r.file.path : 'none (--config FILE or MSSH_CONFIG)'}`;
  return [head, ...rows.map((x) => `${x.key.padEnd(kw)}  ${x.value.padEnd(vw)}  ${sourceText(x.source)}`)]
    .map((l) => l.trimEnd())
    .join('\n');
}

/** `config show --json`: { configFile, settings: [{ key, value, source, env?, line? }] }. */
export function settingsJson(r: ResolvedWithFile): unknown {
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
