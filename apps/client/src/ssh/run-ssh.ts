/**
 * One SSH session with the embedded ssh2 client over any Duplex: a relay tunnel stream in production, a
 * plain TCP socket in tests. The SSH session is end to end: the relay only carries its ciphertext.
 *
 *   stdin ──▶ channel ──▶ sock (tunnel) ──▶ relay ──▶ agent ──▶ sshd
 *   stdout ◀── channel ◀── ...                                  (stderr likewise)
 *
 * Resolves with the remote exit status (a signal gives 128 + its number); rejects with a CliError when
 * the session could not be established or was lost (callers exit 255, like OpenSSH). Callable from code:
 * the full-screen picker reuses it with its own streams and prompter.
 */
import { execFileSync } from 'node:child_process';
import { constants as osConstants } from 'node:os';
import type { Duplex, Readable, Writable } from 'node:stream';
import type { ReadStream, WriteStream } from 'node:tty';
import type { ClientChannel, ConnectConfig, ExecOptions, PseudoTtyOptions, ShellOptions } from 'ssh2';
import { loadSsh2 } from './ssh2-lazy.js';
import { sanitizeTextBlock } from '@mssh/protocol';
import { abortStream } from '@mssh/protocol/transport';
import { cliError, isCliError, type CliError } from '../errors.js';
import { createAuthHandler, type AuthState, type SshAuthOptions } from './auth.js';
import type { HostKeyCheck } from './host-key-check.js';

export type { HostKeyCheck } from './host-key-check.js';
export type { SshAuthOptions } from './auth.js';

export interface RunSshOptions {
  /** The byte stream to the SSH server (tunnel stream, TCP socket...). */
  sock: Duplex;
  /** Machine name, for messages and prompts. */
  host: string;
  /** Login user on the machine. */
  user: string;
  hostKey: HostKeyCheck;
  auth: SshAuthOptions;
  /** Remote command, or null for a login shell. */
  command: string | null;
  /** Ask for a pseudo-terminal (raw mode locally when stdin is a TTY, window size forwarded). */
  pty: boolean;
  /** TERM for the PTY. Default xterm-256color. */
  term?: string;
  /** Environment to send (servers accept what their AcceptEnv allows, e.g. LANG, LC_*). */
  env?: Record<string, string>;
  stdin: Readable;
  stdout: Writable;
  stderr: Writable;
  /** Limit for the SSH handshake (key exchange); prompts after it are not limited. Default 30 s. */
  handshakeTimeoutMs?: number;
  /** SSH keepalive interval (keepaliveCountMax missed = dead). Default 15 s; 0 = off. */
  keepaliveIntervalMs?: number;
  /** Unanswered keepalives before the connection counts as dead (OpenSSH's ServerAliveCountMax). Default 3. */
  keepaliveCountMax?: number;
  /** -A: offer the ssh-agent at `auth.agentSocket` to the session (OpenSSH's ForwardAgent). */
  agentForward?: boolean;
  /**
   * Run on the authenticated connection before the session channel (or `use`) starts: port forwards.
   * A rejection ends runSsh with its error (a CliError as is) before any session is opened.
   */
  prepare?: (conn: SshConnection) => Promise<void>;
  /**
   * Called once the session channel is open, just before the local terminal is put in raw mode and
   * stdin is piped to the channel (after every prompt). The full-screen picker hands the terminal over here.
   */
  onSessionStart?: () => void;
  /** Called once the SSH key exchange is done (host key accepted), before authentication and its prompts. */
  onHandshake?: () => void;
  /**
   * Why the byte stream was ended on purpose, if its far end said so (the relay resets a tunnel with its
   * own code when an admin disables the account or changes the role): printed instead of "connection lost".
   */
  lostReason?: () => CliError | null;
  /** Receives ssh2's protocol log lines (handshake, auth, channel requests), for `MSSH_DEBUG=1`. */
  debug?: (line: string) => void;
  /**
   * Instead of a shell or command channel, run this on the authenticated connection (SFTP for `mssh cp`,
   * for example); its result is runSsh's. A CliError it throws is passed on; any other error becomes
   * CLI_ERR_SSH_CONNECTION. The connection is ended when it settles. `command`, `pty` and stdin are then unused.
   */
  use?: (conn: SshConnection) => Promise<number>;
  /** Told the remote command's exit status or signal name (e.g. `TERM`), as the server sent it. */
  onExit?: (code: number | null, signal: string | null) => void;
}

/** An authenticated ssh2 client connection, as `RunSshOptions.use` receives it. */
export type SshConnection = InstanceType<Awaited<ReturnType<typeof loadSsh2>>['Client']>;

type SshError = Error & { level?: string };

/** Remote exit status → local exit code: status as is, signal → 128 + signum (unknown signal → 255). */
export function exitCodeFor(code: number | null | undefined, signal: string | null | undefined): number | null {
  if (typeof code === 'number') return code & 0xff;
  if (signal) {
    const num = (osConstants.signals as Record<string, number | undefined>)[`SIG${signal.replace(/^SIG/, '')}`];
    return num ? 128 + num : 255;
  }
  return null;
}

/**
 * Node's raw mode (libuv) leaves output post-processing on, so a bare "\n" from a remote full-screen
 * program (curses' cursor-down) would come out as CR LF and break its screen. Turn OPOST off as OpenSSH's
 * raw mode does; setRawMode(false) restores the terminal's original settings, OPOST included.
 */
function disableOutputProcessing(tty: Partial<ReadStream>): void {
  const fd = (tty as { fd?: unknown }).fd;
  if (typeof fd !== 'number') return;
  try {
    execFileSync('stty', ['-opost'], { stdio: [fd, 'ignore', 'ignore'], timeout: 2_000 });
  } catch {
    // no stty: output keeps CR LF translation, which only affects some full-screen programs
  }
}

function windowOf(stdout: Writable): { rows: number; cols: number } {
  const t = stdout as Partial<WriteStream>;
  if (t.isTTY && typeof t.columns === 'number' && typeof t.rows === 'number' && t.columns > 0 && t.rows > 0) {
    return { rows: t.rows, cols: t.columns };
  }
  return { rows: 24, cols: 80 };
}

export async function runSsh(opts: RunSshOptions): Promise<number> {
  const { Client } = await loadSsh2();
  return runSshWith(new Client(), opts);
}

function runSshWith(client: SshConnection, opts: RunSshOptions): Promise<number> {
  const { host, user, stdin, stdout, stderr } = opts;
  const auth: AuthState = { tried: [], serverMethods: null, fatal: null };
  const handshakeTimeoutMs = opts.handshakeTimeoutMs ?? 30_000;
  let hostKeyError: CliError | null = null;
  let lastError: SshError | null = null;
  let handshakeTimedOut = false;
  let ready = false;
  let channel: ClientChannel | null = null;
  let exit: { code: number | null; signal: string | null } | null = null;
  let agentForward = opts.agentForward === true && !!opts.auth.agentSocket;

  // Terminal state to restore on every exit path.
  const ttyIn = stdin as Partial<ReadStream>;
  let rawSet = false;
  const onResize = () => {
    const w = windowOf(stdout);
    channel?.setWindow(w.rows, w.cols, 0, 0);
  };
  const restoreTerminal = () => {
    if (rawSet) {
      rawSet = false;
      try {
        ttyIn.setRawMode?.(false);
      } catch {
        // terminal already gone
      }
    }
    stdout.removeListener('resize', onResize);
  };

  let onStdoutError: (() => void) | null = null;
  return new Promise<number>((resolve, reject) => {
    let settled = false;
    const handshakeTimer = setTimeout(() => {
      handshakeTimedOut = true;
      // An HTTP/2 tunnel is cancelled (RST_STREAM CANCEL), so the relay ends the session at once.
      abortStream(opts.sock);
    }, handshakeTimeoutMs);

    const settle = (err: CliError | null, code = 0) => {
      if (settled) return;
      settled = true;
      clearTimeout(handshakeTimer);
      restoreTerminal();
      process.removeListener('exit', restoreTerminal);
      if (onStdoutError) stdout.removeListener('error', onStdoutError);
      if (channel) stdin.unpipe(channel);
      stdin.pause();
      client.end();
      if (err) reject(err);
      else resolve(code);
    };

    const failure = (): CliError => {
      if (hostKeyError) return hostKeyError;
      const lost = opts.lostReason?.();
      if (lost) {
        if (opts.pty && channel && (stderr as Partial<WriteStream>).isTTY) stderr.write('\r\n');
        return lost;
      }
      if (auth.fatal) return auth.fatal;
      if (handshakeTimedOut) {
        return cliError(
          'CLI_ERR_SSH_CONNECTION',
          `no SSH handshake with ${host} within ${Math.round(handshakeTimeoutMs / 1000)} s`,
          "The machine's SSH server may be hung or overloaded; try again.",
        );
      }
      if (lastError?.level === 'client-authentication') {
        const offered = auth.serverMethods?.length ? auth.serverMethods.join(',') : 'unknown';
        const tried = auth.tried.length ? auth.tried.join(', ') : 'nothing';
        return cliError(
          'CLI_ERR_SSH_AUTH_FAILED',
          `${user}@${host}: permission denied (server accepts ${offered}; tried ${tried})`,
          'Check the login user (user@host or -l) and the key (-i, or load it into ssh-agent); password prompts need a terminal.',
        );
      }
      if (ready) {
        // The remote prompt may still be on the screen: start the message on a line of its own.
        if (opts.pty && channel && (stderr as Partial<WriteStream>).isTTY) stderr.write('\r\n');
        return cliError(
          'CLI_ERR_SSH_CONNECTION',
          `the connection to ${host} was lost${lastError ? ` (${lastError.message})` : ''}`,
          'Check `mssh ls`: the machine or its agent may have gone offline.',
          lastError ?? undefined,
        );
      }
      if (lastError) {
        return cliError(
          'CLI_ERR_SSH_CONNECTION',
          `SSH connection to ${host} failed: ${lastError.message}`,
          "Check that the machine's SSH server runs (the agent's --target).",
          lastError,
        );
      }
      return cliError(
        'CLI_ERR_SSH_CONNECTION',
        `${host} closed the connection before login`,
        "Check that the machine's SSH server runs (the agent's --target).",
      );
    };

    const startChannel = () => {
      const w = windowOf(stdout);
      const ptyOpts: PseudoTtyOptions = {
        term: opts.term ?? 'xterm-256color',
        rows: w.rows,
        cols: w.cols,
        width: 0,
        height: 0,
      };
      const env = opts.env && Object.keys(opts.env).length > 0 ? opts.env : undefined;
      const onChannel = (err: Error | undefined, ch: ClientChannel) => {
        if (err) {
          lastError = Object.assign(new Error(`the server refused the session (${err.message})`), { level: 'channel' });
          if (agentForward && /agent forwarding/i.test(err.message)) {
            // OpenSSH asks without wanting a reply and goes on; ssh2 closes the channel: open another without it.
            agentForward = false;
            stderr.write(
              `mssh: ${host}'s SSH server refused agent forwarding (AllowAgentForwarding); going on without it\n`,
            );
            startChannel();
            return;
          }
          settle(cliError('CLI_ERR_SSH_CONNECTION', `${host} refused to start the session: ${err.message}`, ''));
          return;
        }
        channel = ch;
        opts.onSessionStart?.();
        ch.on('exit', (code: number | null, signal?: string) => {
          exit = { code: typeof code === 'number' ? code : null, signal: signal ?? null };
          opts.onExit?.(exit.code, exit.signal);
        });
        let stderrDone = false;
        let closed = false;
        const maybeDone = () => {
          if (!closed || !stderrDone) return;
          const code = exitCodeFor(exit?.code, exit?.signal);
          if (code === null) {
            settle(
              opts.lostReason?.() ??
                cliError('CLI_ERR_SSH_CONNECTION', `the session on ${host} ended without an exit status`, ''),
            );
          } else {
            settle(null, code);
          }
        };
        ch.stderr.once('end', () => {
          stderrDone = true;
          maybeDone();
        });
        ch.once('close', () => {
          closed = true;
          if (!ch.stderr.readable || ch.stderr.readableEnded) stderrDone = true;
          maybeDone();
        });
        // The reader of our stdout went away (`mssh ssh h -- cat big | head -1`): end like OpenSSH does
        // on SIGPIPE, instead of leaving the remote blocked on a full window.
        onStdoutError = () => {
          ch.unpipe(stdout);
          ch.close();
          settle(null, 128 + (osConstants.signals.SIGPIPE ?? 13));
        };
        stdout.once('error', onStdoutError);
        ch.pipe(stdout, { end: false });
        ch.stderr.pipe(stderr, { end: false });
        if (opts.pty) {
          if (ttyIn.isTTY && typeof ttyIn.setRawMode === 'function') {
            ttyIn.setRawMode(true);
            rawSet = true;
            process.once('exit', restoreTerminal);
            disableOutputProcessing(ttyIn);
          }
          if ((stdout as Partial<WriteStream>).isTTY) stdout.on('resize', onResize);
        }
        if (opts.pty) {
          // With a PTY, input goes through the remote terminal's line discipline, and a channel EOF
          // right after the session starts makes OpenSSH's sshd hang the session (measured: also with
          // `ssh -tt host cmd < /dev/null`). End of input is what a person types instead: Ctrl-D.
          stdin.pipe(ch, { end: false });
          stdin.once('end', () => {
            if (ch.writable) ch.write(Buffer.from([0x04]));
          });
        } else {
          // Binary-safe; EOF on stdin sends EOF on the channel (channel.end()).
          stdin.pipe(ch);
        }
      };
      // ssh2 reads `agentForward` from these options too (not in its types): auth-agent-req on this channel.
      if (opts.command === null) {
        client.shell(opts.pty ? ptyOpts : false, { env, agentForward } as ShellOptions, onChannel);
      } else {
        client.exec(opts.command, { pty: opts.pty ? ptyOpts : undefined, env, agentForward } as ExecOptions, onChannel);
      }
    };

    client.on('handshake', () => {
      clearTimeout(handshakeTimer);
      opts.onHandshake?.();
    });
    client.on('banner', (msg: string) => {
      stderr.write(sanitizeTextBlock(msg.replace(/\r\n/g, '\n')).replace(/([^\n])$/, '$1\n'));
    });
    client.on('error', (e: SshError) => {
      if (e.level === 'agent') return; // ssh-agent unusable: the next method is tried
      lastError ??= e;
    });
    const failedWith = (e: unknown) =>
      settle(
        isCliError(e)
          ? e
          : (opts.lostReason?.() ?? cliError('CLI_ERR_SSH_CONNECTION', `${host}: ${(e as Error).message}`, '', e)),
      );
    client.on('ready', () => {
      ready = true;
      lastError = null;
      const prepared = opts.prepare ? opts.prepare(client) : Promise.resolve();
      prepared.then(() => {
        if (settled) return;
        if (opts.use) opts.use(client).then((code) => settle(null, code), failedWith);
        else startChannel();
      }, failedWith);
    });
    client.on('close', () => {
      if (!settled) settle(failure());
    });

    const config: ConnectConfig = {
      sock: opts.sock,
      username: user,
      readyTimeout: 0,
      keepaliveInterval: opts.keepaliveIntervalMs ?? 15_000,
      keepaliveCountMax: opts.keepaliveCountMax ?? 3,
      debug: opts.debug,
      authHandler: createAuthHandler(user, host, opts.auth, auth),
      hostVerifier: (key: Buffer, verify: (ok: boolean) => void) => {
        Promise.resolve()
          .then(() => opts.hostKey.verify(key))
          .then(
            () => verify(true),
            (e: unknown) => {
              hostKeyError = isCliError(e)
                ? e
                : cliError(
                    'CLI_ERR_HOST_KEY_NOT_ATTESTED',
                    `cannot verify the host key of ${host}: ${(e as Error).message}`,
                    '',
                    e,
                  );
              verify(false);
            },
          );
      },
    };
    if (agentForward) {
      // The session channel asks for agent forwarding (startChannel); ssh2 serves the server's
      // auth-agent@openssh.com channels from this socket.
      config.agent = opts.auth.agentSocket!;
    }
    if (opts.hostKey.algorithms) {
      config.algorithms = {
        serverHostKey: opts.hostKey.algorithms as NonNullable<ConnectConfig['algorithms']>['serverHostKey'],
      };
    }
    try {
      client.connect(config);
    } catch (e) {
      settle(cliError('CLI_ERR_SSH_CONNECTION', `cannot start SSH to ${host}: ${(e as Error).message}`, '', e));
    }
  });
}
