/**
 * Coded errors of the agent's dial, enrolment, state and target code. Codes are stable, never reused,
 * and listed in apps/agent/README.md (the embedded SSH server has its own in embedded-sshd/errors.ts).
 * Messages say what is wrong and, where the user can act, what to do.
 */
export const AGENT_ERRORS = {
  AGT_ERR_CONFIG: 'invalid options',
  AGT_ERR_CONFIG_FILE: 'the config file (--config, MSSH_CONFIG) cannot be read, or has an unknown key or a bad value',
  AGT_ERR_CONFIG_FILE_MODE:
    'the config file holds a secret but others may read or change it (reserved: no run setting is secret yet)',
  AGT_ERR_STATE_DIR: 'the agent state directory cannot be created or read',
  AGT_ERR_NOT_ENROLLED: 'this machine is not enrolled yet; run `mssh-agent enroll` first',
  AGT_ERR_ALREADY_ENROLLED: 'this state directory is already enrolled',
  AGT_ERR_IDENTITY: 'the agent identity key cannot be read',
  AGT_ERR_TARGET_UNREACHABLE: 'the agent could not connect to its SSH target',
  AGT_ERR_TARGET_NOT_SSH: 'the target does not speak SSH',
  AGT_ERR_RELAY_UNREACHABLE: 'the relay cannot be reached',
  AGT_ERR_RELAY_FINGERPRINT_MISMATCH: 'the relay certificate does not match the pinned fingerprint',
  AGT_ERR_RELAY_NO_AGENT_ALPN: 'the relay does not accept agents on that port',
  AGT_ERR_RELAY_BAD_ANSWER: 'the relay answered something unexpected',
  AGT_ERR_ENROLL_REFUSED: 'the relay refused the enrolment',
  AGT_ERR_STATE_DIR_LOCKED: 'another mssh-agent is already running on this state directory',
  AGT_ERR_METRICS_LISTEN: 'the metrics endpoint cannot listen on the address',
  AGT_ERR_SERVICE_NOT_ROOT: 'installing the service needs root; use sudo, or --print to see the unit',
  AGT_ERR_SERVICE_EXISTS: 'the unit file exists already with other content; --force replaces it',
  AGT_ERR_SERVICE_USER: 'the service user does not exist (--create-user creates it) or cannot be created',
  AGT_ERR_SERVICE_WRITE: 'the unit file cannot be written',
  AGT_ERR_SERVICE_SYSTEMCTL: 'systemctl daemon-reload / enable --now failed (the unit is written)',
  AGT_ERR_SERVICE_EXEC: 'the node binary or entry script for the unit is not an absolute path to a file',
  AGT_ERR_SERVICE_ARGS: 'the options after -- cannot go into a unit (not `run` options, or a relative path)',
} as const;

export type AgentErrorCode = keyof typeof AGENT_ERRORS;

export class AgentError extends Error {
  readonly code: AgentErrorCode;
  /** The relay's wire code, when the relay refused something. */
  readonly relayCode: string | null;
  constructor(code: AgentErrorCode, message?: string, options?: { cause?: unknown; relayCode?: string | null }) {
    super(message ?? AGENT_ERRORS[code], options?.cause === undefined ? undefined : { cause: options.cause });
    this.name = 'AgentError';
    this.code = code;
    this.relayCode = options?.relayCode ?? null;
  }
}

export function agentError(code: AgentErrorCode, message?: string, cause?: unknown): AgentError {
  return new AgentError(code, message, cause === undefined ? undefined : { cause });
}

/** The errno-style code of an error or of its cause (ECONNREFUSED, ...), if any. */
export function errnoOf(err: unknown): string | null {
  for (let e: unknown = err, i = 0; e && i < 5; e = (e as { cause?: unknown }).cause, i++) {
    const code = (e as { code?: unknown }).code;
    if (typeof code === 'string' && /^E[A-Z]+$|^ERR_/.test(code)) return code;
  }
  return null;
}
