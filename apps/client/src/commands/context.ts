/**
 * What every command gets from main.ts, and the shared step "open the relay I am logged in to".
 */
import type { Readable, Writable } from 'node:stream';
import { jsonForTerminal } from '@mssh/protocol';
import type { ClientConfig } from '../config/config.js';
import type { CredentialsStore, RelayEntry } from '../config/credentials-store.js';
import { normalizeRelayUrl } from '../config/relay-url.js';
import { cliError, loginCommand, notLoggedIn } from '../errors.js';
import type { KnownHostsFile } from '../known-hosts/known-hosts-file.js';
import { RelayClient } from '../relay-client/relay-client.js';
import { connectWithRetry, type ConnectRelayOptions, type RelayConnection } from '../relay-client/relay-connection.js';
import type { Prompter } from '@mssh/cli-kit';

export interface CliIo {
  stdin: Readable;
  stdout: Writable;
  stderr: Writable;
}

export interface CliContext {
  config: ClientConfig;
  store: CredentialsStore;
  knownHosts: KnownHostsFile;
  prompter: Prompter;
  io: CliIo;
  connect(opts: ConnectRelayOptions): Promise<RelayConnection>;
  now(): Date;
}

export interface LoggedInRelay {
  client: RelayClient;
  entry: RelayEntry & { token: string };
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
export async function openLoggedInRelay(
  ctx: CliContext,
  opts: { keepaliveMs?: number; timeoutMs?: number; onRetry?: (line: string) => void } = {},
): Promise<LoggedInRelay> {
  const url = currentRelayUrl(ctx);
  const entry = ctx.store.get(url);
  if (!entry || !entry.token) throw notLoggedIn(url);
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
    client: new RelayClient(conn, { token: entry.token, user: entry.user, reconnect: connect, onRetry }),
    entry: { ...entry, token: entry.token },
  };
}

/** `debug: <line>` on stderr when MSSH_DEBUG=1, else nothing. */
export function debugLine(ctx: CliContext): ((line: string) => void) | undefined {
  return ctx.config.debug ? (line) => ctx.io.stderr.write(`debug: ${line}\n`) : undefined;
}

/** Open the logged-in relay, run `fn` with it, and always close the connection afterwards. */
export async function withLoggedInRelay<T>(
  ctx: CliContext,
  fn: (client: RelayClient, entry: LoggedInRelay['entry']) => Promise<T>,
): Promise<T> {
  const { client, entry } = await openLoggedInRelay(ctx);
  try {
    return await fn(client, entry);
  } finally {
    await client.close();
  }
}

export function println(w: Writable, line = ''): void {
  w.write(`${line}\n`);
}

/**
 * `--json` output, one convention for every command (apps/client/README.md, "JSON output"): a listing is
 * ONE JSON array of its items (`[]` when empty), a single thing (whoami, an enrolment token) ONE JSON
 * object; JSON lines are kept for streams (a future `--follow`). Indented, with DEL, C1 and bidi
 * controls escaped too, so it is safe on a terminal.
 */
export function printJson(ctx: CliContext, v: unknown): void {
  println(ctx.io.stdout, jsonForTerminal(v, 2));
}
