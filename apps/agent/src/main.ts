/**
 * mssh-agent: keeps a machine behind NAT reachable through an mssh relay. The composition root: parse the
 * command line (cli.ts), build the pieces of `run`, map signals, and report a failure the way every mssh
 * program does (@mssh/cli-kit: `mssh-agent: <message> [CODE]`, the hint, the exit code of docs/cli.md).
 *
 *   mssh-agent enroll --relay https://HOST:PORT --token T --name NAME [--relay-fingerprint SHA256:...]
 *                     [--state-dir DIR] [--target auto|embedded|HOST:PORT]
 *   mssh-agent run [--config FILE] [--state-dir DIR] [--target auto|embedded|HOST:PORT] [--allow-forwarding] [--log-level L]
 *                  [--log-format json|pretty]
 *                  [--relay URL]... [--links K] [--metrics-listen HOST:PORT]
 *   mssh-agent authorize add KEYFILE | list | remove FINGERPRINT_OR_COMMENT [--state-dir DIR]
 *   mssh-agent config show [--config FILE] [run options] [--json]
 *   mssh-agent install-service [--print] [--user U [--create-user]] [--unit-dir DIR] ... -- RUN-OPTIONS
 */
import { CliError, EXIT, commanderExitCode, reportError } from '@mssh/cli-kit';
import { parseEnrollConfig, type EnrollFlags, type RunFlags } from './config.js';
import { buildProgram } from './cli.js';
import { formatSettings, resolveRunSettings, settingsJson } from './config-file.js';
import { AgentError } from './errors.js';
import { SshdError } from './embedded-sshd/errors.js';
import { agentUnit, installAgentService, type InstallServiceFlags } from './service/agent-unit.js';

type AuthorizeCommands = typeof import('./embedded-sshd/authorize-commands.js');

// Each command loads what it needs when it runs (the bundle is split: scripts/build-app.mjs --split): `run`
// the relay links, ssh2, pino (run.ts); `enroll` the enrolment; `authorize` the key parsing.

/** The agent's coded errors as the CliError to print: first line the message, the rest the hint. */
function agentCliError(e: unknown): CliError | null {
  if (!(e instanceof AgentError) && !(e instanceof SshdError)) return null;
  const [first, ...rest] = e.message.split('\n');
  // Option problems are listed one per line: all of them are the message.
  if (e.code === 'AGT_ERR_CONFIG')
    return new CliError(e.code, e.message, 'See mssh-agent --help.', { cause: e, exitCode: EXIT.USAGE });
  return new CliError(e.code, first ?? '', rest.join('\n'), { cause: e });
}

function fail(e: unknown): never {
  const commander = commanderExitCode(e);
  if (commander !== null) process.exit(commander); // commander printed the problem already
  process.exit(
    reportError(e, {
      program: 'mssh-agent',
      toCliError: agentCliError,
      bugHint: 'Run again with --log-level debug, and report it if it persists.',
    }),
  );
}

async function enrollCommand(flags: EnrollFlags): Promise<void> {
  const cfg = parseEnrollConfig(flags);
  const { enroll } = await import('./enroll/enroll.js');
  await enroll({ ...cfg, print: (line) => process.stdout.write(`${line}\n`) });
}

async function installServiceCommand(runArgs: string[], flags: InstallServiceFlags): Promise<void> {
  if (flags.print) {
    process.stdout.write(agentUnit(runArgs, flags).unit);
    return;
  }
  for (const line of installAgentService(runArgs, flags).lines) process.stdout.write(`${line}\n`);
}

/** `config show [--config FILE] [run options] [--json]`: what `run` would use, and from where. */
async function configShow(flags: RunFlags & { json?: boolean }): Promise<void> {
  const r = resolveRunSettings(flags);
  process.stdout.write(`${flags.json ? JSON.stringify(settingsJson(r), null, 2) : formatSettings(r)}\n`);
}

buildProgram({
  enroll: enrollCommand,
  run: async (flags: RunFlags) => (await import('./run.js')).runCommand(flags),
  authorizeAdd: async (...a: Parameters<AuthorizeCommands['authorizeAdd']>) =>
    (await import('./embedded-sshd/authorize-commands.js')).authorizeAdd(...a),
  authorizeList: async (...a: Parameters<AuthorizeCommands['authorizeList']>) =>
    (await import('./embedded-sshd/authorize-commands.js')).authorizeList(...a),
  authorizeRemove: async (...a: Parameters<AuthorizeCommands['authorizeRemove']>) =>
    (await import('./embedded-sshd/authorize-commands.js')).authorizeRemove(...a),
  installService: installServiceCommand,
  configShow,
})
  .parseAsync(process.argv)
  .catch(fail);
