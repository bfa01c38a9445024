import { WIRE_ERRORS, type WireErrorBody } from '@mssh/protocol';

/** The AUTH_ERR_* codes of the wire contract. */
export type AuthErrorCode = Extract<keyof typeof WIRE_ERRORS, `AUTH_ERR_${string}`>;

/**
 * A coded authentication failure (bad, expired or revoked token, wrong credentials, missing rights).
 * Carries the HTTP status to answer with; the relay's edge error handler turns it into the JSON body.
 */
export class AuthError extends Error {
  readonly code: AuthErrorCode;
  readonly statusCode: number;
  constructor(code: AuthErrorCode, message?: string, options?: { cause?: unknown }) {
    super(message ?? WIRE_ERRORS[code].message, options);
    this.name = 'AuthError';
    this.code = code;
    this.statusCode = WIRE_ERRORS[code].status;
  }
  toBody(): WireErrorBody {
    return {
      statusCode: this.statusCode,
      code: this.code,
      error: this.statusCode === 403 ? 'Forbidden' : 'Unauthorized',
      message: this.message,
    };
  }
}

export function isAuthError(e: unknown): e is AuthError {
  return e instanceof AuthError;
}
