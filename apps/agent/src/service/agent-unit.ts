/**
 * `mssh-agent install-service`: the systemd unit that runs `mssh-agent run` with the options the operator
 * passes after `--` (parsed with `run`'s own grammar and schema, so a typo fails now), and its
 * installation (@mssh/cli-kit systemd-unit.ts writes the syntax and does the steps).
 *
 * The unit depends on where sessions go (--target, else the target stored at enrolment):
 *
 *   HOST:PORT (an sshd)   the agent only splices TCP: it needs no privilege at all. Default user mssh-agent,
 *                         the strict sandbox (read-only system, ProtectHome=yes, no capabilities).
 *   embedded / auto       the agent may BE the SSH server (auto: when no sshd answers on 127.0.0.1:22),
 *                         and every session is a login shell of the user the agent runs as (default root):
 *                         no file-system sandbox and no NoNewPrivileges, or those shells could not use sudo,
 *                         write /etc or see the home directories (OpenSSH's own sshd.service has none either).
 *
 * The state directory is passed explicitly (--state-dir /var/lib/NAME unless given), so the unit does not
 * depend on the service user's home; under /var/lib it is the StateDirectory= (systemd hands it to the user).
 * LimitNOFILE: the relay allows 256 sessions per machine by default (--max-sessions-per-agent), an embedded
 * session holds a pty and pipes (about 4 descriptors each), a forwarded one a socket: 8192 is ample.
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
import { runOptions } from '../cli.js';
import { formatTargetChoice, parseRunConfig, parseTargetChoice, type RunFlags, type TargetChoice } from '../config.js';
import { isEnrolled, readState } from '../state/state-dir.js';
import { EXIT_REFUSED } from '../dial/supervisor.js';
import { loadRunConfigFile } from '../config-file.js';

export const AGENT_SERVICE_CODES: ServiceCodes = {
  NOT_ROOT: 'AGT_ERR_SERVICE_NOT_ROOT',
  EXISTS: 'AGT_ERR_SERVICE_EXISTS',
  USER: 'AGT_ERR_SERVICE_USER',
  WRITE: 'AGT_ERR_SERVICE_WRITE',
  SYSTEMCTL: 'AGT_ERR_SERVICE_SYSTEMCTL',
  EXEC: 'AGT_ERR_SERVICE_EXEC',
  ARGS: 'AGT_ERR_SERVICE_ARGS',
};

export const DEFAULT_AGENT_SERVICE = 'mssh-agent';
/** LimitNOFILE of the agent (see the header). */
export const AGENT_NOFILE = 8192;

export type { InstallServiceFlags } from '@mssh/cli-kit';

const argsError = (message: string, hint: string) =>
  new CliError(AGENT_SERVICE_CODES.ARGS, message, hint, { exitCode: EXIT.USAGE });

/** The `run` options after `--`, parsed by the `run` grammar. */
export function parseRunArgs(args: string[]): RunFlags {
  return parseOptionsAfterDash<RunFlags>(
    runOptions(new Command('run')),
    args,
    AGENT_SERVICE_CODES,
    'mssh-agent run',
    'See `mssh-agent run --help`; write them as for run: install-service [--print] -- --target 127.0.0.1:22 ...',
  );
}

/** The target the service will use: --target, else the one stored at enrolment (readable now), else auto. */
function serviceTarget(flagTarget: TargetChoice | null, stateDir: string): { target: TargetChoice; from: string } {
  if (flagTarget) return { target: flagTarget, from: '--target' };
  try {
    if (isEnrolled(stateDir)) {
      const stored = parseTargetChoice(readState(stateDir).target);
      if (stored) return { target: stored, from: `the enrolment in ${stateDir}` };
    }
  } catch {
    /* unreadable here: the agent reports it at start */
  }
  return { target: { kind: 'auto' }, from: 'the default (not enrolled yet, or not readable here)' };
}

export interface AgentUnit {
  name: string;
  user: string;
  stateDir: string;
  unit: string;
}

export function agentUnit(
  runArgs: string[],
  flags: InstallServiceFlags,
  running: Running = runningProcess(),
): AgentUnit {
  const codes = AGENT_SERVICE_CODES;
  const name = flags.name ?? DEFAULT_AGENT_SERVICE;
  if (!UNIT_NAME_RE.test(name))
    throw argsError(`--name "${name}" is not a unit name`, 'Use letters, digits, and - _ . : only, e.g. mssh-agent.');
  const runFlags = parseRunArgs(runArgs);
  if (runFlags.config !== undefined && !isAbsolute(runFlags.config))
    throw argsError(
      `--config "${runFlags.config}" is not an absolute path`,
      'The service starts in /, without your shell: give --config /ABSOLUTE/PATH.',
    );
  // The file as it is now decides the target and state directory below (its problems fail now).
  const file = runFlags.config !== undefined ? loadRunConfigFile(runFlags.config) : undefined;
  const fileStateDir = file?.values.get('stateDir')?.value;
  const givenStateDir = runFlags.stateDir ?? (typeof fileStateDir === 'string' ? fileStateDir : undefined);
  if (givenStateDir !== undefined && !isAbsolute(givenStateDir))
    throw argsError(
      `${runFlags.stateDir !== undefined ? '--state-dir' : `state-dir in ${runFlags.config}`} "${givenStateDir}" is not an absolute path`,
      'The service starts in /, without your shell: give state-dir /ABSOLUTE/PATH.',
    );
  const envFile = flags.envFile;
  if (envFile !== undefined && !isAbsolute(envFile))
    throw argsError(`--env-file "${envFile}" is not an absolute path`, 'Give --env-file /ABSOLUTE/PATH.');
  const node = flags.node ?? running.execPath;
  const script = flags.script ?? running.script;
  checkExecutables(node, script, codes);

  // The installer's environment is not the service's: only the options count (and --env-file at start).
  const cfg = parseRunConfig({ ...runFlags, stateDir: givenStateDir ?? `/var/lib/${name}` }, {}, file);
  const stateDir = cfg.stateDir;
  const args = [...runArgs];
  if (givenStateDir === undefined) args.push('--state-dir', stateDir);
  const { target, from } = serviceTarget(cfg.target, stateDir);
  const forward = target.kind === 'tcp';
  const user = flags.user ?? (forward ? 'mssh-agent' : 'root');
  const stateDirectory = stateDir.startsWith('/var/lib/') ? stateDir.slice('/var/lib/'.length) : undefined;
  const homePaths = withRealPaths([node, script, stateDir, envFile, runFlags.config].filter((p) => !!p) as string[]);

  const comments = [
    `Target ${formatTargetChoice(target)} (from ${from}): ${
      forward
        ? 'the agent forwards sessions to that SSH server and needs no privilege: strict sandbox, no capabilities.'
        : `the agent may be the SSH server itself (embedded; auto: when no sshd answers on 127.0.0.1:22), whose sessions are login shells of ${user}.`
    }`,
    ...(target.kind === 'auto'
      ? ['For the strict sandbox, pin the machine sshd: install-service -- --target 127.0.0.1:22']
      : []),
    `Exit ${EXIT_REFUSED} (the relay refused this machine: revoked or unknown; or a bad --config file) and ${EXIT.USAGE} (bad options) are not restarted.`,
    `LimitNOFILE ${AGENT_NOFILE}: 256 sessions per machine by default (relay --max-sessions-per-agent), a few descriptors each.`,
    ...(stateDirectory
      ? []
      : [`State directory outside /var/lib: it must belong to ${user} (chown -R ${user} ${stateDir}).`]),
    ...(isEnrolled(stateDir) ? [] : [`Not enrolled yet: run mssh-agent enroll ... --state-dir ${stateDir} first.`]),
    ...(file
      ? [
          `Settings from ${file.path} (read now for the target and state directory above; run install-service again after changing those): ${user} must be able to read it.`,
        ]
      : []),
  ];
  const spec: UnitSpec = {
    program: 'mssh-agent',
    name,
    description: 'mssh agent (docs/operations.md of mssh: systemd units)',
    user,
    execStart: [node, script, 'run', ...args],
    stateDirectory,
    readWritePaths: stateDirectory ? [] : [stateDir],
    environmentFile: envFile,
    hardening: forward ? 'strict' : 'shell',
    protectHome: homePaths.some(underHome) ? 'read-only' : 'yes',
    capabilities: [],
    limitNofile: AGENT_NOFILE,
    // SIGTERM: GOAWAY to the relay(s), running sessions get 5 s, then the embedded server's shells their
    // SIGHUP and kill grace: 30 s covers it with room.
    timeoutStopSec: 30,
    restartSec: 5,
    restartPreventExitStatus: [EXIT.USAGE, EXIT_REFUSED],
    comments,
  };
  return { name, user, stateDir, unit: renderUnit(spec, codes) };
}

export function installAgentService(
  runArgs: string[],
  flags: InstallServiceFlags,
  opts: { running?: Running; system?: Partial<ServiceSystem> } = {},
): InstallResult {
  const u = agentUnit(runArgs, flags, opts.running);
  return installService({
    program: 'mssh-agent',
    name: u.name,
    unit: u.unit,
    user: u.user,
    userHome: u.stateDir,
    createUser: flags.createUser === true,
    unitDir: flags.unitDir ?? SYSTEM_UNIT_DIR,
    force: flags.force === true,
    codes: AGENT_SERVICE_CODES,
    system: opts.system,
  });
}
