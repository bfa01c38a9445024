/**
 * `mssh-relay install-service`: the systemd unit that runs `mssh-relay serve` with the options the operator
 * passes after `--`, and its installation (@mssh/cli-kit systemd-unit.ts writes the syntax and does the
 * steps). What this file decides, from the `serve` options parsed with the same grammar and schema as
 * `serve` itself (so a typo fails now, not at the first start):
 *
 *   ExecStart       the absolute node binary and entry script running this command, `serve`, the options
 *                   as given (plus --data-dir /var/lib/NAME when neither they nor the --config file give one)
 *   --config FILE   passed on as given (absolute); the file is read now, like the options, for what follows
 *   data directory  under /var/lib: StateDirectory= (systemd creates it, owned by the user, 0700);
 *                   elsewhere: ReadWritePaths= (the rest of the file system is read-only)
 *   ports < 1024    AmbientCapabilities=CAP_NET_BIND_SERVICE (--listen, --ssh-listen, --peer-listen);
 *                   otherwise no capability at all
 *   SIGTERM         the relay drains (readyz 503, agents moved, sessions go on up to --drain-timeout):
 *                   TimeoutStopSec= is the drain's longest wait + the stop's + a margin
 *   LimitNOFILE     2 x (--max-sessions + --max-agents) + 1024: a session can hold a client and a jump
 *                   connection, each agent its link, plus listeners, database and peers
 */
import { isAbsolute } from 'node:path';
import { Command } from 'commander';
import {
  CliError,
  EXIT,
  SYSTEM_UNIT_DIR,
  UNIT_NAME_RE,
  checkExecutables,
  installService,
  parseOptionsAfterDash,
  renderUnit,
  runningProcess,
  underHome,
  withRealPaths,
  type InstallResult,
  type InstallServiceFlags,
  type Running,
  type ServiceCodes,
  type ServiceSystem,
  type UnitSpec,
} from '@mssh/cli-kit';
import { STOP_TIMEOUT_MS, ServeConfigSchema, layerSettings, parseLayered, sshJumpListen } from '../config.js';
import { hasPassword, loadServeConfigFile } from '../config-file.js';
import { serveOptions, type Flags } from '../cli/program.js';

export const RELAY_SERVICE_CODES: ServiceCodes = {
  NOT_ROOT: 'RLY_CLI_ERR_SERVICE_NOT_ROOT',
  EXISTS: 'RLY_CLI_ERR_SERVICE_EXISTS',
  USER: 'RLY_CLI_ERR_SERVICE_USER',
  WRITE: 'RLY_CLI_ERR_SERVICE_WRITE',
  SYSTEMCTL: 'RLY_CLI_ERR_SERVICE_SYSTEMCTL',
  EXEC: 'RLY_CLI_ERR_SERVICE_EXEC',
  ARGS: 'RLY_CLI_ERR_SERVICE_ARGS',
};

export const DEFAULT_RELAY_SERVICE = 'mssh-relay';

/** The flags of `mssh-relay install-service`. */
export type RelayServiceFlags = InstallServiceFlags;

const argsError = (message: string, hint: string) =>
  new CliError(RELAY_SERVICE_CODES.ARGS, message, hint, { exitCode: EXIT.USAGE });

/** The `serve` options after `--`, parsed by the `serve` grammar. */
export function parseServeArgs(args: string[]): Flags {
  return parseOptionsAfterDash<Flags>(
    serveOptions(new Command('serve')),
    args,
    RELAY_SERVICE_CODES,
    'mssh-relay serve',
    'See `mssh-relay serve --help`; write them as for serve: install-service [--print] -- --listen 0.0.0.0:443 ...',
  );
}

export interface RelayUnit {
  name: string;
  user: string;
  dataDir: string;
  unit: string;
}

/** The unit for these `serve` options and install-service flags. Throws coded CliErrors. */
export function relayUnit(
  serveArgs: string[],
  flags: RelayServiceFlags,
  running: Running = runningProcess(),
): RelayUnit {
  const codes = RELAY_SERVICE_CODES;
  const name = flags.name ?? DEFAULT_RELAY_SERVICE;
  if (!UNIT_NAME_RE.test(name))
    throw argsError(`--name "${name}" is not a unit name`, 'Use letters, digits, and - _ . : only, e.g. mssh-relay.');
  const user = flags.user ?? 'mssh-relay';
  const serveFlags = parseServeArgs(serveArgs);
  const configPath = serveFlags.config;
  if (typeof configPath === 'string' && !isAbsolute(configPath))
    throw argsError(
      `--config "${configPath}" is not an absolute path`,
      'The service starts in /, without your shell: give --config /ABSOLUTE/PATH.',
    );
  // The file as it is now decides the ports, data dir, drain and limits below (its problems fail now).
  const file = typeof configPath === 'string' ? loadServeConfigFile(configPath) : undefined;
  const fromFile = (attr: string) => file?.values.get(attr)?.value;
  for (const [flag, attr] of [
    ['data-dir', 'dataDir'],
    ['tls-cert', 'tlsCert'],
    ['tls-key', 'tlsKey'],
  ] as const) {
    const given = serveFlags[attr];
    const v = given ?? fromFile(attr);
    if (typeof v === 'string' && !isAbsolute(v))
      throw argsError(
        `${given !== undefined ? `--${flag}` : `${flag} in ${String(configPath)}`} "${v}" is not an absolute path`,
        `The service starts in /, without your shell: give ${flag} /ABSOLUTE/PATH.`,
      );
  }
  if (hasPassword(serveFlags.databaseUrl))
    throw argsError(
      '--database-url holds a password, which would be readable by every local user in the unit file',
      'Put DATABASE_URL=... in a file only root can read (chmod 600) and pass --env-file FILE instead.',
    );
  const envFile = flags.envFile;
  if (envFile !== undefined && !isAbsolute(envFile))
    throw argsError(`--env-file "${envFile}" is not an absolute path`, 'Give --env-file /ABSOLUTE/PATH.');
  const node = flags.node ?? running.execPath;
  const script = flags.script ?? running.script;
  checkExecutables(node, script, codes);

  const args = [...serveArgs];
  const dataDirGiven = serveFlags.dataDir !== undefined || fromFile('dataDir') !== undefined;
  if (!dataDirGiven) args.push('--data-dir', `/var/lib/${name}`);
  // The installer's environment is not the service's: only the options and the file count (and
  // --env-file at start).
  const cfg = parseLayered(
    ServeConfigSchema,
    layerSettings({ ...serveFlags, ...(dataDirGiven ? {} : { dataDir: `/var/lib/${name}` }) }, {}, file),
  );
  const dataDir = cfg.dataDir;
  const stateDirectory = dataDir.startsWith('/var/lib/') ? dataDir.slice('/var/lib/'.length) : undefined;
  const ports = [cfg.listen.port, sshJumpListen(cfg)?.port, cfg.peerListen?.port].filter(
    (p): p is number => p !== undefined && p > 0,
  );
  const privileged = ports.filter((p) => p < 1024);
  const homePaths = withRealPaths(
    [node, script, dataDir, cfg.tlsCert, cfg.tlsKey, envFile, configPath].filter(
      (p) => typeof p === 'string' && !!p,
    ) as string[],
  );
  const drainWait = Math.max(cfg.drainDelay, cfg.drainTimeout);
  const timeoutStopSec = drainWait + STOP_TIMEOUT_MS / 1000 + 15;
  const limitNofile = Math.ceil((2 * (cfg.maxSessions + cfg.maxAgents) + 1024) / 1024) * 1024;

  const spec: UnitSpec = {
    program: 'mssh-relay',
    name,
    description: 'mssh relay (docs/operations.md of mssh: systemd units)',
    user,
    execStart: [node, script, 'serve', ...args],
    stateDirectory,
    readWritePaths: stateDirectory ? [] : [dataDir],
    environmentFile: envFile,
    hardening: 'strict',
    protectHome: homePaths.some(underHome) ? 'read-only' : 'yes',
    capabilities: privileged.length > 0 ? ['CAP_NET_BIND_SERVICE'] : [],
    limitNofile,
    timeoutStopSec,
    restartSec: 5,
    restartPreventExitStatus: [EXIT.USAGE, EXIT.CONFIG],
    comments: [
      `Exit ${EXIT.USAGE} (bad options) and ${EXIT.CONFIG} (unusable stored state) are not restarted: fix, then systemctl restart ${name}.`,
      `SIGTERM drains: /readyz 503, agents moved, sessions go on up to --drain-timeout ${cfg.drainTimeout} s; TimeoutStopSec = max(--drain-delay, --drain-timeout) ${drainWait} + stop ${STOP_TIMEOUT_MS / 1000} + 15 s.`,
      `LimitNOFILE = 2 x (--max-sessions ${cfg.maxSessions} + --max-agents ${cfg.maxAgents}) + 1024, rounded up to 1024.`,
      privileged.length > 0
        ? `CAP_NET_BIND_SERVICE: it listens on port ${privileged.join(', ')} (below 1024).`
        : 'No capabilities: every port is 1024 or above.',
      ...(stateDirectory
        ? []
        : [`Data directory outside /var/lib: create ${dataDir} owned by ${user} (0700) before the first start.`]),
      `Admin commands on this relay: sudo -u ${user} mssh-relay user add NAME --data-dir ${dataDir}`,
      ...(file
        ? [
            `Settings from ${file.path} (read now for the ports, data dir, drain and limits above; run install-service again after changing those): ${user} must be able to read it (e.g. chown root:${user}, chmod 640).`,
          ]
        : []),
    ],
  };
  return { name, user, dataDir, unit: renderUnit(spec, codes) };
}

/** install-service without --print: write the unit and start it (see installService). */
export function installRelayService(
  serveArgs: string[],
  flags: RelayServiceFlags,
  opts: { running?: Running; system?: Partial<ServiceSystem> } = {},
): InstallResult {
  const r = relayUnit(serveArgs, flags, opts.running);
  return installService({
    program: 'mssh-relay',
    name: r.name,
    unit: r.unit,
    user: r.user,
    userHome: r.dataDir,
    createUser: flags.createUser === true,
    unitDir: flags.unitDir ?? SYSTEM_UNIT_DIR,
    force: flags.force === true,
    codes: RELAY_SERVICE_CODES,
    system: opts.system,
  });
}
