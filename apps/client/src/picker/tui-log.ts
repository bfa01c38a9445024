/**
 * The picker's log file: blessed owns the terminal, so nothing is ever logged to the screen.
 * `$XDG_STATE_HOME/mssh/tui.log` (default `~/.local/state/mssh/tui.log`); with MSSH_CONFIG_DIR set, the
 * log goes beside the rest of that state: `$MSSH_CONFIG_DIR/tui.log`.
 */
import { mkdirSync } from 'node:fs';
import { dirname, isAbsolute, join } from 'node:path';
import pino, { type Logger } from 'pino';

export function tuiLogPath(env: NodeJS.ProcessEnv, home: string, configDir: string): string {
  if (env.MSSH_CONFIG_DIR) return join(configDir, 'tui.log');
  const state =
    env.XDG_STATE_HOME && isAbsolute(env.XDG_STATE_HOME) ? env.XDG_STATE_HOME : join(home, '.local', 'state');
  return join(state, 'mssh', 'tui.log');
}

export function createTuiLogger(path: string): Logger {
  mkdirSync(dirname(path), { recursive: true, mode: 0o700 });
  return pino(
    { base: { component: 'tui' }, redact: ['token', 'password', 'authorization', '*.token', '*.password'] },
    pino.destination({ dest: path, sync: true, mode: 0o600 }),
  );
}
