/**
 * `mssh exec SELECTOR... -- COMMAND`: one command on many machines, through ONE relay connection (one
 * HTTP/2 stream per machine), at most --parallel at once, output streamed per machine (many/exec-output.ts).
 *
 *   selector ──many/select──▶ online + offline ──many/fan-out (job: sshViaRelay per machine)──▶ results
 *                                                 └─ sinks: prefixed | --json | --out-dir      └─ summary, exit code
 *
 * Every session carries the run id (x-mssh-run) so `mssh admin audit --run ID` shows the run's rows.
 */
import { randomBytes } from 'node:crypto';
import { existsSync } from 'node:fs';
import { resolve } from 'node:path';
import { Readable } from 'node:stream';
import { noPrompter } from '@mssh/cli-kit';
import type { HostInfo } from '@mssh/protocol';
import { CliError, cliError, isCliError } from '../errors.js';
import { classifyError, fanOut, formatSummary, MANY_EXIT, runExitCode } from '../many/fan-out.js';
import { jsonOutput, outDirOutput, prefixedOutput, type ExecOutput } from '../many/exec-output.js';
import { createRunProgress } from '../many/progress.js';
import { describeSelector, parseSelector, splitSelection } from '../many/select.js';
import type { RelayClient } from '../relay-client/relay-client.js';
import { defaultIdentityFiles } from '../ssh/auth.js';
import { sshViaRelay } from '../ssh/ssh-via-relay.js';
import { openLoggedInRelay, type CliContext } from './context.js';
import { remoteCommand } from './ssh.js';

export const EXEC_USAGE =
  "Usage: mssh exec [GLOB...] [KEY=VALUE...] | --all [options] -- COMMAND... (e.g. mssh exec 'web-*' env=prod -- uptime)";

export interface ExecArgs {
  /** Name globs and label pairs (before --). */
  selector: string[];
  /** The remote command words (after --). */
  command: string[];
  all: boolean;
  /** -l USER */
  login?: string;
  /** -i KEY */
  identity?: string;
  /** --parallel N, as typed. */
  parallel?: string;
  /** --timeout SECONDS, as typed. */
  timeout?: string;
  /** --stdin: read our stdin once and send it to every machine. */
  stdin: boolean;
  json: boolean;
  outDir?: string;
}

export const DEFAULT_PARALLEL = 32;
/** The most --stdin reads (it is held in memory and sent to every machine); bigger input: mssh cp. */
export const MAX_STDIN_BYTES = 16 * 1024 * 1024;

function wholeNumber(value: string | undefined, flag: string, min: number, max: number, dflt: number | null) {
  if (value === undefined) return dflt;
  const v = value.trim();
  if (!/^\d{1,7}$/.test(v) || Number(v) < min || Number(v) > max) {
    throw cliError(
      'CLI_ERR_USAGE',
      `${flag} needs a whole number from ${min} to ${max}, not ${JSON.stringify(value.slice(0, 40))}`,
      EXEC_USAGE,
    );
  }
  return Number(v);
}

/** Read all of `stdin` (at most MAX_STDIN_BYTES), or stop when `signal` fires. */
async function readStdin(stdin: Readable, signal: AbortSignal | undefined): Promise<Buffer> {
  const chunks: Buffer[] = [];
  let size = 0;
  return new Promise<Buffer>((resolve, reject) => {
    const done = (err: Error | null) => {
      stdin.removeListener('data', onData);
      stdin.removeListener('end', onEnd);
      stdin.removeListener('error', onError);
      signal?.removeEventListener('abort', onAbort);
      stdin.pause();
      if (err) reject(err);
      else resolve(Buffer.concat(chunks));
    };
    const onData = (d: Buffer) => {
      size += d.length;
      if (size > MAX_STDIN_BYTES) {
        done(
          cliError(
            'CLI_ERR_USAGE',
            `--stdin takes at most ${MAX_STDIN_BYTES / 1024 / 1024} MiB (it is sent to every machine)`,
            'Copy bigger input to the machines first (mssh cp, or scp through `mssh config ssh`).',
          ),
        );
        return;
      }
      chunks.push(Buffer.isBuffer(d) ? d : Buffer.from(d));
    };
    const onEnd = () => done(null);
    const onError = (e: Error) => done(cliError('CLI_ERR_USAGE', `cannot read stdin: ${e.message}`, ''));
    const onAbort = () =>
      done(new CliError('CLI_ERR_INTERRUPTED', 'interrupted while reading stdin', '', { exitCode: 130 }));
    stdin.on('data', onData);
    stdin.once('end', onEnd);
    stdin.once('error', onError);
    signal?.addEventListener('abort', onAbort, { once: true });
    stdin.resume();
  });
}

/** `mssh exec`; `interrupt` fires on Ctrl-C (main.ts maps SIGINT to it). */
export async function exec(ctx: CliContext, args: ExecArgs, opts: { interrupt?: AbortSignal } = {}): Promise<number> {
  // Everything that can be wrong with the command line is found before any network traffic.
  if (args.command.length === 0)
    throw cliError('CLI_ERR_USAGE', 'no command to run', `Put the command after --. ${EXEC_USAGE}`);
  if (args.json && args.outDir !== undefined)
    throw cliError('CLI_ERR_USAGE', '--json and --out-dir contradict each other', 'Give one of them.');
  const filter = parseSelector({ words: args.selector, all: args.all }, EXEC_USAGE);
  const parallel = wholeNumber(args.parallel, '--parallel', 1, 1024, DEFAULT_PARALLEL)!;
  const timeoutS = wholeNumber(args.timeout, '--timeout', 1, 604_800, null);
  const user = args.login || ctx.config.localUser;
  if (!user) throw cliError('CLI_ERR_USAGE', 'no login user', 'Give one with -l USER.');
  let identityFiles: string[];
  if (args.identity !== undefined) {
    const file = resolve(args.identity);
    if (!existsSync(file))
      throw cliError('CLI_ERR_KEY_FILE', `the key file ${file} does not exist`, 'Check the path given to -i.');
    identityFiles = [file];
  } else {
    identityFiles = defaultIdentityFiles(ctx.config.home);
  }
  const command = remoteCommand(args.command)!;
  const input = args.stdin ? await readStdin(ctx.io.stdin, opts.interrupt) : null;
  const runId = randomBytes(8).toString('hex');

  let client: RelayClient;
  let hosts: HostInfo[];
  try {
    ({ client } = await openLoggedInRelay(ctx, { keepaliveMs: 15_000 }));
  } catch (e) {
    throw unreachedRelay(e);
  }
  try {
    try {
      hosts = await client.listHosts();
    } catch (e) {
      throw unreachedRelay(e);
    }
    const selection = splitSelection(hosts, filter, describeSelector({ words: args.selector, all: args.all }));
    const names = [...selection.offline, ...selection.online].map((h) => h.name);
    const attested = new Map(selection.online.map((h) => [h.name, h.hostKeys]));
    const progress = createRunProgress(ctx.io.stderr, 'mssh exec', names.length);
    const output: ExecOutput = args.json
      ? jsonOutput(ctx.io.stdout)
      : args.outDir !== undefined
        ? outDirOutput(resolve(args.outDir))
        : prefixedOutput(ctx.io.stdout, ctx.io.stderr, names, { beforeStderrWrite: () => progress.clear() });
    const t0 = performance.now();
    const results = await fanOut({
      hosts: selection.online.map((h) => h.name),
      offline: selection.offline.map((h) => h.name),
      parallel,
      timeoutMs: timeoutS === null ? null : timeoutS * 1000,
      signal: opts.interrupt,
      onStart: (h) => progress.started(h),
      onResult: (r) => {
        progress.finished(r);
        output.result(r);
      },
      job: async ({ host, signal }) => {
        const sinks = output.open(host);
        let exitSignal: string | null = null;
        try {
          const exitCode = await sshViaRelay({
            client,
            knownHosts: ctx.knownHosts,
            host,
            user,
            auth: { agentSocket: ctx.config.agentSocket, identityFiles, prompter: noPrompter },
            command,
            pty: false,
            env: ctx.config.localeEnv,
            stdin: Readable.from(input ? [input] : []),
            stdout: sinks.stdout,
            stderr: sinks.stderr,
            attested: attested.get(host),
            runId,
            signal,
            onExit: (_code, sig) => (exitSignal = sig),
          });
          return { exitCode, signal: exitSignal };
        } finally {
          await sinks.close();
        }
      },
    });
    progress.done();
    const interrupted = opts.interrupt?.aborted === true;
    ctx.io.stderr.write(
      formatSummary('mssh exec', results, { runId, durationMs: Math.round(performance.now() - t0) }) +
        (interrupted ? 'mssh exec: interrupted (Ctrl-C); every session was cancelled\n' : ''),
    );
    return runExitCode(results, interrupted);
  } finally {
    await client.close();
  }
}

/** A relay that cannot be reached before any machine was tried: exit 255 like a machine that could not be. */
function unreachedRelay(e: unknown): unknown {
  if (isCliError(e) && classifyError(e).outcome === 'unreachable')
    return new CliError(e.code, e.message, e.hint, { cause: e, exitCode: MANY_EXIT.UNREACHED });
  return e;
}
