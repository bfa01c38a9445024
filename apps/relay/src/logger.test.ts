import { describe, expect, it } from 'vitest';
import { type CliError } from '@mssh/cli-kit';
import { createLogger } from './logger.js';
import { ServeConfigSchema, parseConfig } from './config.js';

function capture() {
  const lines: string[] = [];
  return { lines, dest: { write: (s: string) => void lines.push(s) } };
}

describe('relay logger', () => {
  it('JSON lines when stderr is not a terminal, readable ones on a terminal or with --log-format pretty', () => {
    const json = capture();
    createLogger('info', undefined, json.dest, false).info({ password: 'p' }, 'listening');
    expect(JSON.parse(json.lines[0]!)).toMatchObject({ level: 30, msg: 'listening', password: '[redacted]' });
    const pretty = capture();
    createLogger('info', 'pretty', pretty.dest, false).child({ component: 'relay.http' }).error({ port: 443 }, 'x');
    expect(pretty.lines[0]).toMatch(/^\d\d:\d\d:\d\d\.\d{3} ERROR relay\.http: x port=443\n$/);
    const tty = capture();
    createLogger('info', undefined, tty.dest, true).info('y');
    expect(tty.lines[0]).not.toMatch(/^\{/);
  });

  it('--log-format / MSSH_LOG_FORMAT: json or pretty, anything else refused [CLI_ERR_USAGE]', () => {
    expect(parseConfig(ServeConfigSchema, { logFormat: 'json' }, {}).logFormat).toBe('json');
    expect(parseConfig(ServeConfigSchema, {}, { MSSH_LOG_FORMAT: 'pretty' }).logFormat).toBe('pretty');
    expect(parseConfig(ServeConfigSchema, {}, {}).logFormat).toBeUndefined();
    try {
      parseConfig(ServeConfigSchema, { logFormat: 'xml' }, {});
      expect.unreachable();
    } catch (e) {
      expect((e as CliError).code).toBe('CLI_ERR_USAGE');
      expect((e as CliError).message).toContain('--log-format (MSSH_LOG_FORMAT): must be json or pretty');
    }
  });
});
