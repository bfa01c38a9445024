import { existsSync } from 'node:fs';
import { resolve } from 'node:path';
import type { ReadStream } from 'node:tty';
import { isValidHostName, sanitizeForTerminal } from '@mssh/protocol';
import { cliError, isCliError, type CliError, type CliErrorCode } from '../errors.js';
import type { RelayClient } from '../relay-client/relay-client.js';
import { identityFilesFor as keyOrder } from '../ssh/auth.js';
import { createForwards, parseForwards, type Forwards } from '../ssh/forwards.js';
import { assertHostName, sshViaRelay, type ConnectStep, type SshViaRelayOptions } from '../ssh/ssh-via-relay.js';
import { createConnectProgress } from '../terminal/connect-progress.js';
import { currentRelayUrl, debugLine, openLoggedInRelay, type CliContext } from './context.js';
import { didYouMean, suggestNames } from './suggest.js';

export interface SshArgs {
  /** `[user@]host` */
  destination: string;
  /** Remote command words (after --); empty for a shell. */
  command: string[];
  /** -i FILE, in order (repeatable, as in OpenSSH). */
  identities: string[];
  /** -t: force a PTY. */
  forceTty: boolean;
  /** -T: never a PTY. */
  noTty: boolean;
  /** -l USER */
  login?: string;
  /** -v: a progress line on stderr for each connection step. */
  verbose?: boolean;
  /** --connect-timeout SECONDS, as typed. */
  connectTimeout?: string;
  /** -o OPTION values, as typed (ConnectTimeout, ServerAliveInterval, ServerAliveCountMax are understood). */
  options?: string[];
  /** -L, -R, -D values, as typed. */
  local?: string[];
  remote?: string[];
  dynamic?: string[];
  /** -N: no remote command or shell, forwards only. */
  noCommand?: boolean;
  /** -A: forward the ssh-agent ($SSH_AUTH_SOCK). */
  agentForward?: boolean;
  /** -p PORT, as typed: accepted and ignored (the agent's target is fixed). */
  port?: string;
}

/** The suffix `mssh config ssh` gives machine names for OpenSSH (`ssh bob@laptop.mssh`). */
const MSSH_SUFFIX = '.mssh';

/**
 * `[user@]host` → user and host. -l wins over user@, as in OpenSSH; the default is the local user. A
 * `NAME.mssh` host (the OpenSSH alias of `mssh config ssh`) is the machine NAME.
 */
export function parseDestination(
  destination: string,
  loginFlag: string | undefined,
  localUser: string,
): { user: string; host: string } {
  const at = destination.lastIndexOf('@');
  let host = (at >= 0 ? destination.slice(at + 1) : destination).toLowerCase();
  if (host.endsWith(MSSH_SUFFIX) && host.length > MSSH_SUFFIX.length) host = host.slice(0, -MSSH_SUFFIX.length);
  const fromDest = at >= 0 ? destination.slice(0, at) : '';
  const user = loginFlag || fromDest || localUser;
  if (!host)
    throw cliError(
      'CLI_ERR_USAGE',
      `no machine name in ${JSON.stringify(destination)}`,
      'Usage: mssh ssh [user@]host [-- command...]',
    );
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

export const DEFAULT_CONNECT_TIMEOUT_S = 30;

/** What the -o options and --connect-timeout set. */
export interface SshTuning {
  connectTimeoutMs: number;
  /** -o ServerAliveInterval=SECONDS (0 = off); undefined keeps the default (15 s). */
  keepaliveIntervalMs?: number;
  /** -o ServerAliveCountMax=N; undefined keeps the default (3). */
  keepaliveCountMax?: number;
}

const UNDERSTOOD_OPTIONS = 'ConnectTimeout=SECONDS, ServerAliveInterval=SECONDS and ServerAliveCountMax=N';

function wholeNumber(value: string, from: string, min: number, max: number, example: string): number {
  const v = value.trim();
  if (!/^\d{1,6}$/.test(v) || Number(v) < min || Number(v) > max) {
    throw cliError(
      'CLI_ERR_USAGE',
      `${from} needs a whole number from ${min} to ${max}, not ${JSON.stringify(value.slice(0, 40))}`,
      `For example: ${example}`,
    );
  }
  return Number(v);
}

/**
 * The -o options OpenSSH users reach for, each as `Name=VALUE` or `Name VALUE` (names in any case, the first
 * of each wins as in OpenSSH): ConnectTimeout (else `--connect-timeout`, which wins; default 30 s),
 * ServerAliveInterval and ServerAliveCountMax (the SSH keepalive). Any other -o is refused.
 */
export function parseSshOptions(args: Pick<SshArgs, 'connectTimeout' | 'options'>): SshTuning {
  const seen = new Map<string, string>();
  for (const o of args.options ?? []) {
    const m = /^\s*([A-Za-z]+)\s*(?:=\s*|\s+)(.*)$/.exec(o);
    const name = m?.[1]?.toLowerCase();
    if (!m || !name || !['connecttimeout', 'serveraliveinterval', 'serveralivecountmax'].includes(name)) {
      throw cliError(
        'CLI_ERR_USAGE',
        `-o ${JSON.stringify(o.slice(0, 100))} is not understood: mssh ssh takes only -o ${UNDERSTOOD_OPTIONS}`,
        "For other OpenSSH options use OpenSSH itself: `ssh -o ProxyCommand='mssh proxy %n' ...` or `mssh config ssh --install`.",
      );
    }
    if (!seen.has(name)) seen.set(name, m[2]!);
  }
  const timeout = args.connectTimeout ?? seen.get('connecttimeout');
  let connectTimeoutMs = DEFAULT_CONNECT_TIMEOUT_S * 1000;
  if (timeout !== undefined) {
    const from = args.connectTimeout !== undefined ? '--connect-timeout' : '-o ConnectTimeout';
    const v = timeout.trim();
    if (!/^\d{1,4}$/.test(v) || Number(v) < 1 || Number(v) > 3600) {
      throw cliError(
        'CLI_ERR_USAGE',
        `${from} needs whole seconds from 1 to 3600, not ${JSON.stringify(timeout.slice(0, 40))}`,
        'For example: mssh ssh --connect-timeout 10 laptop',
      );
    }
    connectTimeoutMs = Number(v) * 1000;
  }
  const tuning: SshTuning = { connectTimeoutMs };
  const interval = seen.get('serveraliveinterval');
  if (interval !== undefined) {
    tuning.keepaliveIntervalMs =
      wholeNumber(interval, '-o ServerAliveInterval', 0, 86_400, 'mssh ssh -o ServerAliveInterval=30 laptop') * 1000;
  }
  const count = seen.get('serveralivecountmax');
  if (count !== undefined) {
    tuning.keepaliveCountMax = wholeNumber(
      count,
      '-o ServerAliveCountMax',
      1,
      1000,
      'mssh ssh -o ServerAliveCountMax=5 laptop',
    );
  }
  return tuning;
}

/** The connect timeout in ms (parseSshOptions' connectTimeoutMs). */
export function connectTimeoutMs(args: Pick<SshArgs, 'connectTimeout' | 'options'>): number {
  return parseSshOptions(args).connectTimeoutMs;
}

/** assertHostName, with `laptop` suggested for `laptop.example.com` (a DNS name is never a machine name). */
function checkHostName(host: string): void {
  try {
    assertHostName(host);
  } catch (e) {
    const first = host.split('.')[0] ?? '';
    if (isCliError(e) && first !== host && isValidHostName(first))
      throw cliError(e.code as CliErrorCode, e.message, `${didYouMean([first])} ${e.hint}`);
    throw e;
  }
}

/** The error again, with "Did you mean ...?" from the names the relay lists for this user (close ones only). */
async function withSuggestions(e: CliError, host: string, client: RelayClient): Promise<CliError> {
  let names: string[];
  try {
    names = (await client.listHosts()).map((h) => h.name);
  } catch {
    return e; // the original error is what matters
  }
  const hint = didYouMean(suggestNames(host, names));
  return hint ? cliError(e.code as CliErrorCode, e.message, `${hint} ${e.hint}`.trim(), e) : e;
}

const STEP_TEXT: Record<ConnectStep, (host: string) => string> = {
  'host-keys': (h) => `asking the relay for ${h}'s attested host keys`,
  tunnel: (h) => `opening the tunnel to ${h}`,
  handshake: (h) => `SSH handshake with ${h}`,
  authenticating: () => 'SSH handshake done, host key accepted; authenticating',
};

/**
 * The private keys to offer after the ssh-agent's: the -i files (which must exist), in order, then the
 * default ~/.ssh/id_* files.
 */
export function identityFilesFor(ctx: CliContext, identity: string | string[] | undefined): string[] {
  const given = (identity === undefined ? [] : Array.isArray(identity) ? identity : [identity]).map((i) => resolve(i));
  for (const file of given) {
    if (!existsSync(file))
      throw cliError('CLI_ERR_KEY_FILE', `the key file ${file} does not exist`, 'Check the path given to -i.');
  }
  return keyOrder(given, ctx.config.home);
}

/** -N: forwards only, until Ctrl-C (exit 255, as OpenSSH's "Killed by signal 2.") or the connection ends. */
function untilInterrupted(onSignal: () => void): { wait: Promise<number>; stop: () => void } {
  let handler: () => void = () => {};
  const wait = new Promise<number>((resolve) => {
    handler = () => {
      onSignal();
      resolve(255);
    };
    process.once('SIGINT', handler);
  });
  return { wait, stop: () => process.removeListener('SIGINT', handler) };
}

/** One machine reached through the logged-in relay, and what runs there once SSH is up. */
export interface MachineRun {
  host: string;
  user: string;
  identityFiles: string[];
  /** One limit from the relay connection until the SSH handshake is done. */
  limitMs: number;
  /** -o ServerAliveInterval / ServerAliveCountMax. */
  keepaliveIntervalMs?: number;
  keepaliveCountMax?: number;
  /** -A (already checked: there is an ssh-agent to forward). */
  agentForward?: boolean;
  /** -L/-R/-D: made with the progress line's -v detail; listening before the relay is contacted. */
  forwards?: (detail: (line: string) => void) => Forwards;
  /** -N: no session; the connection (and its forwards) lasts until Ctrl-C. */
  noCommand?: boolean;
  /** -v: each step on stderr. */
  verbose: boolean;
  /** A -v detail line printed before connecting (e.g. how the machine name was read). */
  note?: string;
  /** -v detail once the session (channel or `use` function) starts. */
  startedText?: string;
  /** What runs there: a shell or command channel (`mssh ssh`) or a function on the connection (`use`). */
  session: Omit<
    SshViaRelayOptions,
    'client' | 'knownHosts' | 'host' | 'user' | 'auth' | 'handshakeTimeoutMs' | 'progress' | 'debug'
  >;
}

/**
 * Connect to the logged-in relay, open the tunnel to one machine and run SSH there (host key rule, auth,
 * connect timeout, progress line, forwards, "did you mean" for unknown names). Shared by `mssh ssh` and
 * `mssh cp`.
 */
export async function runOnMachine(ctx: CliContext, m: MachineRun): Promise<number> {
  const { host, user, limitMs } = m;
  checkHostName(host);
  const progress = createConnectProgress(ctx.io.stderr, { verbose: m.verbose, host });
  if (m.note) progress.detail(m.note);
  // Local listeners first: a taken port fails before the relay is contacted and no session is opened.
  const forwards = m.forwards ? m.forwards((line) => progress.detail(line)) : null;
  const interrupted = m.noCommand ? untilInterrupted(() => progress.detail('Killed by signal 2 (Ctrl-C).')) : null;

  // One limit from now until the SSH handshake is done (prompts after it are not limited), like
  // OpenSSH's ConnectTimeout: relay, host keys, tunnel, the machine's sshd.
  let step = `connecting to the relay ${currentRelayUrl(ctx)}`;
  let client: RelayClient | null = null;
  let timer: NodeJS.Timeout | null = null;
  let timedOut = false;
  const expired = new Promise<never>((_, reject) => {
    timer = setTimeout(() => {
      timedOut = true;
      progress.done();
      client?.conn.session.destroy();
      reject(
        cliError(
          'CLI_ERR_CONNECT_TIMEOUT',
          `no SSH connection to ${host} within ${limitMs / 1000} s (still ${step})`,
          "The machine's agent or SSH server may be hung or overloaded; `mssh ls` shows whether it is online. --connect-timeout SECONDS waits longer.",
        ),
      );
    }, limitMs);
  });
  expired.catch(() => {});
  const stopTimer = () => {
    if (timer) clearTimeout(timer);
    timer = null;
  };
  const report = (text: string) => {
    step = text;
    progress.step(text);
  };
  try {
    await forwards?.listen();
    progress.step(step);
    const debug = debugLine(ctx);
    ({ client } = await openLoggedInRelay(ctx, {
      keepaliveMs: 15_000,
      timeoutMs: limitMs,
      // A retry on a new connection (relay draining or refusing) is shown with -v or MSSH_DEBUG=1 only.
      onRetry: (line) => {
        progress.detail(line);
        if (!m.verbose) debug?.(line);
      },
    }));
    if (timedOut) {
      // the limit passed while the relay connection was being set up
      await client.close();
      return await expired;
    }
    progress.detail(`relay connected (certificate ${client.conn.fingerprint})`);
    const onSessionStart = m.session.onSessionStart;
    const session = sshViaRelay({
      ...m.session,
      client,
      knownHosts: ctx.knownHosts,
      host,
      user,
      auth: { agentSocket: ctx.config.agentSocket, identityFiles: m.identityFiles, prompter: ctx.prompter },
      // ours fires first; runSsh's own limit stays as a backstop
      handshakeTimeoutMs: limitMs + 5_000,
      keepaliveIntervalMs: m.keepaliveIntervalMs,
      keepaliveCountMax: m.keepaliveCountMax,
      agentForward: m.agentForward,
      prepare: forwards ? (conn) => forwards.attach(conn) : m.session.prepare,
      use: interrupted ? () => interrupted.wait : m.session.use,
      progress: (s) => {
        report(STEP_TEXT[s](host));
        if (s === 'authenticating') {
          stopTimer();
          progress.done();
          progress.detail(`${STEP_TEXT[s](host)} as ${user}`);
        }
      },
      onSessionStart: () => {
        if (m.startedText) progress.detail(m.startedText);
        onSessionStart?.();
      },
      debug: ctx.config.debug ? (line) => ctx.io.stderr.write(`debug: ${line}\n`) : undefined,
    });
    session.catch(() => {});
    // -N: Ctrl-C ends it at any point, also while still connecting.
    return await Promise.race(interrupted ? [session, expired, interrupted.wait] : [session, expired]);
  } catch (e) {
    if (isCliError(e) && client && (e.code === 'CLI_ERR_UNKNOWN_HOST' || e.code === 'CLI_ERR_NO_GRANT'))
      throw await withSuggestions(e, host, client);
    throw e;
  } finally {
    stopTimer();
    interrupted?.stop();
    forwards?.close();
    progress.done();
    if (client) await client.close();
  }
}

/**
 * `mssh ssh [user@]host [-i KEY]... [-t|-T] [-l USER] [-v] [-N] [-A] [-L|-R|-D SPEC]... [-p PORT]
 * [--connect-timeout S] [-o NAME=VALUE]... [-- command...]`
 */
export async function ssh(ctx: CliContext, args: SshArgs): Promise<number> {
  if (args.forceTty && args.noTty)
    throw cliError(
      'CLI_ERR_USAGE',
      '-t and -T contradict each other',
      'Use -t to force a terminal or -T to disable it, not both.',
    );
  if (args.noCommand && args.command.length > 0)
    throw cliError(
      'CLI_ERR_USAGE',
      '-N runs no remote command, but one was given',
      'Drop the command to only forward ports, or drop -N to run it.',
    );
  const tuning = parseSshOptions(args);
  const specs = parseForwards(args);
  const { user, host } = parseDestination(args.destination, args.login, ctx.config.localUser);
  checkHostName(host);
  const identityFiles = identityFilesFor(ctx, args.identities);
  const warn = (line: string) => ctx.io.stderr.write(`mssh: ${line}\n`);
  if (args.port !== undefined)
    warn(
      `-p ${sanitizeForTerminal(args.port).slice(0, 20)} ignored: mssh reaches the SSH server that the machine's agent is set up for (its --target)`,
    );
  let agentForward = args.agentForward === true;
  if (agentForward && !(ctx.config.agentSocket && existsSync(ctx.config.agentSocket))) {
    warn(
      ctx.config.agentSocket
        ? `-A ignored: SSH_AUTH_SOCK (${sanitizeForTerminal(ctx.config.agentSocket)}) does not exist, so there is no ssh-agent to forward`
        : '-A ignored: SSH_AUTH_SOCK is not set, so there is no ssh-agent to forward (start one: eval "$(ssh-agent)"; ssh-add)',
    );
    agentForward = false;
  }
  const command = remoteCommand(args.command);
  const stdinIsTty = (ctx.io.stdin as Partial<ReadStream>).isTTY === true;
  return runOnMachine(ctx, {
    host,
    user,
    identityFiles,
    limitMs: tuning.connectTimeoutMs,
    keepaliveIntervalMs: tuning.keepaliveIntervalMs,
    keepaliveCountMax: tuning.keepaliveCountMax,
    agentForward,
    forwards:
      specs.length > 0
        ? (detail) => createForwards({ specs, host, stderr: ctx.io.stderr, verbose: detail })
        : undefined,
    noCommand: args.noCommand === true,
    verbose: args.verbose === true,
    note: args.destination.toLowerCase().endsWith(MSSH_SUFFIX)
      ? `${host}${MSSH_SUFFIX} is the OpenSSH name of the machine ${host}`
      : undefined,
    startedText: command === null ? 'session started (shell)' : 'session started (command)',
    session: {
      command,
      pty: wantPty(args, command !== null, stdinIsTty),
      term: ctx.config.term,
      env: ctx.config.localeEnv,
      stdin: ctx.io.stdin,
      stdout: ctx.io.stdout,
      stderr: ctx.io.stderr,
    },
  });
}
