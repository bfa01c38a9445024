/**
 * The agent's one pino logger: JSON lines on stderr, one per event, written synchronously so the last
 * line is out before the process exits.
 */
import pino from 'pino';
import type { LogLevel } from './config.js';

export function createLogger(level: LogLevel): pino.Logger {
  return pino(
    {
      level,
      base: { pid: process.pid },
      redact: { paths: ['token', '*.token', 'authorization', '*.authorization'], censor: '[redacted]' },
    },
    pino.destination({ dest: 2, sync: true }),
  );
}
