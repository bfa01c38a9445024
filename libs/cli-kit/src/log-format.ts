/**
 * The log format of the relay and the agent (`--log-format json|pretty`, env MSSH_LOG_FORMAT): pino's JSON
 * lines by default when stderr is not a terminal (journald, files, log shippers), one readable line per
 * event on a terminal:
 *
 *   12:04:05.123 INFO  relay.tunnel: agent connected name=web-1 relay=10.0.0.5:8443
 *
 * `prettyStream` is a pino destination that reformats each JSON line and hands it to the real one (the
 * same synchronous stderr writer as for JSON), in this process: no transport worker, nothing to bundle.
 * It does not depend on pino; it only reads the line pino wrote.
 */

export const LOG_FORMATS = ['json', 'pretty'] as const;
export type LogFormat = (typeof LOG_FORMATS)[number];

/** The format asked for, else pretty on a terminal and JSON otherwise. */
export function resolveLogFormat(asked: LogFormat | undefined, isTty: boolean): LogFormat {
  return asked ?? (isTty ? 'pretty' : 'json');
}

const LEVELS: Record<number, { name: string; color: string }> = {
  10: { name: 'TRACE', color: '90' },
  20: { name: 'DEBUG', color: '36' },
  30: { name: 'INFO', color: '32' },
  40: { name: 'WARN', color: '33' },
  50: { name: 'ERROR', color: '31' },
  60: { name: 'FATAL', color: '35' },
};

/** Keys shown in the line's head, not as key=value. */
const HEAD_KEYS = new Set(['level', 'time', 'pid', 'hostname', 'msg', 'component']);

// eslint-disable-next-line no-control-regex
const CONTROL = /[\u0000-\u001f\u007f-\u009f]/g;
const clean = (s: string) => s.replace(CONTROL, (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, '0')}`);

function value(v: unknown): string {
  if (typeof v === 'string') return /^[^\s"=]+$/.test(v) ? clean(v) : JSON.stringify(v);
  if (v === null || typeof v !== 'object') return String(v);
  return JSON.stringify(v);
}

function time(ms: unknown): string {
  if (typeof ms !== 'number') return '--:--:--.---';
  const d = new Date(ms);
  const p = (n: number, w = 2) => String(n).padStart(w, '0');
  return `${p(d.getHours())}:${p(d.getMinutes())}:${p(d.getSeconds())}.${p(d.getMilliseconds(), 3)}`;
}

/** One JSON log line as a readable line (or the line itself when it is not JSON). */
export function formatPrettyLine(line: string, opts: { color: boolean }): string {
  let o: Record<string, unknown>;
  try {
    o = JSON.parse(line) as Record<string, unknown>;
    if (o === null || typeof o !== 'object') return line.endsWith('\n') ? line : `${line}\n`;
  } catch {
    return line.endsWith('\n') ? line : `${line}\n`;
  }
  const level = LEVELS[Number(o.level)] ?? {
    name: typeof o.level === 'string' ? o.level.toUpperCase() : '?',
    color: '0',
  };
  const name = level.name.padEnd(5);
  const head = [
    opts.color ? `\u001b[2m${time(o.time)}\u001b[22m` : time(o.time),
    opts.color ? `\u001b[${level.color}m${name}\u001b[39m` : name,
  ];
  const component = typeof o.component === 'string' ? `${clean(o.component)}: ` : '';
  const msg = typeof o.msg === 'string' ? clean(o.msg) : '';
  const rest: string[] = [];
  let stack = '';
  for (const [k, v] of Object.entries(o)) {
    if (HEAD_KEYS.has(k)) continue;
    if (k === 'err' && v && typeof v === 'object') {
      const e = v as { message?: unknown; stack?: unknown };
      rest.push(`err=${value(e.message ?? v)}`);
      if (typeof e.stack === 'string')
        stack = e.stack
          .split('\n')
          .slice(1)
          .map((l) => `    ${clean(l.trim())}`)
          .join('\n');
      continue;
    }
    rest.push(`${clean(k)}=${value(v)}`);
  }
  const text = `${head.join(' ')} ${component}${msg}${rest.length ? ` ${rest.join(' ')}` : ''}`;
  return `${text}\n${stack ? `${stack}\n` : ''}`;
}

/** A pino destination writing readable lines to `dest` (e.g. pino.destination({dest: 2, sync: true})). */
export function prettyStream(
  dest: { write(s: string): unknown; flushSync?(): void },
  opts: { color: boolean },
): { write(s: string): void; flushSync(): void } {
  return {
    write: (s: string) => {
      // pino writes one line per call; split anyway so that nothing is lost if it ever batches.
      for (const line of s.split('\n')) if (line !== '') dest.write(formatPrettyLine(line, opts));
    },
    flushSync: () => dest.flushSync?.(),
  };
}

/** Colours on a terminal, unless NO_COLOR is set (https://no-color.org). */
export function useColor(isTty: boolean, env: NodeJS.ProcessEnv = process.env): boolean {
  return isTty && !env.NO_COLOR;
}
