/**
 * The one error class of the three command lines (`mssh`, `mssh-relay`, `mssh-agent`) and their exit-code
 * policy (docs/cli.md, "Exit codes"). A CliError says what went wrong (message), what to do (hint) and,
 * when it has one, a stable code; the reporter (report.ts) prints it the same way in every program.
 */

/**
 * Exit codes, after BSD sysexits(3) where one fits. Every program uses these and no others (a command's own
 * result, e.g. the remote command's status of `mssh ssh`, passes through unchanged).
 */
export const EXIT = {
  /** Success. */
  OK: 0,
  /** An expected failure: refused, not found, unreachable, wrong password. Running again may help. */
  FAILURE: 1,
  /** EX_USAGE: the command line is invalid (unknown command or option, missing or malformed value). */
  USAGE: 64,
  /** EX_SOFTWARE: an unexpected error, i.e. a bug; please report it. */
  SOFTWARE: 70,
  /** EX_CONFIG: the stored configuration or state must change before running again helps. */
  CONFIG: 78,
  /** `mssh ssh` and `mssh proxy`: any failure of their own, like OpenSSH's ssh. */
  SSH: 255,
} as const;

/** Codes shared by the three programs (each program adds its own; all are listed in the package READMEs). */
export const KIT_ERRORS = {
  CLI_ERR_USAGE: 'the command line is not valid',
  CLI_ERR_NO_TTY: 'a password or passphrase is needed but there is no terminal to ask on',
  CLI_ERR_PROMPT_ABORTED: 'a prompt was cancelled with Ctrl-C or Ctrl-D',
  CLI_ERR_BAD_PASSWORD: 'the password given is empty, too short or too long, or the two typed differ',
  CLI_ERR_BAD_HOST_NAME: 'the machine name is not a valid mssh host name',
  CLI_ERR_BAD_LABEL: 'a label or label selector breaks a rule (the message names it: key_syntax, value_syntax, ...)',
  CLI_ERR_CONFIG: 'the stored state (config or state directory) cannot be read or written',
  CLI_ERR_INTERNAL: 'an unexpected error: a bug (please report it)',
} as const;
export type KitErrorCode = keyof typeof KIT_ERRORS;

export interface CliErrorOptions {
  cause?: unknown;
  /** Overrides the exit code the policy derives from the code (exitCodeOf). */
  exitCode?: number;
}

export class CliError extends Error {
  /** Stable code (`CLI_ERR_...`, `RLY_CLI_ERR_...`, `AGT_ERR_...`), or undefined for an uncoded failure. */
  readonly code: string | undefined;
  /** What to do about it (printed on the next line); may be empty. */
  readonly hint: string;
  readonly exitCode: number;
  constructor(code: string | undefined, message: string, hint = '', options?: CliErrorOptions) {
    super(message, options?.cause === undefined ? undefined : { cause: options.cause });
    this.name = 'CliError';
    this.code = code;
    this.hint = hint;
    this.exitCode = options?.exitCode ?? exitCodeOf(code);
  }
}

/** The policy: usage codes exit 64, the internal-error code 70, unusable stored state 78, every other failure 1. */
export function exitCodeOf(code: string | undefined): number {
  if (code === undefined) return EXIT.FAILURE;
  if (code.endsWith('_ERR_USAGE')) return EXIT.USAGE;
  if (code === 'CLI_ERR_INTERNAL') return EXIT.SOFTWARE;
  if (code === 'CLI_ERR_CONFIG') return EXIT.CONFIG;
  return EXIT.FAILURE;
}

export function isCliError(e: unknown): e is CliError {
  return e instanceof CliError;
}

/** A usage error (exit 64). */
export function usageError(message: string, hint = ''): CliError {
  return new CliError('CLI_ERR_USAGE', message, hint);
}
