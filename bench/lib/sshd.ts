/**
 * OpenSSH sshds for the benchmark: the target and the bastion of the baseline. Same idea as
 * e2e/fixtures/sshd.ts (temp host keys, loopback port, key-only login for the current user), plus limits
 * high enough for 1,000 concurrent sessions and a restart that drops every connection (for the
 * reconnect metric).
 */
import { execFileSync, type ChildProcess } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, writeFileSync, chmodSync } from 'node:fs';
import { join } from 'node:path';
import { userInfo } from 'node:os';
import { makeHostKeys, requireOpenSsh } from '@mssh/test-fixtures/sshd';
import { freePort, waitForPort } from '@mssh/test-fixtures/net';
import { spawnTracked, exited, descendants, killPid, alive } from './procs.js';

/** The prompt of a login shell on the benchmark's sshds (their sessions' HOME has a .profile setting it). */
export const PROMPT_MARK = 'mssh-bench-prompt$ ';

export interface ClientKey {
  path: string;
  pub: string;
}

export function makeClientKey(dir: string): ClientKey {
  const path = join(dir, 'client_ed25519');
  execFileSync('/usr/bin/ssh-keygen', ['-q', '-t', 'ed25519', '-N', '', '-C', 'mssh-bench', '-f', path], {
    stdio: 'ignore',
  });
  return { path, pub: readFileSync(`${path}.pub`, 'utf8').trim() };
}

export interface BenchSshd {
  name: string;
  port: number;
  dir: string;
  user: string;
  /** Host public key lines ("type base64"). */
  hostKeys: string[];
  pid(): number;
  proc(): ChildProcess;
  /** Kill the listener AND every session process under it, like a crash or reboot of the machine. */
  kill(): Promise<void>;
  /** Start again on the same port with the same keys. */
  start(): Promise<void>;
}

export async function startBenchSshd(name: string, root: string, key: ClientKey): Promise<BenchSshd> {
  requireOpenSsh();
  const dir = mkdtempSync(join(root, `sshd-${name}-`));
  chmodSync(dir, 0o755);
  if (!existsSync('/run/sshd')) mkdirSync('/run/sshd', { recursive: true, mode: 0o755 });
  const { files, pubs } = makeHostKeys(dir);
  const authorized = join(dir, 'authorized_keys');
  writeFileSync(authorized, key.pub + '\n', { mode: 0o600 });
  // Sessions get a clean HOME of their own: the login user's real dotfiles (this machine's root runs
  // `pyenv init` from ~/.bashrc, which bash reads for every ssh command) must not be what we measure.
  const home = join(dir, 'home');
  mkdirSync(home, { mode: 0o755 });
  // Login shells (metric "prompt", nothing else starts one) print this prompt, so its arrival can be seen.
  writeFileSync(join(home, '.profile'), `PS1='${PROMPT_MARK}'\n`);
  const port = await freePort();
  const config = join(dir, 'sshd_config');
  writeFileSync(
    config,
    [
      `Port ${port}`,
      'ListenAddress 127.0.0.1',
      ...files.map((f) => `HostKey ${f}`),
      `PidFile ${join(dir, 'sshd.pid')}`,
      `AuthorizedKeysFile ${authorized}`,
      'PasswordAuthentication no',
      'KbdInteractiveAuthentication no',
      'PubkeyAuthentication yes',
      'PermitRootLogin prohibit-password',
      'StrictModes no',
      'UsePAM no',
      'UseDNS no',
      'AllowTcpForwarding yes',
      'GatewayPorts no',
      // Room for 1,000 sessions opened 100 at a time (defaults: MaxStartups 10:30:100, MaxSessions 10).
      'MaxStartups 2000:30:4000',
      'MaxSessions 4000',
      'LoginGraceTime 60',
      'PrintMotd no',
      'PrintLastLog no',
      'LogLevel ERROR',
      'Subsystem sftp /usr/lib/openssh/sftp-server',
      `SetEnv HOME=${home}`,
      '',
    ].join('\n'),
  );
  let child: ChildProcess | undefined;
  let stderr = '';
  const sshd: BenchSshd = {
    name,
    port,
    dir,
    user: userInfo().username,
    hostKeys: pubs,
    pid: () => child!.pid!,
    proc: () => child!,
    async start() {
      stderr = '';
      const c = spawnTracked('/usr/sbin/sshd', ['-D', '-e', '-f', config], { stdio: ['ignore', 'ignore', 'pipe'] });
      c.stderr!.on('data', (d: Buffer) => {
        if (stderr.length < 64_000) stderr += d.toString();
      });
      child = c;
      try {
        await waitForPort(port, 10_000, () => c.exitCode !== null);
      } catch (e) {
        c.kill('SIGKILL');
        throw new Error(`sshd (${name}) did not start on 127.0.0.1:${port}: ${stderr || (e as Error).message}`, {
          cause: e,
        });
      }
    },
    async kill() {
      if (!child) return;
      const pid = child.pid!;
      // Session processes run in their own sessions (sshd calls setsid), so walk the tree.
      const tree = descendants(pid);
      killPid(pid);
      for (const p of tree) killPid(p);
      await exited(child);
      for (let i = 0; i < 100 && tree.some(alive); i++) await new Promise((r) => setTimeout(r, 20));
    },
  };
  await sshd.start();
  return sshd;
}
