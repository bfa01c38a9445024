import { existsSync } from 'node:fs';
import { resolve } from 'node:path';
import type { ReadStream } from 'node:tty';
import { cliError } from '../errors.js';
import { defaultIdentityFiles } from '../ssh/auth.js';
import { assertHostName, sshViaRelay } from '../ssh/ssh-via-relay.js';
import { openLoggedInRelay, type CliContext } from './context.js';

export interface SshArgs {
  /** `[user@]host` */
  destination: string;
  /** Remote command words (after --); empty for a shell. */
  command: string[];
  identity?: string;
  /** -t: force a PTY. */
  forceTty: boolean;
  /** -T: never a PTY. */
  noTty: boolean;
  /** -l USER */
  login?: string;
}

/** `[user@]host` → user and host. -l wins over user@, as in OpenSSH; the default is the local user. */
export function parseDestination(destination: string, loginFlag: string | undefined, localUser: string): { user: string; host: string } {
  const at = destination.lastIndexOf('@');
  const host = (at >= 0 ? destination.slice(at + 1) : destination).toLowerCase();
  const fromDest = at >= 0 ? destination.slice(0, at) : '';
  const user = loginFlag || fromDest || localUser;
  if (!host) throw cliError('CLI_ERR_USAGE', `no machine name in ${JSON.stringify(destination)}`, 'Usage: mssh ssh [user@]host [-- command...]');
  if (!user) throw cliError('CLI_ERR_USAGE', 'no login user', 'Give one as user@host or with -l USER.');
  return { user, host };
}

/**
 * The remote command, as OpenSSH builds it: the words joined with spaces, interpreted by the remote
 * user's shell (so `mssh ssh h -- sh -c "'exit 7'"` works as it does with ssh).
 */
export function remoteCommand(words: string[]): string | null {
  return words.length > 0 ? words.join(' ') : null;
}

/** PTY when interactive (stdin is a terminal and no command) or -t; never with -T. */
export function wantPty(args: Pick<SshArgs, 'forceTty' | 'noTty'>, hasCommand: boolean, stdinIsTty: boolean): boolean {
  if (args.noTty) return false;
  if (args.forceTty) return true;
  return !hasCommand && stdinIsTty;
}

/** `mssh ssh [user@]host [-i KEY] [-t] [-T] [-l USER] [-- command...]` */
export async function ssh(ctx: CliContext, args: SshArgs): Promise<number> {
  if (args.forceTty && args.noTty) throw cliError('CLI_ERR_USAGE', '-t and -T contradict each other', 'Use -t to force a terminal or -T to disable it, not both.');
  const { user, host } = parseDestination(args.destination, args.login, ctx.config.localUser);
  assertHostName(host);
  let identityFiles: string[];
  if (args.identity !== undefined) {
    const file = resolve(args.identity);
    if (!existsSync(file)) throw cliError('CLI_ERR_KEY_FILE', `the key file ${file} does not exist`, 'Check the path given to -i.');
    identityFiles = [file];
  } else {
    identityFiles = defaultIdentityFiles(ctx.config.home);
  }
  const command = remoteCommand(args.command);
  const stdinIsTty = (ctx.io.stdin as Partial<ReadStream>).isTTY === true;
  const { client } = await openLoggedInRelay(ctx, { keepaliveMs: 15_000 });
  try {
    return await sshViaRelay({
      client,
      knownHosts: ctx.knownHosts,
      host,
      user,
      auth: { agentSocket: ctx.config.agentSocket, identityFiles, prompter: ctx.prompter },
      command,
      pty: wantPty(args, command !== null, stdinIsTty),
      term: ctx.config.term,
      env: ctx.config.localeEnv,
      stdin: ctx.io.stdin,
      stdout: ctx.io.stdout,
      stderr: ctx.io.stderr,
      debug: ctx.config.debug ? (line) => ctx.io.stderr.write(`debug: ${line}\n`) : undefined,
    });
  } finally {
    await client.close();
  }
}
