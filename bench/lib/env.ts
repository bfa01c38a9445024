/**
 * Sets up everything the benchmark measures, on 127.0.0.1 only, and registers its teardown:
 *
 *   direct:      ssh ──────────────────────────────────────────────> target sshd (TPORT)
 *   jump:        ssh -J bastion -p RPORT ──> bastion sshd ══ ssh -R RPORT:127.0.0.1:TPORT ══> target sshd
 *   mssh-ssh:    mssh ssh (ssh2) ───────────> relay (Postgres) ══ agent link (HTTP/2) ══ agent ──> target sshd
 *   mssh-proxy:  ssh -o ProxyCommand='mssh proxy %n' ──> (same relay and agent) ──> target sshd
 *
 * The rate metric uses a second target on each side, a near-free SSH endpoint (null-target.ts), reached
 * by a second agent and by a second -R forward of the same reverse tunnel.
 */
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { randomBytes } from 'node:crypto';
import { execFileSync } from 'node:child_process';
import type http2 from 'node:http2';
import { setFixtures } from '@mssh/test-fixtures/state';
import { createTemplate, dropRunDatabases } from '@mssh/test-fixtures/postgres';
import { freePort, waitForPort } from '@mssh/test-fixtures/net';
import {
  startRelay,
  startAgent,
  loginUser,
  stopAll,
  BIN,
  ADMIN_PASSWORD,
  type Relay,
  type Agent,
  type User,
} from '@mssh/test-fixtures/stack';
import { login } from '@mssh/test-fixtures/tunnel-client';
import { relaySession } from './relay-session.js';
import { onCleanup } from './cleanup.js';
import { killTracked, spawnTracked, exited } from './procs.js';
import { startBenchSshd, makeClientKey, type BenchSshd, type ClientKey } from './sshd.js';
import { writeSshConfig, startReverseTunnel, type ReverseTunnel } from './openssh.js';
import { startWatchdog, watch } from './watchdog.js';

export const ROOT = resolve(import.meta.dirname, '../..');
export const TARGET_HOST = 'bench-target';
export const NULL_HOST = 'bench-null';

export interface MsshEnv {
  relay: Relay;
  agent: Agent;
  nullAgent: Agent;
  user: User;
  /** A JWT for in-process tunnels (the relay's admin user). */
  token: string;
  /** One long-lived HTTP/2 session to the relay for in-process work (re-made after a relay restart). */
  h2: http2.ClientHttp2Session;
}

export interface BenchEnv {
  runId: string;
  root: string;
  key: ClientKey;
  user: string;
  target: BenchSshd;
  bastion: BenchSshd;
  sshConfig: string;
  /** The target's machine name on the relay (`mssh ssh USER@NAME`, `ssh ... NAME` with `mssh proxy %n`). */
  targetHost: string;
  /** Port on the bastion that the reverse tunnel forwards to the target sshd. */
  rport: number;
  /** Port on the bastion that the reverse tunnel forwards to the null target. */
  nullRport: number;
  nullPort: number;
  tunnel: ReverseTunnel;
  /** When the agent links and the reverse tunnel were last (re)established (for back-off resets). */
  linksUpAt: number;
  /** Extra environment that makes a Node program write a CPU profile (--profile), else {}. */
  profileEnv: NodeJS.ProcessEnv;
  /** Undefined when the mssh programs are not built or do not start; `msshProblem` says why. */
  mssh?: MsshEnv;
  msshProblem?: string;
}

function log(msg: string): void {
  process.stderr.write(`bench: ${msg}\n`);
}

export async function setUp(opts: { mssh: boolean; profileDir?: string; relayArgs?: string[] }): Promise<BenchEnv> {
  const runId = `bench_${process.pid}_${randomBytes(3).toString('hex')}`;
  const root = mkdtempSync(join(tmpdir(), 'mssh-bench-'));
  const stopWatchdog = startWatchdog(root, runId);
  onCleanup('stop watchdog', stopWatchdog);
  onCleanup('remove temp dir', () => rmSync(root, { recursive: true, force: true }));
  onCleanup('kill processes', killTracked);

  const key = makeClientKey(root);
  log('starting the target and bastion sshds');
  const target = await startBenchSshd('target', root, key);
  const bastion = await startBenchSshd('bastion', root, key);
  onCleanup('stop sshds', async () => {
    await target.kill();
    await bastion.kill();
  });

  const nullPort = await freePort();
  const nullKey = join(root, 'null_host_ed25519');
  execFileSync('/usr/bin/ssh-keygen', ['-q', '-t', 'ed25519', '-N', '', '-f', nullKey], { stdio: 'ignore' });
  const nullProc = spawnTracked(
    process.execPath,
    ['--import', 'tsx', join(import.meta.dirname, 'null-target.ts'), String(nullPort), nullKey],
    { cwd: ROOT, stdio: ['ignore', 'ignore', 'inherit'] },
  );
  onCleanup('stop null target', async () => {
    nullProc.kill('SIGTERM');
    await exited(nullProc);
  });
  await waitForPort(nullPort, 60_000, () => nullProc.exitCode !== null);

  const rport = await freePort();
  const nullRport = await freePort();
  const sshConfig = writeSshConfig(root, {
    identity: key.path,
    user: target.user,
    bastionPort: bastion.port,
    knownHosts: [
      { pattern: `[127.0.0.1]:${target.port}`, keys: target.hostKeys },
      { pattern: `[127.0.0.1]:${bastion.port}`, keys: bastion.hostKeys },
      { pattern: `[127.0.0.1]:${rport}`, keys: target.hostKeys },
      // OpenSSH with ProxyCommand looks the host up under the name given on the command line.
      { pattern: TARGET_HOST, keys: target.hostKeys },
    ],
  });
  log('opening the baseline reverse tunnel (ssh -N -R) to the bastion');
  const tunnel = startReverseTunnel(sshConfig, [
    { remotePort: rport, localPort: target.port },
    { remotePort: nullRport, localPort: nullPort },
  ]);
  onCleanup('stop reverse tunnel', () => tunnel.stop());
  await tunnel.waitUp(60_000);

  const profileEnv: NodeJS.ProcessEnv = opts.profileDir
    ? {
        NODE_OPTIONS:
          `${process.env.NODE_OPTIONS ?? ''} --require ${join(import.meta.dirname, 'cpu-profile-preload.cjs')}`.trim(),
        MSSH_BENCH_PROFILE_DIR: opts.profileDir,
      }
    : {};
  const env: BenchEnv = {
    runId,
    root,
    key,
    user: target.user,
    target,
    bastion,
    sshConfig,
    targetHost: TARGET_HOST,
    rport,
    nullRport,
    nullPort,
    tunnel,
    profileEnv,
    linksUpAt: Date.now(),
  };

  log('creating the Postgres template database');
  onCleanup('drop databases', () => dropRunDatabases(runId));
  await createTemplate(runId);
  setFixtures({
    runId,
    root,
    pgliteTemplate: join(root, 'no-pglite-in-bench'),
    sshd: {
      port: target.port,
      dir: target.dir,
      pid: target.pid(),
      hostKeys: target.hostKeys,
      clientKey: key.path,
      clientPub: key.pub,
      user: target.user,
    },
  });

  if (!opts.mssh) {
    env.msshProblem = 'skipped (--paths without mssh)';
    return env;
  }
  // The bundles the bins load (the mssh CLI's is CommonJS, run with its code cache: apps/client/bin/mssh.js).
  const bundles = [
    join(BIN.relay, '../../dist/main.js'),
    join(BIN.agent, '../../dist/main.js'),
    join(BIN.mssh, '../../dist/main.cjs'),
  ];
  const missing = bundles.filter((f) => !existsSync(f));
  if (missing.length) {
    env.msshProblem = `not built (${missing.map((m) => m.slice(ROOT.length + 1)).join(', ')} missing): run npm run build`;
    return env;
  }
  onCleanup('stop relay and agents', async () => {
    // SIGTERM first (a graceful exit writes the --profile CPU profiles), then SIGKILL whatever is left.
    const m = env.mssh;
    if (m)
      await Promise.all([
        m.relay.proc.stop('SIGTERM', 10_000),
        m.agent.proc.stop('SIGTERM', 10_000),
        m.nullAgent.proc.stop('SIGTERM', 10_000),
      ]);
    await stopAll();
  });
  // --profile: the relay and agents inherit NODE_OPTIONS and write a V8 CPU profile when they exit.
  const savedNodeOptions = process.env.NODE_OPTIONS;
  Object.assign(process.env, profileEnv);
  try {
    log('starting the relay on Postgres and two agents');
    const relay = await startRelay('postgres', opts.relayArgs ?? []);
    watch(relay.proc.child);
    const agent = await startAgent(relay, TARGET_HOST, { target: `127.0.0.1:${target.port}` });
    watch(agent.proc.child);
    const nullAgent = await startAgent(relay, NULL_HOST, { target: `127.0.0.1:${nullPort}` });
    watch(nullAgent.proc.child);
    const user = await loginUser(relay);
    const h2 = await relaySession(relay);
    const token = await login(h2, 'admin', ADMIN_PASSWORD);
    env.mssh = { relay, agent, nullAgent, user, token, h2 };
    env.linksUpAt = Date.now();
    onCleanup('close relay session', () => env.mssh?.h2.close());
  } catch (e) {
    env.msshProblem = `could not start: ${(e as Error).message.split('\n').slice(0, 3).join(' ')}`;
    await stopAll();
  } finally {
    if (savedNodeOptions === undefined) delete process.env.NODE_OPTIONS;
    else process.env.NODE_OPTIONS = savedNodeOptions;
    delete process.env.MSSH_BENCH_PROFILE_DIR;
  }
  return env;
}

/**
 * Fresh middle and edge processes, so a memory figure starts from a process that never carried
 * sessions: mssh restarts the relay and the target's agent; the baseline restarts the bastion sshd,
 * which makes the supervised `ssh -R` start a new process.
 */
export async function freshMiddle(env: BenchEnv, side: 'mssh' | 'jump'): Promise<void> {
  if (side === 'jump') {
    await env.bastion.kill();
    await env.bastion.start();
    await env.tunnel.waitUp(60_000);
  } else {
    const m = env.mssh;
    if (!m) return;
    m.h2.close();
    await Promise.all([m.agent.proc.stop('SIGTERM', 10_000), m.relay.proc.stop('SIGTERM', 10_000)]);
    await m.relay.restart();
    watch(m.relay.proc.child);
    await m.agent.start();
    watch(m.agent.proc.child);
    m.h2 = await relaySession(m.relay);
  }
  env.linksUpAt = Date.now();
}
