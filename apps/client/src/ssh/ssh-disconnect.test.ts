import { describe, expect, it } from 'vitest';
import { DISCONNECT_TEXT_MAX, DISCONNECT_VERSION_LINE, disconnectText, sshDisconnectBytes } from './ssh-disconnect.js';

/** Parse what sshDisconnectBytes wrote, as an SSH peer would before any key exchange. */
function parse(buf: Buffer): {
  version: string;
  padding: number;
  type: number;
  reason: number;
  text: string;
  lang: string;
} {
  const eol = buf.indexOf('\r\n');
  const version = buf.subarray(0, eol + 2).toString('latin1');
  const p = buf.subarray(eol + 2);
  const length = p.readUInt32BE(0);
  expect(p.length).toBe(4 + length);
  expect((4 + length) % 8).toBe(0);
  const padding = p.readUInt8(4);
  let o = 5;
  const type = p.readUInt8(o++);
  const reason = p.readUInt32BE(o);
  o += 4;
  const n = p.readUInt32BE(o);
  o += 4;
  const text = p.subarray(o, o + n).toString('utf8');
  o += n;
  const ln = p.readUInt32BE(o);
  o += 4;
  const lang = p.subarray(o, o + ln).toString('utf8');
  o += ln;
  expect(p.length - o).toBe(padding);
  return { version, padding, type, reason, text, lang };
}

describe('SSH disconnect answer of mssh proxy', () => {
  it('is a version line and one unencrypted SSH_MSG_DISCONNECT packet, padded to 8 with >= 4 bytes', () => {
    for (const t of ['', 'x', 'mssh: CLI_ERR_HOST_OFFLINE: laptop is offline', 'y'.repeat(37)]) {
      const m = parse(sshDisconnectBytes(t));
      expect(m.version).toBe(DISCONNECT_VERSION_LINE);
      expect(m.version).toMatch(/^SSH-2\.0-\S+\r\n$/);
      expect(m).toMatchObject({ type: 1, reason: 11, text: t, lang: '' });
      expect(m.padding).toBeGreaterThanOrEqual(4);
      expect(m.padding).toBeLessThan(12);
    }
  });

  it('sends printable ASCII only: escape sequences and control characters go, lines join, 400 characters at most', () => {
    expect(disconnectText('a\x1b[31mred\x1b[0m\nnext\r\tline\x07\x00 é')).toBe('ared next line');
    const long = disconnectText('z'.repeat(1000));
    expect(long.length).toBe(DISCONNECT_TEXT_MAX);
    expect(long.endsWith('...')).toBe(true);
    expect(parse(sshDisconnectBytes('bad\x1b]0;title\x07 text')).text).toMatch(/^[\x20-\x7e]*$/);
  });
});
