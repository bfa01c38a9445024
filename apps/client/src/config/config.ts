/**
 * The client's configuration: environment variables, parsed once by main.ts (never at import time).
 */
import { homedir, userInfo } from 'node:os';
import { isAbsolute, join, resolve } from 'node:path';

/** The variables read (all optional strings; an empty one counts as unset). No schema library: this runs in the lean entry too. */
const VARS = ['MSSH_CONFIG_DIR', 'MSSH_RELAY', 'SSH_AUTH_SOCK', 'TERM', 'HOME', 'USER', 'MSSH_DEBUG'] as const;
type Env = Partial<Record<(typeof VARS)[number], string>>;

function pick(env: NodeJS.ProcessEnv): Env {
  const e: Env = {};
  for (const k of VARS) {
    const v = env[k];
    if (typeof v === 'string') e[k] = v;
  }
  return e;
}

export interface ClientConfig {
  /** State directory: credentials.json and known_hosts live here (0700; files 0600). */
  configDir: string;
  /** MSSH_RELAY, when set: the relay to use instead of the current one. */
  relayOverride: string | null;
  /** ssh-agent socket, or null when there is none. */
  agentSocket: string | null;
  /** Home directory, for ~/.ssh/id_* keys. */
  home: string;
  /** Local user name: the default SSH login user. */
  localUser: string;
  term: string;
  debug: boolean;
  /** LANG and LC_* to send to the remote side, as OpenSSH's default SendEnv does. */
  localeEnv: Record<string, string>;
}

export function parseConfig(env: NodeJS.ProcessEnv): ClientConfig {
  const e = pick(env);
  const home = e.HOME && e.HOME.length > 0 ? e.HOME : homedir();
  const configDir =
    e.MSSH_CONFIG_DIR && e.MSSH_CONFIG_DIR.length > 0
      ? isAbsolute(e.MSSH_CONFIG_DIR)
        ? e.MSSH_CONFIG_DIR
        : resolve(e.MSSH_CONFIG_DIR)
      : join(home, '.config', 'mssh');
  let localUser = e.USER ?? '';
  try {
    localUser = userInfo().username;
  } catch {
    // no passwd entry (containers): fall back to $USER
  }
  const localeEnv: Record<string, string> = {};
  for (const [k, v] of Object.entries(env)) {
    if ((k === 'LANG' || k.startsWith('LC_')) && typeof v === 'string' && v.length > 0 && v.length < 256)
      localeEnv[k] = v;
  }
  return {
    configDir,
    relayOverride: e.MSSH_RELAY && e.MSSH_RELAY.length > 0 ? e.MSSH_RELAY : null,
    agentSocket: e.SSH_AUTH_SOCK && e.SSH_AUTH_SOCK.length > 0 ? e.SSH_AUTH_SOCK : null,
    home,
    localUser: localUser || 'root',
    term: e.TERM && e.TERM.length > 0 ? e.TERM : 'xterm-256color',
    debug: e.MSSH_DEBUG === '1' || e.MSSH_DEBUG === 'true',
    localeEnv,
  };
}
