/**
 * `mssh`: the only place that wires things. Reads the configuration, builds the dependencies, parses the
 * command line, runs one command, prints a failure as one or two lines, and exits with its code.
 */
import { constants as osConstants } from 'node:os';
import { join } from 'node:path';
import { commanderExitCode, reportError, TtyPrompter } from '@mssh/cli-kit';
import { buildProgram, failureExitCode, type Handlers } from './cli.js';
import { parseConfig, type ClientConfig } from './config/config.js';
import { CredentialsStore } from './config/credentials-store.js';
import { ensurePrivateDir } from './config/secure-files.js';
import {
  adminAgentsEnroll,
  adminAgentsForget,
  adminAgentsLabel,
  adminAgentsList,
  adminRelays,
  adminAgentsRevoke,
  adminGrant,
  adminGrants,
  adminRevokeGrant,
  adminUsersAdd,
  adminUsersDisable,
  adminUsersEnable,
  adminUsersList,
  adminUsersPasswd,
  adminUsersSetRole,
} from './commands/admin.js';
import { adminAudit, adminSessions } from './commands/admin-audit.js';
import type { CliContext } from './commands/context.js';
import { keysAdd, keysList, keysRemove } from './commands/keys.js';
import { knownHostsForget, knownHostsList, knownHostsOpenssh } from './commands/known-hosts.js';
import { configSsh } from './commands/ssh-config.js';
import { login, logout, whoami } from './commands/login.js';
import { ls } from './commands/ls.js';
import { proxy } from './commands/proxy.js';
import { ssh } from './commands/ssh.js';
import { cp } from './commands/cp.js';
import { completionHostNames } from './completion/host-cache.js';
import { cliError, formatCliError, isCliError, type CliError } from './errors.js';
import { KnownHostsFile } from './known-hosts/known-hosts-file.js';
import { connectRelay } from './relay-client/relay-connection.js';
import { installBufferReclaim } from '@mssh/protocol/transport';

function flush(stream: NodeJS.WriteStream): Promise<void> {
  return new Promise((resolve) => {
    if (stream.destroyed || !stream.writable) return resolve();
    stream.write('', () => resolve());
  });
}

function restoreTerminal(): void {
  if (process.stdin.isTTY) {
    try {
      process.stdin.setRawMode(false);
    } catch {
      // terminal already gone
    }
  }
}

async function exit(code: number): Promise<never> {
  await Promise.all([flush(process.stdout), flush(process.stderr)]);
  process.exit(code);
}

function printError(e: CliError, oneLine: boolean): void {
  process.stderr.write(`${formatCliError(e, oneLine)}\n`);
}

/** Aborted by the first SIGINT (Ctrl-C); a second one exits 130 at once. */
function interruptSignal(): AbortSignal {
  const ac = new AbortController();
  process.once('SIGINT', () => {
    ac.abort('interrupted');
    process.once('SIGINT', () => {
      restoreTerminal();
      process.exit(130);
    });
  });
  return ac.signal;
}

async function main(): Promise<void> {
  installBufferReclaim(); // mssh ssh / proxy move bulk data through this process (libs/protocol buffer-reclaim.ts)
  const argv = process.argv.slice(2);
  let config: ClientConfig;
  try {
    config = parseConfig(process.env);
  } catch (e) {
    const err = cliError(
      'CLI_ERR_CONFIG',
      `invalid environment: ${(e as Error).message}`,
      'Check the MSSH_* environment variables.',
    );
    printError(err, false);
    return exit(failureExitCode(argv, err.exitCode));
  }
  // A terminal left in raw mode is unusable: put it back whatever ends the process.
  for (const sig of ['SIGTERM', 'SIGHUP'] as const) {
    process.on(sig, () => {
      restoreTerminal();
      process.exit(128 + (osConstants.signals[sig] ?? 0));
    });
  }
  process.on('exit', restoreTerminal);
  process.stdout.on('error', () => {}); // EPIPE when the reader went away: handled per command
  process.stderr.on('error', () => {});

  const ctx: CliContext = {
    config,
    store: new CredentialsStore(config.configDir),
    knownHosts: new KnownHostsFile(join(config.configDir, 'known_hosts')),
    prompter: new TtyPrompter(),
    io: { stdin: process.stdin, stdout: process.stdout, stderr: process.stderr },
    connect: connectRelay,
    now: () => new Date(),
  };
  const withDir =
    <A extends unknown[]>(f: (...a: A) => Promise<number>) =>
    (...a: A) => {
      ensurePrivateDir(config.configDir);
      return f(...a);
    };
  const handlers: Handlers = {
    login: withDir((a) => login(ctx, a)),
    logout: withDir(() => logout(ctx)),
    whoami: withDir((a) => whoami(ctx, a)),
    ls: withDir((a) => ls(ctx, a)),
    ssh: withDir((a) => ssh(ctx, a)),
    cp: withDir((a) => cp(ctx, a, { interrupt: interruptSignal() })),
    // Loaded on first use; Ctrl-C cancels every session of the run (a second Ctrl-C exits at once).
    exec: withDir(async (a) => (await import('./commands/exec.js')).exec(ctx, a, { interrupt: interruptSignal() })),
    proxy: withDir((a) => proxy(ctx, a)),
    knownHostsList: withDir((a) => knownHostsList(ctx, a)),
    knownHostsForget: withDir((a) => knownHostsForget(ctx, a)),
    knownHostsOpenssh: withDir((a) => knownHostsOpenssh(ctx, a)),
    configSsh: (a) => configSsh(ctx, a),
    keysAdd: withDir((a) => keysAdd(ctx, a)),
    keysList: withDir((a) => keysList(ctx, a)),
    keysRemove: withDir((a) => keysRemove(ctx, a)),
    adminUsersAdd: withDir((a) => adminUsersAdd(ctx, a)),
    adminAgentsEnroll: withDir((a) => adminAgentsEnroll(ctx, a)),
    adminUsersList: withDir((a) => adminUsersList(ctx, a)),
    adminUsersDisable: withDir((a) => adminUsersDisable(ctx, a)),
    adminUsersEnable: withDir((a) => adminUsersEnable(ctx, a)),
    adminUsersPasswd: withDir((a) => adminUsersPasswd(ctx, a)),
    adminUsersSetRole: withDir((a) => adminUsersSetRole(ctx, a)),
    adminGrant: withDir((a) => adminGrant(ctx, a)),
    adminRevokeGrant: withDir((a) => adminRevokeGrant(ctx, a)),
    adminGrants: withDir((a) => adminGrants(ctx, a)),
    adminAgentsList: withDir((a) => adminAgentsList(ctx, a)),
    adminRelays: withDir((a) => adminRelays(ctx, a)),
    adminAgentsRevoke: withDir((a) => adminAgentsRevoke(ctx, a)),
    adminAgentsForget: withDir((a) => adminAgentsForget(ctx, a)),
    adminAgentsLabel: withDir((a) => adminAgentsLabel(ctx, a)),
    adminAudit: withDir((a) => adminAudit(ctx, a)),
    adminSessions: withDir((a) => adminSessions(ctx, a)),
    completeHosts: async () => {
      const names = await completionHostNames(ctx);
      if (names.length > 0) process.stdout.write(`${names.join('\n')}\n`);
      return 0;
    },
  };
  const { program, result } = buildProgram(handlers, {
    writeOut: (s) => process.stdout.write(s),
    writeErr: (s) => process.stderr.write(s),
  });
  try {
    await program.parseAsync(argv, { from: 'user' });
    return exit(result.code ?? 0);
  } catch (e) {
    restoreTerminal();
    // Help and version exit 0; usage errors were printed by commander already.
    const usage = commanderExitCode(e);
    if (usage !== null) return exit(usage === 0 ? 0 : failureExitCode(argv, usage));
    const oneLine = argv[0] === 'proxy' || (argv[0] === 'known-hosts' && argv[1] === 'openssh');
    const code = reportError(e, {
      program: 'mssh',
      oneLine,
      bugHint: 'Please report this, with the command you ran (MSSH_DEBUG=1 prints details).',
    });
    if (!isCliError(e) && config.debug) process.stderr.write(`${(e as Error)?.stack ?? ''}\n`);
    return exit(failureExitCode(argv, code));
  }
}

void main();
