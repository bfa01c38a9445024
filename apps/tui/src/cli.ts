/**
 * The `mssh` command line grammar (commander). It only parses: each command calls one handler with typed
 * arguments and records the exit code it returns. main.ts supplies the handlers.
 */
import { Command, Option } from 'commander';
import { SOFTWARE_VERSION } from '@mssh/protocol';
import type { LoginArgs } from './commands/login.js';
import type { SshArgs } from './commands/ssh.js';
import type { AdminAuditArgs, AdminSessionsArgs } from './commands/admin-audit.js';

export interface Handlers {
  login(a: LoginArgs): Promise<number>;
  logout(): Promise<number>;
  whoami(): Promise<number>;
  ls(a: { json: boolean }): Promise<number>;
  ssh(a: SshArgs): Promise<number>;
  proxy(a: { host: string }): Promise<number>;
  knownHostsList(): Promise<number>;
  knownHostsForget(a: { host: string }): Promise<number>;
  adminUsersAdd(a: { name: string; admin: boolean; passwordStdin: boolean }): Promise<number>;
  adminAgentsEnroll(a: { name: string; json: boolean }): Promise<number>;
  adminAudit(a: AdminAuditArgs): Promise<number>;
  adminSessions(a: AdminSessionsArgs): Promise<number>;
}

export interface CliOutput {
  writeOut(s: string): void;
  writeErr(s: string): void;
}

/** Commands whose failures exit 255 (like OpenSSH); every other failure exits 1. */
export const SSH_LIKE_COMMANDS = ['ssh', 'proxy'];

export function failureExitCode(argv: string[]): number {
  const first = argv.find((a) => !a.startsWith('-'));
  return first !== undefined && SSH_LIKE_COMMANDS.includes(first) ? 255 : 1;
}

/**
 * Build the program. `result.code` is set to the handler's exit code when a command ran. Parse with
 * `program.parseAsync(argv, { from: 'user' })`; usage errors throw commander's CommanderError after
 * printing `mssh: <problem>` and a hint.
 */
export function buildProgram(handlers: Handlers, out: CliOutput): { program: Command; result: { code: number | null } } {
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

  configure(program.command('login'), 'Usage: mssh login --relay URL --user NAME [--password-stdin] [--relay-fingerprint SHA256:...]')
    .description('log in to a relay and remember it as the current one')
    .requiredOption('--relay <url>', 'relay URL, e.g. https://relay.example.com:8443')
    .requiredOption('--user <name>', 'your user name on the relay')
    .option('--password-stdin', 'read the password from the first line of stdin', false)
    .option('--relay-fingerprint <fp>', "the relay certificate's SHA256 fingerprint (from `mssh-relay info`)")
    .action((o: { relay: string; user: string; passwordStdin: boolean; relayFingerprint?: string }) =>
      done(handlers.login({ relay: o.relay, user: o.user, passwordStdin: o.passwordStdin === true, relayFingerprint: o.relayFingerprint })),
    );

  configure(program.command('logout'), 'Usage: mssh logout')
    .description('revoke the token on the relay and delete it here')
    .action(() => done(handlers.logout()));

  configure(program.command('whoami'), 'Usage: mssh whoami')
    .description('show who you are logged in as')
    .action(() => done(handlers.whoami()));

  configure(program.command('ls'), 'Usage: mssh ls [--json]')
    .description('list the machines: name, online/offline, last seen, host key fingerprint')
    .option('--json', 'print JSON instead of a table', false)
    .action((o: { json: boolean }) => done(handlers.ls({ json: o.json === true })));

  configure(program.command('ssh'), 'Usage: mssh ssh [user@]host [-i KEY] [-t|-T] [-l USER] [-- command...] (put the remote command after --)')
    .description('open an SSH session to a machine through the relay')
    .argument('<destination>', '[user@]host')
    .argument('[command...]', 'remote command (after --)')
    .option('-i, --identity <file>', 'private key file (instead of ~/.ssh/id_*)')
    .addOption(new Option('-t', 'force a pseudo-terminal'))
    .addOption(new Option('-T', 'disable the pseudo-terminal'))
    .option('-l, --login <user>', 'login user on the machine')
    .action((destination: string, command: string[], o: { identity?: string; t?: boolean; T?: boolean; login?: string }) =>
      done(handlers.ssh({ destination, command: command ?? [], identity: o.identity, forceTty: o.t === true, noTty: o.T === true, login: o.login })),
    );

  configure(program.command('proxy'), "Usage: mssh proxy HOST (for ssh -o ProxyCommand='mssh proxy %n')")
    .description("connect stdin/stdout to a machine's SSH server (for OpenSSH's ProxyCommand)")
    .argument('<host>', 'machine name')
    .action((host: string) => done(handlers.proxy({ host })));

  const kh = configure(program.command('known-hosts'), 'Usage: mssh known-hosts list | forget HOST').description('show or forget pinned SSH host keys');
  configure(kh.command('list'), 'Usage: mssh known-hosts list')
    .description('list pinned host keys')
    .action(() => done(handlers.knownHostsList()));
  configure(kh.command('forget'), 'Usage: mssh known-hosts forget HOST')
    .description("forget a machine's pinned host keys (after you know they changed)")
    .argument('<host>', 'machine name')
    .action((host: string) => done(handlers.knownHostsForget({ host })));

  const admin = configure(program.command('admin'), 'Usage: mssh admin users add NAME | agents enroll NAME | audit [filters] | sessions [--active]').description('administer the relay (admin login needed)');
  const users = configure(admin.command('users'), 'Usage: mssh admin users add NAME [--admin] [--password-stdin]').description('manage users');
  configure(users.command('add'), 'Usage: mssh admin users add NAME [--admin] [--password-stdin]')
    .description('create a user')
    .argument('<name>', 'user name')
    .option('--admin', 'make the user an admin', false)
    .option('--password-stdin', 'read the password from the first line of stdin', false)
    .action((name: string, o: { admin: boolean; passwordStdin: boolean }) =>
      done(handlers.adminUsersAdd({ name, admin: o.admin === true, passwordStdin: o.passwordStdin === true })),
    );
  const agents = configure(admin.command('agents'), 'Usage: mssh admin agents enroll NAME [--json]').description('manage machines (agents)');
  configure(agents.command('enroll'), 'Usage: mssh admin agents enroll NAME [--json]')
    .description('create a one-time enrolment token for a machine')
    .argument('<name>', 'machine name')
    .option('--json', 'print JSON', false)
    .action((name: string, o: { json: boolean }) => done(handlers.adminAgentsEnroll({ name, json: o.json === true })));
  const auditUsage = 'Usage: mssh admin audit [--user U] [--host H] [--type T] [--since 24h] [--until TIME] [--limit N] [--json]';
  configure(admin.command('audit'), auditUsage)
    .description('show the audit trail (oldest first; the newest N when more match)')
    .option('--user <name>', 'only events of this user (actor)')
    .option('--host <name>', 'only events about this machine')
    .option('--type <type>', 'only this event type (session.start) or prefix (session.*)')
    .option('--since <age|time>', 'from this age ago (90s, 30m, 24h, 7d, 2w) or ISO time')
    .option('--until <age|time>', 'before this age ago or ISO time')
    .option('--limit <n>', 'at most this many events (default 100, max 10000)')
    .option('--json', 'one JSON object per line', false)
    .action((o: { user?: string; host?: string; type?: string; since?: string; until?: string; limit?: string; json: boolean }) =>
      done(handlers.adminAudit({ user: o.user, host: o.host, type: o.type, since: o.since, until: o.until, limit: o.limit, json: o.json === true })));
  configure(admin.command('sessions'), 'Usage: mssh admin sessions [--active] [--limit N] [--json]')
    .description('sessions: who is connected where, since when, bytes so far')
    .option('--active', 'only sessions open now', false)
    .option('--limit <n>', 'at most this many (default 100, newest first)')
    .option('--json', 'one JSON object per line', false)
    .action((o: { active: boolean; limit?: string; json: boolean }) => done(handlers.adminSessions({ active: o.active === true, limit: o.limit, json: o.json === true })));

  return { program, result };
}
