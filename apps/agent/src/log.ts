/**
 * The agent's one pino logger on stderr, one line per event, written synchronously so the last line is out
 * before the process exits: JSON lines, or readable lines with --log-format pretty; without --log-format,
 * pretty on a terminal and JSON otherwise (@mssh/cli-kit log-format.ts).
 */
import pino from 'pino';
import { prettyStream, resolveLogFormat, useColor, type LogFormat } from '@mssh/cli-kit';
import type { LogLevel } from './config.js';

export function createLogger(
  level: LogLevel,
  format?: LogFormat,
  destination: pino.DestinationStream = pino.destination({ dest: 2, sync: true }),
  isTty: boolean = process.stderr.isTTY === true,
): pino.Logger {
  const out =
    resolveLogFormat(format, isTty) === 'pretty'
      ? (prettyStream(destination, { color: useColor(isTty) }) as pino.DestinationStream)
      : destination;
  return pino(
    {
      level,
      base: { pid: process.pid },
      redact: { paths: ['token', '*.token', 'authorization', '*.authorization'], censor: '[redacted]' },
    },
    out,
  );
}
