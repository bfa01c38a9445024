/**
 * mssh-relay: the composition root. Parses the command line (cli/program.ts), runs one command
 * (cli/commands.ts; `serve` below builds the relay component of relay.ts and maps signals to its drain and stop),
 * and reports a failure the way every mssh program does (@mssh/cli-kit: `mssh-relay: <message> [CODE]`,
 * the hint, and the exit code of docs/cli.md).
 *
 *   mssh (client) --HTTPS/h2, JWT--> relay --one TLS+h2 link per agent--> mssh-agent --> sshd
 */
import { commanderExitCode, reportError } from '@mssh/cli-kit';
import { installBufferReclaim } from '@mssh/protocol/transport';
import { STOP_TIMEOUT_MS } from './config.js';
import { resolveServeConfig } from './config-file.js';
import { rootMessage } from './errors.js';
import { buildProgram, type Flags } from './cli/program.js';
import { commandHandlers, relayCliError } from './cli/commands.js';

/**
 * Signals (issue 19):
 *   SIGTERM            drain (relay.ts shutdown(): /readyz 503, agents moved, new sessions refused, running
 *                      ones go on until they end or --drain-timeout), then stop, exit 0. `mssh-relay drain`
 *                      starts the same drain through the admin socket.
 *   SIGINT             stop now, as before: Ctrl-C in a terminal means "stop", not "wait up to 20 s";
 *                      sessions end relay_shutdown.
 *   a signal while     SIGTERM or SIGINT during a drain: stop now (the drain's waits are cut short);
 *   draining/stopping  any signal during the stop: exit 1 at once.
 * Whatever began it, the process exits 0 once the stop has finished, and 1 when the drain and the stop
 * together overrun their budget (the drain's longest wait + STOP_TIMEOUT_MS).
 */
async function serve(flags: Flags): Promise<void> {
  const { cfg } = resolveServeConfig(flags); // flags > env > --config file (MSSH_CONFIG) > defaults
  installBufferReclaim(); // sessions move bulk data through this process (libs/protocol buffer-reclaim.ts)
  // The relay (fastify, ssh2, the database code...) loads only to serve: the other commands do not need it.
  const [{ createLogger }, { createRelay }] = await Promise.all([import('./logger.js'), import('./relay.js')]);
  const logger = createLogger(cfg.logLevel, cfg.logFormat);
  const exitAfter = (ms: number, what: string) =>
    setTimeout(() => {
      logger.error(`${what} took longer than ${Math.round(ms / 1000)} s; exiting`);
      process.exit(1);
    }, ms).unref();
  const relay = createRelay({
    cfg,
    logger,
    out: (line) => process.stdout.write(`${line}\n`),
    onDrain: ({ budgetMs }) => exitAfter(budgetMs + STOP_TIMEOUT_MS, 'the drain and stop'),
  });
  try {
    await relay.start();
  } catch (e) {
    await relay.stop('start failed');
    throw e;
  }
  void relay.stopped.then(() => {
    logger.info('stopped');
    process.exit(0);
  });
  const onSignal = (signal: NodeJS.Signals) => {
    const state = relay.state;
    if (state === 'stopping') {
      logger.warn({ signal }, 'signal during the stop: exiting now');
      process.exit(1);
    }
    if (state === 'serving' && signal === 'SIGTERM') {
      void relay.shutdown(signal);
      return;
    }
    logger.info({ signal }, state === 'draining' ? 'signal during the drain: stopping now' : 'shutting down');
    exitAfter(STOP_TIMEOUT_MS, 'shutdown');
    void relay.stop(signal);
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
