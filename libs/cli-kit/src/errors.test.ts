import { describe, expect, it } from 'vitest';
import { CliError, EXIT, commanderExitCode, exitCodeOf, formatCliError, reportError, toCliError } from './index.js';

describe('exit-code policy', () => {
  it('usage 64, bug 70, unusable stored state 78, any other failure 1; an explicit code wins', () => {
    expect(exitCodeOf('CLI_ERR_USAGE')).toBe(64);
    expect(exitCodeOf('RLY_CLI_ERR_USAGE')).toBe(64);
    expect(exitCodeOf('CLI_ERR_INTERNAL')).toBe(70);
    expect(exitCodeOf('CLI_ERR_CONFIG')).toBe(78);
    expect(exitCodeOf('CLI_ERR_NO_GRANT')).toBe(1);
    expect(exitCodeOf(undefined)).toBe(1);
    expect(new CliError('CLI_ERR_USAGE', 'x').exitCode).toBe(EXIT.USAGE);
    expect(new CliError('RLY_ERR_AGENT_REVOKED', 'x', '', { exitCode: EXIT.CONFIG }).exitCode).toBe(78);
  });

  it("commander's errors: help and version 0, usage errors 64, anything else not commander's", () => {
    expect(commanderExitCode({ code: 'commander.helpDisplayed', exitCode: 0 })).toBe(0);
    expect(commanderExitCode({ code: 'commander.version', exitCode: 0 })).toBe(0);
    expect(commanderExitCode({ code: 'commander.unknownOption', exitCode: 1 })).toBe(64);
    expect(commanderExitCode(new CliError('CLI_ERR_USAGE', 'x'))).toBeNull();
    expect(commanderExitCode(new Error('x'))).toBeNull();
    expect(commanderExitCode(null)).toBeNull();
  });
});

describe('reporter', () => {
  it('prints `<program>: <message> [CODE]` and the hint, the same for every program', () => {
    const e = new CliError('CLI_ERR_NO_GRANT', 'you have no access to web-1', 'Run `mssh ls`.');
    expect(formatCliError('mssh', e)).toBe('mssh: you have no access to web-1 [CLI_ERR_NO_GRANT]\nRun `mssh ls`.');
    expect(formatCliError('mssh-relay', e)).toBe(
      'mssh-relay: you have no access to web-1 [CLI_ERR_NO_GRANT]\nRun `mssh ls`.',
    );
    expect(formatCliError('mssh-agent', new CliError(undefined, 'no hint, no code'))).toBe(
      'mssh-agent: no hint, no code',
    );
  });

  it('keeps the code on the first line of a multi-line message; one-line mode joins everything', () => {
    const e = new CliError('CLI_ERR_USAGE', 'invalid options:\n  --a: bad\n  --b: bad', 'See --help.');
    expect(formatCliError('mssh-relay', e)).toBe(
      'mssh-relay: invalid options: [CLI_ERR_USAGE]\n  --a: bad\n  --b: bad\nSee --help.',
    );
    expect(formatCliError('mssh', new CliError('CLI_ERR_NO_GRANT', 'no', 'Ask.'), true)).toBe(
      'mssh: no [CLI_ERR_NO_GRANT] Ask.',
    );
    expect(
      formatCliError('mssh-agent', new CliError('AGT_ERR_STATE_DIR_LOCKED', 'locked', 'Stop it.\nOr enrol another.')),
    ).toBe('mssh-agent: locked [AGT_ERR_STATE_DIR_LOCKED]\nStop it.\nOr enrol another.');
  });

  it('strips control characters (a relay or a file could put escape sequences in a message)', () => {
    expect(formatCliError('mssh', new CliError('CLI_ERR_USAGE', 'bad \u001b[2Jname', 'x\u0007'))).not.toMatch(
      // eslint-disable-next-line no-control-regex -- the test looks for the control characters that must be gone
      /[\u0000-\u0008\u001b]/,
    );
  });

  it('an error that is not a CliError is a bug: CLI_ERR_INTERNAL, exit 70; a program maps its own coded errors first', () => {
    const lines: string[] = [];
    const stderr = { write: (s: string) => lines.push(s) };
    expect(reportError(new TypeError('x is undefined'), { program: 'mssh-agent', stderr, bugHint: 'Report it.' })).toBe(
      70,
    );
    expect(lines.join('')).toBe('mssh-agent: unexpected error: x is undefined [CLI_ERR_INTERNAL]\nReport it.\n');
    class OwnError extends Error {
      code = 'AGT_ERR_IDENTITY';
    }
    const mapped = toCliError(new OwnError('bad key'), {
      program: 'mssh-agent',
      toCliError: (e) => (e instanceof OwnError ? new CliError(e.code, e.message) : null),
    });
    expect([mapped.code, mapped.exitCode]).toEqual(['AGT_ERR_IDENTITY', 1]);
  });
});
