/**
 * systemd units for `mssh-relay install-service` and `mssh-agent install-service`: rendering a unit from a
 * typed description, and installing it (write NAME.service, create the service user when asked, then
 * `systemctl daemon-reload && systemctl enable --now NAME` when systemd runs the machine, else say what to
 * run). Each app decides what goes into the unit (its flags, ports, data directory, how much sandboxing its
 * mode allows); this module only writes systemd's syntax correctly and performs the steps.
 *
 *   mssh-relay install-service [--print] -- --listen 0.0.0.0:443 --data-dir /var/lib/mssh-relay
 *     -> relay's spec (apps/relay/src/service/) -> renderUnit() -> --print: stdout
 *                                                             -> installService(): /etc/systemd/system/...
 *
 * Failures are CliErrors with the calling program's codes (`codes`), so that each app lists its own.
 * Libraries do not log: installService returns the lines to print.
 */
import { execFileSync } from 'node:child_process';
import { accessSync, constants, existsSync, mkdirSync, readFileSync, realpathSync, statSync } from 'node:fs';
import { isAbsolute, join, resolve } from 'node:path';
import { commanderExitCode } from './commander.js';
import { CliError, EXIT } from './errors.js';
import { writeFileAtomic } from './private-file.js';

/** Where units are installed (systemd's directory for the administrator's units). */
export const SYSTEM_UNIT_DIR = '/etc/systemd/system';

/** The kinds of failure; each program maps every one to a code of its own (its errors.ts). */
export type ServiceFailure = 'NOT_ROOT' | 'EXISTS' | 'USER' | 'WRITE' | 'SYSTEMCTL' | 'EXEC' | 'ARGS';
export type ServiceCodes = Record<ServiceFailure, string>;

/**
 * How much of systemd's sandbox the service gets.
 *   strict: a network daemon that writes only its state directory: read-only file system, no new
 *           privileges, no capabilities but the ones listed, private /tmp and /dev, kernel knobs hidden.
 *   shell:  the process is an SSH server whose sessions are login shells (the agent's embedded server):
 *           they must see and change the machine as a login over sshd would (sudo, package managers, home
 *           directories), so no file-system sandbox and no NoNewPrivileges, as OpenSSH's own sshd.service.
 */
export type Hardening = 'strict' | 'shell';

export interface UnitSpec {
  /** `mssh-relay` or `mssh-agent`: who wrote the unit. */
  program: string;
  /** Unit name without `.service`. */
  name: string;
  description: string;
  /** User= (and Group=, the user's primary group). */
  user: string;
  /** Absolute node binary, absolute entry script, then the program's arguments. */
  execStart: string[];
  /** StateDirectory= (relative to /var/lib), when the data lives there. */
  stateDirectory?: string;
  /** ReadWritePaths= under ProtectSystem=strict (data outside /var/lib). */
  readWritePaths: string[];
  /** EnvironmentFile= (secrets kept off the command line), or undefined. */
  environmentFile?: string;
  hardening: Hardening;
  /** ProtectHome= for strict hardening: `read-only` when a path the service needs lies under /home or /root. */
  protectHome: 'yes' | 'read-only';
  /** Capabilities to grant (AmbientCapabilities= and the bounding set), e.g. CAP_NET_BIND_SERVICE. */
  capabilities: string[];
  limitNofile: number;
  timeoutStopSec: number;
  restartSec: number;
  /** RestartPreventExitStatus=: exits that restarting does not cure (usage 64, configuration 78). */
  restartPreventExitStatus: number[];
  /** Explanations of the computed values, written as `# ` comments at the top of [Service]. */
  comments: string[];
}

const SAFE_WORD = /^[A-Za-z0-9_@+=:,./-]+$/;
// eslint-disable-next-line no-control-regex
const CONTROL = /[\u0000-\u001f\u007f]/;

/** One ExecStart= word: `%` and `$` escaped (specifiers, variables), quoted when it has other characters. */
export function quoteExecArg(arg: string): string {
  const escaped = arg.replace(/%/g, '%%').replace(/\$/g, '$$$$');
  if (arg !== '' && SAFE_WORD.test(arg)) return escaped;
  return `"${escaped.replace(/\\/g, '\\\\').replace(/"/g, '\\"')}"`;
}

/** A value of a one-word setting (a path, a user name): `%` escaped; refuses blanks and control characters. */
function word(v: string, what: string, codes: ServiceCodes): string {
  if (v === '' || /\s/.test(v) || CONTROL.test(v))
    throw argsError(codes, `${what} "${v}" cannot go into a unit: it is empty or has blanks or control characters`);
  return v.replace(/%/g, '%%');
}

function argsError(codes: ServiceCodes, message: string, hint = ''): CliError {
  return new CliError(codes.ARGS, message, hint, { exitCode: EXIT.USAGE });
}

/** A path under a home directory, where ProtectHome=yes would hide it. */
export function underHome(p: string): boolean {
  return ['/home', '/root', '/run/user'].some((h) => p === h || p.startsWith(`${h}/`));
}

/** A unit name systemd accepts (without the .service suffix). */
export const UNIT_NAME_RE = /^[A-Za-z0-9:_.\\-]{1,200}$/;

/** The unit file's text. Throws the ARGS failure for a value that cannot be written into a unit. */
export function renderUnit(spec: UnitSpec, codes: ServiceCodes): string {
  for (const a of spec.execStart)
    if (CONTROL.test(a)) throw argsError(codes, `the argument ${JSON.stringify(a)} has a control character`);
  const user = word(spec.user, 'the user', codes);
  const lines: string[] = [
    `# Written by \`${spec.program} install-service\`. Local changes: \`systemctl edit ${spec.name}\`.`,
    '[Unit]',
    `Description=${spec.description.replace(/%/g, '%%')}`,
    'Wants=network-online.target',
    'After=network-online.target',
    '# Keep trying: Restart= below applies however often it fails.',
    'StartLimitIntervalSec=0',
    '',
    '[Service]',
    ...spec.comments.map((c) => `# ${c}`),
    'Type=simple',
    `User=${user}`,
    `Group=${user}`,
    `ExecStart=${spec.execStart.map(quoteExecArg).join(' ')}`,
    'Restart=always',
    `RestartSec=${spec.restartSec}`,
    ...(spec.restartPreventExitStatus.length > 0
      ? [`RestartPreventExitStatus=${spec.restartPreventExitStatus.join(' ')}`]
      : []),
    'KillSignal=SIGTERM',
    '# SIGTERM to the main process only; it ends its sessions itself. What is left at the timeout gets SIGKILL.',
    'KillMode=mixed',
    `TimeoutStopSec=${spec.timeoutStopSec}`,
    `LimitNOFILE=${spec.limitNofile}`,
    'UMask=0077',
  ];
  if (spec.environmentFile) lines.push(`EnvironmentFile=${word(spec.environmentFile, 'the environment file', codes)}`);
  if (spec.stateDirectory) {
    lines.push(`StateDirectory=${word(spec.stateDirectory, 'the state directory', codes)}`, 'StateDirectoryMode=0700');
  }
  if (spec.hardening === 'strict') {
    if (spec.readWritePaths.length > 0)
      lines.push(`ReadWritePaths=${spec.readWritePaths.map((p) => word(p, 'the path', codes)).join(' ')}`);
    lines.push(
      'NoNewPrivileges=yes',
      'ProtectSystem=strict',
      `ProtectHome=${spec.protectHome}`,
      'PrivateTmp=yes',
      'PrivateDevices=yes',
      'ProtectKernelTunables=yes',
      'ProtectKernelModules=yes',
      'ProtectKernelLogs=yes',
      'ProtectControlGroups=yes',
      'ProtectClock=yes',
      'ProtectHostname=yes',
      'RestrictAddressFamilies=AF_UNIX AF_INET AF_INET6 AF_NETLINK',
      'RestrictNamespaces=yes',
      'RestrictRealtime=yes',
      'RestrictSUIDSGID=yes',
      'LockPersonality=yes',
      'SystemCallArchitectures=native',
      '# No MemoryDenyWriteExecute=: V8 compiles JavaScript to machine code at run time.',
    );
    lines.push(`CapabilityBoundingSet=${spec.capabilities.join(' ')}`);
    if (spec.capabilities.length > 0) lines.push(`AmbientCapabilities=${spec.capabilities.join(' ')}`);
  } else {
    lines.push(
      '# No ProtectSystem=, ProtectHome= or NoNewPrivileges=: the sessions are login shells and must be able to',
      '# use sudo, write /etc and the home directories, as over sshd (whose own unit has none of these either).',
    );
    if (spec.capabilities.length > 0) lines.push(`AmbientCapabilities=${spec.capabilities.join(' ')}`);
  }
  lines.push('', '[Install]', 'WantedBy=multi-user.target', '');
  return lines.join('\n');
}

/** The node binary and entry script for ExecStart: absolute, existing, the node binary executable. */
export function checkExecutables(node: string, script: string, codes: ServiceCodes): void {
  for (const [what, p, flag] of [
    ['node binary', node, '--node'],
    ['entry script', script, '--script'],
  ] as const) {
    if (!isAbsolute(p))
      throw new CliError(codes.EXEC, `the ${what} "${p}" is not an absolute path`, `Pass ${flag} /ABSOLUTE/PATH.`);
    try {
      if (!statSync(p).isFile()) throw new Error('not a file');
      if (what === 'node binary') accessSync(p, constants.X_OK);
    } catch (e) {
      throw new CliError(
        codes.EXEC,
        `the ${what} ${p} does not exist or is not ${what === 'node binary' ? 'an executable ' : 'a '}file`,
        `The unit runs it at every start: pass ${flag} with the installed one.`,
        { cause: e },
      );
    }
  }
}

/** The paths to check against ProtectHome=: each path and where its symbolic links lead. */
export function withRealPaths(paths: string[]): string[] {
  const all = [...paths];
  for (const p of paths) {
    try {
      all.push(realpathSync(p));
    } catch {
      /* not there (yet): the path itself counts */
    }
  }
  return all;
}

/** What installService does to the machine; the real one by default, replaceable in tests. */
export interface ServiceSystem {
  uid(): number | null;
  userExists(name: string): boolean;
  createUser(name: string, home: string): void;
  /** systemd is PID 1 (sd_booted(3): /run/systemd/system exists). */
  systemdRunning(): boolean;
  systemctl(args: string[]): void;
}

const TOOL_TIMEOUT_MS = 60_000;

export const realServiceSystem: ServiceSystem = {
  uid: () => process.getuid?.() ?? null,
  userExists(name) {
    try {
      execFileSync('getent', ['passwd', name], { stdio: 'ignore', timeout: TOOL_TIMEOUT_MS });
      return true;
    } catch {
      return false;
    }
  },
  createUser(name, home) {
    execFileSync(
      'useradd',
      ['--system', '--user-group', '--home-dir', home, '--no-create-home', '--shell', '/usr/sbin/nologin', name],
      { stdio: ['ignore', 'ignore', 'pipe'], timeout: TOOL_TIMEOUT_MS },
    );
  },
  systemdRunning: () => existsSync('/run/systemd/system'),
  systemctl(args) {
    execFileSync('systemctl', args, { stdio: ['ignore', 'ignore', 'pipe'], timeout: TOOL_TIMEOUT_MS });
  },
};

export interface InstallServiceOptions {
  /** `mssh-relay` or `mssh-agent`, for the messages. */
  program: string;
  name: string;
  unit: string;
  user: string;
  /** Home directory of a user created with --create-user (its state directory). */
  userHome: string;
  createUser: boolean;
  unitDir: string;
  force: boolean;
  codes: ServiceCodes;
  system?: Partial<ServiceSystem>;
}

export interface InstallResult {
  unitPath: string;
  /** What was done and what is left to do, one line each, to print. */
  lines: string[];
}

function stderrOf(e: unknown): string {
  const s = (e as { stderr?: Buffer | string }).stderr;
  const text = (s ? s.toString() : e instanceof Error ? e.message : String(e)).trim();
  return text.split('\n').slice(-3).join(' ');
}

/**
 * Write the unit and start the service. Refuses (coded) when not root (writing the system's unit directory
 * or creating a user needs root), when the unit exists with other content (unless force), and when the
 * user does not exist (unless createUser). systemctl runs only for units in /etc/systemd/system on a
 * machine systemd runs; otherwise the result says what to run.
 */
export function installService(o: InstallServiceOptions): InstallResult {
  const sys: ServiceSystem = { ...realServiceSystem, ...o.system };
  const unitPath = join(o.unitDir, `${o.name}.service`);
  const systemDir = o.unitDir === SYSTEM_UNIT_DIR;
  const root = sys.uid() === 0;
  if (!root && (systemDir || o.createUser)) {
    throw new CliError(
      o.codes.NOT_ROOT,
      `installing the service needs root (it writes ${unitPath}${o.createUser ? ` and creates the user ${o.user}` : ''})`,
      `Run it with sudo, or add --print to see the unit without installing it.`,
    );
  }
  let previous: string | null = null;
  try {
    previous = readFileSync(unitPath, 'utf8');
  } catch {
    /* not installed yet */
  }
  if (previous !== null && previous !== o.unit && !o.force) {
    throw new CliError(
      o.codes.EXISTS,
      `${unitPath} exists with other content`,
      `Compare it with \`${o.program} install-service --print ...\`, then pass --force to replace it (local additions belong in \`systemctl edit ${o.name}\`).`,
    );
  }
  const lines: string[] = [];
  if (!sys.userExists(o.user)) {
    if (!o.createUser)
      throw new CliError(
        o.codes.USER,
        `the user ${o.user} does not exist`,
        `Pass --create-user to create it (a system user without login), or --user with an existing one.`,
      );
    try {
      sys.createUser(o.user, o.userHome);
    } catch (e) {
      throw new CliError(
        o.codes.USER,
        `could not create the user ${o.user}: ${stderrOf(e)}`,
        'Create it yourself (useradd --system), then run this again.',
        { cause: e },
      );
    }
    lines.push(`Created the system user ${o.user}.`);
  }
  try {
    mkdirSync(o.unitDir, { recursive: true });
    writeFileAtomic(unitPath, o.unit, 0o644);
  } catch (e) {
    throw new CliError(
      o.codes.WRITE,
      `could not write ${unitPath}: ${stderrOf(e)}`,
      'Check the directory (--unit-dir) and its permissions.',
      { cause: e },
    );
  }
  lines.push(`${previous === null ? 'Wrote' : previous === o.unit ? 'Unchanged:' : 'Replaced'} ${unitPath}.`);
  const next = `systemctl daemon-reload && systemctl enable --now ${o.name}`;
  if (!systemDir) {
    lines.push(`Not in ${SYSTEM_UNIT_DIR}, so systemctl was not run. To use it: copy it there, then run: ${next}`);
  } else if (!sys.systemdRunning()) {
    lines.push(`systemd is not running this machine (PID 1), so nothing was started. Once it is, run: ${next}`);
  } else {
    for (const args of [
      ['daemon-reload'],
      ['enable', '--now', o.name],
      ...(previous !== null && previous !== o.unit ? [['restart', o.name]] : []),
    ]) {
      try {
        sys.systemctl(args);
      } catch (e) {
        throw new CliError(
          o.codes.SYSTEMCTL,
          `systemctl ${args.join(' ')} failed: ${stderrOf(e)}`,
          `The unit is written (${unitPath}); see \`systemctl status ${o.name}\` and \`journalctl -u ${o.name}\`, fix, then run: ${next}`,
          { cause: e },
        );
      }
    }
    lines.push(`Enabled and started ${o.name}. Status: systemctl status ${o.name}; logs: journalctl -u ${o.name}`);
  }
  return { unitPath, lines };
}

/** The flags of `mssh-relay install-service` and `mssh-agent install-service` (the same for both). */
export interface InstallServiceFlags {
  print?: boolean;
  name?: string;
  user?: string;
  createUser?: boolean;
  unitDir?: string;
  node?: string;
  script?: string;
  envFile?: string;
  force?: boolean;
}

/** The running command's node binary and entry script (the defaults of --node and --script). */
export interface Running {
  execPath: string;
  script: string;
}

export const runningProcess = (): Running => ({
  execPath: process.execPath,
  script: resolve(process.argv[1] ?? ''),
});

/** The part of a commander Command that parseOptionsAfterDash uses (cli-kit does not depend on commander). */
export interface OptionGrammar<T> {
  exitOverride(): this;
  configureOutput(o: {
    writeOut: (s: string) => void;
    writeErr: (s: string) => void;
    outputError: (s: string, write: (s: string) => void) => void;
  }): this;
  parse(args: string[], o: { from: 'user' }): unknown;
  opts(): T;
}

/**
 * The program's options given after `--` to install-service, parsed by the grammar of the command the unit
 * runs (`serve`, `run`), so a typo fails at install time. A problem is `codes.ARGS` (exit 64) naming `what`.
 */
export function parseOptionsAfterDash<T>(
  grammar: OptionGrammar<T>,
  args: string[],
  codes: ServiceCodes,
  what: string,
  hint: string,
): T {
  let problem = '';
  const cmd = grammar
    .exitOverride()
    .configureOutput({ writeOut: () => {}, writeErr: () => {}, outputError: (s) => (problem += s) });
  try {
    cmd.parse(args, { from: 'user' });
  } catch (e) {
    if (commanderExitCode(e) === null) throw e;
    throw new CliError(
      codes.ARGS,
      `the options after -- are not valid \`${what}\` options: ${problem.replace(/^error: /, '').trim() || (e as Error).message}`,
      hint,
      { exitCode: EXIT.USAGE },
    );
  }
  return cmd.opts();
}
