/**
 * The fan-out runner of the many-machine commands (`mssh exec`, `mssh cp`): one async job per machine,
 * at most `parallel` at a time, each limited to `timeoutMs`, all cancelled by one signal (Ctrl-C). Every
 * machine ends as exactly one MachineResult, whatever its job did; the runner never throws for a machine.
 *
 *   hosts ──▶ [worker 1..parallel] ──job(host, signal)──▶ MachineResult (ok/failed/.../cancelled)
 *   offline ─────────────────────────────────────────────▶ MachineResult unreachable (never waited for)
 *
 * A job resolves with the remote exit status (and signal), or throws a CliError that classifyError()
 * turns into an outcome. On timeout or cancel, its AbortSignal fires: the job must then reset its tunnel
 * (so the relay records the session's end) and settle; the runner waits at most `graceMs` for that.
 */
import { isCliError } from '../errors.js';

/** What became of one machine. */
export type MachineOutcome = 'ok' | 'failed' | 'unreachable' | 'denied' | 'timeout' | 'error' | 'cancelled';

/** The order outcomes are reported in (summary, counts). */
export const OUTCOMES: readonly MachineOutcome[] = [
  'ok',
  'failed',
  'unreachable',
  'denied',
  'timeout',
  'error',
  'cancelled',
];

export interface MachineResult {
  host: string;
  outcome: MachineOutcome;
  /** The remote exit status (0-255) when the command ran to its end; 128+N for a signal N. */
  exitCode: number | null;
  /** The signal that ended the remote command (e.g. TERM), when it was one. */
  signal: string | null;
  /** Why it is not ok or failed: the CliError's code and message (or a timeout/cancel note), and its hint. */
  error: { code: string; message: string; hint?: string } | null;
  /** From the job's start (0 for a machine never started) to its result. */
  durationMs: number;
}

/** What a job gets: its machine and the signal that says "stop now" (timeout or cancel). */
export interface JobContext {
  host: string;
  signal: AbortSignal;
}

/** A job's normal end: the remote command's exit status (a signal as 128+N, with its name). */
export interface JobExit {
  exitCode: number;
  signal?: string | null;
}

export type MachineJob = (ctx: JobContext) => Promise<JobExit>;

export interface FanOutOptions {
  /** Machines to run the job on (online ones), in the order to start them. */
  hosts: readonly string[];
  /** Machines known to be offline: reported unreachable at once, never tried. */
  offline?: readonly string[];
  job: MachineJob;
  /** Jobs at once (>= 1). */
  parallel: number;
  /** Limit per machine from its job's start; null = none. */
  timeoutMs: number | null;
  /** Cancels every running job and starts no more (Ctrl-C). */
  signal?: AbortSignal;
  /** How long to wait for a job to settle after its signal fired. Default 5 s. */
  graceMs?: number;
  onStart?(host: string): void;
  onResult?(result: MachineResult): void;
  /** Milliseconds clock (tests). */
  now?: () => number;
}

/** Codes meaning "could not get to the machine" (the relay, its agent, the network). */
const UNREACHABLE_CODES = new Set([
  'CLI_ERR_HOST_OFFLINE',
  'CLI_ERR_AGENT_FAILED',
  'CLI_ERR_TUNNEL_BROKEN',
  'CLI_ERR_RELAY_CONNECTION_LOST',
  'CLI_ERR_RELAY_UNREACHABLE',
  'CLI_ERR_RELAY_TLS',
  'CLI_ERR_RELAY_LIMIT',
]);
/** Codes meaning "you may not": the relay's grants and account state, or the machine's SSH login. */
const DENIED_CODES = new Set([
  'CLI_ERR_NO_GRANT',
  'CLI_ERR_UNKNOWN_HOST',
  'CLI_ERR_ACCOUNT_DISABLED',
  'CLI_ERR_SESSION_ENDED',
  'CLI_ERR_TOKEN_EXPIRED',
  'CLI_ERR_TOKEN_REJECTED',
  'CLI_ERR_NOT_LOGGED_IN',
  'CLI_ERR_SSH_AUTH_FAILED',
]);

/** The outcome of a job that threw: unreachable, denied, or error (host key, SSH connection, anything else). */
export function classifyError(e: unknown): { outcome: MachineOutcome; code: string; message: string; hint?: string } {
  if (isCliError(e)) {
    const code = e.code ?? 'CLI_ERR_INTERNAL';
    const outcome = UNREACHABLE_CODES.has(code) ? 'unreachable' : DENIED_CODES.has(code) ? 'denied' : 'error';
    return { outcome, code, message: e.message, ...(e.hint ? { hint: e.hint } : {}) };
  }
  return { outcome: 'error', code: 'CLI_ERR_INTERNAL', message: (e as Error)?.message ?? String(e) };
}

/** Run `job` on every host; resolves with one result per machine (offline first, then `hosts` in order). */
export async function fanOut(opts: FanOutOptions): Promise<MachineResult[]> {
  const now = opts.now ?? (() => performance.now());
  const graceMs = opts.graceMs ?? 5_000;
  const parallel = Math.max(1, Math.floor(opts.parallel));
  const results = new Map<string, MachineResult>();
  const record = (r: MachineResult) => {
    results.set(r.host, r);
    opts.onResult?.(r);
  };
  for (const host of opts.offline ?? []) {
    record({
      host,
      outcome: 'unreachable',
      exitCode: null,
      signal: null,
      error: { code: 'CLI_ERR_HOST_OFFLINE', message: `${host} is enrolled but its agent is not connected` },
      durationMs: 0,
    });
  }

  const cancelled = () => opts.signal?.aborted === true;
  const runOne = async (host: string): Promise<void> => {
    const t0 = now();
    const ac = new AbortController();
    let why: 'timeout' | 'cancelled' | null = null;
    const stop = (reason: 'timeout' | 'cancelled') => {
      if (why) return;
      why = reason;
      ac.abort(reason);
    };
    const onCancel = () => stop('cancelled');
    opts.signal?.addEventListener('abort', onCancel, { once: true });
    const timer = opts.timeoutMs !== null ? setTimeout(() => stop('timeout'), opts.timeoutMs) : null;
    opts.onStart?.(host);
    let settled: { exit?: JobExit; err?: unknown } | null = null;
    const running = Promise.resolve()
      .then(() => opts.job({ host, signal: ac.signal }))
      .then(
        (exit) => (settled = { exit }),
        (err: unknown) => (settled = { err }),
      );
    // Settles when the job does, or graceMs after its signal fired if it does not.
    let graceTimer: NodeJS.Timeout | null = null;
    const gaveUp = new Promise<void>((resolve) => {
      ac.signal.addEventListener('abort', () => {
        graceTimer = setTimeout(resolve, graceMs);
      });
    });
    await Promise.race([running, gaveUp]);
    if (timer) clearTimeout(timer);
    if (graceTimer) clearTimeout(graceTimer);
    opts.signal?.removeEventListener('abort', onCancel);
    const durationMs = Math.round(now() - t0);
    const s = settled as { exit?: JobExit; err?: unknown } | null;
    if (s?.exit && (!why || s.exit.exitCode === 0)) {
      // A command that finished is reported as such, even if its timeout fired while it was closing.
      const { exitCode, signal = null } = s.exit;
      record({ host, outcome: exitCode === 0 ? 'ok' : 'failed', exitCode, signal, error: null, durationMs });
      return;
    }
    if (why) {
      const secs = opts.timeoutMs !== null ? Math.round(opts.timeoutMs / 100) / 10 : 0;
      record({
        host,
        outcome: why,
        exitCode: null,
        signal: null,
        error:
          why === 'timeout'
            ? { code: 'CLI_ERR_MACHINE_TIMEOUT', message: `${host} did not finish within ${secs} s (--timeout)` }
            : { code: 'CLI_ERR_INTERRUPTED', message: `${host}: cancelled (interrupted)` },
        durationMs,
      });
      return;
    }
    const c = classifyError(s?.err);
    record({
      host,
      outcome: c.outcome,
      exitCode: null,
      signal: null,
      error: { code: c.code, message: c.message, ...(c.hint ? { hint: c.hint } : {}) },
      durationMs,
    });
  };

  const queue = [...opts.hosts];
  let next = 0;
  const worker = async () => {
    while (next < queue.length) {
      const host = queue[next++]!;
      if (cancelled()) {
        record({
          host,
          outcome: 'cancelled',
          exitCode: null,
          signal: null,
          error: { code: 'CLI_ERR_INTERRUPTED', message: `${host}: not started (interrupted)` },
          durationMs: 0,
        });
        continue;
      }
      await runOne(host);
    }
  };
  await Promise.all(Array.from({ length: Math.min(parallel, queue.length) }, worker));
  return [...(opts.offline ?? []), ...opts.hosts].map((h) => results.get(h)!);
}

/** Exit codes of the many-machine commands (apps/client/README.md, "mssh exec"). */
export const MANY_EXIT = {
  /** Every machine ran the command (or job) and it exited 0. */
  OK: 0,
  /** Every machine was reached, and on at least one the command failed (non-zero exit, signal) or timed out. */
  FAILED: 1,
  /** The selector is invalid or matched no machine you may reach. */
  NO_MATCH: 2,
  /** Ctrl-C (SIGINT): every session was cancelled. */
  INTERRUPTED: 130,
  /** At least one machine was not reached or refused: unreachable, denied, host key, SSH connection. */
  UNREACHED: 255,
} as const;

/** One exit code for a run: interrupted, then not reached, then failed, then ok. */
export function runExitCode(results: readonly MachineResult[], interrupted: boolean): number {
  if (interrupted) return MANY_EXIT.INTERRUPTED;
  const has = (...o: MachineOutcome[]) => results.some((r) => o.includes(r.outcome));
  if (has('unreachable', 'denied', 'error')) return MANY_EXIT.UNREACHED;
  if (has('failed', 'timeout', 'cancelled')) return MANY_EXIT.FAILED;
  return MANY_EXIT.OK;
}

/** Why a machine is not ok, short: `exit 2`, `signal KILL`, or the error code. */
function why(r: MachineResult): string {
  if (r.outcome === 'failed') return r.signal ? `signal ${r.signal}` : `exit ${r.exitCode}`;
  return r.error?.code ?? r.outcome;
}

/**
 * The summary printed on stderr at the end of a run: one count line, then one line per outcome that is not
 * ok naming its machines (with the exit status or error code), then each machine's error message, and
 * under it what to do (each distinct hint once).
 */
export function formatSummary(
  program: string,
  results: readonly MachineResult[],
  opts: { runId?: string; durationMs?: number } = {},
): string {
  const counts = OUTCOMES.map((o) => [o, results.filter((r) => r.outcome === o).length] as const).filter(
    ([o, n]) => n > 0 || o === 'ok',
  );
  const parts = counts.map(([o, n]) => `${n} ${o === 'timeout' ? 'timed out' : o}`);
  const total = `${results.length} machine${results.length === 1 ? '' : 's'}`;
  const secs = opts.durationMs !== undefined ? ` in ${(opts.durationMs / 1000).toFixed(1)} s` : '';
  const lines = [`${program}: ${total}: ${parts.join(', ')}${secs}${opts.runId ? ` (run ${opts.runId})` : ''}`];
  const width = 'unreachable:'.length;
  for (const o of OUTCOMES) {
    if (o === 'ok') continue;
    const bad = results.filter((r) => r.outcome === o);
    if (bad.length === 0) continue;
    lines.push(
      `  ${`${o === 'timeout' ? 'timed out' : o}:`.padEnd(width)} ${bad.map((r) => `${r.host} (${why(r)})`).join(', ')}`,
    );
  }
  const hints = new Set<string>();
  for (const r of results) {
    if (!r.error || r.outcome === 'cancelled') continue;
    lines.push(`  ${r.host}: ${r.error.message} [${r.error.code}]`);
    // What to do, once per distinct hint (ten offline machines need one "check mssh ls").
    if (r.error.hint && !hints.has(r.error.hint)) {
      hints.add(r.error.hint);
      lines.push(`    ${r.error.hint}`);
    }
  }
  return `${lines.join('\n')}\n`;
}
