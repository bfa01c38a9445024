/**
 * "Open the relay I am logged in to", for any client class built on TunnelClient: the full RelayClient
 * (context.ts) or the bare TunnelClient of the lean entry (lean-main.ts), one code path for both.
 */
import type { RelayEntry } from '../config/credentials-store.js';
import { normalizeRelayUrl } from '../config/relay-url.js';
import { cliError, loginCommand, notLoggedIn } from '../errors.js';
import { connectWithRetry, type RelayConnection } from '../relay-client/relay-connection.js';
import type { RelayClientOptions } from '../relay-client/tunnel-client.js';
import type { CliContext } from './context.js';

export interface LoggedIn<C> {
  client: C;
  entry: RelayEntry & { token: string };
}

export interface LoggedInOptions {
  keepaliveMs?: number;
  timeoutMs?: number;
  onRetry?: (line: string) => void;
  /** Called with the login found, before any network traffic; throws to refuse it. */
  check?: (url: string, user: string | undefined) => void;
}

/** The relay commands talk to: MSSH_RELAY if set, else the one last logged in to. */
export function currentRelayUrl(ctx: CliContext): string {
  if (ctx.config.relayOverride) return normalizeRelayUrl(ctx.config.relayOverride);
  const url = ctx.store.currentUrl();
  if (!url) throw notLoggedIn();
  return url;
}

/**
 * Connect to the current relay with its pinned certificate and the stored token. Fails before any
 * network traffic when there is no login or it has expired.
 */
export async function openLoggedIn<C>(
  ctx: CliContext,
  opts: LoggedInOptions,
  make: (conn: RelayConnection, o: RelayClientOptions) => C,
): Promise<LoggedIn<C>> {
  const url = currentRelayUrl(ctx);
  const entry = ctx.store.get(url);
  if (!entry || !entry.token) throw notLoggedIn(url);
  opts.check?.(url, entry.user);
  const expires = entry.expiresAt ? Date.parse(entry.expiresAt) : NaN;
  if (Number.isFinite(expires) && expires <= ctx.now().getTime()) {
    throw cliError(
      'CLI_ERR_TOKEN_EXPIRED',
      `your login to ${url} expired at ${entry.expiresAt}`,
      `Run \`${loginCommand(url, entry.user)}\` again.`,
    );
  }
  // A relay that drains or stops refuses; one more attempt on a new connection reaches another one behind
  // the same address (relay-client/retry.ts). Told at debug level only.
  const onRetry = opts.onRetry ?? debugLine(ctx);
  const connect = async () => {
    const c = await connectWithRetry(
      (o) => ctx.connect(o),
      {
        url,
        trust: { pin: entry.fingerprint, explicit: false },
        keepaliveMs: opts.keepaliveMs,
        timeoutMs: opts.timeoutMs,
      },
      onRetry,
    );
    if (c.pinReplaced) ctx.store.updatePin(url, c.fingerprint);
    return c;
  };
  const conn = await connect();
  return {
    client: make(conn, { token: entry.token, user: entry.user, reconnect: connect, onRetry }),
    entry: { ...entry, token: entry.token },
  };
}

/** `debug: <line>` on stderr when MSSH_DEBUG=1, else nothing. */
export function debugLine(ctx: CliContext): ((line: string) => void) | undefined {
  return ctx.config.debug ? (line) => ctx.io.stderr.write(`debug: ${line}\n`) : undefined;
}
