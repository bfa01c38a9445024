/**
 * mssh-agent: keeps a machine behind NAT reachable through an mssh relay. The only place that wires
 * things: parse options, make the logger, build the pieces, start.
 *
 *   mssh-agent enroll --relay https://HOST:PORT --token T --name NAME [--relay-fingerprint SHA256:...]
 *                     [--state-dir DIR] [--target auto|embedded|HOST:PORT]
 *   mssh-agent run [--state-dir DIR] [--target auto|embedded|HOST:PORT] [--allow-forwarding] [--log-level L]
 *   mssh-agent authorize add KEYFILE | list | remove FINGERPRINT_OR_COMMENT [--state-dir DIR]
 */
import { Command } from 'commander';
import { SOFTWARE_VERSION } from '@mssh/protocol';
import { installBufferReclaim } from '@mssh/protocol/transport';
import {
  formatTargetChoice,
  parseAuthorizeStateDir,
  parseEnrollConfig,
  parseRunConfig,
  parseTargetChoice,
  type AuthorizeFlags,
  type EnrollFlags,
  type RunFlags,
} from './config.js';
import { AgentError } from './errors.js';
import { createLogger } from './log.js';
import { agentDialTarget, formatHostPort } from './dial/endpoint.js';
import { normalizeFingerprint } from './dial/pinned-tls.js';
import { AgentSupervisor } from './dial/supervisor.js';
import { enroll } from './enroll/enroll.js';
import { loadIdentity } from './enroll/identity.js';
import { readState, writeState } from './state/state-dir.js';
import { lockStateDir } from './state/state-lock.js';
import { describeResolution, openTarget, resolveTargetChoice } from './target/choose-target.js';
import { HostKeyRescanner } from './target/host-key-rescan.js';
import {
  addAuthorizedKey,
  formatAuthorizedKey,
  listAuthorizedKeys,
  removeAuthorizedKey,
  SshdError,
} from './embedded-sshd/index.js';

const SHUTDOWN_GRACE_MS = 5_000;

function fail(err: unknown): never {
  if (err instanceof AgentError) {
    process.stderr.write(`mssh-agent: ${err.message}\n`);
    process.exit(err.code === 'AGT_ERR_CONFIG' ? 2 : 1);
  }
  if (err instanceof SshdError) {
    process.stderr.write(`mssh-agent: ${err.message}\n`);
    process.exit(1);
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
  installBufferReclaim(); // sessions move bulk data through this process (libs/protocol buffer-reclaim.ts)
  const cfg = parseRunConfig(flags);
  const state = readState(cfg.stateDir);
  // One agent per state directory (an OS lock held until this process ends; see state/state-lock.ts).
  const lock = lockStateDir(cfg.stateDir);
  const identity = loadIdentity(cfg.stateDir);
  const choice = cfg.target ?? parseTargetChoice(state.target);
  if (!choice) throw new AgentError('AGT_ERR_STATE_DIR', `agent.json in ${cfg.stateDir} has a malformed target "${state.target}"; pass --target auto|embedded|HOST:PORT`);
  const endpoint = agentDialTarget(state.relayUrl, state.agentEndpoint);
  if (!endpoint) throw new AgentError('AGT_ERR_STATE_DIR', `agent.json in ${cfg.stateDir} has a malformed relay address; enrol again into an empty --state-dir`);
  const fingerprint = normalizeFingerprint(state.relayFingerprint);
  if (!fingerprint) throw new AgentError('AGT_ERR_STATE_DIR', `agent.json in ${cfg.stateDir} has a malformed relay fingerprint; enrol again into an empty --state-dir`);

  const logger = createLogger(cfg.logLevel);
  if (!lock.locked) logger.warn({ lock: lock.path }, 'flock(1) (util-linux) is not installed, so the state directory is not locked: make sure only one mssh-agent runs on it');
  const { resolved, why } = await resolveTargetChoice(choice);
  logger.info({ target: formatTargetChoice(choice), resolved: resolved.kind }, describeResolution(choice, resolved, why));
  if (cfg.allowForwarding && resolved.kind !== 'embedded') {
    logger.warn('--allow-forwarding applies to the embedded SSH server only; the SSH server at the target decides for itself');
  }
  const storeHostKeys = (hostKeys: string[]): void => writeState(cfg.stateDir, { ...readState(cfg.stateDir), hostKeys });
  const opened = await openTarget(resolved, {
    stateDir: cfg.stateDir,
    allowForwarding: cfg.allowForwarding,
    logger: logger.child({ component: 'agent.target' }),
    knownHostKeys: state.hostKeys,
    onHostKeysChanged: storeHostKeys,
  });
  const target = opened.target;
  if (opened.sshd) {
    const keys = opened.sshd.hostPublicKeys();
    if (keys.length !== state.hostKeys.length || keys.some((k) => !state.hostKeys.includes(k))) {
      try {
        storeHostKeys(keys);
      } catch (err) {
        logger.warn({ err: (err as Error).message }, 'could not store the embedded server host key in agent.json');
      }
    }
  }
  // Rescans the relay asks for (a client saw a key it does not attest) scan the target at most every 10 s.
  const rescanner = new HostKeyRescanner(() => target.hostKeys());
  const supervisor = new AgentSupervisor({
    endpoint,
    relayFingerprint: fingerprint,
    name: state.name,
    identity,
    target,
    logger: logger.child({ component: 'agent.link' }),
    rescanHostKeys: () => rescanner.keys(),
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
  try {
    await opened.close();
  } catch (err) {
    logger.warn({ err: (err as Error).message }, 'could not stop the embedded SSH server cleanly');
  }
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

async function authorizeAdd(keyFile: string, flags: AuthorizeFlags): Promise<void> {
  const stateDir = parseAuthorizeStateDir(flags);
  const { added, alreadyPresent } = await addAuthorizedKey(stateDir, keyFile);
  for (const k of added) process.stdout.write(`added ${formatAuthorizedKey(k)}\n`);
  for (const k of alreadyPresent) process.stdout.write(`already present ${formatAuthorizedKey(k)}\n`);
}

async function authorizeList(flags: AuthorizeFlags): Promise<void> {
  const stateDir = parseAuthorizeStateDir(flags);
  const { keys, skipped } = await listAuthorizedKeys(stateDir);
  for (const k of keys) process.stdout.write(`${formatAuthorizedKey(k)}\n`);
  if (keys.length === 0) process.stderr.write(`mssh-agent: no authorized keys in ${stateDir}; add one with \`mssh-agent authorize add KEY.pub --state-dir ${stateDir}\`\n`);
  for (const s of skipped) process.stderr.write(`mssh-agent: warning: authorized_keys line ${s.lineNo} skipped: ${s.reason}\n`);
}

async function authorizeRemove(what: string, flags: AuthorizeFlags): Promise<void> {
  const stateDir = parseAuthorizeStateDir(flags);
  const { removed } = await removeAuthorizedKey(stateDir, what);
  for (const k of removed) process.stdout.write(`removed ${formatAuthorizedKey(k)}\n`);
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
    .option('--target <target>', 'auto (the SSH server on 127.0.0.1:22 if one answers, else the embedded one), embedded, or HOST:PORT (env MSSH_AGENT_TARGET; default auto)')
    .action((flags: EnrollFlags) => enrollCommand(flags).catch(fail));
  program
    .command('run')
    .description('keep the connection to the relay up and serve SSH sessions')
    .option('--state-dir <dir>', 'state directory written by `mssh-agent enroll`')
    .option('--target <target>', 'auto, embedded or HOST:PORT: override the target stored at enrolment (env MSSH_AGENT_TARGET)')
    .option('--allow-forwarding', 'let the embedded SSH server accept TCP forwarding (-L); refused by default')
    .option('--log-level <level>', 'fatal, error, warn, info, debug, trace or silent (env MSSH_LOG_LEVEL; default info)')
    .action((flags: RunFlags) => runCommand(flags).catch(fail));
  const authorize = program
    .command('authorize')
    .description("manage the public keys the embedded SSH server accepts (<state-dir>/authorized_keys)");
  authorize
    .command('add <keyfile>')
    .description('accept the public key(s) in KEYFILE (e.g. ~/.ssh/id_ed25519.pub); effective at the next connection')
    .option('--state-dir <dir>', 'state directory (env MSSH_AGENT_STATE_DIR)')
    .action((keyFile: string, flags: AuthorizeFlags) => authorizeAdd(keyFile, flags).catch(fail));
  authorize
    .command('list')
    .description('list the accepted keys: fingerprint, type, comment, options')
    .option('--state-dir <dir>', 'state directory (env MSSH_AGENT_STATE_DIR)')
    .action((flags: AuthorizeFlags) => authorizeList(flags).catch(fail));
  authorize
    .command('remove <fingerprint-or-comment>')
    .description('stop accepting the key(s) with that fingerprint (SHA256:...) or comment')
    .option('--state-dir <dir>', 'state directory (env MSSH_AGENT_STATE_DIR)')
    .action((what: string, flags: AuthorizeFlags) => authorizeRemove(what, flags).catch(fail));
  return program;
}

buildProgram().parseAsync(process.argv).catch(fail);
