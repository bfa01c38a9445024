/**
 * Issue 6, part 1: stock OpenSSH (ssh, scp, sftp, rsync, ssh -L) through the config `mssh config ssh`
 * prints: `Host *.mssh` -> ProxyCommand mssh proxy %n, host keys from mssh (pinned, else attested).
 *
 *   ssh -F generated bob@laptop.mssh --mssh proxy--> relay --> agent --> fixture sshd
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { execFileSync, spawn } from 'node:child_process';
import { createServer, connect, type Server } from 'node:net';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fixtures } from './fixtures/inject.js';
import { MiB, runCommand, sha256File, writeRandomFile } from './fixtures/files.js';
import { freePort, waitFor } from './fixtures/net.js';
import {
  startRelay,
  startAgent,
  loginUser,
  stopAll,
  exec,
  BIN,
  Proc,
  type Relay,
  type User,
} from './fixtures/stack.js';

afterAll(stopAll);

describe('stock OpenSSH with the generated ssh config', () => {
  let relay: Relay;
  let user: User;
  let dir: string;
  let cfg: string;
  let env: NodeJS.ProcessEnv;
  let home: string;

  beforeAll(async () => {
    relay = await startRelay('pglite');
    await startAgent(relay, 'laptop');
    user = await loginUser(relay);
    dir = mkdtempSync(join(fixtures().root, 'stock-ssh-'));
    home = join(user.configDir, 'home');
    env = { ...user.env, HOME: home };
    const r = await user.mssh(['config', 'ssh']);
    expect(r.code).toBe(0);
    cfg = join(dir, 'ssh_config');
    writeFileSync(cfg, r.stdout);
  });
  afterAll(async () => {
    await relay?.proc.stop();
  });

  /** Options every OpenSSH tool gets: only the generated config, the fixture's client key, no prompts. */
  const opts = () => [
    '-F',
    cfg,
    '-i',
    fixtures().sshd.clientKey,
    '-o',
    'IdentitiesOnly=yes',
    '-o',
    'BatchMode=yes',
    '-o',
    'LogLevel=ERROR',
  ];
  const dest = () => `${fixtures().sshd.user}@laptop.mssh`;

  it('the config names the absolute mssh and strict host key checking', () => {
    const text = readFileSync(cfg, 'utf8');
    expect(text).toMatch(/^Host \*\.mssh$/m);
    expect(text).toContain(`"${process.execPath}"`);
    // One process per connection: the proxy writes the keys OpenSSH accepts to a file of their own.
    expect(text).toMatch(
      /ProxyCommand "\/[^"]+" "\/[^"]+mssh\.js" proxy --login-id [0-9a-f]{12} --known-hosts-dir "[^"]+" %n/,
    );
    expect(text).not.toMatch(/KnownHostsCommand/);
    expect(text).toMatch(/UserKnownHostsFile "[^"]+\/openssh-known-hosts\/%n"/);
    expect(text).toMatch(/StrictHostKeyChecking yes/);
  });

  it('ssh bob@laptop.mssh true works with no question asked, and pins the attested key', async () => {
    const r = await runCommand('ssh', [...opts(), dest(), 'true'], { env, timeoutMs: 30_000 });
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    const pinned = readFileSync(join(user.configDir, 'known_hosts'), 'utf8')
      .split('\n')
      .filter((l) => l.startsWith('laptop '));
    expect(pinned.length).toBeGreaterThan(0);
    for (const l of pinned) expect(fixtures().sshd.hostKeys).toContain(l.split(/\s+/).slice(1, 3).join(' '));
    // The file OpenSSH read: the pinned keys, for any name (it is this machine's own), owner-only.
    const forOpenssh = join(user.configDir, 'openssh-known-hosts', 'laptop.mssh');
    expect(readFileSync(forOpenssh, 'utf8')).toBe(
      pinned.map((l) => `* ${l.split(/\s+/).slice(1, 3).join(' ')}\n`).join(''),
    );
    expect(statSync(forOpenssh).mode & 0o777).toBe(0o600);
    const echo = await runCommand('ssh', [...opts(), dest(), 'echo', 'ok'], { env, timeoutMs: 30_000 });
    expect(echo.stdout).toBe('ok\n');
  });

  it('a group exchange key exchange works too (the host key is read from another message)', async () => {
    const r = await runCommand(
      'ssh',
      [...opts(), '-o', 'KexAlgorithms=diffie-hellman-group-exchange-sha256', dest(), 'echo', 'gex'],
      { env, timeoutMs: 30_000 },
    );
    expect(r.stdout, r.stderr).toBe('gex\n');
  });

  it('scp both ways is byte-exact', async () => {
    const src = join(dir, 'up.bin');
    const sum = writeRandomFile(src, 5 * MiB + 3);
    const remote = join(dir, 'remote.bin');
    const back = join(dir, 'back.bin');
    const up = await runCommand('scp', [...opts(), src, `${dest()}:${remote}`], { env });
    expect(up.stderr).toBe('');
    expect(up.code).toBe(0);
    expect(sha256File(remote)).toBe(sum);
    const down = await runCommand('scp', [...opts(), `${dest()}:${remote}`, back], { env });
    expect(down.code).toBe(0);
    expect(sha256File(back)).toBe(sum);
  });

  it('sftp put and get', async () => {
    const src = join(dir, 'sftp-src.bin');
    const sum = writeRandomFile(src, MiB + 11);
    const remote = join(dir, 'sftp-remote.bin');
    const back = join(dir, 'sftp-back.bin');
    const batch = join(dir, 'sftp-batch');
    writeFileSync(batch, `put ${src} ${remote}\nget ${remote} ${back}\n`);
    const r = await runCommand('sftp', [...opts(), '-b', batch, dest()], { env });
    expect(r.code).toBe(0);
    expect(sha256File(remote)).toBe(sum);
    expect(sha256File(back)).toBe(sum);
  });

  it('rsync -e ssh copies a tree', async () => {
    const tree = join(dir, 'tree');
    mkdirSync(join(tree, 'sub'), { recursive: true });
    const a = writeRandomFile(join(tree, 'a.bin'), 200_000);
    const b = writeRandomFile(join(tree, 'sub', 'b.bin'), 70_001);
    const target = join(dir, 'tree-copy');
    const sshCmd = ['ssh', ...opts()].join(' ');
    const r = await runCommand('rsync', ['-a', '-e', sshCmd, `${tree}/`, `${dest()}:${target}/`], { env });
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    expect(sha256File(join(target, 'a.bin'))).toBe(a);
    expect(sha256File(join(target, 'sub', 'b.bin'))).toBe(b);
  });

  it('ssh -L forwards a local port to a port on the target', async () => {
    const echo: Server = createServer((s) => s.pipe(s));
    await new Promise<void>((r) => echo.listen(0, '127.0.0.1', () => r()));
    const targetPort = (echo.address() as { port: number }).port;
    const local = await freePort();
    const fwd = new Proc(
      spawn(
        'ssh',
        [...opts(), '-N', '-o', 'ExitOnForwardFailure=yes', '-L', `127.0.0.1:${local}:127.0.0.1:${targetPort}`, dest()],
        { env, stdio: ['pipe', 'pipe', 'pipe'] },
      ),
    );
    try {
      const answer = await waitFor(
        async () => {
          if (!fwd.running) throw new Error(`ssh -L exited: ${fwd.err}`);
          return new Promise<string | null>((resolve) => {
            const c = connect(local, '127.0.0.1');
            let got = '';
            c.on('data', (d) => {
              got += d.toString();
              if (got.includes('\n')) {
                c.destroy();
                resolve(got);
              }
            });
            c.on('error', () => resolve(null));
            c.on('close', () => resolve(got.includes('\n') ? got : null));
            c.write('ping through -L\n');
            setTimeout(() => {
              c.destroy();
              resolve(null);
            }, 2_000);
          });
        },
        20_000,
        'a round trip through ssh -L',
      );
      expect(answer).toBe('ping through -L\n');
    } finally {
      await fwd.stop();
      echo.close();
    }
  });

  it('a changed host key makes ssh fail (the pinned key wins over the attested one)', async () => {
    const khPath = join(user.configDir, 'known_hosts');
    const before = readFileSync(khPath, 'utf8');
    const other = join(dir, 'other_host_key');
    execFileSync('/usr/bin/ssh-keygen', ['-q', '-t', 'ed25519', '-N', '', '-f', other]);
    const otherLine = readFileSync(`${other}.pub`, 'utf8').trim().split(/\s+/).slice(0, 2).join(' ');
    writeFileSync(khPath, `laptop ${otherLine}\n`, { mode: 0o600 });
    try {
      // The proxy refuses it in place of the server's key exchange reply, in an SSH disconnect message
      // that OpenSSH prints with the mssh code and fix; with a group exchange (another reply message) too.
      for (const kex of [[], ['-o', 'KexAlgorithms=diffie-hellman-group-exchange-sha256']]) {
        const r = await runCommand('ssh', [...opts(), ...kex, dest(), 'true'], { env, timeoutMs: 30_000 });
        expect(r.code).toBe(255);
        expect(r.stderr).toMatch(
          /Received disconnect .*mssh: CLI_ERR_HOST_KEY_CHANGED: HOST KEY FOR laptop HAS CHANGED/,
        );
        expect(r.stderr).toContain('mssh known-hosts forget laptop');
      }
      // And OpenSSH would refuse on its own: its file holds only the pinned key.
      expect(readFileSync(join(user.configDir, 'openssh-known-hosts', 'laptop.mssh'), 'utf8')).toBe(`* ${otherLine}\n`);
    } finally {
      writeFileSync(khPath, before, { mode: 0o600 });
    }
  });

  it('--install writes the block into ~/.ssh/config idempotently, keeping the rest; --uninstall removes it', async () => {
    mkdirSync(join(home, '.ssh'), { recursive: true });
    const path = join(home, '.ssh', 'config');
    const mine = 'Host work\n    User me\n';
    writeFileSync(path, mine, { mode: 0o600 });
    const mssh = (args: string[]) => exec(BIN.mssh, args, { env });
    const i1 = await mssh(['config', 'ssh', '--install']);
    expect(i1.code, i1.stderr).toBe(0);
    const printed = (await user.mssh(['config', 'ssh'])).stdout;
    expect(readFileSync(path, 'utf8')).toBe(printed + mine);
    const i2 = await mssh(['config', 'ssh', '--install']);
    expect(i2.code).toBe(0);
    expect(readFileSync(path, 'utf8')).toBe(printed + mine);
    const u = await mssh(['config', 'ssh', '--uninstall']);
    expect(u.code).toBe(0);
    expect(readFileSync(path, 'utf8')).toBe(mine);
    expect(existsSync(path)).toBe(true);
  });
});
