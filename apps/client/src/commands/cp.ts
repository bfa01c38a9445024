/**
 * `mssh cp [-r] [-p] [-q] SRC... DEST`: copy files between this machine and an enrolled one over SFTP
 * (the SFTP subsystem of the machine's SSH server, reached through the relay tunnel like `mssh ssh`), and
 * `mssh cp FILE... SELECTOR:PATH`: push to many machines, one relay connection, one tunnel each.
 *
 *   local files ──fastPut──▶ SFTP channel ──▶ tunnel ──▶ relay ──▶ agent ──▶ sshd's sftp-server
 *   local files ◀──fastGet── ...
 *
 * Operands and selectors: cp/cp-args.ts. What is copied where, temporary names, symlinks: cp/copy-engine.ts.
 */
import { randomBytes } from 'node:crypto';
import { Writable } from 'node:stream';
import type { SFTPWrapper } from 'ssh2';
import { CliError, cliError, isCliError } from '../errors.js';
import { planCp, CP_USAGE, type CpArgs, type CpPlan } from '../cp/cp-args.js';
import { localError, localSide, remoteError, remoteSide, isSftpStatus } from '../cp/copy-sides.js';
import {
  checkSpace,
  cpInterrupted,
  formatBytes,
  planCopy,
  runCopy,
  type CopyJob,
  type Transfer,
} from '../cp/copy-engine.js';
import type { SshConnection } from '../ssh/run-ssh.js';
import { sshViaRelay } from '../ssh/ssh-via-relay.js';
import { createTransferProgress, type TransferProgress } from '../terminal/transfer-progress.js';
import { classifyError, fanOut, formatSummary, MANY_EXIT, runExitCode, type MachineResult } from '../many/fan-out.js';
import type { RelayClient } from '../relay-client/relay-client.js';
import { DEFAULT_PARALLEL } from './exec.js';
import { selectMachines } from '../many/select.js';
import { openLoggedInRelay, type CliContext } from './context.js';
import { connectTimeoutMs, identityFilesFor, runOnMachine } from './ssh.js';

/** Where output nobody should see goes (banners with -q, and in a push). */
const discard = new Writable({ write: (_chunk, _enc, cb) => cb() });

/** Requests in flight per file and their size: 2 MiB in flight, enough to fill a fast tunnel. */
const SFTP_CONCURRENCY = 32;
const SFTP_CHUNK = 64 * 1024;

function openSftp(conn: SshConnection): Promise<SFTPWrapper> {
  return new Promise((resolve, reject) => conn.sftp((err, sftp) => (err ? reject(err) : resolve(sftp))));
}

/** The SFTP subsystem refused (no sftp-server on the machine): a coded error with the fix. */
function noSftp(host: string, e: unknown): Error {
  return cliError(
    'CLI_ERR_CP_FAILED',
    `${host} refused the SFTP subsystem (${(e as Error).message})`,
    "mssh cp needs SFTP on the machine's SSH server (OpenSSH: `Subsystem sftp ...` in sshd_config).",
    e,
  );
}

/** fastPut / fastGet with progress, failures mapped to the side that failed. */
function sftpTransfer(sftp: SFTPWrapper, host: string, direction: 'upload' | 'download'): Transfer {
  return (src, tmp, target, onBytes, signal) =>
    new Promise<void>((resolve, reject) => {
      // Interrupted, the promise must settle once the transfer can no longer create `tmp` (runCopy removes
      // it then). A download closes the SFTP channel: every pending request fails, and fastGet's local open
      // either came before (and is closed) or never happens. An upload's channel is still needed to remove
      // the remote `tmp`, so it settles after the first write has landed (the remote open is done by then).
      let settledYet = false;
      let wrote = false;
      const settle = (err?: Error) => {
        if (settledYet) return;
        settledYet = true;
        signal?.removeEventListener('abort', stop);
        if (err) reject(err);
        else resolve();
      };
      const stop = () => {
        if (direction === 'download') sftp.end();
        else if (wrote) settle(cpInterrupted());
      };
      signal?.addEventListener('abort', stop, { once: true });
      const opts = {
        concurrency: SFTP_CONCURRENCY,
        chunkSize: SFTP_CHUNK,
        step: (total: number) => {
          wrote = true;
          if (signal?.aborted && direction === 'upload') settle(cpInterrupted());
          else onBytes(total);
        },
      };
      const done = (err: Error | null | undefined) => {
        if (!err) return settle();
        // SFTP status errors carry a number; local file system errors a string (ENOSPC...).
        const remotePath = direction === 'upload' ? target : src;
        const localPath = direction === 'upload' ? src : target;
        settle(
          isSftpStatus(err)
            ? remoteError(`${host}:${remotePath}`, err, direction === 'upload' ? 'writing' : 'reading')
            : typeof (err as NodeJS.ErrnoException).code === 'string'
              ? localError(localPath, err, direction === 'upload' ? 'reading' : 'writing')
              : err,
        );
      };
      if (direction === 'upload') sftp.fastPut(src, tmp, opts, done);
      else sftp.fastGet(src, tmp, opts, done);
    });
}

interface CopyRun {
  files: number;
  bytes: number;
  skipped: string[];
}

/** Plan, check and run one copy on an open SFTP session. `started()` is called once bytes start moving. */
async function copyOver(
  sftp: SFTPWrapper,
  host: string,
  plan: Extract<CpPlan, { mode: 'upload' | 'download' | 'push' }>,
  args: CpArgs,
  hooks: {
    signal?: AbortSignal;
    planned?: (bytes: number) => void;
    started?: () => void;
    onProgress?: (done: number, file: string) => void;
  },
): Promise<CopyRun> {
  const remote = remoteSide(sftp, host);
  const local = localSide();
  const upload = plan.mode !== 'download';
  const job: CopyJob = {
    src: upload ? local : remote,
    dst: upload ? remote : local,
    sources: plan.sources,
    dest: plan.dest,
    recursive: args.recursive,
    preserve: args.preserve,
  };
  const copy = await planCopy(job);
  await checkSpace(job.dst, job.dest, copy);
  hooks.planned?.(copy.bytes);
  hooks.started?.();
  await runCopy(job, copy, {
    transfer: sftpTransfer(sftp, host, upload ? 'upload' : 'download'),
    onProgress: hooks.onProgress,
    signal: hooks.signal,
  });
  return { files: copy.files, bytes: copy.bytes, skipped: copy.skipped };
}

function summaryLine(r: CopyRun, ms: number): string {
  const secs = Math.max(ms, 1) / 1000;
  return `copied ${r.files} file${r.files === 1 ? '' : 's'}, ${formatBytes(r.bytes)} in ${secs.toFixed(1)} s (${formatBytes(Math.round(r.bytes / secs))}/s)`;
}

function warnSkipped(ctx: CliContext, args: CpArgs, skipped: string[], host?: string): void {
  if (args.quiet) return;
  for (const s of skipped)
    ctx.io.stderr.write(
      `mssh: skipped ${host ? `${host}: ` : ''}${s} (a symlink or special file; only files and directories are copied)\n`,
    );
}

/** Calls `f` when `signal` fires (at once if it has); returns the unsubscribe. */
function onAbort(signal: AbortSignal | undefined, f: () => void): () => void {
  if (!signal) return () => {};
  if (signal.aborted) {
    f();
    return () => {};
  }
  signal.addEventListener('abort', f, { once: true });
  return () => signal.removeEventListener('abort', f);
}

/**
 * `mssh cp [-r] [-p] [-q] [-l USER] [-i KEY] SRC... DEST`; `interrupt` fires on Ctrl-C (main.ts maps SIGINT
 * to it): the file being copied is removed, then the command ends with CLI_ERR_INTERRUPTED (exit 130).
 */
export async function cp(ctx: CliContext, args: CpArgs, opts: { interrupt?: AbortSignal } = {}): Promise<number> {
  const plan = planCp(args, ctx.config.localUser);
  if (plan.mode === 'push') return cpPush(ctx, args, plan, opts.interrupt);
  if (args.parallel !== undefined || args.timeout !== undefined)
    throw cliError(
      'CLI_ERR_USAGE',
      '--parallel and --timeout are for pushing to several machines (SELECTOR:PATH)',
      'Drop them for a copy with one machine.',
    );
  const limitMs = connectTimeoutMs({ connectTimeout: args.connectTimeout });
  const identityFiles = identityFilesFor(ctx, args.identity);
  const ac = new AbortController();
  let copying = false;
  let early: (e: Error) => void = () => {};
  const earlyStop = new Promise<never>((_, reject) => (early = reject));
  earlyStop.catch(() => {});
  const removeSigint = onAbort(opts.interrupt, () => {
    ac.abort();
    // Nothing written yet: stop at once. While copying, runCopy removes its temporary file first.
    if (!copying) early(cpInterrupted());
  });
  const t0 = Date.now();
  let progress: TransferProgress | null = null;
  let result: CopyRun | null = null;
  try {
    const session = runOnMachine(ctx, {
      host: plan.host,
      user: plan.user,
      identityFiles,
      limitMs,
      verbose: args.verbose === true,
      startedText: 'SFTP session started',
      session: {
        command: null,
        pty: false,
        stdin: ctx.io.stdin,
        stdout: ctx.io.stdout,
        // The server's login banner is shown like scp does, except with -q.
        stderr: args.quiet ? discard : ctx.io.stderr,
        use: async (conn) => {
          const sftp = await openSftp(conn).catch((e: unknown) => {
            throw noSftp(plan.host, e);
          });
          result = await copyOver(sftp, plan.host, plan, args, {
            signal: ac.signal,
            planned: (bytes) => (progress = createTransferProgress(ctx.io.stderr, { total: bytes, quiet: args.quiet })),
            started: () => (copying = true),
            onProgress: (done, file) => progress?.update(done, file),
          });
          sftp.end();
          return 0;
        },
      },
    });
    session.catch(() => {});
    const code = await Promise.race([session, earlyStop]);
    const r = result as CopyRun | null;
    (progress as TransferProgress | null)?.finish(r ? summaryLine(r, Date.now() - t0) : undefined);
    if (r) warnSkipped(ctx, args, r.skipped);
    return code;
  } finally {
    (progress as TransferProgress | null)?.finish();
    removeSigint();
  }
}

/** A relay that cannot be reached before any machine was tried: exit 255, like a machine that could not be. */
function unreachedRelay(e: unknown): unknown {
  if (isCliError(e) && classifyError(e).outcome === 'unreachable')
    return new CliError(e.code, e.message, e.hint, { cause: e, exitCode: MANY_EXIT.UNREACHED });
  return e;
}

function positiveInt(value: string | undefined, flag: string, max: number, dflt: number | null): number | null {
  if (value === undefined) return dflt;
  const v = value.trim();
  if (!/^\d{1,6}$/.test(v) || Number(v) < 1 || Number(v) > max)
    throw cliError(
      'CLI_ERR_USAGE',
      `${flag} needs a whole number from 1 to ${max}, not ${JSON.stringify(value.slice(0, 40))}`,
      CP_USAGE,
    );
  return Number(v);
}

/** `mssh cp FILE... SELECTOR:PATH`: the same copy on every selected machine, through one relay connection. */
async function cpPush(
  ctx: CliContext,
  args: CpArgs,
  plan: Extract<CpPlan, { mode: 'push' }>,
  interrupt: AbortSignal | undefined,
): Promise<number> {
  const parallel = positiveInt(args.parallel, '--parallel', 1024, DEFAULT_PARALLEL)!;
  const timeoutS = positiveInt(args.timeout, '--timeout', 604_800, null);
  const limitMs = connectTimeoutMs({ connectTimeout: args.connectTimeout });
  const identityFiles = identityFilesFor(ctx, args.identity);
  // Local sources are checked once, before any machine is contacted.
  const local = localSide();
  for (const s of plan.sources) {
    const info = await local.stat(s);
    if (info === null) throw localError(s, Object.assign(new Error('missing'), { code: 'ENOENT' }), 'stat');
    if (info.type === 'dir' && !args.recursive)
      throw cliError(
        'CLI_ERR_CP_IS_A_DIRECTORY',
        `${s} is a directory (not a regular file)`,
        'Copy directories with -r.',
      );
  }
  const runId = randomBytes(8).toString('hex');
  const ac = new AbortController();
  const removeSigint = onAbort(interrupt, () => ac.abort('cancelled'));
  const t0 = performance.now();
  let client: RelayClient;
  try {
    ({ client } = await openLoggedInRelay(ctx, { keepaliveMs: 15_000, timeoutMs: limitMs }));
  } catch (e) {
    removeSigint();
    throw unreachedRelay(e);
  }
  let progress: TransferProgress | null = null;
  try {
    const sel = await selectMachines(client, { words: plan.words, all: plan.all }, CP_USAGE).catch((e: unknown) => {
      throw unreachedRelay(e);
    });
    const hosts = sel.online.map((h) => h.name);
    const bytesPerHost = new Map<string, { done: number; total: number }>();
    let finished = 0;
    // One bar for the whole push: bytes over every machine (each machine's total is known once it planned).
    const bar = createTransferProgress(ctx.io.stderr, { total: 0, quiet: args.quiet });
    const redraw = () => {
      let done = 0;
      let total = 0;
      for (const v of bytesPerHost.values()) {
        done += v.done;
        total += v.total;
      }
      bar.update(done, `${finished}/${hosts.length} machines`, total);
    };
    progress = bar;
    const copyErrors = new Map<string, { code: string; message: string }>();
    const skipped = new Map<string, string[]>();
    const results: MachineResult[] = await fanOut({
      hosts,
      offline: sel.offline.map((h) => h.name),
      parallel,
      timeoutMs: timeoutS === null ? null : timeoutS * 1000,
      signal: ac.signal,
      onResult: () => {
        finished++;
        redraw();
      },
      job: async ({ host, signal }) => {
        // The tunnel is reset at once while connecting; once bytes move, 2 s later at the latest, so the
        // copy can remove its temporary file first.
        const hard = new AbortController();
        let copying = false;
        signal.addEventListener(
          'abort',
          () => {
            if (!copying) hard.abort(signal.reason);
            else setTimeout(() => hard.abort(signal.reason), 2_000).unref();
          },
          { once: true },
        );
        try {
          const code = await sshViaRelay({
            client,
            knownHosts: ctx.knownHosts,
            host,
            user: plan.user,
            auth: { agentSocket: ctx.config.agentSocket, identityFiles, prompter: ctx.prompter },
            command: null,
            pty: false,
            stdin: ctx.io.stdin,
            stdout: ctx.io.stdout,
            // The servers' login banners, once per machine, would bury the summary: not shown in a push.
            stderr: discard,
            handshakeTimeoutMs: limitMs,
            runId,
            signal: hard.signal,
            use: async (conn) => {
              const sftp = await openSftp(conn).catch((e: unknown) => {
                throw noSftp(host, e);
              });
              const r = await copyOver(sftp, host, plan, args, {
                signal,
                planned: (total) => bytesPerHost.set(host, { done: 0, total }),
                started: () => (copying = true),
                onProgress: (done) => {
                  const v = bytesPerHost.get(host);
                  if (v) v.done = done;
                  redraw();
                },
              });
              if (r.skipped.length) skipped.set(host, r.skipped);
              sftp.end();
              return 0;
            },
          });
          return { exitCode: code };
        } catch (e) {
          // The machine was reached and the copy itself failed there: "failed" (exit 1), with the reason.
          if (isCliError(e) && e.code?.startsWith('CLI_ERR_CP_')) {
            copyErrors.set(host, { code: e.code, message: e.message });
            return { exitCode: 1 };
          }
          throw e;
        }
      },
    });
    bar.finish();
    for (const [host, list] of skipped) warnSkipped(ctx, args, list, host);
    const withReasons = results.map((r) =>
      r.outcome === 'failed' && copyErrors.has(r.host) ? { ...r, error: copyErrors.get(r.host)! } : r,
    );
    ctx.io.stderr.write(
      formatSummary('mssh cp', withReasons, { runId, durationMs: Math.round(performance.now() - t0) }) +
        (ac.signal.aborted ? 'mssh cp: interrupted (Ctrl-C); unfinished files were removed\n' : ''),
    );
    return runExitCode(withReasons, ac.signal.aborted);
  } finally {
    progress?.finish();
    removeSigint();
    await client.close();
  }
}
