import { sanitizeForTerminal } from '@mssh/protocol';
import { normalizeRelayUrl, parseFingerprint } from '../config/relay-url.js';
import type { RelayEntry } from '../config/credentials-store.js';
import { cliError, isCliError, type CliError, type CliErrorCode } from '../errors.js';
import { RelayClient } from '../relay-client/relay-client.js';
import { readFirstLine } from '@mssh/cli-kit';
import {
  currentRelayUrl,
  openLoggedInRelay,
  printJson,
  println,
  withLoggedInRelay,
  type CliContext,
} from './context.js';
import { updateInstalledBlock } from './ssh-config.js';

export interface LoginArgs {
  relay: string;
  user: string;
  passwordStdin: boolean;
  relayFingerprint?: string;
}

/**
 * `mssh login`: pin the relay certificate (given, stored, or trusted on first use), then trade user name
 * and password for a token. The password is read before anything is sent and never stored.
 */
export async function login(ctx: CliContext, args: LoginArgs): Promise<number> {
  const url = normalizeRelayUrl(args.relay);
  const explicitPin = args.relayFingerprint !== undefined ? parseFingerprint(args.relayFingerprint) : null;
  let password: string | null = null;
  if (args.passwordStdin) {
    password = await readFirstLine(ctx.io.stdin);
    if (!password)
      throw cliError(
        'CLI_ERR_BAD_PASSWORD',
        'no password on stdin',
        'Pipe the password as the first line, e.g. `printf "%s\\n" "$PW" | mssh login ... --password-stdin`.',
      );
  } else if (!ctx.prompter.available()) {
    throw cliError(
      'CLI_ERR_NO_TTY',
      'there is no terminal to ask for the password',
      'Pass it as the first line of stdin with --password-stdin.',
    );
  }
  const stored = ctx.store.get(url);
  const conn = await ctx.connect({
    url,
    trust: explicitPin ? { pin: explicitPin, explicit: true } : { pin: stored?.fingerprint ?? null, explicit: false },
  });
  try {
    if (conn.firstUse)
      println(ctx.io.stderr, `Relay certificate fingerprint: ${conn.fingerprint} (trusted on first use)`);
    if (password === null) {
      password = await ctx.prompter.ask(`Password for ${args.user} on ${url}: `, { echo: false });
      if (!password)
        throw cliError('CLI_ERR_BAD_PASSWORD', 'empty password', 'Run the command again and type the password.');
    }
    const client = new RelayClient(conn, { token: null, user: args.user });
    const res = await client.login(args.user, password);
    ctx.store.saveLogin({
      url,
      fingerprint: conn.fingerprint,
      token: res.token,
      user: res.user,
      admin: res.admin,
      expiresAt: res.expiresAt,
    });
    println(
      ctx.io.stdout,
      `Logged in to ${url} as ${sanitizeForTerminal(res.user)}${res.admin ? ' (admin)' : ''}, until ${sanitizeForTerminal(res.expiresAt)}.`,
    );
    // The installed ssh config block names the login its shared connections belong to (ssh-config.ts).
    const rewritten = updateInstalledBlock(ctx);
    if (rewritten) println(ctx.io.stderr, `Wrote the mssh block in ${rewritten} again for this login.`);
    return 0;
  } finally {
    await conn.close();
  }
}

/**
 * `mssh logout`: revoke the token on the relay, then delete it here. The relay's pin is kept. When the
 * relay cannot be reached the token is still deleted here, and the failure says it was not revoked.
 * A damaged or unreadable credentials file is reported (CLI_ERR_CONFIG, exit 1) after revoking the
 * token it still names, if any; the file is left as it is.
 */
export async function logout(ctx: CliContext): Promise<number> {
  let url: string;
  let entry: RelayEntry | null;
  try {
    url = currentRelayUrl(ctx);
    entry = ctx.store.get(url);
  } catch (e) {
    if (isCliError(e) && e.code === 'CLI_ERR_NOT_LOGGED_IN') {
      println(ctx.io.stderr, 'Not logged in.');
      return 0;
    }
    if (isCliError(e) && e.code === 'CLI_ERR_CONFIG') return logoutFromDamagedStore(ctx, e);
    throw e;
  }
  if (!entry?.token) {
    println(ctx.io.stderr, `Not logged in to ${url}.`);
    return 0;
  }
  try {
    const { client } = await openLoggedInRelay(ctx);
    try {
      await client.logout();
    } finally {
      await client.close();
    }
  } catch (e) {
    if (!harmlessRevokeFailure(e)) {
      ctx.store.clearToken(url);
      if (!isCliError(e)) throw e;
      throw cliError(
        e.code as CliErrorCode,
        `${e.message}; the token was deleted here but not revoked on the relay`,
        `It stays valid there until ${entry.expiresAt ?? 'it expires'}.`,
        e,
      );
    }
  }
  ctx.store.clearToken(url);
  println(ctx.io.stdout, `Logged out of ${url}.`);
  return 0;
}

/** A token the relay already refuses (expired, revoked) needs no revocation. */
function harmlessRevokeFailure(e: unknown): boolean {
  return (
    isCliError(e) &&
    (e.code === 'CLI_ERR_TOKEN_EXPIRED' ||
      e.code === 'CLI_ERR_TOKEN_REJECTED' ||
      e.code === 'CLI_ERR_SESSION_ENDED' ||
      e.code === 'CLI_ERR_ACCOUNT_DISABLED' ||
      e.code === 'CLI_ERR_NOT_LOGGED_IN')
  );
}

/** POST logout with a salvaged entry's token, over a connection checked against its pin (the store cannot be updated). */
async function revoke(ctx: CliContext, entry: RelayEntry & { token: string }): Promise<void> {
  const conn = await ctx.connect({ url: entry.url, trust: { pin: entry.fingerprint, explicit: false } });
  const client = new RelayClient(conn, { token: entry.token, user: entry.user });
  try {
    await client.logout();
  } finally {
    await client.close();
  }
}

/**
 * The credentials file cannot be read or parsed: revoke the current relay's token if the file still holds
 * it intact, then fail with the damage (never "Not logged in.", which would leave a live token behind).
 */
async function logoutFromDamagedStore(ctx: CliContext, damage: CliError): Promise<number> {
  const found = ctx.store.salvage();
  const url = ctx.config.relayOverride ? normalizeRelayUrl(ctx.config.relayOverride) : found.current;
  const entry = url ? found.relays[url] : undefined;
  let outcome: string;
  if (!entry?.token) {
    outcome = url
      ? `no token for ${url} could be read from it, so none was revoked`
      : 'no token could be read from it, so none was revoked';
  } else {
    try {
      await revoke(ctx, { ...entry, token: entry.token });
      outcome = `the token for ${url} it still holds was revoked on the relay`;
    } catch (e) {
      if (harmlessRevokeFailure(e)) outcome = `the token for ${url} it still holds was no longer valid on the relay`;
      else if (isCliError(e))
        outcome = `the token for ${url} it still holds was NOT revoked (${e.message} [${e.code}])`;
      else throw e;
    }
  }
  throw cliError(
    'CLI_ERR_CONFIG',
    `${damage.message}; ${outcome}`,
    damage.hint ?? `Delete ${ctx.store.path} and log in again.`,
    damage,
  );
}

/** `mssh whoami`: ask the relay who the stored token belongs to. */
export async function whoami(ctx: CliContext, args: { json: boolean } = { json: false }): Promise<number> {
  return withLoggedInRelay(ctx, async (client) => {
    const me = await client.whoami();
    if (args.json) {
      printJson(ctx, { user: me.user, admin: me.admin, relay: client.url, expiresAt: me.expiresAt });
      return 0;
    }
    println(ctx.io.stdout, `user:    ${sanitizeForTerminal(me.user)}${me.admin ? ' (admin)' : ''}`);
    println(ctx.io.stdout, `relay:   ${client.url}`);
    println(ctx.io.stdout, `expires: ${sanitizeForTerminal(me.expiresAt)}`);
    return 0;
  });
}
