import { describe, expect, it } from 'vitest';
import { leanCommand } from './lean-command.js';

describe('command lines the lean entry runs itself', () => {
  it('takes exactly the shapes `mssh config ssh` writes', () => {
    expect(leanCommand(['proxy', 'web.mssh'])).toEqual({ kind: 'proxy', host: 'web.mssh' });
    expect(leanCommand(['proxy', '--login-id', '0123456789ab', 'web.mssh'])).toEqual({
      kind: 'proxy',
      host: 'web.mssh',
      loginId: '0123456789ab',
    });
    expect(leanCommand(['proxy', '--login-id', '0123456789ab', '--known-hosts-dir', '/d ir', 'web.mssh'])).toEqual({
      kind: 'proxy',
      host: 'web.mssh',
      loginId: '0123456789ab',
      knownHostsDir: '/d ir',
    });
    expect(leanCommand(['proxy', '--known-hosts-dir', '/d', 'web.mssh'])).toEqual({
      kind: 'proxy',
      host: 'web.mssh',
      knownHostsDir: '/d',
    });
    expect(leanCommand(['known-hosts', 'openssh', 'web.mssh', 'ssh-ed25519', 'AAAA'])).toEqual({
      kind: 'known-hosts',
      host: 'web.mssh',
      keyType: 'ssh-ed25519',
      key: 'AAAA',
    });
    expect(leanCommand(['known-hosts', 'openssh', '[web.mssh]:2222'])).toEqual({
      kind: 'known-hosts',
      host: '[web.mssh]:2222',
      keyType: undefined,
      key: undefined,
    });
  });

  it('leaves everything else to the full program (help, options, other commands, wrong arity)', () => {
    for (const argv of [
      [],
      ['--version'],
      ['proxy'],
      ['proxy', '--help'],
      ['proxy', '-h', 'x'],
      ['proxy', 'a', 'b'],
      ['proxy', '--login-id', 'x'],
      ['proxy', '--other', 'x', 'web'],
      ['proxy', '--', 'web'],
      ['proxy', '--known-hosts-dir', '/d', '--login-id', '0123456789ab', 'web'],
      ['proxy', '--known-hosts-dir', '/d'],
      ['known-hosts', 'list'],
      ['known-hosts', 'openssh'],
      ['known-hosts', 'openssh', 'a', 'b'],
      ['known-hosts', 'openssh', '--json', 'a', 'b'],
      ['ssh', 'web'],
    ])
      expect(leanCommand(argv), argv.join(' ')).toBeNull();
  });
});
