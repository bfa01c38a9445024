/**
 * The `mssh-relay` command line grammar (commander). It only parses: each command calls one handler of
 * RelayHandlers with its arguments and flags (validated by the handler's config schema, config.ts).
 * main.ts supplies the handlers (cli/commands.ts). Usage errors throw commander's CommanderError (exit 64,
 * @mssh/cli-kit) after printing `mssh-relay: <problem>` and a hint; subcommands inherit exitOverride.
 */
import { Command, Option } from 'commander';
import { SOFTWARE_VERSION } from '@mssh/protocol';
import { DRAIN_DEFAULTS, HARDENING_DEFAULTS } from '../config.js';

/** Flags as commander parsed them; each handler validates its own with parseConfig. */
export type Flags = Record<string, unknown>;

export interface RelayHandlers {
  serve(flags: Flags): Promise<void>;
  drain(flags: Flags): Promise<void>;
  info(flags: Flags): Promise<void>;
  userAdd(name: string, flags: Flags): Promise<void>;
  userList(flags: Flags): Promise<void>;
  userDisable(name: string, flags: Flags): Promise<void>;
  userEnable(name: string, flags: Flags): Promise<void>;
  userPasswd(name: string, flags: Flags): Promise<void>;
  userSetRole(name: string, role: string | undefined, flags: Flags): Promise<void>;
  grant(subject: string, pattern: string | undefined, flags: Flags): Promise<void>;
  revokeGrant(subject: string, pattern: string | undefined, flags: Flags): Promise<void>;
  grants(flags: Flags): Promise<void>;
  keysRotate(flags: Flags): Promise<void>;
  agentEnroll(name: string, flags: Flags): Promise<void>;
  agentList(flags: Flags): Promise<void>;
  fleet(flags: Flags): Promise<void>;
  agentRevoke(name: string, flags: Flags): Promise<void>;
  agentLabel(name: string, edits: string[], flags: Flags): Promise<void>;
  agentForget(name: string, flags: Flags): Promise<void>;
  migrate(flags: Flags): Promise<void>;
  auditPrune(flags: Flags): Promise<void>;
  installService(serveArgs: string[], flags: Flags): Promise<void>;
  configShow(flags: Flags): Promise<void>;
}

export interface CliOutput {
  writeOut(s: string): void;
  writeErr(s: string): void;
}

const storeOptions = (c: Command) =>
  c
    .option('--data-dir <dir>', 'data directory (env MSSH_DATA_DIR, default ~/.local/share/mssh-relay)')
    .option('--database-url <url>', 'Postgres URL instead of the embedded PGlite (env DATABASE_URL)');

const collect = (v: string, prev: string[]) => [...prev, v];
/** A repeatable option without a default, so that an absent one leaves the config file's list alone. */
const collectOrUnset = (v: string, prev: string[] | undefined) => [...(prev ?? []), v];

/** The options of `serve` (also parsed by `install-service` from the arguments after `--`). */
export function serveOptions(c: Command): Command {
  return storeOptions(
    c.option(
      '--config <file>',
      'read settings from this YAML file, keys named as these options (env MSSH_CONFIG); options and environment variables win over it; see `mssh-relay config show`',
    ),
  )
    .option('--listen <host:port>', `address to listen on (env MSSH_LISTEN, default 0.0.0.0:8443)`)
    .option(
      '--ssh-listen <host:port|off>',
      'SSH jump listener for stock OpenSSH `ssh -J` (env MSSH_SSH_LISTEN, default port 2222 on the --listen host; off disables it)',
    )
    .option('--tls-cert <file>', 'PEM certificate (chain); default: a self-signed one in the data dir')
    .option('--tls-key <file>', 'PEM private key of --tls-cert')
    .option('--tls-san <name>', 'extra name for the self-signed certificate (repeatable)', collectOrUnset)
    .option(
      '--public-url <url>',
      'URL clients and agents use, e.g. https://relay.example.org:8443 (env MSSH_PUBLIC_URL)',
    )
    .option(
      '--peer-listen <host:port>',
      'join a relay fleet: listen for peer relays here (mutual TLS; needs --database-url; env MSSH_PEER_LISTEN; see docs/fleet.md)',
    )
    .option(
      '--peer-url <url>',
      'the address peers dial, https://HOST:PORT (env MSSH_PEER_URL; default: the --peer-listen address)',
    )
    .option(
      '--metrics-listen <host:port>',
      'serve Prometheus metrics (GET /metrics, plain HTTP) on this address, never the public port (env MSSH_METRICS_LISTEN; default off; see docs/operations.md)',
    )
    .addOption(new Option('--log-level <level>', 'log level (env MSSH_LOG_LEVEL, default info)'))
    .option(
      '--log-format <json|pretty>',
      'log lines on stderr: json, or pretty (readable); default pretty on a terminal, json otherwise (env MSSH_LOG_FORMAT)',
    )
    .option(
      '--stale-after <duration>',
      'mark machines not seen for this long as stale, e.g. 30d, 12h (env MSSH_STALE_AFTER, default 30d)',
    )
    .option(
      '--trusted-proxy <cidr>',
      'believe X-Forwarded-For from this proxy address or CIDR (repeatable; default: none, the socket address counts)',
      collectOrUnset,
    )
    .option(
      '--min-protocol-version <n>',
      'refuse agents and clients speaking an older protocol (default: the oldest this build speaks)',
    )
    .option(
      '--max-sessions-per-user <n>',
      `open sessions per mssh user (default ${HARDENING_DEFAULTS.maxSessionsPerUser})`,
    )
    .option(
      '--max-sessions-per-agent <n>',
      `open sessions per machine (default ${HARDENING_DEFAULTS.maxSessionsPerAgent})`,
    )
    .option('--max-sessions <n>', `open sessions on this relay (default ${HARDENING_DEFAULTS.maxSessions})`)
    .option('--max-agents <n>', `agents connected at once (default ${HARDENING_DEFAULTS.maxAgents})`)
    .option('--max-header-bytes <n>', `largest request header block (default ${HARDENING_DEFAULTS.maxHeaderBytes})`)
    .option('--max-body-bytes <n>', `largest JSON request body (default ${HARDENING_DEFAULTS.maxBodyBytes})`)
    .option(
      '--handshake-timeout <seconds>',
      `drop connections that finish no TLS handshake / first request in time (default ${HARDENING_DEFAULTS.handshakeTimeout})`,
    )
    .option(
      '--login-attempts <n>',
      `failed logins per minute and address before back-off (default ${HARDENING_DEFAULTS.loginAttempts}; per user name: twice that)`,
    )
    .option(
      '--max-password-checks <n>',
      `password hashes at once; more wait briefly, then get 503 (default ${HARDENING_DEFAULTS.maxPasswordChecks})`,
    )
    .option(
      '--max-streams-per-connection <n>',
      `concurrent HTTP/2 streams (API calls and tunnels) per client connection (default ${HARDENING_DEFAULTS.maxStreamsPerConnection})`,
    )
    .option(
      '--max-connections-per-address <n>',
      `API connections per client address, IPv6 per /64; trusted proxies exempt; 0: no limit (default ${HARDENING_DEFAULTS.maxConnectionsPerAddress})`,
    )
    .option(
      '--max-pending-per-address <n>',
      `requests not yet answered per client address (forwarded address behind a trusted proxy); 0: no limit (default ${HARDENING_DEFAULTS.maxPendingPerAddress})`,
    )
    .option(
      '--max-h2-control-frames <n>',
      `HTTP/2 PING or SETTINGS frames a peer may send per second on one connection (API or agent link), else the connection is closed; 0: no limit (default ${HARDENING_DEFAULTS.maxH2ControlFrames})`,
    )
    .option(
      '--body-timeout <seconds>',
      `a JSON request body must arrive within this time, else 408 (default ${HARDENING_DEFAULTS.bodyTimeout})`,
    )
    .option(
      '--drain-delay <seconds>',
      `SIGTERM or \`mssh-relay drain\`: keep the listeners open this long after /readyz turned 503, so the load balancer notices (env MSSH_DRAIN_DELAY, default ${DRAIN_DEFAULTS.drainDelay})`,
    )
    .option(
      '--drain-timeout <seconds>',
      `SIGTERM or \`mssh-relay drain\`: running sessions may go on this long after the drain began, then they end (relay_shutdown) and the relay exits (env MSSH_DRAIN_TIMEOUT, default ${DRAIN_DEFAULTS.drainTimeout})`,
    );
}

export function buildProgram(
  h: RelayHandlers,
  out: CliOutput = { writeOut: (s) => process.stdout.write(s), writeErr: (s) => process.stderr.write(s) },
): Command {
  const program = new Command('mssh-relay')
    .description('The mssh relay: reach machines behind NAT over SSH, end to end encrypted.')
    .version(SOFTWARE_VERSION)
    .showHelpAfterError(false)
    .exitOverride()
    .configureOutput({
      writeOut: (s) => out.writeOut(s),
      writeErr: (s) => out.writeErr(s),
      outputError: (str, write) =>
        write(`mssh-relay: ${str.replace(/^error: /, '').trim()}\nRun \`mssh-relay --help\` for usage.\n`),
    });

  serveOptions(program.command('serve').description('run the relay')).action((opts: Flags) => h.serve(opts));

  serveOptions(
    program
      .command('config')
      .description('the settings of `serve`')
      .command('show')
      .description(
        'print every setting `serve` would use with these options, and where it comes from (flag, env, file:LINE, default); secrets redacted',
      ),
  )
    .option('--json', 'print one JSON object')
    .action((opts: Flags) => h.configShow(opts));

  program
    .command('install-service')
    .description(
      'write a hardened systemd unit that runs `mssh-relay serve` with the options after -- (see docs/operations.md)',
    )
    .argument('[serve-options...]', 'options of `mssh-relay serve`, after --, e.g. -- --listen 0.0.0.0:443')
    .option('--print', 'print the unit on stdout and install nothing')
    .option('--name <name>', 'unit name (default mssh-relay: /etc/systemd/system/mssh-relay.service)')
    .option('--user <user>', 'the user the relay runs as (default mssh-relay)')
    .option('--create-user', 'create that user (a system user without login) if it does not exist')
    .option('--unit-dir <dir>', 'write the unit here instead of /etc/systemd/system (systemctl is then not run)')
    .option('--node <file>', 'node binary for ExecStart (default: the one running this command)')
    .option('--script <file>', 'mssh-relay entry script for ExecStart (default: the one running this command)')
    .option('--env-file <file>', 'EnvironmentFile= for secrets such as DATABASE_URL (keep them off the command line)')
    .option('--force', 'replace an existing unit with other content')
    .action((args: string[], opts: Flags) => h.installService(args, opts));

  program
    .command('drain')
    .description(
      'drain the relay running on the data dir, as SIGTERM does: /readyz 503, agents told to move, new sessions refused, running ones go on until they end or --drain-timeout, then it exits',
    )
    .option(
      '--data-dir <dir>',
      'data directory of the running relay (env MSSH_DATA_DIR, default ~/.local/share/mssh-relay)',
    )
    .option('--wait', 'return once the relay has exited (default: once it has begun draining)')
    .action((opts: Flags) => h.drain(opts));

  storeOptions(program.command('info').description('show the data dir, database and certificate fingerprint'))
    .option('--tls-cert <file>', 'the certificate the relay uses, when not the self-signed one')
    .option('--json', 'print one JSON object')
    .action((opts: Flags) => h.info(opts));

  const user = program.command('user').description('manage users');
  storeOptions(
    user
      .command('add')
      .argument('<name>', 'user name')
      .description('create a user (through the running relay, else on the database)'),
  )
    .option('--admin', 'make the user an admin')
    .option('--password-stdin', 'read the password from the first line of stdin')
    .action((name: string, opts: Flags) => h.userAdd(name, opts));
  storeOptions(user.command('list').description('list users'))
    .option('--json', 'print a JSON array')
    .action((opts: Flags) => h.userList(opts));
  storeOptions(
    user
      .command('disable')
      .argument('<name>', 'user name')
      .description('disable a user: their tokens stop working at once'),
  )
    .option('--kill-sessions', 'also end their live sessions now')
    .action((name: string, opts: Flags) => h.userDisable(name, opts));
  storeOptions(user.command('enable').argument('<name>', 'user name').description('enable a disabled user')).action(
    (name: string, opts: Flags) => h.userEnable(name, opts),
  );
  storeOptions(user.command('passwd').argument('<name>', 'user name').description("set a user's password"))
    .option('--password-stdin', 'read the password from the first line of stdin')
    .action((name: string, opts: Flags) => h.userPasswd(name, opts));
  storeOptions(
    user
      .command('set-role')
      .argument('<name>', 'user name')
      .argument('[role]', 'role name (omit to clear the role)')
      .description("set or clear a user's role"),
  ).action((name: string, role: string | undefined, opts: Flags) => h.userSetRole(name, role, opts));

  storeOptions(
    program
      .command('grant')
      .argument('<subject>', 'user (or role, with --role)')
      .argument('[pattern]', "host glob, e.g. 'web-*' or 'db-?' (or --labels instead)")
      .description('let a user (or a role) reach the machines matching a pattern, or carrying labels'),
  )
    .option('--role', 'the subject is a role')
    .option(
      '--labels <selector>',
      'a label selector instead of a pattern: env=staging,role=web (every pair must match)',
    )
    .action((subject: string, pattern: string | undefined, opts: Flags) => h.grant(subject, pattern, opts));
  storeOptions(
    program
      .command('revoke-grant')
      .argument('<subject>', 'user (or role, with --role)')
      .argument('[pattern]', 'the pattern as granted (or --labels as granted)')
      .description('remove a grant'),
  )
    .option('--role', 'the subject is a role')
    .option('--labels <selector>', 'the label selector as granted')
    .action((subject: string, pattern: string | undefined, opts: Flags) => h.revokeGrant(subject, pattern, opts));
  storeOptions(program.command('grants').description('list grants'))
    .option('--json', 'print a JSON array')
    .action((opts: Flags) => h.grants(opts));

  const keys = program.command('keys').description('manage the token signing keys');
  storeOptions(
    keys.command('rotate').description('add a new signing key; the old one verifies its tokens until they expire'),
  ).action((opts: Flags) => h.keysRotate(opts));

  const agent = program.command('agent').description('manage machines');
  storeOptions(
    agent
      .command('enroll')
      .argument('<name>', 'machine name')
      .description('issue a one-time enrolment token for a machine'),
  )
    .option('--public-url <url>', 'relay URL to print when the relay is not running (env MSSH_PUBLIC_URL)')
    .option(
      '--listen <host:port>',
      "the relay's listen address, to derive the URL when the relay is not running (env MSSH_LISTEN)",
    )
    .option('--tls-cert <file>', "the relay's certificate, when not the self-signed one")
    .option(
      '--tls-san <name>',
      'extra name for the self-signed certificate if it does not exist yet (repeatable)',
      collect,
      [],
    )
    .option('--label <key=value>', 'a label the machine gets when it enrols, e.g. env=prod (repeatable)', collect, [])
    .action((name: string, opts: Flags) => h.agentEnroll(name, opts));
  storeOptions(
    agent
      .command('label')
      .argument('<name>', 'machine name')
      .argument('<labels...>', 'key=value to set, key- to remove (e.g. env=staging role-)')
      .description("set or remove a machine's labels; sessions no grant matches any more end at once"),
  )
    .option('--json', 'print the result as JSON')
    .action((name: string, edits: string[], opts: Flags) => h.agentLabel(name, edits, opts));
  storeOptions(
    program
      .command('fleet')
      .description(
        'list the relays sharing this database: id, state (serving, draining, stopped, lost), agents, sessions',
      ),
  )
    .option('--json', 'print a JSON array')
    .action((opts: Flags) => h.fleet(opts));

  storeOptions(agent.command('list').description('list machines: online, last seen, versions, key fingerprints'))
    .option('--json', 'print a JSON array')
    .action((opts: Flags) => h.agentList(opts));
  storeOptions(
    agent
      .command('revoke')
      .argument('<name>', 'machine name')
      .description('refuse a machine from now on and drop its connection and sessions'),
  ).action((name: string, opts: Flags) => h.agentRevoke(name, opts));
  storeOptions(
    agent
      .command('forget')
      .argument('<name>', 'machine name')
      .description('delete a machine (revoked or not); its name is free again'),
  ).action((name: string, opts: Flags) => h.agentForget(name, opts));

  storeOptions(
    program
      .command('migrate')
      .description("apply the database migrations (as the owner role), and grant the relay's and the pruner's roles"),
  )
    .option(
      '--relay-role <role>',
      'Postgres role that runs `serve`: grant it what it needs, but no UPDATE/DELETE of the audit trail',
    )
    .option('--prune-role <role>', 'Postgres role that may run `audit prune` (EXECUTE on mssh_audit_prune)')
    .action((opts: Flags) => h.migrate(opts));

  const auditCmd = program.command('audit').description('the audit trail');
  storeOptions(
    auditCmd
      .command('prune')
      .description(
        'delete audit events older than an age (the only way rows leave the append-only trail); records audit.pruned',
      ),
  )
    .requiredOption('--older-than <age>', 'age like 365d, 52w or 90d (at least 1d)')
    .action((opts: Flags) => h.auditPrune(opts));

  return program;
}
