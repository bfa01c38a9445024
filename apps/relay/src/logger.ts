import pino, { type Logger } from 'pino';
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

/** The process's one root logger: JSON lines on stderr (stdout is for the lines users and tests read). */
export function createLogger(
  level: LogLevel,
  destination: pino.DestinationStream = pino.destination({ fd: 2, sync: true }),
): Logger {
  return pino(
    { level, base: { pid: process.pid }, redact: { paths: REDACT_PATHS, censor: '[redacted]' } },
    destination,
  );
}
