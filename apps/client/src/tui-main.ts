/**
 * `mssh-tui`: the only place that wires the full-screen picker. Reads the configuration, opens the log
 * file, builds the dependencies, runs the picker, and makes sure the terminal is restored (normal screen,
 * cooked mode, cursor visible) on every exit path: quit, crash, SIGTERM, SIGHUP.
 *
 *   mssh-tui [--relay URL] [--host NAME] [-i FILE]
 */
import { existsSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { parseConfig, type ClientConfig } from './config/config.js';
import { CredentialsStore } from './config/credentials-store.js';
import { normalizeRelayUrl } from './config/relay-url.js';
import { ensurePrivateDir } from './config/secure-files.js';
import { cliError, formatCliError, isCliError, type CliError } from './errors.js';
import { KnownHostsFile } from './known-hosts/known-hosts-file.js';
import { LoginUsers } from './picker/login-users.js';
import { PickerApp } from './picker/picker-app.js';
import { createTuiLogger, tuiLogPath } from './picker/tui-log.js';
import { connectRelay } from './relay-client/relay-connection.js';
import { identityFilesFor } from './ssh/auth.js';
import { assertHostName } from './ssh/ssh-via-relay.js';
import { installBufferReclaim } from '@mssh/protocol/transport';

const USAGE = `Usage: mssh-tui [--relay URL] [--host NAME] [-i FILE] [--connect-timeout SECONDS]

Full-screen picker of the machines on your mssh relay; Enter opens a shell on one.
  --relay URL     use this relay (one you logged in to) instead of the current one
  --host NAME     connect to NAME (or NAME.mssh) at once; the picker comes back when the shell ends
  -i, --identity FILE   SSH private key to log in with (tried after the ssh-agent, before ~/.ssh/id_ed25519, id_ecdsa, id_rsa;
                  also MSSH_IDENTITY=FILE)
  --connect-timeout SECONDS   give up on a machine whose SSH handshake has not finished (default 30; 1-3600)
  -h, --help      this help
Keys in the picker: type to filter (best match selected), Up/Down or j/k, Home/End, Enter connect,
  u or Tab login user, r refresh, ? help, q quit.`;

export interface TuiArgs {
  relay: string | null;
  host: string | null;
  identity: string | null;
  /** --connect-timeout, in ms; null: the default (30 s). */
  connectTimeoutMs: number | null;
  help: boolean;
}

export function parseTuiArgs(argv: string[]): TuiArgs {
  const out: TuiArgs = { relay: null, host: null, identity: null, connectTimeoutMs: null, help: false };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]!;
    const eq = a.indexOf('=');
    const flag = a.startsWith('--') && eq > 0 ? a.slice(0, eq) : a;
    const inline = a.startsWith('--') && eq > 0 ? a.slice(eq + 1) : undefined;
    const value = (): string => {
      const v = inline ?? argv[++i];
      if (v === undefined || v === '')
        throw cliError('CLI_ERR_USAGE', `${flag} needs a value`, 'See `mssh-tui --help`.');
      return v;
    };
    if (flag === '-h' || flag === '--help') out.help = true;
    else if (flag === '--relay') out.relay = value();
    else if (flag === '--host')
      out.host = value()
        .toLowerCase()
        .replace(/(.)\.mssh$/, '$1'); // NAME.mssh (OpenSSH alias) is NAME
    else if (flag === '-i' || flag === '--identity') out.identity = value();
    else if (flag === '--connect-timeout') {
      const v = value().trim();
      if (!/^\d{1,4}$/.test(v) || Number(v) < 1 || Number(v) > 3600)
        throw cliError(
          'CLI_ERR_USAGE',
          `--connect-timeout needs whole seconds from 1 to 3600, not ${JSON.stringify(v.slice(0, 40))}`,
          'For example: mssh-tui --connect-timeout 10',
        );
      out.connectTimeoutMs = Number(v) * 1000;
    } else
      throw cliError('CLI_ERR_USAGE', `unknown argument ${JSON.stringify(a.slice(0, 100))}`, 'See `mssh-tui --help`.');
  }
  return out;
}

function fail(e: CliError): never {
  process.stderr.write(`${formatCliError(e).replace(/^mssh:/, 'mssh-tui:')}\n`);
  process.exit(1);
}

function main(): void {
  installBufferReclaim(); // the picker's sessions move data through this process (libs/protocol buffer-reclaim.ts)
  let config: ClientConfig;
  let args: TuiArgs;
  try {
    config = parseConfig(process.env);
    args = parseTuiArgs(process.argv.slice(2));
  } catch (e) {
    fail(
      isCliError(e)
        ? e
        : cliError(
            'CLI_ERR_CONFIG',
            `invalid environment: ${(e as Error).message}`,
            'Check the MSSH_* environment variables.',
          ),
    );
  }
  if (args.help) {
    process.stdout.write(`${USAGE}\n`);
    process.exit(0);
  }
  if (!process.stdin.isTTY || !process.stdout.isTTY) {
    fail(
      cliError(
        'CLI_ERR_NO_TTY',
        'mssh-tui needs a terminal (stdin and stdout)',
        'Run it in a terminal; for scripts use `mssh ls` and `mssh ssh`.',
      ),
    );
  }
  let identityFiles: string[];
  const identity = args.identity ?? process.env.MSSH_IDENTITY ?? null;
  try {
    if (args.host) assertHostName(args.host);
    if (args.relay) args.relay = normalizeRelayUrl(args.relay);
    if (identity) {
      const file = resolve(identity);
      if (!existsSync(file))
        throw cliError('CLI_ERR_KEY_FILE', `the key file ${file} does not exist`, 'Check the path given to -i.');
      identityFiles = identityFilesFor([file], config.home);
    } else {
      identityFiles = identityFilesFor([], config.home);
    }
    ensurePrivateDir(config.configDir);
  } catch (e) {
    fail(isCliError(e) ? e : cliError('CLI_ERR_CONFIG', (e as Error).message, ''));
  }
  const store = new CredentialsStore(config.configDir);
  if (args.relay && !store.get(args.relay)?.token) {
    fail(
      cliError(
        'CLI_ERR_NOT_LOGGED_IN',
        `not logged in to ${args.relay}`,
        `Logged in: ${
          store
            .list()
            .filter((r) => r.token)
            .map((r) => r.url)
            .join(', ') || 'none'
        }. Run \`mssh login --relay ${args.relay} --user NAME\` first.`,
      ),
    );
  }
  const logPath = tuiLogPath(process.env, config.home, config.configDir);
  const log = createTuiLogger(logPath);
  log.info({ pid: process.pid, args: { relay: args.relay, host: args.host } }, 'mssh-tui start');

  // Captured before blessed exists: blessed's pause() replaces stdout.write with a no-op.
  const realWrite = process.stdout.write.bind(process.stdout);
  const app = new PickerApp({
    config,
    store,
    knownHosts: new KnownHostsFile(join(config.configDir, 'known_hosts')),
    users: new LoginUsers(config.configDir, config.localUser, {
      onDamaged: (d) => log.warn(d, 'tui-users.json is damaged: set aside, not overwritten'),
    }),
    log,
    identityFiles,
    connect: connectRelay,
    relayUrl: args.relay ?? config.relayOverride,
    initialHost: args.host,
    handshakeTimeoutMs: args.connectTimeoutMs ?? undefined,
  });
  let restored = false;
  const restore = () => {
    if (restored) return;
    restored = true;
    app.restoreTerminal();
    try {
      if (process.stdin.isTTY) process.stdin.setRawMode(false);
    } catch {
      // terminal gone
    }
    // Main screen, cursor visible, attributes reset: whatever state blessed or the shell left.
    try {
      realWrite('\x1b[?1049l\x1b[?25h\x1b[0m');
    } catch {
      // terminal gone
    }
  };
  process.on('exit', restore);
  for (const [sig, num] of [
    ['SIGTERM', 15],
    ['SIGHUP', 1],
  ] as const) {
    process.on(sig, () => {
      log.info({ signal: sig }, 'mssh-tui stopped by signal');
      restore();
      process.exit(128 + num);
    });
  }
  process.on('uncaughtException', (e) => {
    log.error({ err: e }, 'mssh-tui crashed');
    restore();
    process.stderr.write(
      `mssh-tui: unexpected error: ${e?.message ?? String(e)} [CLI_ERR_INTERNAL]\nPlease report this; details are in ${logPath}.\n`,
    );
    process.exit(1);
  });
  process.on('unhandledRejection', (e) => {
    log.error({ err: e }, 'unhandled rejection');
  });
  void app.run().then((code) => {
    log.info({ code }, 'mssh-tui exit');
    restore();
    process.exit(code);
  });
}

main();
