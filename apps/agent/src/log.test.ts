import { describe, expect, it } from 'vitest';
import { createLogger } from './log.js';
import { parseRunConfig } from './config.js';
import { type AgentError } from './errors.js';

function capture() {
  const lines: string[] = [];
  return { lines, dest: { write: (s: string) => void lines.push(s) } };
}

describe('agent logger', () => {
  it('JSON lines when stderr is not a terminal, readable ones on a terminal, as --log-format says', () => {
    const json = capture();
    createLogger('info', undefined, json.dest, false).info({ name: 'web-1', token: 'secret' }, 'starting');
    expect(JSON.parse(json.lines[0]!)).toMatchObject({
      level: 30,
      msg: 'starting',
      name: 'web-1',
      token: '[redacted]',
    });

    const tty = capture();
    createLogger('info', undefined, tty.dest, true).child({ component: 'agent.link' }).warn('relay gone');
    expect(tty.lines[0]).toMatch(/^\S+ \S*WARN \S* ?agent\.link: relay gone\n$/);

    const forced = capture();
    createLogger('info', 'pretty', forced.dest, false).info({ token: 'secret' }, 'x');
    expect(forced.lines[0]).toMatch(/^\d\d:\d\d:\d\d\.\d{3} INFO {2}x token=\[redacted\]\n$/);
    const forcedJson = capture();
    createLogger('info', 'json', forcedJson.dest, true).info('y');
    expect(JSON.parse(forcedJson.lines[0]!).msg).toBe('y');
  });

  it('--log-format and MSSH_LOG_FORMAT: json or pretty, anything else refused [AGT_ERR_CONFIG]', () => {
    expect(parseRunConfig({ logFormat: 'pretty' }, {}).logFormat).toBe('pretty');
    expect(parseRunConfig({}, { MSSH_LOG_FORMAT: 'json' }).logFormat).toBe('json');
    expect(parseRunConfig({}, {}).logFormat).toBeUndefined();
    try {
      parseRunConfig({ logFormat: 'xml' }, {});
      expect.unreachable();
    } catch (e) {
      expect((e as AgentError).code).toBe('AGT_ERR_CONFIG');
      expect((e as AgentError).message).toContain('--log-format must be json or pretty');
    }
  });
});
