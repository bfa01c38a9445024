import { describe, expect, it } from 'vitest';
import {
  BLOCK_BEGIN,
  BLOCK_END,
  installBlock,
  machineNameOf,
  quoteCommand,
  removeBlock,
  sshConfigBlock,
} from './ssh-config.js';
import { loginIdOf } from '../ssh/openssh-names.js';

const KH = '/home/me/.config/mssh/openssh-known-hosts';
const block = sshConfigBlock(['/usr/bin/node', '/opt/mssh/bin/mssh.js'], KH);

describe('mssh config ssh', () => {
  it('routes *.mssh through `mssh proxy %n`, whose per-name file is the only known hosts file; absolute paths quoted', () => {
    expect(block.startsWith(`${BLOCK_BEGIN}\nHost *.mssh\n`)).toBe(true);
    expect(block).toContain(
      `    ProxyCommand "/usr/bin/node" "/opt/mssh/bin/mssh.js" proxy --known-hosts-dir "${KH}" %n\n`,
    );
    // One process per connection: no KnownHostsCommand, the proxy writes the file OpenSSH reads.
    expect(block).not.toContain('KnownHostsCommand');
    expect(block).toContain(`    UserKnownHostsFile "${KH}/%n"\n`);
    expect(block).toContain('    GlobalKnownHostsFile /dev/null\n');
    expect(block).toContain('    StrictHostKeyChecking yes\n');
    // OpenSSH does not read the file before the key exchange to order key types.
    expect(block).toContain('    HostKeyAlgorithms ^ssh-ed25519\n');
    expect(block).not.toContain('ControlPath');
    expect(block.endsWith(`Host *\n${BLOCK_END}\n`)).toBe(true);
    expect(() => quoteCommand(['/a "b"'])).toThrow(/cannot quote/);
    expect(() => sshConfigBlock(['/n'], '/home/100%/x')).toThrow(/cannot quote/);
  });

  it('install puts the block first, keeps the rest byte for byte, and is idempotent; uninstall restores the file', () => {
    const user = 'ServerAliveInterval 30\n\nHost work\n    User me\n';
    const once = installBlock(user, block);
    expect(once).toBe(block + user);
    expect(installBlock(once, block)).toBe(once);
    const newer = sshConfigBlock(['/n', '/m.js'], KH);
    const replaced = installBlock(once, newer);
    expect(replaced).toBe(newer + user);
    expect(removeBlock(replaced)).toEqual({ text: user, found: true });
    expect(removeBlock(user)).toEqual({ text: user, found: false });
    expect(installBlock('', block)).toBe(block);
    expect(removeBlock(block).text).toBe('');
  });

  it('for a login: the proxy is told its id and shared connections get a ControlPath of their own', () => {
    const id = loginIdOf('https://relay.example:8443', 'alice');
    expect(id).toMatch(/^[0-9a-f]{12}$/);
    expect(loginIdOf('https://relay.example:8443', 'bob')).not.toBe(id);
    expect(loginIdOf('https://other.example:8443', 'alice')).not.toBe(id);
    const b = sshConfigBlock(['/usr/bin/node', '/opt/mssh/bin/mssh.js'], KH, id);
    expect(b).toContain(
      `    ProxyCommand "/usr/bin/node" "/opt/mssh/bin/mssh.js" proxy --login-id ${id} --known-hosts-dir "${KH}" %n\n`,
    );
    expect(b).toContain(`    ControlPath ~/.ssh/mssh-cm-%C-${id}\n`);
    expect(b.startsWith(`${BLOCK_BEGIN}\n# for the mssh login ${id}`)).toBe(true);
    expect(() => sshConfigBlock(['/n'], KH, 'x y')).toThrow();
  });

  it('takes the machine name out of what OpenSSH passes', () => {
    expect(machineNameOf('laptop.mssh')).toBe('laptop');
    expect(machineNameOf('Laptop.MSSH')).toBe('laptop');
    expect(machineNameOf('[laptop.mssh]:2200')).toBe('laptop');
    expect(machineNameOf('laptop')).toBe('laptop');
    expect(machineNameOf('a.b.mssh')).toBe('a.b');
  });
});
