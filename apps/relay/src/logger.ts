import pino, { type Logger } from 'pino';
import { prettyStream, resolveLogFormat, useColor, type LogFormat } from '@mssh/cli-kit';
import type { LogLevel } from './config.js';

/** Paths pino blanks out wherever they appear in a log line. */
export const REDACT_PATHS = [
  'authorization',
  '*.authorization',
  'headers.authorization',
  'req.headers.authorization',
  'request.headers.authorization',
  'password',
  '*.password',
  'token',
  '*.token',
  'privateJwk',
  '*.privateJwk',
  'bootstrapPassword',
  '*.bootstrapPassword',
];

/**
 * The process's one root logger, on stderr (stdout is for the lines users and tests read): JSON lines, or
 * readable lines with --log-format pretty; without --log-format, pretty on a terminal, JSON otherwise.
 */
export function createLogger(
  level: LogLevel,
  format?: LogFormat,
  destination: pino.DestinationStream = pino.destination({ fd: 2, sync: true }),
  isTty: boolean = process.stderr.isTTY === true,
): Logger {
  if (resolveLogFormat(format, isTty) === 'pretty') destination = prettyStream(destination, { color: useColor(isTty) });
  return pino(
    { level, base: { pid: process.pid }, redact: { paths: REDACT_PATHS, censor: '[redacted]' } },
    destination,
  );
}
