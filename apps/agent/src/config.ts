/**
 * Options of the mssh-agent commands: flags first, then environment variables, then (for `run`) the
 * config file (--config FILE, MSSH_CONFIG; config-file.ts), then defaults, checked by one zod schema per
 * command. Parsed in main.ts, never at import time; every problem is listed, one from the file with its line.
 *
 *   enroll: --relay URL (MSSH_RELAY_URL)  --token T (MSSH_ENROLL_TOKEN)  --name NAME (MSSH_AGENT_NAME)
 *           --relay-fingerprint SHA256:... (MSSH_RELAY_FINGERPRINT)  --state-dir DIR (MSSH_AGENT_STATE_DIR)
 *           --target auto|embedded|HOST:PORT (MSSH_AGENT_TARGET, default auto)
 *   run:    --state-dir DIR  --target auto|embedded|HOST:PORT (MSSH_AGENT_TARGET; default: the one stored
 *           at enrolment)  --allow-forwarding (embedded server only)  --log-level L (MSSH_LOG_LEVEL, default info)
 *           --log-format json|pretty (MSSH_LOG_FORMAT; default pretty on a terminal, json otherwise)
 *           --relay URL, repeatable (MSSH_RELAYS=URL,URL,...: more relays of the same fleet)
 *           --links K (MSSH_LINKS, 1..8, default 1: links held at once, each to a different relay)
 *           --metrics-listen HOST:PORT (MSSH_METRICS_LISTEN, default off: the Prometheus endpoint)
 */
import { resolve } from 'node:path';
import { z } from 'zod';
import { LOG_FORMATS } from '@mssh/cli-kit';
import { configFileError, type ConfigFile } from '@mssh/cli-kit/config-file';
import { HOST_NAME_RE } from '@mssh/protocol';
import { AgentError } from './errors.js';
import { formatHostPort, parseHostPort, parseRelayUrl, type HostPort } from './dial/endpoint.js';
import { normalizeFingerprint } from './dial/pinned-tls.js';
import { MAX_LINKS } from './dial/supervisor.js';
import { defaultStateDir } from './state/state-dir.js';

/** Where sessions go: the SSH server on 127.0.0.1:22 when one answers, else the embedded one. */
export const DEFAULT_TARGET = 'auto';
/** The SSH server `auto` looks for. */
export const AUTO_TCP_TARGET: HostPort = { host: '127.0.0.1', port: 22 };

/**
 * The target as given: `auto` (resolved at each start), `embedded` (the agent's own SSH server), or a
 * fixed SSH server address. Stored in agent.json as given (formatTargetChoice).
 */
export type TargetChoice = { kind: 'auto' } | { kind: 'embedded' } | { kind: 'tcp'; address: HostPort };

export function parseTargetChoice(s: string): TargetChoice | null {
  const t = s.trim().toLowerCase();
  if (t === 'auto') return { kind: 'auto' };
  if (t === 'embedded') return { kind: 'embedded' };
  const hp = parseHostPort(s.trim());
  return hp ? { kind: 'tcp', address: hp } : null;
}

export function formatTargetChoice(c: TargetChoice): string {
  return c.kind === 'tcp' ? formatHostPort(c.address) : c.kind;
}
/** Most extra relays `run` takes (--relay / MSSH_RELAYS). */
export const MAX_EXTRA_RELAYS = 16;

export const LOG_LEVELS = ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'] as const;
export type LogLevel = (typeof LOG_LEVELS)[number];

const targetSchema = z.string().transform((s, ctx): TargetChoice => {
  const c = parseTargetChoice(s);
  if (!c) {
    ctx.addIssue({
      code: 'custom',
      message: `--target must be auto, embedded or HOST:PORT (e.g. 127.0.0.1:22), not "${s}"`,
    });
    return z.NEVER;
  }
  return c;
});

const stateDirSchema = z
  .string()
  .min(1, '--state-dir must not be empty')
  .transform((s) => resolve(s));

const logLevelSchema = z.enum(LOG_LEVELS, { error: `--log-level must be one of ${LOG_LEVELS.join(', ')}` });
/** Unset: pretty on a terminal, JSON otherwise (log.ts). */
const logFormatSchema = z.enum(LOG_FORMATS, { error: '--log-format must be json or pretty' }).optional();

export const EnrollConfig = z.object({
  relayUrl: z
    .string({ error: '--relay is required (e.g. --relay https://relay.example:8443)' })
    .transform((s, ctx): URL => {
      const url = parseRelayUrl(s);
      if (!url) {
        ctx.addIssue({
          code: 'custom',
          message: `--relay must be an https URL such as https://relay.example:8443, not "${s}"`,
        });
        return z.NEVER;
      }
      return url;
    }),
  token: z
    .string({ error: '--token is required (the one-time token from `mssh-relay agent enroll NAME`)' })
    .min(16, '--token looks truncated; copy the whole token that `mssh-relay agent enroll` printed')
    .max(256, '--token is too long'),
  name: z
    .string({ error: '--name is required (the name the token was issued for)' })
    .regex(HOST_NAME_RE, '--name must be 1-63 chars of a-z, 0-9 and -, starting with a letter or digit'),
  relayFingerprint: z
    .string()
    .nullable()
    .transform((s, ctx): string | null => {
      if (s === null) return null;
      const fp = normalizeFingerprint(s);
      if (!fp) {
        ctx.addIssue({
          code: 'custom',
          message: '--relay-fingerprint must look like SHA256:<43 base64 chars> (as `mssh-relay info` prints it)',
        });
        return z.NEVER;
      }
      return fp;
    }),
  stateDir: stateDirSchema,
  target: targetSchema,
});
export type EnrollConfig = z.infer<typeof EnrollConfig>;

/** A list of option values with where it came from, so that a problem names what to fix. */
type Sourced<T> = { from: string; value: T };

/**
 * More relays of the agent's fleet: https base URLs (https://HOST[:PORT]). All relays of a fleet share
 * one certificate, so the fingerprint pinned at enrolment applies to every one of them.
 */
const relaysSchema = z
  .object({ from: z.string(), value: z.array(z.string()) })
  .transform((r: Sourced<string[]>, ctx) => {
    const urls: URL[] = [];
    const example = 'https://relay2.example:8443';
    for (const raw of r.value) {
      const s = raw.trim();
      if (s === '') {
        // A stray comma in MSSH_RELAYS is harmless; an empty --relay (or list item in the file) is a mistake.
        if (r.from !== 'MSSH_RELAYS')
          ctx.addIssue({ code: 'custom', message: `${r.from} must not be empty; give a relay URL such as ${example}` });
        continue;
      }
      const url = parseRelayUrl(s);
      if (!url) {
        ctx.addIssue({
          code: 'custom',
          message:
            r.from !== 'MSSH_RELAYS'
              ? `${r.from} must be an https URL of a relay of the same fleet, such as ${example}, not "${s}"`
              : `${r.from} must list https URLs of relays of the same fleet, comma-separated (e.g. https://relay1.example:8443,${example}); "${s}" is not one`,
        });
        continue;
      }
      if (url.pathname !== '/' || url.search !== '' || url.hash !== '') {
        ctx.addIssue({
          code: 'custom',
          message: `${r.from}: "${s}" has a path, query or fragment; give the relay's base URL, https://${url.host} (agents dial its host and port)`,
        });
        continue;
      }
      urls.push(url);
    }
    if (urls.length > MAX_EXTRA_RELAYS)
      ctx.addIssue({
        code: 'custom',
        message: `${r.from} names ${urls.length} relays; at most ${MAX_EXTRA_RELAYS} (a name that resolves to several addresses counts once)`,
      });
    return urls;
  });

const linksSchema = z.object({ from: z.string(), value: z.string() }).transform((r: Sourced<string>, ctx) => {
  const s = r.value.trim();
  const n = /^\d{1,3}$/.test(s) ? Number(s) : NaN;
  if (!(n >= 1 && n <= MAX_LINKS)) {
    ctx.addIssue({
      code: 'custom',
      message: `${r.from} must be a whole number from 1 to ${MAX_LINKS} (links held at once, each to a different relay), not "${r.value}"`,
    });
    return z.NEVER;
  }
  return n;
});

/** --metrics-listen: HOST:PORT (port 0: any free one), or null (off). */
const metricsListenSchema = z
  .object({ from: z.string(), value: z.string().nullable() })
  .transform((r: Sourced<string | null>, ctx): HostPort | null => {
    if (r.value === null || r.value.trim() === '') return null;
    const s = r.value.trim();
    const zero = /^(.*):0$/.exec(s);
    const hp = zero ? parseHostPort(`${zero[1]}:1`) : parseHostPort(s);
    if (!hp) {
      ctx.addIssue({
        code: 'custom',
        message: `${r.from} must be HOST:PORT (e.g. 127.0.0.1:9465, [::1]:9465), not "${r.value}"`,
      });
      return z.NEVER;
    }
    return zero ? { host: hp.host, port: 0 } : hp;
  });

export const RunConfig = z.object({
  stateDir: stateDirSchema,
  target: targetSchema.nullable(),
  allowForwarding: z.boolean(),
  logLevel: logLevelSchema,
  logFormat: logFormatSchema,
  /** Relays of the same fleet besides the enrolled one, in the order given. */
  relays: relaysSchema,
  links: linksSchema,
  /** The Prometheus endpoint, or null: off. */
  metricsListen: metricsListenSchema,
});
export type RunConfig = z.infer<typeof RunConfig>;

export interface EnrollFlags {
  relay?: string;
  token?: string;
  name?: string;
  relayFingerprint?: string;
  stateDir?: string;
  target?: string;
}

export interface RunFlags {
  /** --config FILE (env MSSH_CONFIG): the YAML file below the flags and the environment. */
  config?: string;
  stateDir?: string;
  target?: string;
  allowForwarding?: boolean;
  logLevel?: string;
  logFormat?: string;
  /** --relay, repeatable. */
  relay?: string[];
  links?: string;
  metricsListen?: string;
}

export interface AuthorizeFlags {
  stateDir?: string;
}

function check<T>(schema: z.ZodType<T>, input: unknown): T {
  const r = schema.safeParse(input);
  if (r.success) return r.data;
  const lines = r.error.issues.map((i) => i.message);
  throw new AgentError('AGT_ERR_CONFIG', lines.join('\n'));
}

export function parseEnrollConfig(flags: EnrollFlags, env: NodeJS.ProcessEnv = process.env): EnrollConfig {
  return check(EnrollConfig, {
    relayUrl: flags.relay ?? env.MSSH_RELAY_URL,
    token: flags.token ?? env.MSSH_ENROLL_TOKEN,
    name: flags.name ?? env.MSSH_AGENT_NAME,
    relayFingerprint: flags.relayFingerprint ?? env.MSSH_RELAY_FINGERPRINT ?? null,
    stateDir: flags.stateDir ?? defaultStateDir(env),
    target: flags.target ?? env.MSSH_AGENT_TARGET ?? DEFAULT_TARGET,
  });
}

/** The environment variable of each `run` setting that has one (flag > env > config file > default). */
export const RUN_ENV_NAMES: Readonly<Record<string, string>> = {
  stateDir: 'MSSH_AGENT_STATE_DIR',
  target: 'MSSH_AGENT_TARGET',
  logLevel: 'MSSH_LOG_LEVEL',
  logFormat: 'MSSH_LOG_FORMAT',
  relay: 'MSSH_RELAYS',
  links: 'MSSH_LINKS',
  metricsListen: 'MSSH_METRICS_LISTEN',
};

/** Where a setting came from (`mssh-agent config show`, and messages naming the file and line). */
export type SettingSource =
  | { kind: 'flag' }
  | { kind: 'env'; name: string }
  | { kind: 'file'; path: string; line: number; key: string }
  | { kind: 'default' };

/** The codes of a bad config file (README "Error codes"; exit 78). */
export const CONFIG_FILE_CODES = { FILE: 'AGT_ERR_CONFIG_FILE', MODE: 'AGT_ERR_CONFIG_FILE_MODE' } as const;

/** How a message names a setting: `--links`, `MSSH_LINKS`, or `agent.yaml line 3: \`links\``. */
function sourceName(attr: string, src: SettingSource): string {
  if (src.kind === 'env') return src.name;
  if (src.kind === 'file') return `${src.path} line ${src.line}: \`${src.key}\``;
  return `--${attr.replace(/[A-Z]/g, (c) => `-${c.toLowerCase()}`)}`;
}

export interface ResolvedRunConfig {
  cfg: RunConfig;
  sources: Record<string, SettingSource>;
}

/** The settings of `run`, with where each came from. */
export function resolveRunConfig(
  flags: RunFlags,
  env: NodeJS.ProcessEnv = process.env,
  file?: ConfigFile,
): ResolvedRunConfig {
  const sources: Record<string, SettingSource> = {};
  const pick = (attr: keyof RunFlags): unknown => {
    const flag = flags[attr];
    if (flag !== undefined) {
      sources[attr] = { kind: 'flag' };
      return flag;
    }
    const envName = RUN_ENV_NAMES[attr];
    const fromEnv = envName === undefined ? undefined : env[envName];
    if (envName !== undefined && fromEnv !== undefined && fromEnv !== '') {
      sources[attr] = { kind: 'env', name: envName };
      return attr === 'relay' ? fromEnv.split(',') : fromEnv;
    }
    const f = file?.values.get(attr);
    if (f) {
      sources[attr] = { kind: 'file', path: file!.path, line: f.line, key: f.key };
      return f.value;
    }
    return undefined;
  };
  const sourced = (attr: keyof RunFlags, value: unknown, dflt: unknown) => ({
    from: sourceName(attr, sources[attr] ?? { kind: 'flag' }),
    value: value ?? dflt,
  });
  const input = {
    stateDir: pick('stateDir') ?? defaultStateDir(env),
    target: pick('target') ?? null,
    allowForwarding: pick('allowForwarding') === true,
    logLevel: pick('logLevel') ?? 'info',
    logFormat: pick('logFormat'),
    relays: sourced('relay', pick('relay'), []),
    links: sourced('links', pick('links'), '1'),
    metricsListen: sourced('metricsListen', pick('metricsListen'), null),
  };
  // The schema's attribute names for the three whose flag is named otherwise.
  sources.relays = sources.relay ?? { kind: 'default' };
  const r = RunConfig.safeParse(input);
  if (r.success) return { cfg: r.data, sources };
  let fromFile: string | undefined;
  const lines = r.error.issues.map((i) => {
    const attr = String(i.path[0] ?? '');
    const src = sources[attr];
    if (src?.kind !== 'file') return i.message;
    fromFile = src.path;
    // Messages name the flag (`--target must be ...`) or already the file line (Sourced values).
    if (i.message.startsWith(src.path)) return i.message;
    const flag = sourceName(attr, { kind: 'flag' });
    return i.message.startsWith(flag)
      ? `${sourceName(attr, src)}${i.message.slice(flag.length)}`
      : `${sourceName(attr, src)}: ${i.message}`;
  });
  if (fromFile !== undefined)
    throw configFileError(
      CONFIG_FILE_CODES.FILE,
      lines.length === 1 ? lines[0]! : `invalid settings:\n  ${lines.join('\n  ')}`,
      `Fix the value in ${fromFile}; see \`mssh-agent run --help\` for the accepted values.`,
    );
  throw new AgentError('AGT_ERR_CONFIG', lines.join('\n'));
}

export function parseRunConfig(flags: RunFlags, env: NodeJS.ProcessEnv = process.env, file?: ConfigFile): RunConfig {
  return resolveRunConfig(flags, env, file).cfg;
}

/** The state directory of `mssh-agent authorize`: flag, env, default. */
export function parseAuthorizeStateDir(flags: AuthorizeFlags, env: NodeJS.ProcessEnv = process.env): string {
  return check(stateDirSchema, flags.stateDir ?? defaultStateDir(env));
}
