/**
 * Terminal safety: what agents report is validated at the relay (these schemas), and every admin listing
 * printed on a terminal is stripped of control characters.
 */
import { describe, expect, it } from 'vitest';
import { AgentHello, EnrollRequest, GrantRequest } from './schemas.js';
import { formatAgentsTable, formatGrantsTable, formatTable, formatUsersTable } from './admin-format.js';
import { jsonForTerminal, sanitizeForTerminal, sanitizeTextBlock } from './names.js';

const ESC = '\u001b';
const hello = {
  name: 'laptop',
  publicKey: 'AAAA',
  signature: 'BBBB',
  hostKeys: [],
  agentVersion: '0.1.0',
  protocolVersion: 1,
};

describe('agent-reported names and versions are validated', () => {
  it('accepts a plain hello', () => {
    expect(AgentHello.safeParse(hello).success).toBe(true);
  });

  it.each([
    ['name with an escape', { name: `lap${ESC}[2Jtop` }],
    ['upper-case name', { name: 'Laptop' }],
    ['name with a newline', { name: 'lap\ntop' }],
    ['version with an escape', { agentVersion: `0.1.0${ESC}]0;pwned\u0007` }],
    ['version with a bidi override', { agentVersion: '0.1.0\u202e' }],
    ['overlong version', { agentVersion: 'x'.repeat(65) }],
    ['host key with a newline', { hostKeys: ['ssh-ed25519 AAAA\nx'] }],
  ])('refuses a hello with %s', (_what, patch) => {
    expect(AgentHello.safeParse({ ...hello, ...patch }).success).toBe(false);
    expect(EnrollRequest.safeParse({ ...hello, token: 't'.repeat(32), ...patch }).success).toBe(false);
  });

  it('grant patterns cannot carry control characters', () => {
    expect(GrantRequest.safeParse({ subjectKind: 'user', subject: 'alice', pattern: `web-${ESC}[2J` }).success).toBe(
      false,
    );
    expect(GrantRequest.safeParse({ subjectKind: 'user', subject: `al${ESC}ice`, pattern: 'web-*' }).success).toBe(
      false,
    );
  });
});

describe('control characters are escaped, never passed or dropped', () => {
  it('one line: newline, tab, ESC, C1 and bidi controls become visible escapes', () => {
    const forged = 'evil\n{"level":30,"msg":"user admin logged in"}';
    expect(sanitizeForTerminal(forged)).toBe('evil\\n{"level":30,"msg":"user admin logged in"}');
    expect(sanitizeForTerminal(`a\tb\r${ESC}[2J\u009b\u202e\u2066z`)).toBe('a\\tb\\r\\x1b[2J\\x9b\\u202e\\u2066z');
    expect(sanitizeForTerminal('plain \\ text é')).toBe('plain \\ text é');
  });

  it('a text block keeps its line breaks only', () => {
    expect(sanitizeTextBlock(`line 1\nline\t2${ESC}[31m\r`)).toBe('line 1\nline\t2\\x1b[31m\\r');
  });

  it('JSON output escapes C1 and bidi controls too and parses to the same value', () => {
    const v = [{ name: `a\u009b\u202e\n${ESC}` }];
    const text = jsonForTerminal(v, 2);
    // eslint-disable-next-line no-control-regex -- asserts no control character is left
    expect(text).not.toMatch(/[\u0000-\u0009\u000b-\u001f\u007f-\u009f\u202a-\u202e]/);
    expect(JSON.parse(text)).toEqual(v);
  });
});

describe('admin tables escape control characters', () => {
  it('formatTable', () => {
    const t = formatTable(['A', 'B'], [[`x${ESC}[31m`, `y\u0007\u202e\nforged`]]);
    // eslint-disable-next-line no-control-regex -- asserts no control character is left
    expect(t).not.toMatch(/[\u0000-\u0008\u000b-\u001f\u007f-\u009f\u202a-\u202e]/);
    expect(t).toBe('A          B\nx\\x1b[31m  y\\x07\\u202e\\nforged\n');
  });

  it('users, grants and agents tables', () => {
    const out = [
      formatUsersTable([
        { name: `eve${ESC}[2J`, admin: false, role: `r${ESC}`, disabled: false, disabledAt: null, createdAt: 'now' },
      ]),
      formatGrantsTable([
        { subjectKind: 'user', subject: 'alice', pattern: 'web-*', createdBy: `adm${ESC}in`, createdAt: 'now' },
      ]),
      formatAgentsTable([
        {
          name: 'box',
          online: false,
          lastSeen: null,
          enrolledAt: 'now',
          revokedAt: null,
          stale: true,
          protocolVersion: 1,
          agentVersion: `1.0${ESC}]0;title\u0007`,
          identityFingerprint: 'SHA256:x',
          hostKeyFingerprints: [],
        },
      ]),
    ].join('');
    expect(out).not.toContain(ESC);
    expect(out).not.toContain('\u0007');
    expect(out).toMatch(/box\s+stale\s+never/);
  });
});
