/**
 * Coded errors of the `mssh` client. Every expected failure is a CliError (@mssh/cli-kit): a one-line
 * message saying what went wrong and (usually) a second line saying what to do. main.ts prints them with
 * the kit's reporter as
 *   mssh: <message> [CODE]
 *   <hint>
 * and exits 255 for `mssh ssh` / `mssh proxy` (like OpenSSH), else by the policy of docs/cli.md (usage 64,
 * unusable config 78, bug 70, any other failure 1). Codes are stable, never reused, and listed in
 * apps/client/README.md.
 */
import { CliError, formatCliError as formatKitError } from '@mssh/cli-kit';
import { isWireErrorBody, sanitizeForTerminal, tunnelEndReason, type WireErrorBody } from '@mssh/protocol';

export const CLI_ERRORS = {
  CLI_ERR_USAGE: 'the command line is not valid',
  CLI_ERR_CONFIG: 'the client state in the config directory cannot be read or written',
  CLI_ERR_NOT_LOGGED_IN: 'no stored login for the relay',
  CLI_ERR_TOKEN_EXPIRED: 'the stored login has expired',
  CLI_ERR_TOKEN_REJECTED: 'the relay no longer accepts the stored login (revoked or invalid)',
  CLI_ERR_BAD_CREDENTIALS: 'wrong user name or password',
  CLI_ERR_FORBIDDEN: 'the command needs an admin account',
  CLI_ERR_BAD_RELAY_URL: 'the relay URL is not valid',
  CLI_ERR_BAD_FINGERPRINT: 'the --relay-fingerprint value is not a SHA256 fingerprint',
  CLI_ERR_RELAY_UNREACHABLE: 'no TCP connection to the relay (refused, timed out, unknown name)',
  CLI_ERR_RELAY_TLS: 'the TLS handshake with the relay failed or it does not speak HTTP/2',
  CLI_ERR_RELAY_CERT_MISMATCH: 'the relay presented a certificate other than the pinned one',
  CLI_ERR_RELAY_CONNECTION_LOST: 'the connection to the relay broke or a request timed out',
  CLI_ERR_RELAY_BAD_RESPONSE: 'the relay answered something that is not the mssh protocol',
  CLI_ERR_RELAY_ERROR: 'the relay refused the request for another reason (its code is shown)',
  CLI_ERR_PROTOCOL_TOO_OLD: 'the relay needs a newer mssh',
  CLI_ERR_RELAY_LIMIT: 'a limit of the relay refused the request (failed logins, password checks, sessions)',
  CLI_ERR_NAME_TAKEN: 'a user or machine with that name already exists',
  CLI_ERR_BAD_HOST_NAME: 'the machine name is not a valid mssh host name',
  CLI_ERR_UNKNOWN_HOST: 'no machine with that name is enrolled on the relay',
  CLI_ERR_HOST_OFFLINE: 'the machine is enrolled but its agent is not connected',
  CLI_ERR_AGENT_FAILED: "the machine's agent could not reach its SSH server",
  CLI_ERR_TUNNEL_BROKEN: 'the tunnel to the machine was cut by the relay or the agent',
  CLI_ERR_HOST_KEY_CHANGED: 'the SSH host key differs from the one pinned in known_hosts',
  CLI_ERR_HOST_KEY_NOT_ATTESTED: 'first connection, and the presented SSH host key is not one the relay attests',
  CLI_ERR_SSH_AUTH_FAILED: 'the SSH server refused every authentication method tried',
  CLI_ERR_SSH_CONNECTION: 'the SSH connection failed or was lost',
  CLI_ERR_CONNECT_TIMEOUT: 'no SSH connection within the connect timeout (--connect-timeout, default 30 s)',
  CLI_ERR_KEY_FILE: 'a private key file cannot be read or decrypted',
  CLI_ERR_NO_TTY: 'a password or passphrase is needed but there is no terminal to ask on',
  CLI_ERR_PROMPT_ABORTED: 'a prompt was cancelled with Ctrl-C or Ctrl-D',
  CLI_ERR_BAD_PASSWORD: 'the password given is empty or too short',
  CLI_ERR_NO_GRANT: 'you have no grant for that machine (or it does not exist)',
  CLI_ERR_ACCOUNT_DISABLED: 'your account on the relay was disabled by an admin',
  CLI_ERR_SESSION_ENDED:
    'an admin ended your session (password reset, role changed, account disabled and enabled, or the machine relabelled so no grant of yours matches)',
  CLI_ERR_UNKNOWN_USER: 'no user with that name on the relay',
  CLI_ERR_UNKNOWN_GRANT: 'no such grant on the relay',
  CLI_ERR_BAD_LABEL: 'a label, label selector or ls filter breaks a rule (the message names it)',
  CLI_ERR_NO_MATCH: 'the machine selector (mssh exec, mssh cp) matched no machine you may reach',
  CLI_ERR_MACHINE_TIMEOUT: 'a machine did not finish within --timeout (mssh exec, mssh cp)',
  CLI_ERR_INTERRUPTED: 'the run was interrupted (Ctrl-C) before this machine finished',
  CLI_ERR_CP_NO_SUCH_FILE: 'mssh cp: a source, or the directory of the destination, does not exist',
  CLI_ERR_CP_PERMISSION_DENIED: 'mssh cp: the file system refused to read or write a path',
  CLI_ERR_CP_NOT_A_DIRECTORY: 'mssh cp: the destination must be a directory (several sources) but is not',
  CLI_ERR_CP_IS_A_DIRECTORY:
    'mssh cp: a source is a directory and -r was not given (or a file would replace a directory)',
  CLI_ERR_CP_NOT_REGULAR: 'mssh cp: a named source is neither a regular file nor a directory',
  CLI_ERR_CP_NO_SPACE: 'mssh cp: not enough free space on the destination',
  CLI_ERR_CP_REMOTE_TO_REMOTE: 'mssh cp: both sides are remote (or sources on several machines)',
  CLI_ERR_CP_FAILED: 'mssh cp: the SFTP server or the local file system reported another failure',
  CLI_ERR_FORWARD_BIND: 'a -L or -D forward cannot listen on its local address and port (in use, not permitted)',
  CLI_ERR_FORWARD_REFUSED:
    "the machine's SSH server refused a -R forward (forwarding not allowed, or the port is taken there)",
  CLI_ERR_LOGIN_CHANGED:
    'the ssh config block was written for another mssh login (relay and user) than the one in use: write it again',
  CLI_ERR_INTERNAL: 'a bug in mssh (please report it)',
} as const;

export type CliErrorCode = keyof typeof CLI_ERRORS;

/** The shared CliError of @mssh/cli-kit (exit codes: docs/cli.md, "Exit codes"). */
export { CliError, isCliError } from '@mssh/cli-kit';

export function cliError(code: CliErrorCode, message: string, hint = '', cause?: unknown): CliError {
  return new CliError(code, message, hint, { cause });
}

/** The lines main.ts prints for an error (no trailing newline): `mssh: <message> [CODE]` and the hint. */
export function formatCliError(e: CliError, oneLine = false): string {
  return formatKitError('mssh', e, oneLine);
}

/** `mssh login --relay URL --user NAME`, filled in with what is known. */
export function loginCommand(relayUrl?: string, user?: string): string {
  return `mssh login --relay ${relayUrl ?? 'URL'} --user ${user ?? 'NAME'}`;
}

export function notLoggedIn(relayUrl?: string): CliError {
  return cliError(
    'CLI_ERR_NOT_LOGGED_IN',
    relayUrl ? `not logged in to ${relayUrl}` : 'not logged in to a relay',
    `Run \`${loginCommand(relayUrl)}\` first.`,
  );
}

export interface WireContext {
  relayUrl: string;
  /** The machine the request was about, if any. */
  host?: string;
  /** The stored user name, for the login hint. */
  user?: string;
}

const LIMIT_HINTS: Record<string, string> = {
  RLY_ERR_RATE_LIMITED: 'Wait as long as it says, then log in with the right password.',
  RLY_ERR_BUSY: 'Try again in a moment.',
  RLY_ERR_USER_SESSION_LIMIT: 'Close one of your sessions (`mssh ls` shows how many are yours), then try again.',
  RLY_ERR_AGENT_SESSION_LIMIT:
    'Try again once other sessions to that machine have ended, or ask an admin to raise the limit.',
  RLY_ERR_RELAY_SESSION_LIMIT: "Try again later, or ask an admin to raise the relay's --max-sessions.",
};

/**
 * Map a relay's non-2xx answer to a CliError. `body` is the parsed JSON (or anything else); text sent by
 * the relay is stripped of control characters before it can reach the terminal.
 */
export function cliErrorFromWire(status: number, body: unknown, ctx: WireContext): CliError {
  const wire: WireErrorBody | null = isWireErrorBody(body) ? body : null;
  const code = wire ? sanitizeForTerminal(String(wire.code)).slice(0, 64) : '';
  const said = wire ? sanitizeForTerminal(String(wire.message)).slice(0, 300) : '';
  const host = ctx.host ? sanitizeForTerminal(ctx.host) : '';
  const relogin = `Run \`${loginCommand(ctx.relayUrl, ctx.user)}\` again.`;
  switch (code) {
    case 'AUTH_ERR_MISSING_TOKEN':
      return notLoggedIn(ctx.relayUrl);
    case 'AUTH_ERR_TOKEN_EXPIRED':
      return cliError('CLI_ERR_TOKEN_EXPIRED', `your login to ${ctx.relayUrl} has expired`, relogin);
    case 'AUTH_ERR_SESSION_ENDED':
      return cliError(
        'CLI_ERR_SESSION_ENDED',
        `your session on ${ctx.relayUrl} was ended by an admin; log in again`,
        relogin,
      );
    case 'AUTH_ERR_TOKEN_OUTDATED':
      return cliError(
        'CLI_ERR_TOKEN_REJECTED',
        `your login to ${ctx.relayUrl} was issued by an older relay version (${code})`,
        relogin,
      );
    case 'AUTH_ERR_INVALID_TOKEN':
    case 'AUTH_ERR_TOKEN_REVOKED':
      return cliError(
        'CLI_ERR_TOKEN_REJECTED',
        `the relay at ${ctx.relayUrl} no longer accepts your login (${code})`,
        relogin,
      );
    case 'AUTH_ERR_BAD_CREDENTIALS':
      return cliError(
        'CLI_ERR_BAD_CREDENTIALS',
        'wrong user name or password',
        'Check both and try again; an admin can create or reset your account.',
      );
    case 'AUTH_ERR_FORBIDDEN':
      return cliError(
        'CLI_ERR_FORBIDDEN',
        'this needs an admin account',
        `Log in as an admin: \`${loginCommand(ctx.relayUrl)}\`.`,
      );
    case 'AUTH_ERR_USER_DISABLED':
      return cliError(
        'CLI_ERR_ACCOUNT_DISABLED',
        `your account on ${ctx.relayUrl} was disabled by an admin`,
        'Ask an admin to enable it (`mssh admin users enable NAME`).',
      );
    case 'RLY_ERR_NO_GRANT':
      return cliError(
        'CLI_ERR_NO_GRANT',
        `you have no access to ${host || 'that machine'} on ${ctx.relayUrl} (or no such machine is enrolled)`,
        `Run \`mssh ls\` to see the machines you can reach; an admin grants access with \`mssh admin grant ${ctx.user ?? 'USER'} ${host || 'HOST'}\`.`,
      );
    case 'RLY_ERR_UNKNOWN_USER':
      return cliError(
        'CLI_ERR_UNKNOWN_USER',
        said || 'no user with that name',
        'See the users with `mssh admin users list`.',
      );
    case 'RLY_ERR_UNKNOWN_GRANT':
      return cliError('CLI_ERR_UNKNOWN_GRANT', said || 'no such grant', 'See the grants with `mssh admin grants`.');
    case 'RLY_ERR_BAD_LABEL':
      return cliError(
        'CLI_ERR_BAD_LABEL',
        said || 'a label breaks a rule',
        'Labels are key=value: keys 1-63 of a-z, 0-9, ., _, / and -, values 1-63 printable characters without spaces or commas, at most 32 per machine.',
      );
    case 'RLY_ERR_UNKNOWN_HOST':
      return cliError(
        'CLI_ERR_UNKNOWN_HOST',
        `no machine named ${host || '(that name)'} is enrolled on ${ctx.relayUrl}`,
        'Run `mssh ls` to see the machines you can reach.',
      );
    case 'RLY_ERR_AGENT_OFFLINE':
      return cliError(
        'CLI_ERR_HOST_OFFLINE',
        `${host || 'the machine'} is offline: the agent on that machine is not connected to the relay`,
        `Start it there (\`mssh-agent run\`), or check \`mssh ls\` for when it was last seen.`,
      );
    case 'RLY_ERR_AGENT_FAILED':
    case 'AGT_ERR_TARGET_UNREACHABLE':
      return cliError(
        'CLI_ERR_AGENT_FAILED',
        `the agent on ${host || 'the machine'} could not open the session${said ? `: ${said}` : ''}`,
        "Check that the machine's SSH server is running and matches the agent's --target.",
      );
    case 'RLY_ERR_NAME_TAKEN':
      return cliError('CLI_ERR_NAME_TAKEN', said || 'that name is already in use', 'Pick another name.');
    case 'RLY_ERR_DATABASE_UNAVAILABLE':
      return cliError(
        'CLI_ERR_RELAY_ERROR',
        `the relay at ${ctx.relayUrl} cannot reach its database, so it refuses new sessions (${code})`,
        'Sessions already open are not affected. Try again in a moment; if it persists, tell whoever runs the relay.',
      );
    case 'RLY_ERR_DRAINING':
      return cliError(
        'CLI_ERR_RELAY_ERROR',
        `the relay at ${ctx.relayUrl} is draining for a restart and opens no new sessions (${code})`,
        'Sessions already open are not affected. Connect again in a moment: another relay behind the same address, or this one once it is back, takes it.',
      );
    case 'RLY_ERR_PROTOCOL_TOO_OLD':
      return cliError(
        'CLI_ERR_PROTOCOL_TOO_OLD',
        `the relay at ${ctx.relayUrl} needs a newer mssh`,
        'Upgrade mssh on this machine.',
      );
    case 'RLY_ERR_RATE_LIMITED':
    case 'RLY_ERR_BUSY':
    case 'RLY_ERR_USER_SESSION_LIMIT':
    case 'RLY_ERR_AGENT_SESSION_LIMIT':
    case 'RLY_ERR_RELAY_SESSION_LIMIT':
      return cliError('CLI_ERR_RELAY_LIMIT', `the relay refused: ${said || code} (${code})`, LIMIT_HINTS[code]);
    default:
      break;
  }
  if (status === 401) {
    return cliError(
      'CLI_ERR_TOKEN_REJECTED',
      `the relay at ${ctx.relayUrl} refused your login${code ? ` (${code})` : ''}`,
      relogin,
    );
  }
  if (wire) {
    return cliError(
      'CLI_ERR_RELAY_ERROR',
      `the relay answered ${status}: ${said || 'no message'} (${code || 'no code'})`,
      '',
    );
  }
  return cliError(
    'CLI_ERR_RELAY_BAD_RESPONSE',
    `the relay at ${ctx.relayUrl} answered HTTP ${status} without an mssh error body`,
    'Check that the URL points at an mssh relay (`mssh-relay serve`), not another web server.',
  );
}

/**
 * A running tunnel the relay reset with one of its own codes (libs/protocol tunnel-end.ts): why, as the
 * error to print instead of "the connection was lost". Null for any other end.
 */
export function tunnelEndedByRelay(
  rstCode: number | undefined,
  host: string,
  ctx: { relayUrl: string; user?: string },
): CliError | null {
  const h = sanitizeForTerminal(host);
  switch (tunnelEndReason(rstCode)) {
    case 'user_disabled':
      return cliError(
        'CLI_ERR_ACCOUNT_DISABLED',
        `the session to ${h} was ended: your account on ${ctx.relayUrl} was disabled by an admin`,
        'Ask an admin to enable it (`mssh admin users enable NAME`).',
      );
    case 'role_changed':
      return cliError(
        'CLI_ERR_SESSION_ENDED',
        `the session to ${h} was ended by an admin: your role on ${ctx.relayUrl} changed`,
        `Log in again (\`${loginCommand(ctx.relayUrl, ctx.user)}\`), then reconnect.`,
      );
    case 'grant_revoked':
      return cliError(
        'CLI_ERR_SESSION_ENDED',
        `the session to ${h} was ended: an admin changed the machine's labels and no grant of yours matches it any more`,
        'Run `mssh ls` to see the machines you can reach; ask an admin for a grant.',
      );
    case 'relay_shutdown':
      return cliError(
        'CLI_ERR_TUNNEL_BROKEN',
        `the session to ${h} was ended: the relay at ${ctx.relayUrl} stopped (a restart or an upgrade)`,
        'Connect again: another relay behind the same address, or this one once it is back, takes the new session.',
      );
    default:
      return null;
  }
}
