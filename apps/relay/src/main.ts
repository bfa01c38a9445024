/**
 * mssh-relay: the composition root. Parses the command line (cli/program.ts), runs one command
 * (cli/commands.ts; `serve` below builds the relay component of relay.ts and maps signals to its stop),
 * and reports a failure the way every mssh program does (@mssh/cli-kit: `mssh-relay: <message> [CODE]`,
 * the hint, and the exit code of docs/cli.md).
 *
 *   mssh (client) --HTTPS/h2, JWT--> relay --one TLS+h2 link per agent--> mssh-agent --> sshd
 */
import { commanderExitCode, reportError } from '@mssh/cli-kit';
import { installBufferReclaim } from '@mssh/protocol/transport';
import { ServeConfigSchema, parseConfig } from './config.js';
import { createLogger } from './logger.js';
import { rootMessage } from './db/index.js';
import { createRelay } from './relay.js';
import { buildProgram, type Flags } from './cli/program.js';
import { commandHandlers, relayCliError } from './cli/commands.js';

/** Longest a graceful stop may take before the process exits anyway. */
const STOP_TIMEOUT_MS = 15_000;

async function serve(flags: Flags): Promise<void> {
  const cfg = parseConfig(ServeConfigSchema, flags);
  installBufferReclaim(); // sessions move bulk data through this process (libs/protocol buffer-reclaim.ts)
  const logger = createLogger(cfg.logLevel);
  const relay = createRelay({ cfg, logger, out: (line) => process.stdout.write(`${line}\n`) });
  try {
    await relay.start();
  } catch (e) {
    await relay.stop('start failed');
    throw e;
  }
  let stopping = false;
  const onSignal = (signal: NodeJS.Signals) => {
    if (stopping) {
      logger.warn({ signal }, 'second signal: exiting now');
      process.exit(1);
    }
    stopping = true;
    logger.info({ signal }, 'shutting down');
    setTimeout(() => {
      logger.error(`shutdown took longer than ${STOP_TIMEOUT_MS / 1000} s; exiting`);
      process.exit(1);
    }, STOP_TIMEOUT_MS).unref();
    void relay.stop(signal).then(() => {
      logger.info('stopped');
      process.exit(0);
    });
  };
  process.on('SIGTERM', onSignal);
  process.on('SIGINT', onSignal);
  process.on('unhandledRejection', (err) => logger.error({ err }, 'unhandled rejection'));
}

function fail(e: unknown): never {
  const commander = commanderExitCode(e);
  if (commander !== null) process.exit(commander); // commander printed the problem already
  process.exit(
    reportError(e, {
      program: 'mssh-relay',
      toCliError: relayCliError,
      describe: rootMessage,
      bugHint: 'This is a bug in mssh-relay; please report it together with the relay log.',
    }),
  );
}

await buildProgram({ serve, ...commandHandlers() })
  .parseAsync(process.argv)
  .catch(fail);
