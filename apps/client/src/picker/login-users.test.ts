import { describe, expect, it } from 'vitest';
import { mkdirSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { CliError } from '../errors.js';
import { LoginUsers, type DamagedUsersFile } from './login-users.js';

const NOW = new Date('2026-12-05T07:30:00.123Z');

function setup(content: string | null) {
  const dir = mkdtempSync(join(tmpdir(), 'mssh-login-users-'));
  if (content !== null) writeFileSync(join(dir, 'tui-users.json'), content, { mode: 0o600 });
  const damaged: DamagedUsersFile[] = [];
  const users = new LoginUsers(dir, 'local', { onDamaged: (d) => damaged.push(d), now: () => NOW });
  return { dir, users, damaged };
}

describe('tui-users.json', () => {
  it('remembers users per machine', () => {
    const { users } = setup(null);
    expect(users.get('box')).toBe('local');
    users.set('box', 'alice');
    expect(users.get('box')).toBe('alice');
    expect(JSON.parse(readFileSync(users.path, 'utf8'))).toEqual({ version: 1, hosts: { box: 'alice' } });
  });

  it.each([
    ['not JSON', '{"version": 1, "hosts": {"box": "alice", "db": "bo'],
    ['another shape', '{"version": 2, "hosts": {"box": "alice", "db": "bob"}}'],
  ])(
    'a damaged file (%s) is set aside as .corrupt-<time>, reported once, and never overwritten by the next save',
    (_what, text) => {
      const { dir, users, damaged } = setup(text);
      expect(users.get('box')).toBe('local');
      const aside = join(dir, `tui-users.json.corrupt-2026-12-05T07-30-00-123Z`);
      expect(damaged).toEqual([{ path: users.path, movedTo: aside, reason: expect.any(String) }]);
      expect(users.takeNotice()).toContain(aside);
      expect(users.takeNotice()).toBeNull();
      users.set('web', 'carol');
      expect(readFileSync(aside, 'utf8')).toBe(text);
      expect(JSON.parse(readFileSync(users.path, 'utf8'))).toEqual({ version: 1, hosts: { web: 'carol' } });
      expect(damaged).toHaveLength(1);
    },
  );

  it('a damaged file that cannot be moved aside is not saved over: set refuses with CLI_ERR_CONFIG', () => {
    const { dir, users, damaged } = setup('garbage');
    // A non-empty directory where the file would be moved makes the rename fail (even as root).
    mkdirSync(join(dir, 'tui-users.json.corrupt-2026-12-05T07-30-00-123Z'));
    writeFileSync(join(dir, 'tui-users.json.corrupt-2026-12-05T07-30-00-123Z', 'x'), '');
    expect(users.get('box')).toBe('local');
    expect(damaged).toHaveLength(1);
    expect(damaged[0]!.movedTo).toBeNull();
    let err: CliError | undefined;
    try {
      users.set('box', 'alice');
    } catch (e) {
      err = e as CliError;
    }
    expect(err?.code).toBe('CLI_ERR_CONFIG');
    expect(readFileSync(users.path, 'utf8')).toBe('garbage');
    expect(users.get('box')).toBe('local');
    expect(damaged).toHaveLength(1);
  });
});
