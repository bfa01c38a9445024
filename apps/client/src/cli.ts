/**
 * The `mssh` command line grammar (commander). It only parses: each command calls one handler with typed
 * arguments and records the exit code it returns. main.ts supplies the handlers.
 */
import { Argument, Command, Option } from 'commander';
import { SOFTWARE_VERSION } from '@mssh/protocol';
import { EXIT } from '@mssh/cli-kit';
import type { LoginArgs } from './commands/login.js';
import type { SshArgs } from './commands/ssh.js';
import { CP_USAGE, type CpArgs } from './cp/cp-args.js';
import type { ExecArgs } from './commands/exec.js';
import type { AdminAuditArgs, AdminSessionsArgs } from './commands/admin-audit.js';
import { SHELLS, completionScript, type Shell } from './completion/completion-script.js';

export interface Handlers {
  login(a: LoginArgs): Promise<number>;
  logout(): Promise<number>;
  whoami(a: { json: boolean }): Promise<number>;
  ls(a: { json: boolean; filters: string[]; online: boolean }): Promise<number>;
  ssh(a: SshArgs): Promise<number>;
  cp(a: CpArgs): Promise<number>;
  exec(a: ExecArgs): Promise<number>;
  proxy(a: { host: string; loginId?: string; knownHostsDir?: string }): Promise<number>;
  knownHostsList(a: { json: boolean }): Promise<number>;
  knownHostsForget(a: { host: string }): Promise<number>;
  knownHostsOpenssh(a: { host: string; keyType?: string; key?: string }): Promise<number>;
  configSsh(a: { install: boolean; uninstall: boolean }): Promise<number>;
  keysAdd(a: { file?: string }): Promise<number>;
  keysList(a: { json: boolean }): Promise<number>;
  keysRemove(a: { key: string }): Promise<number>;
  adminUsersAdd(a: { name: string; admin: boolean; passwordStdin: boolean }): Promise<number>;
  adminAgentsEnroll(a: { name: string; json: boolean; labels: string[] }): Promise<number>;
  adminAgentsLabel(a: { name: string; edits: string[]; json: boolean }): Promise<number>;
  adminUsersList(a: { json: boolean }): Promise<number>;
  adminUsersDisable(a: { name: string; killSessions: boolean }): Promise<number>;
  adminUsersEnable(a: { name: string }): Promise<number>;
  adminUsersPasswd(a: { name: string; passwordStdin: boolean }): Promise<number>;
  adminUsersSetRole(a: { name: string; role?: string }): Promise<number>;
  adminGrant(a: { subject: string; pattern?: string; labels?: string; role: boolean }): Promise<number>;
  adminRevokeGrant(a: { subject: string; pattern?: string; labels?: string; role: boolean }): Promise<number>;
  adminGrants(a: { json: boolean }): Promise<number>;
  adminAgentsList(a: { json: boolean }): Promise<number>;
  adminRelays(a: { json: boolean }): Promise<number>;
  adminAgentsRevoke(a: { name: string }): Promise<number>;
  adminAgentsForget(a: { name: string }): Promise<number>;
  adminAudit(a: AdminAuditArgs): Promise<number>;
  adminSessions(a: AdminSessionsArgs): Promise<number>;
  /** `mssh __complete hosts`: machine names for the completion scripts. */
  completeHosts(): Promise<number>;
}

/** Repeated --label flags, in order. */
function collectLabel(value: string, previous: string[]): string[] {
  return [...previous, value];
}

export interface CliOutput {
  writeOut(s: string): void;
  writeErr(s: string): void;
}

/** Commands whose failures all exit 255 (like OpenSSH's ssh). */
export const SSH_LIKE_COMMANDS = ['ssh', 'proxy'];

/** The exit code of a failure: 255 for ssh-like commands, else `policyCode` (the CliError's, docs/cli.md). */
export function failureExitCode(argv: string[], policyCode: number): number {
  const first = argv.find((a) => !a.startsWith('-'));
  return first !== undefined && SSH_LIKE_COMMANDS.includes(first) ? EXIT.SSH : policyCode;
}

/**
 * Build the program. `result.code` is set to the handler's exit code when a command ran. Parse with
 * `program.parseAsync(argv, { from: 'user' })`; usage errors throw commander's CommanderError after
 * printing `mssh: <problem>` and a hint.
 */
export function buildProgram(
  handlers: Handlers,
  out: CliOutput,
): { program: Command; result: { code: number | null } } {
  const result: { code: number | null } = { code: null };
  const done = async (p: Promise<number>) => {
    result.code = await p;
  };
  const program = new Command('mssh');
  const configure = (c: Command, usageHint: string) =>
    c
      .exitOverride()
      .configureOutput({
        writeOut: (s) => out.writeOut(s),
        writeErr: (s) => out.writeErr(s),
        outputError: (s, write) => write(`mssh: ${s.replace(/^error: /, '')}`),
      })
      .showHelpAfterError(usageHint);

  configure(program, 'Run `mssh --help` for the commands.')
    .description('Reach machines behind NAT through an mssh relay, end-to-end encrypted SSH.')
    .version(SOFTWARE_VERSION, '-V, --version', 'print the version')
    .helpCommand(true)
    .enablePositionalOptions();

  configure(
    program.command('login'),
    'Usage: mssh login --relay URL --user NAME [--password-stdin] [--relay-fingerprint SHA256:...]',
  )
    .description('log in to a relay and remember it as the current one')
    .requiredOption('--relay <url>', 'relay URL, e.g. https://relay.example.com:8443')
    .requiredOption('--user <name>', 'your user name on the relay')
    .option('--password-stdin', 'read the password from the first line of stdin', false)
    .option('--relay-fingerprint <fp>', "the relay certificate's SHA256 fingerprint (from `mssh-relay info`)")
    .action((o: { relay: string; user: string; passwordStdin: boolean; relayFingerprint?: string }) =>
      done(
        handlers.login({
          relay: o.relay,
          user: o.user,
          passwordStdin: o.passwordStdin === true,
          relayFingerprint: o.relayFingerprint,
        }),
      ),
    );

  configure(program.command('logout'), 'Usage: mssh logout')
    .description('revoke the token on the relay and delete it here')
    .action(() => done(handlers.logout()));

  configure(program.command('whoami'), 'Usage: mssh whoami [--json]')
    .description('show who you are logged in as')
    .option('--json', 'print one JSON object', false)
    .action((o: { json: boolean }) => done(handlers.whoami({ json: o.json === true })));

  configure(
    program.command('ls'),
    "Usage: mssh ls [GLOB...] [KEY=VALUE...] [--online] [--json] (e.g. mssh ls 'web-*' env=prod)",
  )
    .description('list the machines: name, online/offline, last seen, labels, host key fingerprint')
    .argument('[filters...]', "name globs ('web-*', any may match) and labels (env=prod, all must match)")
    .option('--online', 'only machines whose agent is connected', false)
    .option('--json', 'print a JSON array instead of a table', false)
    .action((filters: string[], o: { json: boolean; online: boolean }) =>
      done(handlers.ls({ json: o.json === true, filters: filters ?? [], online: o.online === true })),
    );

  const collect = (v: string, prev: string[]) => [...prev, v];
  configure(
    program.command('ssh'),
    'Usage: mssh ssh [user@]host [-i KEY] [-t|-T] [-l USER] [-v] [-N] [-A] [-L|-R|-D SPEC] [-o NAME=VALUE] [--connect-timeout SECONDS] [-- command...] (put the remote command after --)',
  )
    .description('open an SSH session to a machine through the relay')
    .argument('<destination>', '[user@]host (host: the machine name; NAME.mssh works too)')
    .argument('[command...]', 'remote command (after --)')
    .addOption(
      new Option(
        '-i, --identity <file>',
        'private key file, tried after the ssh-agent and before ~/.ssh/id_* (repeatable)',
      ).argParser((v: string, prev: string[] | undefined) => collect(v, prev ?? [])),
    )
    .addOption(new Option('-t', 'force a pseudo-terminal'))
    .addOption(new Option('-T', 'disable the pseudo-terminal'))
    .option('-l, --login <user>', 'login user on the machine')
    .option('-v, --verbose', 'print each connection step on stderr', false)
    .option('--connect-timeout <seconds>', 'give up when the SSH connection is not up within this time (default 30)')
    .option(
      '-o <option>',
      'OpenSSH-style option: ConnectTimeout=SECONDS, ServerAliveInterval=SECONDS, ServerAliveCountMax=N',
      collect,
      [] as string[],
    )
    .addOption(
      new Option(
        '-L <spec>',
        'local forward [bind:]port:host:hostport (host as seen from the machine; repeatable)',
      ).argParser((v: string, prev: string[] | undefined) => collect(v, prev ?? [])),
    )
    .addOption(
      new Option(
        '-R <spec>',
        'remote forward [bind:]port:host:hostport (host as seen from here; repeatable)',
      ).argParser((v: string, prev: string[] | undefined) => collect(v, prev ?? [])),
    )
    .addOption(
      new Option('-D <spec>', 'SOCKS5/SOCKS4 proxy on [bind:]port, connecting from the machine (repeatable)').argParser(
        (v: string, prev: string[] | undefined) => collect(v, prev ?? []),
      ),
    )
    .addOption(new Option('-N', 'no remote command or shell: forward ports until Ctrl-C'))
    .addOption(new Option('-A', 'forward the ssh-agent ($SSH_AUTH_SOCK) to the machine'))
    .addOption(new Option('-p <port>', "accepted for OpenSSH habits and ignored: the machine's agent fixes the port"))
    .action(
      (
        destination: string,
        command: string[],
        o: {
          identity?: string[];
          t?: boolean;
          T?: boolean;
          login?: string;
          verbose?: boolean;
          connectTimeout?: string;
          o?: string[];
          L?: string[];
          R?: string[];
          D?: string[];
          N?: boolean;
          A?: boolean;
          p?: string;
        },
      ) =>
        done(
          handlers.ssh({
            destination,
            command: command ?? [],
            identities: o.identity ?? [],
            forceTty: o.t === true,
            noTty: o.T === true,
            login: o.login,
            verbose: o.verbose === true,
            connectTimeout: o.connectTimeout,
            options: o.o ?? [],
            local: o.L ?? [],
            remote: o.R ?? [],
            dynamic: o.D ?? [],
            noCommand: o.N === true,
            agentForward: o.A === true,
            port: o.p,
          }),
        ),
    );

  configure(program.command('cp'), CP_USAGE)
    .description(
      'copy files to or from a machine over SFTP ([user@]host:path on one side), or push to many (SELECTOR:PATH)',
    )
    .argument('<paths...>', "SRC... DEST; remote as [user@]host:path, a push as 'web-*:PATH' or env=prod:PATH")
    .option('-r, --recursive', 'copy directories', false)
    .option('-p, --preserve', 'keep modification times and modes', false)
    .option('-q, --quiet', 'no progress bar and no warnings', false)
    .option('-l, --login <user>', 'login user on the machine')
    .option('-i, --identity <file>', 'private key file (instead of ~/.ssh/id_*)')
    .option('-v, --verbose', 'print each connection step on stderr', false)
    .option('--connect-timeout <seconds>', 'give up when the SSH connection is not up within this time (default 30)')
    .option('--all', 'push to every machine you may reach (DEST is then :PATH)', false)
    .option('--parallel <n>', 'push: machines at once (default 32)')
    .option('--timeout <seconds>', 'push: limit per machine (default none)')
    .action(
      (
        paths: string[],
        o: {
          recursive?: boolean;
          preserve?: boolean;
          quiet?: boolean;
          login?: string;
          identity?: string;
          verbose?: boolean;
          connectTimeout?: string;
          all?: boolean;
          parallel?: string;
          timeout?: string;
        },
      ) =>
        done(
          handlers.cp({
            sources: paths.slice(0, -1),
            dest: paths[paths.length - 1]!,
            recursive: o.recursive === true,
            preserve: o.preserve === true,
            quiet: o.quiet === true,
            login: o.login,
            identity: o.identity,
            verbose: o.verbose === true,
            connectTimeout: o.connectTimeout,
            all: o.all === true,
            parallel: o.parallel,
            timeout: o.timeout,
          }),
        ),
    );

  configure(
    program.command('exec'),
    "Usage: mssh exec [GLOB...] [KEY=VALUE...] | --all [-l USER] [-i KEY] [--parallel N] [--timeout S] [--stdin] [--json | --out-dir DIR] -- COMMAND... (e.g. mssh exec 'web-*' env=prod -- uptime)",
  )
    .description(
      'run one command on many machines (selected by name globs, labels or --all), output prefixed per machine',
    )
    .argument(
      '[selector...]',
      "name globs ('web-*', any may match) and labels (env=prod, all must match); then -- COMMAND",
    )
    .option('--all', 'every machine you may reach', false)
    .option('-l, --login <user>', 'login user on the machines')
    .option('-i, --identity <file>', 'private key file (instead of ~/.ssh/id_*)')
    .option('--parallel <n>', 'machines at once (default 32)')
    .option('--timeout <seconds>', 'give up on a machine that has not finished after this long')
    .option('--stdin', 'read stdin once (up to 16 MiB) and send it to every machine', false)
    .option('--json', 'one JSON object per machine per line (output captured up to 1 MiB per stream)', false)
    .option('--out-dir <dir>', "write each machine's output to DIR/NAME.out and DIR/NAME.err")
    .action(
      (
        words: string[],
        o: {
          all?: boolean;
          login?: string;
          identity?: string;
          parallel?: string;
          timeout?: string;
          stdin?: boolean;
          json?: boolean;
          outDir?: string;
        },
        cmd: Command,
      ) => {
        // Commander gives the words before and after -- as one list: the command is what followed the first --.
        // (rawArgs: the argv as parsed; public in commander's JavaScript, missing from its typings.)
        const raw = (cmd.parent as unknown as { rawArgs?: string[] } | null)?.rawArgs ?? [];
        const dash = raw.indexOf('--');
        const n = dash < 0 ? 0 : Math.min(words.length, raw.length - dash - 1);
        return done(
          handlers.exec({
            selector: words.slice(0, words.length - n),
            command: words.slice(words.length - n),
            all: o.all === true,
            login: o.login,
            identity: o.identity,
            parallel: o.parallel,
            timeout: o.timeout,
            stdin: o.stdin === true,
            json: o.json === true,
            outDir: o.outDir,
          }),
        );
      },
    );

  configure(
    program.command('proxy'),
    "Usage: mssh proxy [--login-id ID] [--known-hosts-dir DIR] HOST (for ssh -o ProxyCommand='mssh proxy %n')",
  )
    .description("connect stdin/stdout to a machine's SSH server (for OpenSSH's ProxyCommand)")
    .argument('<host>', 'machine name')
    .option('--login-id <id>', 'refuse unless the current mssh login has this id (written by `mssh config ssh`)')
    .option(
      '--known-hosts-dir <dir>',
      "check the host key (pinned, else attested) and write the keys to accept to DIR/HOST, OpenSSH's UserKnownHostsFile (written by `mssh config ssh`)",
    )
    .action((host: string, o: { loginId?: string; knownHostsDir?: string }) =>
      done(handlers.proxy({ host, loginId: o.loginId, knownHostsDir: o.knownHostsDir })),
    );

  const kh = configure(program.command('known-hosts'), 'Usage: mssh known-hosts list | forget HOST').description(
    'show or forget pinned SSH host keys',
  );
  configure(kh.command('list'), 'Usage: mssh known-hosts list [--json]')
    .description('list pinned host keys')
    .option('--json', 'print a JSON array', false)
    .action((o: { json: boolean }) => done(handlers.knownHostsList({ json: o.json === true })));
  configure(kh.command('forget'), 'Usage: mssh known-hosts forget HOST')
    .description("forget a machine's pinned host keys (after you know they changed)")
    .argument('<host>', 'machine name')
    .action((host: string) => done(handlers.knownHostsForget({ host })));

  configure(
    kh.command('openssh'),
    'Usage: mssh known-hosts openssh HOST [TYPE KEY] (ssh_config: KnownHostsCommand mssh known-hosts openssh %H %t %K)',
  )
    .description(
      "print known_hosts lines for OpenSSH's KnownHostsCommand: the pinned keys, else the relay-attested ones (pinned now)",
    )
    .argument('<host>', 'NAME.mssh, [NAME.mssh]:PORT or NAME')
    .argument('[type]', 'the key type the server presented (%t; NONE before the key exchange)')
    .argument('[key]', 'the key the server presented, base64 (%K)')
    .action((host: string, keyType?: string, key?: string) => done(handlers.knownHostsOpenssh({ host, keyType, key })));

  const config = configure(program.command('config'), 'Usage: mssh config ssh [--install | --uninstall]').description(
    'configure other programs to use mssh',
  );
  configure(config.command('ssh'), 'Usage: mssh config ssh [--install | --uninstall]')
    .description('print (or install in ~/.ssh/config) the OpenSSH config that routes NAME.mssh through mssh')
    .option('--install', 'write the block into ~/.ssh/config (idempotent; the rest of the file is kept)', false)
    .option('--uninstall', 'remove the block from ~/.ssh/config', false)
    .action((o: { install: boolean; uninstall: boolean }) =>
      done(handlers.configSsh({ install: o.install === true, uninstall: o.uninstall === true })),
    );

  const keys = configure(
    program.command('keys'),
    'Usage: mssh keys add [FILE] | list | remove FINGERPRINT|FILE',
  ).description("your SSH public keys for the relay's SSH jump listener (ssh -J)");
  configure(keys.command('add'), 'Usage: mssh keys add [FILE]')
    .description('register a public key (default: the first of ~/.ssh/id_ed25519.pub, id_ecdsa.pub, id_rsa.pub)')
    .argument('[file]', 'public key file')
    .action((file: string | undefined) => done(handlers.keysAdd({ file })));
  configure(keys.command('list'), 'Usage: mssh keys list [--json]')
    .description('list your registered keys')
    .option('--json', 'print a JSON array', false)
    .action((o: { json: boolean }) => done(handlers.keysList({ json: o.json === true })));
  configure(keys.command('remove'), 'Usage: mssh keys remove FINGERPRINT|FILE')
    .description('unregister a key (it stops working at once)')
    .argument('<key>', 'SHA256:... fingerprint or public key file')
    .action((key: string) => done(handlers.keysRemove({ key })));

  const admin = configure(
    program.command('admin'),
    'Usage: mssh admin users ... | agents ... | relays | grant|revoke-grant|grants ... | audit [filters] | sessions [--active]',
  ).description('administer the relay (admin login needed)');
  const grantUsage =
    "Usage: mssh admin grant [--role] SUBJECT 'PATTERN' | --labels K=V[,K=V...] (e.g. mssh admin grant alice 'web-*', mssh admin grant --role ops 'db-?', mssh admin grant alice --labels env=staging,role=web)";
  configure(admin.command('grant'), grantUsage)
    .description(
      'let a user (or, with --role, every user of a role) reach the machines matching a glob (* any run, ? one character) or carrying labels (--labels)',
    )
    .argument('<subject>', 'user name (role name with --role)')
    .argument('[pattern]', "host glob, e.g. 'web-*' (or --labels instead)")
    .option('--role', 'the subject is a role', false)
    .option('--labels <selector>', 'a label selector instead of a glob: env=staging,role=web (every pair must match)')
    .action((subject: string, pattern: string | undefined, o: { role: boolean; labels?: string }) =>
      done(handlers.adminGrant({ subject, pattern, labels: o.labels, role: o.role === true })),
    );
  configure(
    admin.command('revoke-grant'),
    "Usage: mssh admin revoke-grant [--role] SUBJECT 'PATTERN' | --labels K=V[,K=V...] (as granted)",
  )
    .description('remove a grant (same arguments as grant); applies to the next session at once')
    .argument('<subject>', 'user name (role name with --role)')
    .argument('[pattern]', 'the pattern as granted')
    .option('--role', 'the subject is a role', false)
    .option('--labels <selector>', 'the label selector as granted')
    .action((subject: string, pattern: string | undefined, o: { role: boolean; labels?: string }) =>
      done(handlers.adminRevokeGrant({ subject, pattern, labels: o.labels, role: o.role === true })),
    );
  configure(admin.command('grants'), 'Usage: mssh admin grants [--json]')
    .description('list grants')
    .option('--json', 'print a JSON array', false)
    .action((o: { json: boolean }) => done(handlers.adminGrants({ json: o.json === true })));
  configure(admin.command('relays'), 'Usage: mssh admin relays [--json]')
    .description('list the relays of the fleet: id, state (serving, draining, stopped, lost), agents, sessions')
    .option('--json', 'print a JSON array', false)
    .action((o: { json: boolean }) => done(handlers.adminRelays({ json: o.json === true })));
  const users = configure(
    admin.command('users'),
    'Usage: mssh admin users add|list|disable|enable|passwd|set-role ...',
  ).description('manage users');
  configure(users.command('list'), 'Usage: mssh admin users list [--json]')
    .description('list users')
    .option('--json', 'print a JSON array', false)
    .action((o: { json: boolean }) => done(handlers.adminUsersList({ json: o.json === true })));
  configure(users.command('disable'), 'Usage: mssh admin users disable NAME [--kill-sessions]')
    .description('disable a user: their logins stop working at once')
    .argument('<name>', 'user name')
    .option('--kill-sessions', 'also end their live sessions now', false)
    .action((name: string, o: { killSessions: boolean }) =>
      done(handlers.adminUsersDisable({ name, killSessions: o.killSessions === true })),
    );
  configure(users.command('enable'), 'Usage: mssh admin users enable NAME')
    .description('enable a disabled user')
    .argument('<name>', 'user name')
    .action((name: string) => done(handlers.adminUsersEnable({ name })));
  configure(users.command('passwd'), 'Usage: mssh admin users passwd NAME [--password-stdin]')
    .description("set a user's password")
    .argument('<name>', 'user name')
    .option('--password-stdin', 'read the password from the first line of stdin', false)
    .action((name: string, o: { passwordStdin: boolean }) =>
      done(handlers.adminUsersPasswd({ name, passwordStdin: o.passwordStdin === true })),
    );
  configure(users.command('set-role'), 'Usage: mssh admin users set-role NAME [ROLE] (no ROLE clears it)')
    .description("set or clear a user's role (grants may name a role)")
    .argument('<name>', 'user name')
    .argument('[role]', 'role name; omit to clear')
    .action((name: string, role: string | undefined) => done(handlers.adminUsersSetRole({ name, role })));
  configure(users.command('add'), 'Usage: mssh admin users add NAME [--admin] [--password-stdin]')
    .description('create a user')
    .argument('<name>', 'user name')
    .option('--admin', 'make the user an admin', false)
    .option('--password-stdin', 'read the password from the first line of stdin', false)
    .action((name: string, o: { admin: boolean; passwordStdin: boolean }) =>
      done(handlers.adminUsersAdd({ name, admin: o.admin === true, passwordStdin: o.passwordStdin === true })),
    );
  const agents = configure(
    admin.command('agents'),
    'Usage: mssh admin agents enroll|list|label|revoke|forget ...',
  ).description('manage machines (agents)');
  configure(agents.command('list'), 'Usage: mssh admin agents list [--json]')
    .description('list machines: online, last seen, versions, identity and host key fingerprints')
    .option('--json', 'print a JSON array', false)
    .action((o: { json: boolean }) => done(handlers.adminAgentsList({ json: o.json === true })));
  configure(agents.command('revoke'), 'Usage: mssh admin agents revoke NAME')
    .description('refuse a machine from now on and drop its connection and sessions')
    .argument('<name>', 'machine name')
    .action((name: string) => done(handlers.adminAgentsRevoke({ name })));
  configure(agents.command('forget'), 'Usage: mssh admin agents forget NAME')
    .description('delete a machine (revoked or not); its name is free again')
    .argument('<name>', 'machine name')
    .action((name: string) => done(handlers.adminAgentsForget({ name })));
  configure(agents.command('enroll'), 'Usage: mssh admin agents enroll NAME [--label KEY=VALUE]... [--json]')
    .description('create a one-time enrolment token for a machine')
    .argument('<name>', 'machine name')
    .option(
      '--label <key=value>',
      'a label the machine gets when it enrols, e.g. env=prod (repeatable)',
      collectLabel,
      [],
    )
    .option('--json', 'print a JSON array', false)
    .action((name: string, o: { json: boolean; label: string[] }) =>
      done(handlers.adminAgentsEnroll({ name, json: o.json === true, labels: o.label ?? [] })),
    );
  configure(
    agents.command('label'),
    'Usage: mssh admin agents label NAME KEY=VALUE... KEY-... (e.g. env=staging role-)',
  )
    .description("set (key=value) or remove (key-) a machine's labels; sessions no grant matches any more end at once")
    .argument('<name>', 'machine name')
    .argument('<labels...>', 'key=value to set, key- to remove')
    .option('--json', 'print the result as JSON', false)
    .action((name: string, edits: string[], o: { json: boolean }) =>
      done(handlers.adminAgentsLabel({ name, edits, json: o.json === true })),
    );
  const auditUsage =
    'Usage: mssh admin audit [--user U] [--host H] [--type T] [--since 24h] [--until TIME] [--run ID] [--limit N] [--json]';
  configure(admin.command('audit'), auditUsage)
    .description('show the audit trail (oldest first; the newest N when more match)')
    .option('--user <name>', 'only events of this user (actor)')
    .option('--host <name>', 'only events about this machine')
    .option(
      '--type <type>',
      'only this event type (session.start), prefix (session.* or session) or short form (login = user.login)',
    )
    .option('--since <age|time>', 'from this age ago (90s, 30m, 24h, 7d, 2w) or ISO time')
    .option('--until <age|time>', 'before this age ago or ISO time')
    .option('--run <id>', 'only the rows of one `mssh exec` run (the id its summary prints)')
    .option('--limit <n>', 'at most this many events (default 100, max 10000)')
    .option('--json', 'print a JSON array', false)
    .action(
      (o: {
        user?: string;
        host?: string;
        type?: string;
        since?: string;
        until?: string;
        run?: string;
        limit?: string;
        json: boolean;
      }) =>
        done(
          handlers.adminAudit({
            user: o.user,
            host: o.host,
            type: o.type,
            since: o.since,
            until: o.until,
            run: o.run,
            limit: o.limit,
            json: o.json === true,
          }),
        ),
    );
  configure(admin.command('sessions'), 'Usage: mssh admin sessions [--active] [--limit N] [--json]')
    .description('sessions: who is connected where, since when, bytes so far')
    .option('--active', 'only sessions open now', false)
    .option('--limit <n>', 'at most this many (default 100, newest first)')
    .option('--json', 'print a JSON array', false)
    .action((o: { active: boolean; limit?: string; json: boolean }) =>
      done(handlers.adminSessions({ active: o.active === true, limit: o.limit, json: o.json === true })),
    );

  configure(program.command('completion'), 'Usage: mssh completion bash|zsh|fish')
    .description('print a shell completion script (commands, options, machine names); see apps/client/README.md')
    .addArgument(new Argument('<shell>', 'bash, zsh or fish').choices(SHELLS))
    .action((shell: Shell) => {
      out.writeOut(completionScript(shell, program));
      result.code = 0;
    });
  // For the completion scripts: machine names, one per line (cached; never hangs, never fails).
  program
    .command('__complete', { hidden: true })
    .argument('<what>')
    .action((what: string) => done(what === 'hosts' ? handlers.completeHosts() : Promise.resolve(0)));

  return { program, result };
}
