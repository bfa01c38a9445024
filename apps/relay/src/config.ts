/**
 * The relay's configuration: command-line flags over environment variables over the config file (--config,
 * MSSH_CONFIG; config-file.ts) over defaults, validated by one zod schema per command, parsed once in
 * main.ts. Every problem is reported at once; one from the file names its line and key.
 */
import { homedir, hostname } from 'node:os';
import { isIP } from 'node:net';
import { join, resolve } from 'node:path';
import { z } from 'zod';
import {
  DEFAULT_RELAY_PORT,
  DEFAULT_SSH_JUMP_PORT,
  HostName,
  MIN_PROTOCOL_VERSION,
  UserName,
  parseDuration,
} from '@mssh/protocol';
import { LOG_FORMATS } from '@mssh/cli-kit';
import { configFileError, type ConfigFile } from '@mssh/cli-kit/config-file';
import { CliError } from './errors.js';
import { DEFAULT_STALE_AFTER_MS } from './hosts/staleness.js';

export const DEFAULT_LISTEN = `0.0.0.0:${DEFAULT_RELAY_PORT}`;
export const LOG_LEVELS = ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'] as const;
export type LogLevel = (typeof LOG_LEVELS)[number];

export interface ListenAddress {
  host: string;
  port: number;
}

/** "HOST:PORT", "[v6]:PORT" or ":PORT" (all addresses). */
export function parseListen(s: string): ListenAddress | null {
  const m = /^(?:\[([0-9a-fA-F:.]+)\]|([^:[\]\s]*)):(\d{1,5})$/.exec(s.trim());
  if (!m) return null;
  const host = m[1] ?? (m[2] || '0.0.0.0');
  const port = Number(m[3]);
  if (port > 65535) return null;
  if (m[1] !== undefined && isIP(host) !== 6) return null;
  if (m[2] && isIP(host) === 0 && !/^[A-Za-z0-9]([A-Za-z0-9.-]{0,252})$/.test(host)) return null;
  return { host, port };
}

/** The URL clients and agents use, unless --public-url says otherwise. */
export function defaultPublicUrl(listen: ListenAddress): string {
  const wildcard = listen.host === '0.0.0.0' || listen.host === '::';
  const host = wildcard ? hostname() : listen.host;
  return `https://${isIP(host) === 6 ? `[${host}]` : host}:${listen.port}`;
}

export function formatHostPort(host: string, port: number): string {
  return `${isIP(host) === 6 ? `[${host}]` : host}:${port}`;
}

function expandHome(p: string): string {
  if (p === '~') return homedir();
  if (p.startsWith('~/')) return join(homedir(), p.slice(2));
  return p;
}

const nonEmpty = (v: unknown) => (typeof v === 'string' && v.trim() === '' ? undefined : v);

/** The data directory when neither --data-dir nor MSSH_DATA_DIR says: per user, under their home. */
export const DEFAULT_DATA_DIR = '~/.local/share/mssh-relay';
export const defaultDataDir = (): string => resolve(expandHome(DEFAULT_DATA_DIR));

const DataDir = z
  .preprocess(nonEmpty, z.string().optional())
  .transform((v) => (v === undefined ? defaultDataDir() : resolve(expandHome(v))));

const DatabaseUrl = z
  .preprocess(nonEmpty, z.string().optional())
  .refine((v) => v === undefined || /^postgres(ql)?:\/\/./.test(v), 'must be a postgres:// or postgresql:// URL');

const Listen = z.preprocess(nonEmpty, z.string().optional()).transform((v, ctx) => {
  const parsed = parseListen(v ?? DEFAULT_LISTEN);
  if (!parsed) {
    ctx.addIssue({ code: 'custom', message: `"${v}" is not HOST:PORT (e.g. 0.0.0.0:8443, [::]:8443, 127.0.0.1:0)` });
    return z.NEVER;
  }
  return parsed;
});

/** --ssh-listen: HOST:PORT, `off`, or unset (port DEFAULT_SSH_JUMP_PORT on the host of --listen). */
const SshListen = z
  .preprocess(nonEmpty, z.string().optional())
  .transform((v, ctx): ListenAddress | 'off' | undefined => {
    if (v === undefined) return undefined;
    if (v.trim().toLowerCase() === 'off') return 'off';
    const parsed = parseListen(v);
    if (!parsed) {
      ctx.addIssue({ code: 'custom', message: `"${v}" is not HOST:PORT or off (e.g. 0.0.0.0:2222, 127.0.0.1:0, off)` });
      return z.NEVER;
    }
    return parsed;
  });

/** Where the SSH jump listener listens, or null when it is off. */
export function sshJumpListen(cfg: { listen: ListenAddress; sshListen?: ListenAddress | 'off' }): ListenAddress | null {
  if (cfg.sshListen === 'off') return null;
  return cfg.sshListen ?? { host: cfg.listen.host, port: DEFAULT_SSH_JUMP_PORT };
}

/** --peer-listen: HOST:PORT of the fleet's peer listener, or unset (no fleet). */
const PeerListen = z.preprocess(nonEmpty, z.string().optional()).transform((v, ctx) => {
  if (v === undefined) return undefined;
  const parsed = parseListen(v);
  if (!parsed) {
    ctx.addIssue({ code: 'custom', message: `"${v}" is not HOST:PORT (e.g. 10.0.0.5:8444, 127.0.0.1:0)` });
    return z.NEVER;
  }
  return parsed;
});

/** --metrics-listen: HOST:PORT of the Prometheus endpoint (plain HTTP), or unset (off). */
const MetricsListen = z.preprocess(nonEmpty, z.string().optional()).transform((v, ctx) => {
  if (v === undefined) return undefined;
  const parsed = parseListen(v);
  if (!parsed) {
    ctx.addIssue({ code: 'custom', message: `"${v}" is not HOST:PORT (e.g. 127.0.0.1:9464, 10.0.0.5:9464)` });
    return z.NEVER;
  }
  return parsed;
});

/** Two listen addresses that would collide: the same port (not 0) on the same or a wildcard host. */
function samePort(a: ListenAddress | undefined | 'off', b: ListenAddress | undefined | 'off'): boolean {
  if (!a || !b || a === 'off' || b === 'off' || a.port === 0 || a.port !== b.port) return false;
  const wild = (h: string) => h === '0.0.0.0' || h === '::' || h === '';
  return a.host === b.host || wild(a.host) || wild(b.host);
}

const FleetLeaseMs = z
  .preprocess(nonEmpty, z.coerce.number().int().min(300, 'must be at least 300 (ms)').max(600_000).optional())
  .transform((v) => v ?? 3_000);

const PublicUrl = z.preprocess(nonEmpty, z.string().optional()).transform((v, ctx) => {
  if (v === undefined) return undefined;
  let u: URL;
  try {
    u = new URL(v);
  } catch {
    ctx.addIssue({ code: 'custom', message: `"${v}" is not a URL (e.g. https://relay.example.org:8443)` });
    return z.NEVER;
  }
  if (u.protocol !== 'https:' || (u.pathname !== '/' && u.pathname !== '') || u.search || u.hash || u.username) {
    ctx.addIssue({ code: 'custom', message: 'must be https://HOST[:PORT] with no path' });
    return z.NEVER;
  }
  return `https://${u.host}`;
});

const TlsSan = z
  .string()
  .refine(
    (s) => isIP(s) !== 0 || /^(\*\.)?[A-Za-z0-9]([A-Za-z0-9-]{0,62})(\.[A-Za-z0-9]([A-Za-z0-9-]{0,62}))*$/.test(s),
    'must be a DNS name or an IP address',
  );

const StaleAfter = z.preprocess(nonEmpty, z.string().optional()).transform((v, ctx) => {
  if (v === undefined) return DEFAULT_STALE_AFTER_MS;
  const ms = parseDuration(v, { bareSeconds: true });
  if (ms === null || ms <= 0) {
    ctx.addIssue({ code: 'custom', message: `"${v}" is not a duration (e.g. 30d, 2w, 12h, 90m, 45s)` });
    return z.NEVER;
  }
  return ms;
});

const LogLevel = z.preprocess(nonEmpty, z.enum(LOG_LEVELS).optional()).transform((v) => v ?? 'info');
/** --log-format: json or pretty; unset: pretty on a terminal, JSON otherwise (logger.ts). */
const LogFormat = z.preprocess(nonEmpty, z.enum(LOG_FORMATS, { error: 'must be json or pretty' }).optional());

/** The flags every command shares (database and data directory). */
const StoreSchema = z.object({ dataDir: DataDir, databaseUrl: DatabaseUrl });

const TlsSchema = z.object({
  tlsCert: z.preprocess(nonEmpty, z.string().optional()).transform((v) => (v ? resolve(expandHome(v)) : undefined)),
  tlsKey: z.preprocess(nonEmpty, z.string().optional()).transform((v) => (v ? resolve(expandHome(v)) : undefined)),
  tlsSan: z.array(TlsSan).default([]),
});

/** "10.0.0.0/8", "192.168.1.7", "::1/128": an address or a CIDR block (for --trusted-proxy). */
export function isCidr(s: string): boolean {
  const m = /^([^/]+)(?:\/(\d{1,3}))?$/.exec(s.trim());
  if (!m) return false;
  const v = isIP(m[1]!);
  if (v === 0) return false;
  return m[2] === undefined || Number(m[2]) <= (v === 4 ? 32 : 128);
}

/** A positive whole number flag (commander hands strings), with its default. */
const count = (dflt: number, max = 1_000_000_000) =>
  z
    .preprocess(
      (v) =>
        v === undefined || v === '' ? undefined : typeof v === 'string' && /^\d+$/.test(v.trim()) ? Number(v) : v,
      z
        .number({ message: 'must be a whole number' })
        .int('must be a whole number')
        .min(1, 'must be at least 1')
        .max(max, `must be at most ${max}`)
        .optional(),
    )
    .transform((v) => v ?? dflt);

/** Like count, but 0 is allowed and means "no limit". */
const countOrOff = (dflt: number, max = 1_000_000_000) =>
  z
    .preprocess(
      (v) =>
        v === undefined || v === '' ? undefined : typeof v === 'string' && /^\d+$/.test(v.trim()) ? Number(v) : v,
      z
        .number({ message: 'must be a whole number' })
        .int('must be a whole number')
        .min(0, 'must be 0 (off) or more')
        .max(max, `must be at most ${max}`)
        .optional(),
    )
    .transform((v) => v ?? dflt);

/**
 * Issue 3 limits; README "Hardening and limits" documents each. A cap reached refuses new work only.
 * Defaults are generous for one relay on a small machine.
 */
export const HARDENING_DEFAULTS = {
  maxSessionsPerUser: 64,
  maxSessionsPerAgent: 256,
  maxSessions: 4096,
  maxAgents: 1024,
  maxHeaderBytes: 16 * 1024,
  maxBodyBytes: 64 * 1024,
  handshakeTimeout: 10,
  loginAttempts: 5,
  maxPasswordChecks: 4,
  // Issue 16 item 3: what one address may hold open on the API side.
  maxStreamsPerConnection: 128,
  maxConnectionsPerAddress: 32,
  maxPendingPerAddress: 128,
  // Issue 22: PING/SETTINGS frames per second and connection (API connections and agent links).
  maxH2ControlFrames: 1000,
  bodyTimeout: 10,
} as const;

const HardeningSchema = z.object({
  trustedProxy: z
    .array(z.string().refine(isCidr, 'must be an IP address or CIDR block, e.g. 10.0.0.0/8 or 127.0.0.1'))
    .default([]),
  minProtocolVersion: count(MIN_PROTOCOL_VERSION, 1_000_000),
  maxSessionsPerUser: count(HARDENING_DEFAULTS.maxSessionsPerUser),
  maxSessionsPerAgent: count(HARDENING_DEFAULTS.maxSessionsPerAgent),
  maxSessions: count(HARDENING_DEFAULTS.maxSessions),
  maxAgents: count(HARDENING_DEFAULTS.maxAgents),
  maxHeaderBytes: count(HARDENING_DEFAULTS.maxHeaderBytes, 1024 * 1024).refine(
    (v) => v >= 1024,
    'must be at least 1024',
  ),
  maxBodyBytes: count(HARDENING_DEFAULTS.maxBodyBytes, 64 * 1024 * 1024).refine(
    (v) => v >= 1024,
    'must be at least 1024',
  ),
  handshakeTimeout: count(HARDENING_DEFAULTS.handshakeTimeout, 3600),
  loginAttempts: count(HARDENING_DEFAULTS.loginAttempts, 1_000_000),
  maxPasswordChecks: count(HARDENING_DEFAULTS.maxPasswordChecks, 1024),
  maxStreamsPerConnection: count(HARDENING_DEFAULTS.maxStreamsPerConnection, 100_000),
  maxConnectionsPerAddress: countOrOff(HARDENING_DEFAULTS.maxConnectionsPerAddress, 1_000_000),
  maxPendingPerAddress: countOrOff(HARDENING_DEFAULTS.maxPendingPerAddress, 1_000_000),
  maxH2ControlFrames: countOrOff(HARDENING_DEFAULTS.maxH2ControlFrames, 1_000_000),
  bodyTimeout: count(HARDENING_DEFAULTS.bodyTimeout, 3600),
});

/**
 * The drain of SIGTERM and `mssh-relay drain` (issue 19), in whole seconds (0 allowed):
 *   drainDelay    from the drain's start (/readyz 503, GOAWAY, new sessions refused) to closing the
 *                 listeners: long enough for a balancer's health check to take the relay out (haproxy
 *                 `inter 1s fall 1` notices within a second);
 *   drainTimeout  from the drain's start, the longest running sessions may go on; then the stop ends
 *                 them (relay_shutdown). 20 s: short sessions (a command, scp, git) finish, interactive
 *                 shells are cut either way, and drain + stop fit in Kubernetes' default 30 s grace
 *                 before SIGKILL (a supervisor must allow max(delay, timeout) + 15 s).
 */
export const DRAIN_DEFAULTS = { drainDelay: 2, drainTimeout: 20 } as const;

/** Longest a stop (after a drain or without one) may take before the process exits anyway (main.ts). */
export const STOP_TIMEOUT_MS = 15_000;

const seconds = (dflt: number, max: number) =>
  z
    .preprocess(
      (v) =>
        v === undefined || v === '' ? undefined : typeof v === 'string' && /^\d+$/.test(v.trim()) ? Number(v) : v,
      z
        .number({ message: 'must be whole seconds (0 or more)' })
        .int('must be whole seconds (0 or more)')
        .min(0, 'must be 0 or more')
        .max(max, `must be at most ${max}`)
        .optional(),
    )
    .transform((v) => v ?? dflt);

export const ServeConfigSchema = StoreSchema.extend({
  listen: Listen,
  sshListen: SshListen,
  publicUrl: PublicUrl,
  peerListen: PeerListen,
  peerUrl: PublicUrl,
  fleetLeaseMs: FleetLeaseMs,
  metricsListen: MetricsListen,
  logLevel: LogLevel,
  logFormat: LogFormat,
  staleAfter: StaleAfter,
  ...HardeningSchema.shape,
  bootstrapPassword: z.preprocess(nonEmpty, z.string().min(8, 'must be at least 8 characters').max(1024).optional()),
  drainDelay: seconds(DRAIN_DEFAULTS.drainDelay, 600),
  drainTimeout: seconds(DRAIN_DEFAULTS.drainTimeout, 86_400),
  /** How often live sessions' byte counters are written (ms). */
  auditProgressMs: z
    .preprocess(nonEmpty, z.coerce.number().int().min(100, 'must be at least 100 (ms)').max(3_600_000).optional())
    .transform((v) => v ?? 10_000),
})
  .extend(TlsSchema.shape)
  .refine((c) => !c.peerListen || !!c.databaseUrl, {
    path: ['peerListen'],
    message: 'a relay fleet shares one Postgres: give --database-url (DATABASE_URL) too',
    when: (p) => typeof p.value === 'object' && p.value !== null,
  })
  .refine((c) => !c.peerListen || !!c.peerUrl || !['0.0.0.0', '::', ''].includes(c.peerListen.host), {
    path: ['peerUrl'],
    message: '--peer-listen on a wildcard address needs --peer-url https://HOST:PORT (the address peers dial)',
    when: (p) => typeof p.value === 'object' && p.value !== null,
  })
  .refine(
    (c) =>
      !c.metricsListen ||
      ![c.listen, sshJumpListen(c) ?? undefined, c.peerListen].some((other) => samePort(c.metricsListen, other)),
    {
      path: ['metricsListen'],
      message:
        'the metrics endpoint never shares a port with --listen, --ssh-listen or --peer-listen: pick another port',
      when: (p) => typeof p.value === 'object' && p.value !== null,
    },
  )
  .refine((c) => !!c.tlsCert === !!c.tlsKey, {
    path: ['tlsKey'],
    message: '--tls-cert and --tls-key go together: give both, or neither for a self-signed certificate',
    // Checked even when other options are wrong, so that every problem is listed at once.
    when: (p) => typeof p.value === 'object' && p.value !== null,
  });
export type ServeConfig = z.infer<typeof ServeConfigSchema>;

export const StoreConfigSchema = StoreSchema;
export type StoreConfig = z.infer<typeof StoreConfigSchema>;

export const UserAddConfigSchema = StoreSchema.extend({
  name: UserName,
  admin: z.boolean().default(false),
  passwordStdin: z.boolean().default(false),
});
export type UserAddConfig = z.infer<typeof UserAddConfigSchema>;

export const AgentEnrollConfigSchema = StoreSchema.extend({
  name: HostName,
  listen: Listen,
  publicUrl: PublicUrl,
}).extend(TlsSchema.shape);
export type AgentEnrollConfig = z.infer<typeof AgentEnrollConfigSchema>;

export const AuditPruneConfigSchema = StoreSchema.extend({
  olderThan: z.string().transform((v, ctx) => {
    const ms = parseDuration(v);
    if (ms === null || ms < 86_400_000) {
      ctx.addIssue({ code: 'custom', message: `"${v}" is not an age of at least one day (e.g. 365d, 52w, 90d)` });
      return z.NEVER;
    }
    return ms;
  }),
});
export type AuditPruneConfig = z.infer<typeof AuditPruneConfigSchema>;

export const InfoConfigSchema = StoreSchema.extend({ tlsCert: TlsSchema.shape.tlsCert });
export type InfoConfig = z.infer<typeof InfoConfigSchema>;

/** Flag names as the user typed them, for messages. */
const FLAG_NAMES: Record<string, string> = {
  dataDir: '--data-dir (MSSH_DATA_DIR)',
  databaseUrl: '--database-url (DATABASE_URL)',
  listen: '--listen (MSSH_LISTEN)',
  sshListen: '--ssh-listen (MSSH_SSH_LISTEN)',
  publicUrl: '--public-url (MSSH_PUBLIC_URL)',
  peerListen: '--peer-listen (MSSH_PEER_LISTEN)',
  peerUrl: '--peer-url (MSSH_PEER_URL)',
  metricsListen: '--metrics-listen (MSSH_METRICS_LISTEN)',
  fleetLeaseMs: 'MSSH_FLEET_LEASE_MS',
  logLevel: '--log-level (MSSH_LOG_LEVEL)',
  logFormat: '--log-format (MSSH_LOG_FORMAT)',
  bootstrapPassword: 'MSSH_BOOTSTRAP_PASSWORD',
  staleAfter: '--stale-after (MSSH_STALE_AFTER)',
  tlsCert: '--tls-cert',
  tlsKey: '--tls-key',
  tlsSan: '--tls-san',
  name: 'NAME',
  admin: '--admin',
  passwordStdin: '--password-stdin',
  auditProgressMs: 'MSSH_AUDIT_PROGRESS_MS',
  olderThan: '--older-than',
  trustedProxy: '--trusted-proxy',
  minProtocolVersion: '--min-protocol-version',
  maxSessionsPerUser: '--max-sessions-per-user',
  maxSessionsPerAgent: '--max-sessions-per-agent',
  maxSessions: '--max-sessions',
  maxAgents: '--max-agents',
  maxHeaderBytes: '--max-header-bytes',
  maxBodyBytes: '--max-body-bytes',
  handshakeTimeout: '--handshake-timeout',
  loginAttempts: '--login-attempts',
  maxPasswordChecks: '--max-password-checks',
  maxStreamsPerConnection: '--max-streams-per-connection',
  maxConnectionsPerAddress: '--max-connections-per-address',
  maxPendingPerAddress: '--max-pending-per-address',
  maxH2ControlFrames: '--max-h2-control-frames',
  bodyTimeout: '--body-timeout',
  drainDelay: '--drain-delay (MSSH_DRAIN_DELAY)',
  drainTimeout: '--drain-timeout (MSSH_DRAIN_TIMEOUT)',
};

/** The environment variable of each flag that has one (flag > env > config file > default). */
export const ENV_NAMES: Readonly<Record<string, string>> = {
  dataDir: 'MSSH_DATA_DIR',
  databaseUrl: 'DATABASE_URL',
  listen: 'MSSH_LISTEN',
  sshListen: 'MSSH_SSH_LISTEN',
  publicUrl: 'MSSH_PUBLIC_URL',
  peerListen: 'MSSH_PEER_LISTEN',
  peerUrl: 'MSSH_PEER_URL',
  metricsListen: 'MSSH_METRICS_LISTEN',
  logLevel: 'MSSH_LOG_LEVEL',
  logFormat: 'MSSH_LOG_FORMAT',
  staleAfter: 'MSSH_STALE_AFTER',
  drainDelay: 'MSSH_DRAIN_DELAY',
  drainTimeout: 'MSSH_DRAIN_TIMEOUT',
};
/** Settings with no flag and no file key: the environment only (tuning, and a secret kept off disks). */
export const ENV_ONLY: Readonly<Record<string, string>> = {
  fleetLeaseMs: 'MSSH_FLEET_LEASE_MS',
  bootstrapPassword: 'MSSH_BOOTSTRAP_PASSWORD',
  auditProgressMs: 'MSSH_AUDIT_PROGRESS_MS',
};

/** Where a setting came from (`mssh-relay config show`, and messages naming the file and line). */
export type SettingSource =
  | { kind: 'flag' }
  | { kind: 'env'; name: string }
  | { kind: 'file'; path: string; line: number; key: string }
  | { kind: 'default' };

export interface Layered {
  input: Record<string, unknown>;
  sources: Record<string, SettingSource>;
}

/**
 * flag > env > config file > default. A flag counts when given (commander leaves absent ones undefined);
 * a variable when set and not empty; the file when it has the key.
 */
export function layerSettings(flags: Record<string, unknown>, env: NodeJS.ProcessEnv, file?: ConfigFile): Layered {
  const input: Record<string, unknown> = {};
  const sources: Record<string, SettingSource> = {};
  for (const [attr, v] of file?.values ?? []) {
    input[attr] = v.value;
    sources[attr] = { kind: 'file', path: file!.path, line: v.line, key: v.key };
  }
  for (const [attr, name] of Object.entries({ ...ENV_NAMES, ...ENV_ONLY })) {
    const v = env[name];
    if (v !== undefined && v !== '') {
      input[attr] = v;
      sources[attr] = { kind: 'env', name };
    }
  }
  for (const [attr, v] of Object.entries(flags)) {
    if (v === undefined || attr in ENV_ONLY) continue;
    input[attr] = v;
    sources[attr] = { kind: 'flag' };
  }
  return { input, sources };
}

/** The codes of a bad config file (README "Command-line error codes"; exit 78). */
export const CONFIG_FILE_CODES = { FILE: 'RLY_CLI_ERR_CONFIG_FILE', MODE: 'RLY_CLI_ERR_CONFIG_FILE_MODE' } as const;

/** Parse once; on failure a CliError listing every problem (naming the file and line of a value from it). */
export function parseConfig<S extends z.ZodType>(
  schema: S,
  flags: Record<string, unknown>,
  env: NodeJS.ProcessEnv = process.env,
  file?: ConfigFile,
): z.infer<S> {
  return parseLayered(schema, layerSettings(flags, env, file));
}

export function parseLayered<S extends z.ZodType>(schema: S, layered: Layered): z.infer<S> {
  const r = schema.safeParse(layered.input);
  if (r.success) return r.data;
  let fromFile: string | undefined;
  const lines = r.error.issues.map((i) => {
    const attr = String(i.path[0] ?? '');
    const src = layered.sources[attr];
    if (src?.kind === 'file') {
      fromFile = src.path;
      return `${src.path} line ${src.line}: \`${src.key}\`: ${i.message}`;
    }
    return `${FLAG_NAMES[attr] ?? (attr || 'options')}: ${i.message}`;
  });
  if (fromFile !== undefined)
    throw configFileError(
      CONFIG_FILE_CODES.FILE,
      lines.length === 1 ? lines[0]! : `invalid settings:\n  ${lines.join('\n  ')}`,
      `Fix the value in ${fromFile}; see \`mssh-relay serve --help\` for the accepted values.`,
    );
  throw new CliError(
    'CLI_ERR_USAGE',
    lines.length === 1 ? `invalid option ${lines[0]}` : `invalid options:\n  ${lines.join('\n  ')}`,
    "See `mssh-relay --help` (or the command's --help) for the accepted values.",
  );
}
