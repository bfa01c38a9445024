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
    400: 'Bad Request', 401: 'Unauthorized', 403: 'Forbidden', 404: 'Not Found', 409: 'Conflict',
    408: 'Request Timeout', 413: 'Payload Too Large', 426: 'Upgrade Required', 429: 'Too Many Requests', 500: 'Internal Server Error',
    502: 'Bad Gateway', 503: 'Service Unavailable',
  };
  return reasons[status] ?? 'Error';
}

/**
 * A failure of the command line or of start-up (bad flag, port in use, database unreachable). main.ts
 * prints `mssh-relay: <message>` and, when given, the hint on a second line, then exits non-zero.
 */
export class CliError extends Error {
  readonly hint: string | undefined;
  readonly exitCode: number;
  constructor(message: string, hint?: string, cause?: unknown, exitCode = 1) {
    super(message, cause === undefined ? undefined : { cause });
    this.name = 'CliError';
    this.hint = hint;
    this.exitCode = exitCode;
  }
}
