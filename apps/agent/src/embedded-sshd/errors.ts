/**
 * Coded errors of the embedded SSH server and its authorized_keys commands. Codes are stable, never reused,
 * and listed in apps/agent/README.md. Messages say what is wrong and what to do.
 */
export const SSHD_ERRORS = {
  AGT_ERR_SSHD_HOST_KEY: 'the embedded SSH server host key cannot be read or created',
  AGT_ERR_SSHD_STATE_DIR: 'the agent state directory cannot be created or read',
  AGT_ERR_AUTHKEY_INVALID: 'that is not an OpenSSH public key',
  AGT_ERR_AUTHKEY_PRIVATE: 'that is a private key; pass the public key (the .pub file) instead',
  AGT_ERR_AUTHKEY_NOT_FOUND: 'no key in authorized_keys has that fingerprint or comment',
  AGT_ERR_AUTHKEY_WRITE: 'authorized_keys cannot be written',
} as const;

export type SshdErrorCode = keyof typeof SSHD_ERRORS;

export class SshdError extends Error {
  readonly code: SshdErrorCode;
  constructor(code: SshdErrorCode, message?: string, options?: { cause?: unknown }) {
    super(message ?? SSHD_ERRORS[code], options);
    this.name = 'SshdError';
    this.code = code;
  }
}

export function sshdError(code: SshdErrorCode, message?: string, cause?: unknown): SshdError {
  return new SshdError(code, message, cause === undefined ? undefined : { cause });
}
