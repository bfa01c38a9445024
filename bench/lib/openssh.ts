/**
 * The OpenSSH side of the benchmark: a client config (key, pinned host keys, no agent, no multiplexing)
 * and the baseline's reverse tunnel, i.e. what people run today instead of mssh:
 *
 *   target:  ssh -N -R RPORT:127.0.0.1:TPORT bastion        (kept up by a supervisor, like autossh)
 *   user:    ssh -J bastion -p RPORT user@127.0.0.1
 */
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { ChildProcess } from 'node:child_process';
import { waitForPort } from '@mssh/test-fixtures/net';
import { RECONNECT_BASE_MS, RECONNECT_CAP_MS, RECONNECT_HEALTHY_RESET_MS } from '@mssh/protocol';
import { spawnTracked, exited } from './procs.js';

export const SSH = '/usr/bin/ssh';
export const BASTION_ALIAS = 'bench-bastion';

export interface KnownHost {
  /** Host pattern as ssh looks it up: "[127.0.0.1]:2222" or a bare alias such as "bench-target". */
  pattern: string;
  keys: string[];
}

/**
 * Write an ssh_config used by every OpenSSH command of the run (`ssh -F file`). `-F` is handed on to
 * the `ssh -W` that `-J` starts, so the jump hop gets the same settings.
 */
export function writeSshConfig(
  dir: string,
  opts: { identity: string; user: string; bastionPort: number; knownHosts: KnownHost[] },
): string {
  const knownHosts = join(dir, 'known_hosts');
  writeFileSync(knownHosts, opts.knownHosts.flatMap((h) => h.keys.map((k) => `${h.pattern} ${k}`)).join('\n') + '\n', {
    mode: 0o600,
  });
  const file = join(dir, 'ssh_config');
  writeFileSync(
    file,
    [
      `Host ${BASTION_ALIAS}`,
      '  HostName 127.0.0.1',
      `  Port ${opts.bastionPort}`,
      '',
      'Host *',
      `  User ${opts.user}`,
      `  IdentityFile ${opts.identity}`,
      '  IdentitiesOnly yes',
      '  IdentityAgent none',
      `  UserKnownHostsFile ${knownHosts}`,
      '  GlobalKnownHostsFile /dev/null',
      '  StrictHostKeyChecking yes',
      '  CheckHostIP no',
      '  UpdateHostKeys no',
      '  BatchMode yes',
      '  ControlMaster no',
      '  ControlPath none',
      '  ForwardAgent no',
      '  ForwardX11 no',
      '  LogLevel ERROR',
      '',
    ].join('\n'),
    { mode: 0o600 },
  );
  return file;
}

export interface ReverseTunnel {
  /** The current `ssh -R` process (undefined while it is being restarted). */
  proc(): ChildProcess | undefined;
  /** How many times ssh was started. */
  starts(): number;
  /** Resolves once every forwarded port listens on the bastion. */
  waitUp(timeoutMs: number): Promise<void>;
  stop(): Promise<void>;
}

/**
 * Keep `ssh -N -R ...` to the bastion running: restart it whenever it exits, with the same back-off the
 * mssh agent uses (RECONNECT_BASE_MS doubling to RECONNECT_CAP_MS, reset after RECONNECT_HEALTHY_RESET_MS
 * up; no jitter). autossh would do the same job; on loopback nothing is gained by its monitoring port.
 */
export function startReverseTunnel(
  sshConfig: string,
  forwards: { remotePort: number; localPort: number }[],
): ReverseTunnel {
  let child: ChildProcess | undefined;
  let stopped = false;
  let starts = 0;
  let delay = RECONNECT_BASE_MS;
  let timer: NodeJS.Timeout | undefined;
  const args = [
    '-F',
    sshConfig,
    '-N',
    '-o',
    'ExitOnForwardFailure=yes',
    '-o',
    'ServerAliveInterval=5',
    '-o',
    'ServerAliveCountMax=2',
    ...forwards.flatMap((f) => ['-R', `${f.remotePort}:127.0.0.1:${f.localPort}`]),
    BASTION_ALIAS,
  ];
  const launch = () => {
    if (stopped || starts >= 1_000) return;
    starts++;
    const startedAt = Date.now();
    const c = spawnTracked(SSH, args, { stdio: ['ignore', 'ignore', 'pipe'] });
    c.stderr!.resume();
    child = c;
    c.once('exit', () => {
      if (child === c) child = undefined;
      if (stopped) return;
      if (Date.now() - startedAt >= RECONNECT_HEALTHY_RESET_MS) delay = RECONNECT_BASE_MS;
      timer = setTimeout(launch, delay);
      delay = Math.min(delay * 2, RECONNECT_CAP_MS);
    });
  };
  launch();
  return {
    proc: () => child,
    starts: () => starts,
    async waitUp(timeoutMs) {
      const deadline = Date.now() + timeoutMs;
      for (const f of forwards) await waitForPort(f.remotePort, Math.max(1, deadline - Date.now()));
    },
    async stop() {
      stopped = true;
      clearTimeout(timer);
      const c = child;
      if (c) {
        c.kill('SIGTERM');
        await exited(c);
      }
    },
  };
}
