/**
 * The `mssh-agent` command line grammar (commander). It only parses: each command calls one handler of
 * AgentHandlers; main.ts supplies them. Usage errors throw commander's CommanderError (exit 64,
 * @mssh/cli-kit) after printing `mssh-agent: <problem>` and a hint.
 */
import { Command } from 'commander';
import { SOFTWARE_VERSION } from '@mssh/protocol';
import type { AuthorizeFlags, EnrollFlags, RunFlags } from './config.js';
import type { InstallServiceFlags } from './service/agent-unit.js';

export interface AgentHandlers {
  enroll(flags: EnrollFlags): Promise<void>;
  run(flags: RunFlags): Promise<void>;
  authorizeAdd(keyFile: string, flags: AuthorizeFlags): Promise<void>;
  authorizeList(flags: AuthorizeFlags): Promise<void>;
  authorizeRemove(what: string, flags: AuthorizeFlags): Promise<void>;
  installService(runArgs: string[], flags: InstallServiceFlags): Promise<void>;
  configShow(flags: RunFlags & { json?: boolean }): Promise<void>;
}

/** The options of `run` (also parsed by `install-service` from the arguments after `--`). */
export function runOptions(c: Command): Command {
  return c
    .option(
      '--config <file>',
      'read settings from this YAML file, keys named as these options (env MSSH_CONFIG); options and environment variables win over it; see `mssh-agent config show`',
    )
    .option('--state-dir <dir>', 'state directory written by `mssh-agent enroll` (env MSSH_AGENT_STATE_DIR)')
    .option(
      '--target <target>',
      'auto, embedded or HOST:PORT: override the target stored at enrolment (env MSSH_AGENT_TARGET)',
    )
    .option('--allow-forwarding', 'let the embedded SSH server accept TCP forwarding (-L); refused by default')
    .option(
      '--log-level <level>',
      'fatal, error, warn, info, debug, trace or silent (env MSSH_LOG_LEVEL; default info)',
    )
    .option(
      '--log-format <json|pretty>',
      'log lines on stderr: json, or pretty (readable); default pretty on a terminal, json otherwise (env MSSH_LOG_FORMAT)',
    )
    .option(
      '--relay <url>',
      'another relay of the same fleet, e.g. https://relay2.example:8443; repeat for more (env MSSH_RELAYS, comma-separated); the enrolled relay is always tried first',
      (url: string, previous: string[] | undefined) => [...(previous ?? []), url],
    )
    .option('--links <k>', 'hold links to K different relays at once, 1 to 8 (env MSSH_LINKS; default 1)')
    .option(
      '--metrics-listen <host:port>',
      'serve Prometheus metrics (GET /metrics, plain HTTP) on this address (env MSSH_METRICS_LISTEN; default off; see docs/operations.md)',
    );
}

export function buildProgram(h: AgentHandlers): Command {
  const program = new Command('mssh-agent')
    .description('Keeps this machine reachable over SSH through an mssh relay (outbound connection only).')
    .version(SOFTWARE_VERSION)
    .showHelpAfterError('(run mssh-agent --help for usage)')
    .exitOverride()
    .configureOutput({ outputError: (s, write) => write(`mssh-agent: ${s.replace(/^error: /, '')}`) });
  program
    .command('enroll')
    .description('enrol this machine on a relay with a one-time token')
    .option('--relay <url>', 'relay URL, e.g. https://relay.example:8443 (env MSSH_RELAY_URL)')
    .option('--token <token>', 'one-time enrolment token from `mssh-relay agent enroll NAME` (env MSSH_ENROLL_TOKEN)')
    .option('--name <name>', 'name of this machine, as the token was issued (env MSSH_AGENT_NAME)')
    .option(
      '--relay-fingerprint <fp>',
      'pin the relay certificate: SHA256:... from `mssh-relay info` (default: trust on first use)',
    )
    .option(
      '--state-dir <dir>',
      'state directory (env MSSH_AGENT_STATE_DIR; default /var/lib/mssh-agent as root, else ~/.local/share/mssh-agent)',
    )
    .option(
      '--target <target>',
      'auto (the SSH server on 127.0.0.1:22 if one answers, else the embedded one), embedded, or HOST:PORT (env MSSH_AGENT_TARGET; default auto)',
    )
    .action((flags: EnrollFlags) => h.enroll(flags));
  runOptions(program.command('run').description('keep the connection to the relay up and serve SSH sessions')).action(
    (flags: RunFlags) => h.run(flags),
  );
  runOptions(
    program
      .command('config')
      .description('the settings of `run`')
      .command('show')
      .description(
        'print every setting `run` would use with these options, and where it comes from (flag, env, file:LINE, default)',
      ),
  )
    .option('--json', 'print one JSON object')
    .action((flags: RunFlags & { json?: boolean }) => h.configShow(flags));
  program
    .command('install-service')
    .description('write a systemd unit that runs `mssh-agent run` with the options after -- (see docs/operations.md)')
    .argument('[run-options...]', 'options of `mssh-agent run`, after --, e.g. -- --target 127.0.0.1:22')
    .option('--print', 'print the unit on stdout and install nothing')
    .option('--name <name>', 'unit name (default mssh-agent: /etc/systemd/system/mssh-agent.service)')
    .option(
      '--user <user>',
      'the user the agent runs as (default: mssh-agent when forwarding to an SSH server, root for the embedded one, whose sessions run as this user)',
    )
    .option('--create-user', 'create that user (a system user without login) if it does not exist')
    .option('--unit-dir <dir>', 'write the unit here instead of /etc/systemd/system (systemctl is then not run)')
    .option('--node <file>', 'node binary for ExecStart (default: the one running this command)')
    .option('--script <file>', 'mssh-agent entry script for ExecStart (default: the one running this command)')
    .option('--env-file <file>', 'EnvironmentFile= with MSSH_* variables for the agent')
    .option('--force', 'replace an existing unit with other content')
    .action((args: string[], flags: InstallServiceFlags) => h.installService(args, flags));
  const authorize = program
    .command('authorize')
    .description('manage the public keys the embedded SSH server accepts (<state-dir>/authorized_keys)');
  authorize
    .command('add <keyfile>')
    .description('accept the public key(s) in KEYFILE (e.g. ~/.ssh/id_ed25519.pub); effective at the next connection')
    .option('--state-dir <dir>', 'state directory (env MSSH_AGENT_STATE_DIR)')
    .action((keyFile: string, flags: AuthorizeFlags) => h.authorizeAdd(keyFile, flags));
  authorize
    .command('list')
    .description('list the accepted keys: fingerprint, type, comment, options')
    .option('--state-dir <dir>', 'state directory (env MSSH_AGENT_STATE_DIR)')
    .action((flags: AuthorizeFlags) => h.authorizeList(flags));
  authorize
    .command('remove <fingerprint-or-comment>')
    .description('stop accepting the key(s) with that fingerprint (SHA256:...) or comment')
    .option('--state-dir <dir>', 'state directory (env MSSH_AGENT_STATE_DIR)')
    .action((what: string, flags: AuthorizeFlags) => h.authorizeRemove(what, flags));
  return program;
}
