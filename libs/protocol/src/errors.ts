/**
 * Error codes that cross the wire (HTTP JSON bodies, agent-link welcome messages). Codes are stable and
 * never reused; each one is documented in the README's error table.
 *
 * JSON error body on every non-2xx API answer: { statusCode, code, error, message }.
 */
export const WIRE_ERRORS = {
  // authentication (libs/auth, relay edge)
  AUTH_ERR_MISSING_TOKEN: { status: 401, message: 'no bearer token; run `mssh login`' },
  AUTH_ERR_INVALID_TOKEN: { status: 401, message: 'token is invalid; run `mssh login` again' },
  AUTH_ERR_TOKEN_EXPIRED: { status: 401, message: 'token has expired; run `mssh login` again' },
  AUTH_ERR_TOKEN_REVOKED: { status: 401, message: 'token was revoked; run `mssh login` again' },
  AUTH_ERR_BAD_CREDENTIALS: { status: 401, message: 'wrong user name or password' },
  AUTH_ERR_FORBIDDEN: { status: 403, message: 'this needs an admin account' },
  AUTH_ERR_USER_DISABLED: { status: 401, message: 'this account is disabled; ask an admin to enable it' },
  AUTH_ERR_TOKEN_OUTDATED: {
    status: 401,
    message: 'this login was issued by an older relay version; run `mssh login` again',
  },
  AUTH_ERR_SESSION_ENDED: {
    status: 401,
    message:
      'your session was ended by an admin (password reset, account disabled or role changed); run `mssh login` again',
  },
  // relay
  RLY_ERR_BAD_REQUEST: { status: 400, message: 'malformed request' },
  RLY_ERR_UNKNOWN_HOST: { status: 404, message: 'no machine with that name is enrolled' },
  RLY_ERR_AGENT_OFFLINE: { status: 503, message: 'the machine is enrolled but its agent is not connected' },
  RLY_ERR_AGENT_FAILED: { status: 502, message: 'the agent could not open the session' },
  RLY_ERR_NAME_TAKEN: { status: 409, message: 'that name is already in use' },
  RLY_ERR_ENROLL_TOKEN_INVALID: { status: 401, message: 'enrolment token is unknown, used or expired' },
  RLY_ERR_ENROLL_NAME_MISMATCH: { status: 400, message: 'enrolment token was issued for another name' },
  RLY_ERR_UNKNOWN_AGENT_KEY: { status: 401, message: 'agent key is not enrolled' },
  RLY_ERR_AGENT_PROOF_INVALID: { status: 401, message: 'agent failed to prove possession of its key' },
  RLY_ERR_AGENT_REVOKED: { status: 403, message: 'agent has been revoked' },
  RLY_ERR_PROTOCOL_TOO_OLD: { status: 426, message: 'protocol version too old; upgrade mssh' },
  RLY_ERR_NOT_FOUND: { status: 404, message: 'not found' },
  RLY_ERR_NO_GRANT: { status: 403, message: 'you have no grant for that machine (or it does not exist)' },
  RLY_ERR_UNKNOWN_USER: { status: 404, message: 'no user with that name' },
  RLY_ERR_UNKNOWN_GRANT: { status: 404, message: 'no such grant' },
  RLY_ERR_BAD_LABEL: { status: 400, message: 'a label breaks a rule (key, value or count)' },
  RLY_ERR_BAD_RUN_ID: {
    status: 400,
    message: 'the x-mssh-run header is not a run id (8-64 characters of 0-9, a-f and -, hex at both ends)',
  },
  RLY_ERR_INTERNAL: { status: 500, message: 'internal error' },
  RLY_ERR_DATABASE_UNAVAILABLE: {
    status: 503,
    message:
      "the relay's database is unavailable (new sessions cannot be audited, so they are refused); try again shortly",
  },
  // upgrade without downtime (issue 19): SIGTERM or `mssh-relay drain` started, running sessions go on
  RLY_ERR_DRAINING: {
    status: 503,
    message: 'this relay is draining for a restart and opens no new sessions; connect again to reach another relay',
  },
  // audit trail (issue 16)
  RLY_ERR_PRUNE_NOT_ALLOWED: {
    status: 403,
    message:
      "the relay's database role may not prune the audit trail; prune with a role granted mssh_audit_prune (--database-url)",
  },
  RLY_ERR_PRUNE_TOO_RECENT: {
    status: 400,
    message: 'the prune cut-off is within the retention floor set in the database',
  },
  // limits (issue 3): a cap refuses new work only, never what is already running
  RLY_ERR_RATE_LIMITED: {
    status: 429,
    message: 'too many failed logins; wait for the time in Retry-After, then try again',
  },
  RLY_ERR_BUSY: { status: 503, message: 'the relay is busy checking passwords; try again in a moment' },
  RLY_ERR_USER_SESSION_LIMIT: {
    status: 429,
    message: 'you have as many sessions open as the relay allows per user; close one first',
  },
  RLY_ERR_AGENT_SESSION_LIMIT: {
    status: 429,
    message: 'this machine has as many sessions open as the relay allows; close one first',
  },
  RLY_ERR_RELAY_SESSION_LIMIT: {
    status: 503,
    message: 'the relay carries as many sessions as it allows; try again later',
  },
  RLY_ERR_AGENT_LIMIT: { status: 503, message: 'the relay has as many agents connected as it allows' },
  RLY_ERR_SOURCE_LIMIT: {
    status: 429,
    message: 'too many connections or unanswered requests from your address; finish some, then try again',
  },
  RLY_ERR_BODY_TIMEOUT: { status: 408, message: 'the request body did not arrive in time' },
  // one-line agent install (issue 20): GET /install/agent.sh, /install/mssh-agent-linux-x64.tar.gz
  RLY_ERR_AGENT_BUNDLE_UNAVAILABLE: {
    status: 404,
    message:
      "this relay cannot serve the agent for download: it runs without the agent's built files beside it (apps/agent/dist of an mssh checkout) or not on linux-x64; install the agent by hand (apps/agent/README.md)",
  },
  RLY_ERR_DOWNLOAD_LIMIT: {
    status: 429,
    message: 'too many agent downloads from your address; wait for the time in Retry-After, then try again',
  },
  // agent (answers on relay -> agent session streams)
  AGT_ERR_TARGET_UNREACHABLE: { status: 502, message: 'the agent could not connect to its SSH target' },
} as const;

export type WireErrorCode = keyof typeof WIRE_ERRORS;

export interface WireErrorBody {
  statusCode: number;
  /** A WireErrorCode, or a code this version does not know yet (TypeScript reads the union as string). */
  code: string;
  error: string;
  message: string;
}

export function isWireErrorBody(x: unknown): x is WireErrorBody {
  return (
    typeof x === 'object' &&
    x !== null &&
    typeof (x as WireErrorBody).code === 'string' &&
    typeof (x as WireErrorBody).message === 'string'
  );
}
