import { describe, expect, it } from 'vitest';
import { parseDuration, parseTimeArg } from '@mssh/protocol';
import { formatAuditTable, formatBytes, formatDuration, formatSessionsTable } from './admin-audit.js';

describe('mssh admin audit / sessions output', () => {
  it('the audit table carries no control characters from the relay', () => {
    const out = formatAuditTable([
      {
        id: 1,
        time: '2026-11-26T09:00:00.000Z',
        type: 'user.login',
        code: 'USR001W',
        relayId: 'r',
        actor: 'eve\x1b[2J\x1b]0;pwned\x07',
        host: null,
        source: '10.0.0.1\r\n',
        sessionId: null,
        details: { reason: 'bad_password', note: '\x1b[31mred' },
      },
    ]);
    // eslint-disable-next-line no-control-regex -- asserts no control character is printed
    expect(out).not.toMatch(/[\x00-\x08\x0b-\x1f\x7f]/);
    expect(out.split('\n')).toHaveLength(3); // header, one row, and the final newline: nothing forged a line
    expect(out).toContain('10.0.0.1\\r\\n');
    expect(out).toMatch(/^TIME\s+TYPE\s+CODE\s+ACTOR\s+HOST\s+SOURCE\s+UP\s+DOWN\s+DETAILS\n/);
    expect(out).toContain('user.login');
    expect(out).toContain('bad_password');
  });

  it('bytes of a session.end have their own columns, outside the cut DETAILS', () => {
    const out = formatAuditTable([
      {
        id: 2,
        time: '2026-11-26T09:00:00.000Z',
        type: 'session.end',
        code: 'SES002I',
        relayId: 'r',
        actor: 'alice',
        host: 'laptop',
        source: '127.0.0.1',
        sessionId: 's',
        details: {
          via: 'https',
          reason: 'client_closed',
          note: 'x'.repeat(300),
          bytesFromClient: 1536,
          bytesToClient: 3 * 1024 * 1024,
        },
      },
    ]);
    expect(out).toMatch(/alice\s+laptop\s+127\.0\.0\.1\s+1\.5 KiB\s+3\.0 MiB\s+\{"via":"https"/);
    expect(out).not.toContain('bytesFromClient');
  });

  it('the sessions table shows duration, bytes and state', () => {
    const out = formatSessionsTable([
      {
        sessionId: 's',
        relayId: 'r',
        user: 'alice',
        host: 'laptop',
        source: '127.0.0.1',
        via: 'https',
        startedAt: '2026-11-26T09:00:00.000Z',
        endedAt: null,
        durationMs: 3_725_000,
        bytesFromClient: 1536,
        bytesToClient: 5 * 1024 * 1024,
        endReason: null,
        active: true,
      },
    ]);
    expect(out).toMatch(
      /alice\s+laptop\s+127\.0\.0\.1\s+https\s+2026-11-26T09:00:00\.000Z\s+1h02m\s+1\.5 KiB\s+5\.0 MiB\s+active/,
    );
    expect(formatBytes(12)).toBe('12 B');
    expect(formatDuration(59_000)).toBe('59s');
    expect(formatDuration(61_000)).toBe('1m01s');
  });

  it('ages and times for --since/--until and --older-than', () => {
    const now = new Date('2026-11-26T10:00:00Z');
    expect(parseDuration('365d')).toBe(365 * 86_400_000);
    expect(parseDuration('2w')).toBe(14 * 86_400_000);
    expect(parseDuration('24')).toBeNull();
    expect(parseTimeArg('24h', now)?.toISOString()).toBe('2026-11-25T10:00:00.000Z');
    expect(parseTimeArg('2026-11-01T00:00:00Z', now)?.toISOString()).toBe('2026-11-01T00:00:00.000Z');
    expect(parseTimeArg('yesterday', now)).toBeNull();
  });
});
