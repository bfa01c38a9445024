/**
 * What every command gets from main.ts, and the shared step "open the relay I am logged in to".
 */
import type { Readable, Writable } from 'node:stream';
import { jsonForTerminal } from '@mssh/protocol';
import type { ClientConfig } from '../config/config.js';
import type { CredentialsStore } from '../config/credentials-store.js';
import type { KnownHostsFile } from '../known-hosts/known-hosts-file.js';
import { RelayClient } from '../relay-client/relay-client.js';
import type { ConnectRelayOptions, RelayConnection } from '../relay-client/relay-connection.js';
import { openLoggedIn, type LoggedIn, type LoggedInOptions } from './logged-in.js';
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
  entry: LoggedIn<RelayClient>['entry'];
}

export { currentRelayUrl, debugLine } from './logged-in.js';

/**
 * Connect to the current relay with its pinned certificate and the stored token, as a full RelayClient.
 * Fails before any network traffic when there is no login or it has expired (logged-in.ts).
 */
export function openLoggedInRelay(ctx: CliContext, opts: LoggedInOptions = {}): Promise<LoggedInRelay> {
  return openLoggedIn(ctx, opts, (conn, o) => new RelayClient(conn, o));
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
