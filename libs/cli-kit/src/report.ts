/**
 * The one error reporter of the three programs. Every failure is printed as
 *
 *   <program>: <message> [CODE]
 *   <hint>
 *
 * (no ` [CODE]` for an uncoded error, no second line without a hint; the lines of a multi-line message
 * follow the first one), with control characters removed, and the process exits with the error's code
 * (errors.ts, EXIT). An error that is not a CliError is a bug: `unexpected error: ...` [CLI_ERR_INTERNAL],
 * exit 70.
 */
import { sanitizeForTerminal } from '@mssh/protocol';
import { CliError, EXIT } from './errors.js';

export interface ReportOptions {
  /** `mssh`, `mssh-relay`, `mssh-agent`. */
  program: string;
  /** Maps a program's own coded errors (RelayError, AgentError, ...) to a CliError; null when not one. */
  toCliError?: (e: unknown) => CliError | null;
  /** What to do about a bug (second line of an unexpected error). */
  bugHint?: string;
  /** The message of an unexpected error (default: its message). */
  describe?: (e: unknown) => string;
  /** Message, code and hint on one line (for programs whose stderr another program shows, e.g. ProxyCommand). */
  oneLine?: boolean;
}

/** The CliError to print for any thrown value. */
export function toCliError(e: unknown, opts: ReportOptions): CliError {
  if (e instanceof CliError) return e;
  const mapped = opts.toCliError?.(e);
  if (mapped) return mapped;
  const what = opts.describe ? opts.describe(e) : e instanceof Error ? e.message : String(e);
  return new CliError(
    'CLI_ERR_INTERNAL',
    `unexpected error: ${what}`,
    opts.bugHint ?? `This is a bug in ${opts.program}; please report it.`,
    { cause: e, exitCode: EXIT.SOFTWARE },
  );
}

/** The text to print (no trailing newline), sanitised for the terminal. */
export function formatCliError(program: string, e: CliError, oneLine = false): string {
  const [first, ...rest] = e.message.split('\n');
  const head = `${program}: ${first ?? ''}${e.code ? ` [${e.code}]` : ''}`;
  const hint = e.hint ? e.hint.split('\n') : [];
  const lines = oneLine
    ? [
        [head, ...rest, ...hint]
          .map((l) => l.trim())
          .filter((l) => l)
          .join(' '),
      ]
    : [head, ...rest, ...hint];
  return lines.map((l) => sanitizeForTerminal(l)).join('\n');
}

/** Print `e` on `stderr` and return the exit code to end with. */
export function reportError(e: unknown, opts: ReportOptions & { stderr?: { write(s: string): unknown } }): number {
  const err = toCliError(e, opts);
  (opts.stderr ?? process.stderr).write(`${formatCliError(opts.program, err, opts.oneLine)}\n`);
  return err.exitCode;
}
