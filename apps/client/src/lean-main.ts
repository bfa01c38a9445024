/**
 * The lean entry of `mssh` (dist/lean.cjs): the command OpenSSH starts for every connection it makes
 * through `mssh config ssh`, its ProxyCommand `mssh proxy [--login-id ID] [--known-hosts-dir DIR] HOST`
 * (which also checks the host key: commands/proxy-host-keys.ts), and the KnownHostsCommand of older blocks,
 * `mssh known-hosts openssh HOST TYPE KEY`. Ansible with ControlMaster off starts it once per task and
 * host, so its start-up is most of what mssh costs there (issue 21, items 4 and 5).
 *
 *   bin/mssh.js ──argv is proxy / known-hosts openssh──▶ dist/lean.cjs (this file; no commander, no zod,
 *              │                                           no ssh2: config, credentials, TLS + HTTP/2)
 *              └──anything else, or what this one does not handle──▶ dist/main.cjs (main.ts)
 *
 * The commands are the same functions main.ts runs (commands/proxy.ts, commands/known-hosts-pinned.ts,
 * relay-client/tunnel-client.ts); this file only wires them as main.ts does. What it does not handle
 * (options, --help, a machine with no key pinned yet, which needs the relay's typed API) runs the full
 * program instead, in the same process. The connect time limits start when the code below runs, after
 * loading: a slow start (200 OpenSSH connections at once on two cores) does not eat into them.
 */
import { join } from 'node:path';
import { createRequire } from 'node:module';
import { reportError } from '@mssh/cli-kit';
import { parseConfig, type ClientConfig } from './config/config.js';
import { CredentialsStore } from './config/credentials-store.js';
import { ensurePrivateDir } from './config/secure-files.js';
import type { CliContext } from './commands/context.js';
import { answerFromPins, parseOpensshQuery } from './commands/known-hosts-pinned.js';
import { proxy } from './commands/proxy.js';
import { EXIT } from '@mssh/cli-kit';
import { isCliError } from './errors.js';
import { KnownHostsFile } from './known-hosts/known-hosts-file.js';
import { connectRelay } from './relay-client/relay-connection.js';
import { installBufferReclaim } from '@mssh/protocol/transport';
import { leanCommand, type LeanCommand } from './lean-command.js';

/** Run dist/main.cjs, the full program, in this process (with the launcher's code cache). */
function runFull(): void {
  const require = createRequire(__filename);
  const loader = require(join(__dirname, '..', 'bin', 'compile-cache.cjs')) as {
    runCompiled: (file: string) => unknown;
  };
  loader.runCompiled(join(__dirname, 'main.cjs'));
}

function exit(code: number): void {
  let pending = 2;
  const done = () => {
    if (--pending === 0) process.exit(code);
  };
  for (const s of [process.stdout, process.stderr]) {
    if (s.destroyed || !s.writable) done();
    else s.write('', done);
  }
}

async function main(cmd: LeanCommand): Promise<void> {
  let config: ClientConfig;
  try {
    config = parseConfig(process.env);
  } catch {
    return runFull(); // main.ts reports it, with its code
  }
  process.stdout.on('error', () => {}); // EPIPE when ssh went away: handled by the command
  process.stderr.on('error', () => {});
  const ctx: CliContext = {
    config,
    store: new CredentialsStore(config.configDir),
    knownHosts: new KnownHostsFile(join(config.configDir, 'known_hosts')),
    prompter: { available: () => false, ask: () => Promise.reject(new Error('no terminal')), say: () => {} },
    io: { stdin: process.stdin, stdout: process.stdout, stderr: process.stderr },
    connect: connectRelay,
    now: () => new Date(),
  };
  try {
    ensurePrivateDir(config.configDir);
    if (cmd.kind === 'proxy') {
      installBufferReclaim(); // bulk data moves through this process (libs/protocol buffer-reclaim.ts)
      return exit(await proxy(ctx, cmd));
    }
    const answered = answerFromPins(ctx, parseOpensshQuery(cmd));
    if (answered === null) return runFull(); // nothing pinned: the relay's attested keys (known-hosts.ts)
    return exit(answered);
  } catch (e) {
    const code = reportError(e, {
      program: 'mssh',
      oneLine: true,
      bugHint: 'Please report this, with the command you ran (MSSH_DEBUG=1 prints details).',
    });
    if (!isCliError(e) && config.debug) process.stderr.write(`${(e as Error)?.stack ?? ''}\n`);
    // ssh-like: every failure of `mssh proxy` exits 255, as main.ts's failureExitCode does.
    return exit(cmd.kind === 'proxy' ? EXIT.SSH : code);
  }
}

const cmd = leanCommand(process.argv.slice(2));
if (cmd === null) runFull();
else void main(cmd);
