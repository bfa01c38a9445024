import { CliError } from '@mssh/cli-kit';
import { WIRE_ERRORS, type WireErrorCode, type WireErrorBody } from '@mssh/protocol';

/**
 * A coded, expected failure. Carries the HTTP status to answer with; the edge error handler maps it to
 * { statusCode, code, error, message }. Codes are listed in libs/protocol/src/errors.ts and the README.
 */
export class RelayError extends Error {
  readonly code: WireErrorCode;
  readonly statusCode: number;
  /** Sent as Retry-After (429 and 503 answers of the limits). */
  retryAfterSeconds?: number;
  constructor(code: WireErrorCode, message?: string, options?: { cause?: unknown }) {
    super(message ?? WIRE_ERRORS[code].message, options);
    this.name = 'RelayError';
    this.code = code;
    this.statusCode = WIRE_ERRORS[code].status;
  }
  toBody(): WireErrorBody {
    return { statusCode: this.statusCode, code: this.code, error: httpReason(this.statusCode), message: this.message };
  }
}

export function relayError(code: WireErrorCode, message?: string, cause?: unknown): RelayError {
  return new RelayError(code, message, cause === undefined ? undefined : { cause });
}

export function httpReason(status: number): string {
  const reasons: Record<number, string> = {
    400: 'Bad Request',
    401: 'Unauthorized',
    403: 'Forbidden',
    404: 'Not Found',
    409: 'Conflict',
    408: 'Request Timeout',
    413: 'Payload Too Large',
    426: 'Upgrade Required',
    429: 'Too Many Requests',
    500: 'Internal Server Error',
    502: 'Bad Gateway',
    503: 'Service Unavailable',
  };
  return reasons[status] ?? 'Error';
}

/**
 * Coded failures of the `mssh-relay` command line (not wire codes: they never cross the network). Listed
 * in apps/relay/README.md, "Command-line error codes"; stable and never reused.
 */
export const RELAY_CLI_ERRORS = {
  /** An admin command found no running relay and no data directory made by `mssh-relay serve`. */
  RLY_CLI_ERR_NO_DATA_DIR: 'no relay data directory',
  /** The database asked for is not the one the data directory's relay uses (or used last). */
  RLY_CLI_ERR_DATABASE_MISMATCH: 'another database than the relay uses',
  /** `<data-dir>/database.json` cannot be read. */
  RLY_CLI_ERR_DATABASE_RECORD: 'unreadable database record',
  /** `<data-dir>/relay-id` exists but cannot be read or holds no relay id. */
  RLY_CLI_ERR_RELAY_ID: 'unreadable relay id',
  /** The TLS certificate or the SSH jump host key exists but cannot be read or parsed. */
  RLY_CLI_ERR_KEY_FILE: 'unreadable certificate or key file',
  /** `serve` cannot bind the HTTPS listener, or the SSH jump listener asked for with --ssh-listen. */
  RLY_CLI_ERR_LISTEN: 'cannot listen on the address',
  /** Another process holds the data directory's lock (a relay starting, running or stopping, or an admin command on its PGlite): a second `serve` refuses; an admin command refuses after waiting for the admin socket. */
  RLY_CLI_ERR_DATA_DIR_BUSY: 'another process holds the data directory',
  /** `drain` found no relay running on the data directory (its admin socket does not answer). */
  RLY_CLI_ERR_NOT_RUNNING: 'no relay running on the data directory',
  /** `install-service` without root (writing /etc/systemd/system or creating the user needs it). */
  RLY_CLI_ERR_SERVICE_NOT_ROOT: 'installing the service needs root',
  /** `install-service`: the unit file exists with other content and --force was not given. */
  RLY_CLI_ERR_SERVICE_EXISTS: 'the unit file exists already',
  /** `install-service`: the service user does not exist (no --create-user), or useradd failed. */
  RLY_CLI_ERR_SERVICE_USER: 'the service user is missing',
  /** `install-service`: the unit file cannot be written. */
  RLY_CLI_ERR_SERVICE_WRITE: 'cannot write the unit file',
  /** `install-service`: `systemctl daemon-reload` / `enable --now` failed (the unit is written). */
  RLY_CLI_ERR_SERVICE_SYSTEMCTL: 'systemctl failed',
  /** `install-service`: the node binary or entry script for ExecStart is not an absolute path to a file. */
  RLY_CLI_ERR_SERVICE_EXEC: 'no usable node binary or entry script for the unit',
  /** `install-service`: the options after -- cannot go into a unit (not `serve` options, relative path, secret). */
  RLY_CLI_ERR_SERVICE_ARGS: 'the serve options cannot go into a unit',
  /** `serve --config FILE` (or MSSH_CONFIG): the file cannot be read, is not a YAML mapping, or has an unknown key or a bad value (exit 78). */
  RLY_CLI_ERR_CONFIG_FILE: 'the config file cannot be read or has a bad key or value',
  /** The config file holds a secret (a database-url with a password) but others may read it, or its group change it (exit 78). */
  RLY_CLI_ERR_CONFIG_FILE_MODE: 'the config file holding a secret is readable by others',
} as const;
export type RelayCliErrorCode = keyof typeof RELAY_CLI_ERRORS;

/**
 * A failure of the command line or of start-up (bad flag, port in use, database unreachable) is the shared
 * CliError of @mssh/cli-kit; its reporter prints `mssh-relay: <message> [CODE]` and the hint, and exits by
 * the policy of docs/cli.md ("Exit codes").
 */
export { CliError } from '@mssh/cli-kit';

/** An uncoded CliError (exit 1). */
export function cliFailure(message: string, hint = '', cause?: unknown): CliError {
  return new CliError(undefined, message, hint, { cause });
}

/** A CliError with a code from RELAY_CLI_ERRORS. */
export function codedCliError(code: RelayCliErrorCode, message: string, hint: string, cause?: unknown): CliError {
  return new CliError(code, message, hint, { cause });
}

/** The innermost message of an error chain (drizzle wraps driver errors). */
export function rootMessage(e: unknown): string {
  let cur = e;
  for (let i = 0; i < 8; i++) {
    const cause = (cur as { cause?: unknown } | null)?.cause;
    if (!cause) break;
    cur = cause;
  }
  return cur instanceof Error ? cur.message : String(cur);
}
