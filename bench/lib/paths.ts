/**
 * The four ways of reaching the target that every process-level metric compares, as the command a user
 * would type. Each path runs `remote` (one shell command string) on the target.
 */
import { join } from 'node:path';
import { BIN } from '@mssh/test-fixtures/stack';
import { SSH, BASTION_ALIAS } from './openssh.js';
import type { BenchEnv } from './env.js';

export type PathId = 'direct' | 'jump' | 'mssh-ssh' | 'mssh-proxy';

export const PATH_LABELS: Record<PathId, string> = {
  direct: 'direct ssh',
  jump: 'OpenSSH jump',
  'mssh-ssh': 'mssh ssh',
  'mssh-proxy': 'ssh+mssh proxy',
};

export const ALL_PATHS: PathId[] = ['direct', 'jump', 'mssh-ssh', 'mssh-proxy'];
export const MSSH_PATHS: PathId[] = ['mssh-ssh', 'mssh-proxy'];

export interface Command {
  cmd: string;
  args: string[];
  env: NodeJS.ProcessEnv;
}

/**
 * The client's environment: the caller's, less what belongs to this machine and not to a user's shell.
 * NODE_EXTRA_CA_CERTS (set on these machines for their network's proxy) makes every Node process load
 * and parse that CA file before it runs a line of its own: ~50 ms per `mssh` start here, which a user
 * without the variable does not pay (mssh pins the relay's certificate). The mssh CLI's code cache goes
 * in the run's temp dir (removed at the end) instead of the user's ~/.cache.
 */
function clientEnv(env: BenchEnv, ...parts: NodeJS.ProcessEnv[]): NodeJS.ProcessEnv {
  const out: NodeJS.ProcessEnv = Object.assign(
    {},
    process.env,
    { SSH_AUTH_SOCK: '', MSSH_CACHE_DIR: join(env.root, 'mssh-cache') },
    ...parts,
  );
  delete out.NODE_EXTRA_CA_CERTS;
  return out;
}

/**
 * The command line for `path` running `remote`, or the user's login shell when `remote` is null (run it
 * in a terminal); `tty` forces a PTY (ssh -tt / mssh ssh -t).
 */
export function commandFor(env: BenchEnv, path: PathId, remote: string | null, opts: { tty?: boolean } = {}): Command {
  const base = clientEnv(env);
  const tty = opts.tty ? ['-tt'] : [];
  const cmd = remote === null ? [] : [remote];
  switch (path) {
    case 'direct':
      return {
        cmd: SSH,
        args: ['-F', env.sshConfig, ...tty, '-p', String(env.target.port), '127.0.0.1', ...cmd],
        env: base,
      };
    case 'jump':
      return {
        cmd: SSH,
        args: ['-F', env.sshConfig, ...tty, '-J', BASTION_ALIAS, '-p', String(env.rport), '127.0.0.1', ...cmd],
        env: base,
      };
    case 'mssh-proxy': {
      const m = needMssh(env);
      const proxy = `${process.execPath} ${BIN.mssh} proxy %n`;
      return {
        cmd: SSH,
        args: ['-F', env.sshConfig, ...tty, '-o', `ProxyCommand=${proxy}`, env.targetHost, ...cmd],
        env: clientEnv(env, m.user.env, env.profileEnv),
      };
    }
    case 'mssh-ssh': {
      const m = needMssh(env);
      return {
        cmd: process.execPath,
        args: [
          BIN.mssh,
          'ssh',
          '-i',
          env.key.path,
          ...(opts.tty ? ['-t'] : []),
          `${env.user}@${env.targetHost}`,
          ...(remote === null ? [] : ['--', remote]),
        ],
        env: clientEnv(env, m.user.env, env.profileEnv),
      };
    }
  }
}

/**
 * `mssh-tui` as a user starts it: the logged-in mssh config, the benchmark's key, its log file (it
 * never writes to the screen) in the run's temp dir instead of ~/.local/state.
 */
export function tuiCommand(env: BenchEnv): Command {
  const m = needMssh(env);
  return {
    cmd: process.execPath,
    args: [BIN.tui, '-i', env.key.path],
    env: clientEnv(env, m.user.env, env.profileEnv, { XDG_STATE_HOME: join(env.root, 'tui-state') }),
  };
}

function needMssh(env: BenchEnv) {
  if (!env.mssh) throw new Error(`mssh paths unavailable: ${env.msshProblem}`);
  return env.mssh;
}
