import { describe, expect, it } from 'vitest';
import { formatPrettyLine, prettyStream, resolveLogFormat, useColor } from './log-format.js';

const at = new Date(2026, 0, 2, 3, 4, 5, 6).getTime();

describe('log format', () => {
  it('without --log-format: pretty on a terminal, JSON otherwise', () => {
    expect(resolveLogFormat(undefined, true)).toBe('pretty');
    expect(resolveLogFormat(undefined, false)).toBe('json');
    expect(resolveLogFormat('json', true)).toBe('json');
    expect(resolveLogFormat('pretty', false)).toBe('pretty');
    expect(useColor(true, {})).toBe(true);
    expect(useColor(true, { NO_COLOR: '1' })).toBe(false);
    expect(useColor(false, {})).toBe(false);
  });

  it('one readable line: time, level, component, message, the other fields as key=value', () => {
    const line = JSON.stringify({
      level: 30,
      time: at,
      pid: 7,
      component: 'relay.tunnel',
      msg: 'agent connected',
      name: 'web-1',
      note: 'two words',
      n: 3,
    });
    expect(formatPrettyLine(line, { color: false })).toBe(
      '03:04:05.006 INFO  relay.tunnel: agent connected name=web-1 note="two words" n=3\n',
    );
    expect(formatPrettyLine(line, { color: true })).toContain('\u001b[32mINFO \u001b[39m');
  });

  it('errors: the message, then the stack indented; control characters are escaped', () => {
    const line = JSON.stringify({
      level: 50,
      time: at,
      msg: 'bad\nthing\u001b[2J',
      err: { type: 'Error', message: 'boom', stack: 'Error: boom\n    at f (x.js:1:1)' },
    });
    expect(formatPrettyLine(line, { color: false })).toBe(
      '03:04:05.006 ERROR bad\\u000athing\\u001b[2J err=boom\n    at f (x.js:1:1)\n',
    );
  });

  it('passes lines that are not JSON through; the stream writes every line it is given', () => {
    expect(formatPrettyLine('plain', { color: false })).toBe('plain\n');
    const written: string[] = [];
    const s = prettyStream({ write: (x) => written.push(x) }, { color: false });
    s.write(
      `${JSON.stringify({ level: 40, time: at, msg: 'a' })}\n${JSON.stringify({ level: 20, time: at, msg: 'b' })}\n`,
    );
    expect(written).toEqual(['03:04:05.006 WARN  a\n', '03:04:05.006 DEBUG b\n']);
  });
});
