/**
 * One SSH "session" channel of the embedded server: pty-req, window-change, env, shell, exec, subsystem
 * (sftp), signal; agent and X11 forwarding are refused. Children run as the agent's own user, each one a
 * session leader (node-pty or spawn({ detached: true })), so teardown can kill everything they started.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { constants as osConstants } from 'node:os';
import type { Writable } from 'node:stream';
import * as pty from 'node-pty';
import type { Logger } from 'pino';
import type { PseudoTtyInfo, ServerChannel, Session, SFTPWrapper } from 'ssh2';
import type { KeyOptions } from './authorized-keys.js';
import { SessionSurvivorsError, signalSession, terminateSession } from './process-session.js';
import { serveBuiltinSftp } from './sftp-builtin.js';
import { guardStderrWindow } from './stderr-window.js';

export interface SessionContext {
  logger: Logger;
  shell: string;
  home: string;
  user: string;
  keyOptions: KeyOptions;
  /** Path of OpenSSH's sftp-server, or null to use the built-in SFTP server. */
  sftpServerPath: string | null;
  sessionId?: string;
  killGraceMs: number;
}

/** Signals a client may send (RFC 4254 section 6.10). */
const SSH_SIGNALS = new Set([
  'ABRT',
  'ALRM',
  'FPE',
  'HUP',
  'ILL',
  'INT',
  'KILL',
  'PIPE',
  'QUIT',
  'SEGV',
  'TERM',
  'USR1',
  'USR2',
]);
const DEFAULT_PATH = '/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin';
const MAX_ENV_VARS = 64;

/** Terminal sizes travel as uint32 but the kernel's winsize holds uint16: clamp, default when 0/invalid. */
function dim(v: unknown, fallback: number): number {
  const n = Number(v);
  return Number.isInteger(n) && n > 0 ? Math.min(n, 0xffff) : fallback;
}

function signalName(num: number): string | undefined {
  for (const [name, n] of Object.entries(osConstants.signals)) if (n === num) return name;
  return undefined;
}

/** Resolves once everything written to `w` so far has been handed to the SSH transport. */
function flushed(w: Writable): Promise<void> {
  return new Promise((resolve) => {
    if (!w.writable || w.writableEnded) return resolve();
    try {
      w.write(Buffer.alloc(0), () => resolve());
    } catch {
      resolve();
    }
  });
}

/**
 * Write `chunk`; when the channel's window is full, pause the source until it drains. After the channel
 * closed, output is dropped (state.dropped), so a dead client never makes buffers grow.
 */
function pump(
  dest: Writable,
  chunk: Buffer,
  pause: () => void,
  resume: () => void,
  state: { waiting: boolean; dropped: boolean },
): void {
  if (state.dropped || !dest.writable) return;
  if (!dest.write(chunk) && !state.waiting) {
    state.waiting = true;
    pause();
    dest.once('drain', () => {
      state.waiting = false;
      resume();
    });
  }
}

type Start = { kind: 'shell' } | { kind: 'exec'; command: string } | { kind: 'subsystem'; name: string };

export class SessionRunner {
  private readonly ctx: SessionContext;
  private readonly log: Logger;
  private ptyInfo: PseudoTtyInfo | undefined;
  private readonly clientEnv: Record<string, string> = {};
  private started = false;
  private leaderPid: number | undefined;
  private ptyProc: pty.IPty | undefined;
  /** Set once the leader exited and its output was drained: exit status sent (or being sent). */
  private finished = false;
  private closed = false;
  private terminating: Promise<void> | undefined;
  private resolveClosed!: () => void;
  /** Run once when the channel or connection is gone: stop feeding it, let the children's output drain. */
  private readonly onClosed: Array<() => void> = [];
  private readonly closedPromise = new Promise<void>((r) => (this.resolveClosed = r));

  constructor(session: Session, ctx: SessionContext) {
    this.ctx = ctx;
    this.log = ctx.logger;
    const guard =
      <A extends unknown[]>(what: string, fn: (...a: A) => void) =>
      (...a: A) => {
        try {
          fn(...a);
        } catch (e) {
          this.log.warn({ err: e, request: what }, 'session request failed');
        }
      };

    session.on(
      'pty',
      guard('pty', (accept: (() => void) | undefined, reject: (() => void) | undefined, info: PseudoTtyInfo) => {
        if (this.started || this.ctx.keyOptions.noPty || !info || !(info.cols >= 0) || !(info.rows >= 0))
          return reject?.();
        this.ptyInfo = info;
        accept?.();
      }),
    );
    session.on(
      'window-change',
      guard(
        'window-change',
        (
          accept: (() => void) | undefined,
          reject: (() => void) | undefined,
          info: { cols: number; rows: number; width: number; height: number },
        ) => {
          if (!this.ptyInfo || !info) return reject?.();
          this.ptyInfo = { ...this.ptyInfo, cols: info.cols, rows: info.rows, width: info.width, height: info.height };
          if (this.ptyProc && dim(info.cols, 0) > 0 && dim(info.rows, 0) > 0)
            this.ptyProc.resize(dim(info.cols, 80), dim(info.rows, 24));
          accept?.();
        },
      ),
    );
    session.on(
      'env',
      guard(
        'env',
        (accept: (() => void) | undefined, reject: (() => void) | undefined, info: { key: string; val: string }) => {
          const key = String(info?.key ?? '');
          const val = String(info?.val ?? '');
          const allowed = key === 'TERM' || key === 'LANG' || /^LC_[A-Z_]{1,32}$/.test(key);
          if (
            this.started ||
            !allowed ||
            val.length > 1024 ||
            val.includes('\0') ||
            Object.keys(this.clientEnv).length >= MAX_ENV_VARS
          ) {
            this.log.debug({ key }, 'env request refused');
            return reject?.();
          }
          this.clientEnv[key] = val;
          accept?.();
        },
      ),
    );
    session.on(
      'shell',
      guard('shell', (accept: () => ServerChannel, reject: (() => void) | undefined) =>
        this.start(accept, reject, { kind: 'shell' }),
      ),
    );
    session.on(
      'exec',
      guard('exec', (accept: () => ServerChannel, reject: (() => void) | undefined, info: { command: string }) =>
        this.start(accept, reject, { kind: 'exec', command: String(info?.command ?? '') }),
      ),
    );
    if (ctx.sftpServerPath === null && ctx.keyOptions.command === undefined) {
      session.on(
        'sftp',
        guard('sftp', (accept: () => SFTPWrapper, reject: (() => void) | undefined) =>
          this.startBuiltinSftp(accept, reject),
        ),
      );
    }
    session.on(
      'subsystem',
      guard('subsystem', (accept: () => ServerChannel, reject: (() => void) | undefined, info: { name: string }) =>
        this.start(accept, reject, { kind: 'subsystem', name: String(info?.name ?? '') }),
      ),
    );
    session.on(
      'signal',
      guard('signal', (accept: (() => void) | undefined, reject: (() => void) | undefined, info: { name: string }) => {
        const name = String(info?.name ?? '')
          .toUpperCase()
          .replace(/^SIG/, '');
        if (!SSH_SIGNALS.has(name) || this.leaderPid === undefined || this.finished) return reject?.();
        try {
          process.kill(-this.leaderPid, `SIG${name}` as NodeJS.Signals);
        } catch {
          return reject?.();
        }
        accept?.();
      }),
    );
    session.on(
      'auth-agent',
      guard('auth-agent', (_accept: unknown, reject: (() => void) | undefined) => {
        this.log.info('agent forwarding refused');
        reject?.();
      }),
    );
    session.on(
      'x11',
      guard('x11', (_accept: unknown, reject: (() => void) | undefined) => {
        this.log.info('X11 forwarding refused');
        reject?.();
      }),
    );
    session.on('close', () => void this.terminate());
  }

  private buildEnv(): Record<string, string> {
    const env: Record<string, string> = {
      HOME: this.ctx.home,
      USER: this.ctx.user,
      LOGNAME: this.ctx.user,
      SHELL: this.ctx.shell,
      PATH: process.env.PATH || DEFAULT_PATH,
    };
    for (const k of ['LANG', 'LC_ALL', 'TZ']) {
      const v = process.env[k];
      if (v) env[k] = v;
    }
    Object.assign(env, this.clientEnv);
    if (this.ptyInfo) env.TERM = this.clientEnv.TERM ?? (this.ptyInfo.term || 'xterm');
    if (this.ctx.sessionId) env.MSSH_SESSION_ID = this.ctx.sessionId;
    return env;
  }

  private start(accept: () => ServerChannel, reject: (() => void) | undefined, what: Start): void {
    if (this.started || this.closed) return reject?.();
    const { shell, keyOptions, sftpServerPath } = this.ctx;
    const env = this.buildEnv();
    let file: string;
    let args: string[];
    let usePty = this.ptyInfo !== undefined;
    if (keyOptions.command !== undefined) {
      env.SSH_ORIGINAL_COMMAND = what.kind === 'exec' ? what.command : what.kind === 'subsystem' ? what.name : '';
      file = shell;
      args = ['-c', keyOptions.command];
    } else if (what.kind === 'shell') {
      file = shell;
      args = ['-l'];
    } else if (what.kind === 'exec') {
      file = shell;
      args = ['-c', what.command];
    } else if (what.name === 'sftp' && sftpServerPath !== null) {
      file = sftpServerPath;
      args = [];
      usePty = false;
    } else {
      this.log.info({ subsystem: what.name.slice(0, 64) }, 'unknown subsystem refused');
      return reject?.();
    }
    const channel = accept();
    if (!channel) return;
    this.started = true;
    this.log.info(
      { request: what.kind, pty: usePty, subsystem: what.kind === 'subsystem' ? what.name : undefined },
      'session started',
    );
    this.log.debug({ command: what.kind === 'exec' ? what.command : undefined }, 'session command');
    channel.on('error', (e: Error) => this.log.debug({ err: e }, 'channel error'));
    guardStderrWindow(channel);
    if (usePty) this.runPty(channel, file, args, env);
    else this.runPipes(channel, file, args, env);
  }

  private runPty(channel: ServerChannel, file: string, args: string[], env: Record<string, string>): void {
    const info = this.ptyInfo!;
    let p: pty.IPty;
    try {
      p = pty.spawn(file, args, {
        name: env.TERM ?? 'xterm',
        cols: dim(info.cols, 80),
        rows: dim(info.rows, 24),
        cwd: this.ctx.home,
        env,
        encoding: null,
      });
    } catch (e) {
      this.log.warn({ err: e, file }, 'could not start the shell in a pty');
      channel.stderr.write(`mssh-agent: cannot start ${file}: ${(e as Error).message}\r\n`);
      void this.finish(channel, 127, undefined);
      return;
    }
    this.ptyProc = p;
    this.leaderPid = p.pid;
    const state = { waiting: false, dropped: false };
    this.onClosed.push(() => {
      state.dropped = true;
      p.resume();
    });
    p.onData((d: string | Buffer) => {
      const buf = typeof d === 'string' ? Buffer.from(d, 'utf8') : d;
      pump(
        channel,
        buf,
        () => p.pause(),
        () => p.resume(),
        state,
      );
    });
    channel.on('data', (d: Buffer) => {
      if (!this.finished && !this.closed) p.write(d);
    });
    p.onExit(({ exitCode, signal }) => {
      this.ptyProc = undefined;
      void this.finish(channel, exitCode, signal ? signalName(signal) : undefined);
    });
  }

  private runPipes(channel: ServerChannel, file: string, args: string[], env: Record<string, string>): void {
    let child: ChildProcess;
    try {
      child = spawn(file, args, { cwd: this.ctx.home, env, detached: true, stdio: ['pipe', 'pipe', 'pipe'] });
    } catch (e) {
      this.log.warn({ err: e, file }, 'could not start the command');
      channel.stderr.write(`mssh-agent: cannot start ${file}: ${(e as Error).message}\n`);
      void this.finish(channel, 127, undefined);
      return;
    }
    this.leaderPid = child.pid;
    let failedToStart = false;
    child.on('error', (e) => {
      if (child.pid !== undefined) return this.log.debug({ err: e }, 'child process error');
      failedToStart = true;
      this.log.warn({ err: e, file }, 'could not start the command');
      channel.stderr.write(`mssh-agent: cannot start ${file}: ${e.message}\n`);
      void this.finish(channel, 127, undefined);
    });
    const out = { waiting: false, dropped: false };
    const err = { waiting: false, dropped: false };
    this.onClosed.push(() => {
      out.dropped = err.dropped = true;
      child.stdout!.resume();
      child.stderr!.resume();
    });
    child.stdout!.on('data', (d: Buffer) =>
      pump(
        channel,
        d,
        () => child.stdout!.pause(),
        () => child.stdout!.resume(),
        out,
      ),
    );
    child.stderr!.on('data', (d: Buffer) =>
      pump(
        channel.stderr,
        d,
        () => child.stderr!.pause(),
        () => child.stderr!.resume(),
        err,
      ),
    );
    const stdin = child.stdin!;
    stdin.on('error', () => {
      // the command closed its stdin (EPIPE): discard whatever the client still sends
      channel.unpipe(stdin);
      channel.resume();
    });
    channel.pipe(stdin);
    child.once('close', (code, signal) => {
      if (failedToStart) return;
      void this.finish(channel, code ?? 0, signal ?? undefined);
    });
  }

  private startBuiltinSftp(accept: () => SFTPWrapper, reject: (() => void) | undefined): void {
    if (this.started || this.closed) return reject?.();
    const sftp = accept();
    if (!sftp) return;
    this.started = true;
    this.finished = true; // no child process: nothing to kill at teardown
    this.log.info({ request: 'sftp', builtin: true }, 'session started');
    serveBuiltinSftp(sftp, { home: this.ctx.home, logger: this.log });
  }

  /** The leader exited and its output was read: send exit status, close the channel, hang up leftovers. */
  private async finish(channel: ServerChannel, code: number, signal: string | undefined): Promise<void> {
    if (this.finished) return;
    this.finished = true;
    const pid = this.leaderPid;
    if (pid !== undefined)
      void signalSession(pid, 'SIGHUP').catch((e: unknown) =>
        this.log.warn({ err: e, pid }, 'could not hang up the processes the session left'),
      );
    await Promise.race([Promise.all([flushed(channel), flushed(channel.stderr)]), this.closedPromise]);
    if (this.closed) return;
    try {
      const sshSignal = signal?.replace(/^SIG/, '');
      if (sshSignal && SSH_SIGNALS.has(sshSignal)) channel.exit(sshSignal, false, '');
      else if (signal) channel.exit(128 + (osConstants.signals[signal as keyof typeof osConstants.signals] ?? 0));
      else channel.exit(code);
      channel.end();
    } catch (e) {
      this.log.debug({ err: e }, 'could not send the exit status');
    }
    this.log.info({ code, signal }, 'session ended');
  }

  /**
   * The channel or the connection is gone: if the session's processes are still running, SIGHUP the whole
   * process session, then SIGKILL whatever is left after the grace period. Idempotent.
   */
  terminate(): Promise<void> {
    this.markClosed();
    if (this.terminating) return this.terminating;
    const pid = this.leaderPid;
    // Not started, built-in sftp, or finished (leftovers already got SIGHUP): nothing to force.
    if (this.finished || pid === undefined) return Promise.resolve();
    this.log.info({ pid }, 'session closed while running: killing its processes');
    this.terminating = terminateSession(pid, this.ctx.killGraceMs).catch((e: unknown) =>
      this.reportSurvivors(e, pid, 'channel closed'),
    );
    return this.terminating;
  }

  private markClosed(): void {
    if (this.closed) return;
    this.closed = true;
    this.resolveClosed();
    for (const hook of this.onClosed.splice(0)) {
      try {
        hook();
      } catch (e) {
        this.log.debug({ err: e }, 'session cleanup step failed');
      }
    }
  }

  /** Kill the session's processes unconditionally (agent shutdown). */
  kill(): Promise<void> {
    const pid = this.leaderPid;
    this.markClosed();
    if (pid === undefined) return Promise.resolve();
    this.terminating ??= terminateSession(pid, this.ctx.killGraceMs).catch((e: unknown) =>
      this.reportSurvivors(e, pid, 'agent shutdown'),
    );
    return this.terminating;
  }

  /**
   * terminateSession already sent SIGHUP then SIGKILL: whatever is still alive cannot be killed harder from
   * here (a refused signal, or a process stuck in the kernel), so say which processes, loudly.
   */
  private reportSurvivors(e: unknown, pid: number, why: string): void {
    if (e instanceof SessionSurvivorsError) {
      this.log.error(
        { err: e, pid, why, survivors: e.survivors, refusedSignals: e.failures },
        'session processes still alive after SIGKILL',
      );
    } else {
      this.log.error({ err: e, pid, why }, 'could not kill the session processes');
    }
  }
}
