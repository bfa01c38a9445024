/**
 * mssh-agent: keeps a machine behind NAT reachable through an mssh relay. The only place that wires
 * things: parse options, make the logger, build the pieces, start.
 *
 *   mssh-agent enroll --relay https://HOST:PORT --token T --name NAME [--relay-fingerprint SHA256:...]
 *                     [--state-dir DIR] [--target HOST:PORT]
 *   mssh-agent run [--state-dir DIR] [--target HOST:PORT] [--log-level L]
 */
import { Command } from 'commander';
import { SOFTWARE_VERSION } from '@mssh/protocol';
import { parseEnrollConfig, parseRunConfig, type EnrollFlags, type RunFlags } from './config.js';
import { AgentError } from './errors.js';
import { createLogger } from './log.js';
import { agentDialTarget, formatHostPort, parseHostPort } from './dial/endpoint.js';
import { normalizeFingerprint } from './dial/pinned-tls.js';
import { AgentSupervisor } from './dial/supervisor.js';
import { enroll } from './enroll/enroll.js';
import { loadIdentity } from './enroll/identity.js';
import { readState, writeState } from './state/state-dir.js';
import { TcpTarget } from './target/tcp-target.js';

const SHUTDOWN_GRACE_MS = 5_000;

function fail(err: unknown): never {
  if (err instanceof AgentError) {
    process.stderr.write(`mssh-agent: ${err.message}\n`);
    process.exit(err.code === 'AGT_ERR_CONFIG' ? 2 : 1);
  }
  const msg = err instanceof Error ? err.message : String(err);
  process.stderr.write(`mssh-agent: unexpected error: ${msg}\nRun again with --log-level debug, and report it if it persists.\n`);
  process.exit(1);
}

async function enrollCommand(flags: EnrollFlags): Promise<void> {
  const cfg = parseEnrollConfig(flags);
  await enroll({
    relayUrl: cfg.relayUrl,
    token: cfg.token,
    name: cfg.name,
    relayFingerprint: cfg.relayFingerprint,
    stateDir: cfg.stateDir,
    target: cfg.target,
    print: (line) => process.stdout.write(`${line}\n`),
  });
}

function refusalHint(code: string, stateDir: string, name: string): string {
  switch (code) {
    case 'RLY_ERR_PROTOCOL_TOO_OLD':
      return 'Upgrade mssh-agent, then start it again.';
    case 'RLY_ERR_NAME_TAKEN':
      return `Another machine holds this name, or agent.json in ${stateDir} was edited. Enrol again with a fresh token: mssh-agent enroll --relay URL --token T --name ${name} --state-dir NEW_DIR`;
    default:
      return `Ask an admin for a new token (mssh-relay agent enroll ${name}) and enrol again: mssh-agent enroll --relay URL --token T --name ${name} --state-dir NEW_DIR`;
  }
}

async function runCommand(flags: RunFlags): Promise<void> {
  const cfg = parseRunConfig(flags);
  const state = readState(cfg.stateDir);
  const identity = loadIdentity(cfg.stateDir);
  const targetAddress = cfg.target ?? parseHostPort(state.target);
  if (!targetAddress) throw new AgentError('AGT_ERR_STATE_DIR', `agent.json in ${cfg.stateDir} has a malformed target "${state.target}"; pass --target HOST:PORT`);
  const endpoint = agentDialTarget(state.relayUrl, state.agentEndpoint);
  if (!endpoint) throw new AgentError('AGT_ERR_STATE_DIR', `agent.json in ${cfg.stateDir} has a malformed relay address; enrol again into an empty --state-dir`);
  const fingerprint = normalizeFingerprint(state.relayFingerprint);
  if (!fingerprint) throw new AgentError('AGT_ERR_STATE_DIR', `agent.json in ${cfg.stateDir} has a malformed relay fingerprint; enrol again into an empty --state-dir`);

  const logger = createLogger(cfg.logLevel);
  const target = new TcpTarget({
    address: targetAddress,
    logger: logger.child({ component: 'agent.target' }),
    knownHostKeys: state.hostKeys,
    onHostKeysChanged: (hostKeys) => writeState(cfg.stateDir, { ...readState(cfg.stateDir), hostKeys }),
  });
  const supervisor = new AgentSupervisor({
    endpoint,
    relayFingerprint: fingerprint,
    name: state.name,
    identity,
    target,
    logger: logger.child({ component: 'agent.link' }),
  });
  let signalled = false;
  const onSignal = (sig: NodeJS.Signals): void => {
    if (signalled) {
      logger.warn(`second ${sig}: exiting now`);
      process.exit(1);
    }
    signalled = true;
    logger.info(`${sig}: closing the relay link (running sessions get ${SHUTDOWN_GRACE_MS} ms)`);
    supervisor.stop(SHUTDOWN_GRACE_MS).catch((err: unknown) => logger.error({ err }, 'shutdown failed'));
  };
  process.on('SIGTERM', onSignal);
  process.on('SIGINT', onSignal);
  logger.info(
    { name: state.name, relay: formatHostPort(endpoint), target: target.description, version: SOFTWARE_VERSION },
    `mssh-agent ${SOFTWARE_VERSION} starting: ${state.name} via relay ${formatHostPort(endpoint)}, target ${target.description}`,
  );
  const result = await supervisor.run();
  if (result.refusal) {
    process.stderr.write(
      `mssh-agent: the relay refused this agent for good (${result.refusal.code}): ${result.refusal.message}\n` +
        `${refusalHint(result.refusal.code, cfg.stateDir, state.name)}\n`,
    );
  } else {
    logger.info('stopped');
  }
  process.exit(result.exitCode);
}

export function buildProgram(): Command {
  const program = new Command('mssh-agent')
    .description('Keeps this machine reachable over SSH through an mssh relay (outbound connection only).')
    .version(SOFTWARE_VERSION)
    .showHelpAfterError('(run mssh-agent --help for usage)');
  program
    .command('enroll')
    .description('enrol this machine on a relay with a one-time token')
    .option('--relay <url>', 'relay URL, e.g. https://relay.example:8443 (env MSSH_RELAY_URL)')
    .option('--token <token>', 'one-time enrolment token from `mssh-relay agent enroll NAME` (env MSSH_ENROLL_TOKEN)')
    .option('--name <name>', 'name of this machine, as the token was issued (env MSSH_AGENT_NAME)')
    .option('--relay-fingerprint <fp>', 'pin the relay certificate: SHA256:... from `mssh-relay info` (default: trust on first use)')
    .option('--state-dir <dir>', 'state directory (env MSSH_AGENT_STATE_DIR; default /var/lib/mssh-agent as root, else ~/.local/share/mssh-agent)')
    .option('--target <host:port>', 'SSH server sessions go to (env MSSH_AGENT_TARGET; default 127.0.0.1:22)')
    .action((flags: EnrollFlags) => enrollCommand(flags).catch(fail));
  program
    .command('run')
    .description('keep the connection to the relay up and serve SSH sessions')
    .option('--state-dir <dir>', 'state directory written by `mssh-agent enroll`')
    .option('--target <host:port>', 'override the SSH server stored at enrolment')
    .option('--log-level <level>', 'fatal, error, warn, info, debug, trace or silent (env MSSH_LOG_LEVEL; default info)')
    .action((flags: RunFlags) => runCommand(flags).catch(fail));
  return program;
}

buildProgram().parseAsync(process.argv).catch(fail);
