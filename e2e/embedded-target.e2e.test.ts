/**
 * Issue 7, as a user runs it: an agent with `--target embedded` serves SSH itself. Keys come from
 * `mssh-agent authorize` (picked up without a restart), `mssh ssh` and stock OpenSSH (ssh, sftp through
 * `mssh proxy %n`) work, forwarding is refused, and `--target auto` picks the SSH server on 127.0.0.1:22
 * when one answers there, else the embedded server.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { execFileSync, spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import net from 'node:net';
import { join } from 'node:path';
import { fixtures } from './fixtures/inject.js';
import { runCommand, sha256File } from './fixtures/files.js';
import { freePort, waitFor, waitForPort } from './fixtures/net.js';
import {
  BIN,
  exec,
  loginUser,
  proxyCommandSshOpts,
  startAgent,
  startRelay,
  stopAll,
  type Agent,
  type Relay,
  type User,
} from './fixtures/stack.js';

afterAll(stopAll);

/** Whether anything accepts TCP connections on 127.0.0.1:22 on this machine (bounded to 1 s). */
function port22Open(): Promise<boolean> {
  return new Promise((resolve) => {
    const s = net.connect({ host: '127.0.0.1', port: 22 });
    const done = (ok: boolean): void => {
      clearTimeout(t);
      s.destroy();
      resolve(ok);
    };
    const t = setTimeout(() => done(false), 1_000);
    s.once('connect', () => done(true));
    s.once('error', () => done(false));
  });
}

describe('agent with the embedded SSH server', () => {
  let relay: Relay;
  let user: User;
  let agent: Agent;
  let dir: string;
  let key: string;

  const authorize = (args: string[]) =>
    exec(BIN.agent, ['authorize', ...args, '--state-dir', agent.stateDir], { timeoutMs: 15_000 });

  const openSshOpts = (): string[] => proxyCommandSshOpts(join(dir, 'openssh_known_hosts'), key);

  beforeAll(async () => {
    relay = await startRelay('pglite');
    agent = await startAgent(relay, 'rescue', { target: 'embedded' });
    user = await loginUser(relay);
    dir = mkdtempSync(join(fixtures().root, 'embedded-'));
    key = join(dir, 'id_ed25519');
    execFileSync('ssh-keygen', ['-q', '-t', 'ed25519', '-N', '', '-C', 'e2e-embedded', '-f', key], { timeout: 10_000 });
  });
  afterAll(async () => {
    await agent?.proc?.stop();
    await relay?.proc.stop();
  });

  it('logs that sessions go to the embedded server and reports its host key', async () => {
    expect(agent.proc.err).toMatch(/sessions go to the embedded SSH server \(--target embedded\)/);
    const pub = readFileSync(join(agent.stateDir, 'ssh_host_ed25519_key.pub'), 'utf8').split(' ').slice(0, 2).join(' ');
    const r = await user.mssh(['ls', '--json']);
    expect(r.code).toBe(0);
    const hosts = JSON.parse(r.stdout);
    const host = hosts.find((h: { name: string }) => h.name === 'rescue');
    expect(host.online).toBe(true);
    expect(host.hostKeys).toEqual([pub]);
  });

  it('refuses a key not in authorized_keys, and accepts it once added, without a restart', async () => {
    const refused = await user.mssh(['ssh', '-i', key, 'anyuser@rescue', '--', 'echo', 'hi'], { timeoutMs: 30_000 });
    expect(refused.code).not.toBe(0);
    expect(refused.stdout).not.toMatch(/hi/);

    const add = await authorize(['add', `${key}.pub`]);
    expect(add.stderr).toBe('');
    expect(add.code).toBe(0);
    expect(add.stdout).toMatch(/^added SHA256:\S+ ssh-ed25519 e2e-embedded$/m);
    const list = await authorize(['list']);
    expect(list.code).toBe(0);
    expect(list.stdout).toMatch(/^SHA256:\S+ ssh-ed25519 e2e-embedded$/m);

    const ok = await user.mssh(['ssh', '-i', key, 'anyuser@rescue', '--', 'echo', 'hi'], { timeoutMs: 30_000 });
    expect(ok.code).toBe(0);
    expect(ok.stdout.trim()).toBe('hi');
    expect(agent.proc.running).toBe(true);
  });

  it('authorize add of a private key or of garbage says what is wrong and exits 1', async () => {
    const priv = await authorize(['add', key]);
    expect(priv.code).toBe(1);
    expect(priv.stderr).toMatch(/private key/);
    const junk = join(dir, 'junk.pub');
    writeFileSync(junk, 'not a key\n');
    const bad = await authorize(['add', junk]);
    expect(bad.code).toBe(1);
    expect(bad.stderr).toMatch(/^mssh-agent: .*not a usable OpenSSH public key/);
    const none = await authorize(['remove', 'no-such-comment']);
    expect(none.code).toBe(1);
    expect(none.stderr).toMatch(/no key in .* has the fingerprint or comment/);
  });

  it('the exit status of the remote command propagates', async () => {
    const r = await user.mssh(['ssh', '-i', key, 'x@rescue', '--', 'sh', '-c', "'exit 3'"], { timeoutMs: 30_000 });
    expect(r.code).toBe(3);
  });

  it('stock OpenSSH through mssh proxy runs a command', async () => {
    const r = await runCommand('ssh', [...openSshOpts(), 'x@rescue', 'echo', 'ok'], {
      env: user.env,
      timeoutMs: 30_000,
    });
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    expect(r.stdout.trim()).toBe('ok');
  });

  it('sftp -b puts and gets a 1 MiB file byte-exact', async () => {
    const src = join(dir, 'one.bin');
    writeFileSync(src, randomBytes(1024 * 1024));
    const remote = join(dir, 'one.remote.bin');
    const back = join(dir, 'one.back.bin');
    const batch = join(dir, 'batch.txt');
    writeFileSync(batch, `put ${src} ${remote}\nget ${remote} ${back}\n`);
    const r = await runCommand('sftp', [...openSshOpts(), '-b', batch, 'x@rescue'], {
      env: user.env,
      timeoutMs: 30_000,
    });
    expect(r.code).toBe(0);
    expect(sha256File(remote)).toBe(sha256File(src));
    expect(sha256File(back)).toBe(sha256File(src));
  });

  it('refuses TCP forwarding by default: -L and -W (direct-tcpip) get no connection', async () => {
    const w = await runCommand('ssh', [...openSshOpts(), '-W', `127.0.0.1:${relay.port}`, 'x@rescue'], {
      env: user.env,
      timeoutMs: 30_000,
    });
    expect(w.code).not.toBe(0);
    expect(w.stderr).toMatch(/stdio forwarding failed|open failed|prohibited/i);

    const localPort = await freePort();
    const l = spawn(
      'ssh',
      [
        '-o',
        'LogLevel=INFO',
        ...openSshOpts(),
        '-N',
        '-L',
        `127.0.0.1:${localPort}:127.0.0.1:${relay.port}`,
        'x@rescue',
      ],
      { env: user.env, stdio: ['ignore', 'ignore', 'pipe'] },
    );
    let lErr = '';
    l.stderr.on('data', (d) => (lErr += d));
    const killer = setTimeout(() => l.kill('SIGKILL'), 30_000);
    try {
      await waitForPort(localPort, 20_000, () => l.exitCode !== null);
      // The forwarded connection is opened, then closed without a byte: the server refused the channel.
      const got = await new Promise<{ bytes: number }>((resolve) => {
        const s = net.connect({ host: '127.0.0.1', port: localPort });
        let bytes = 0;
        const t = setTimeout(() => s.destroy(), 10_000);
        s.on('data', (d: Buffer) => (bytes += d.length));
        s.on('error', () => undefined);
        s.on('close', () => {
          clearTimeout(t);
          resolve({ bytes });
        });
      });
      expect(got.bytes).toBe(0);
      await waitFor(() => /open failed|prohibited/i.test(lErr), 10_000, 'ssh -L reporting the refused channel');
    } finally {
      clearTimeout(killer);
      l.kill('SIGTERM');
    }
  });

  it('authorize remove by comment takes the key away again', async () => {
    const rm = await authorize(['remove', 'e2e-embedded']);
    expect(rm.code).toBe(0);
    expect(rm.stdout).toMatch(/^removed SHA256:\S+ ssh-ed25519 e2e-embedded$/m);
    const refused = await user.mssh(['ssh', '-i', key, 'x@rescue', '--', 'echo', 'hi'], { timeoutMs: 30_000 });
    expect(refused.code).not.toBe(0);
  });

  it('--target auto picks the SSH server on 127.0.0.1:22 when one answers, else the embedded one', async () => {
    const listening = await port22Open();
    const auto = await startAgent(relay, 'rescue-auto', { target: 'auto' });
    try {
      const state = JSON.parse(readFileSync(join(auto.stateDir, 'agent.json'), 'utf8'));
      expect(state.target).toBe('auto');
      if (listening) {
        expect(auto.proc.err).toMatch(
          /sessions go to the SSH server at 127\.0\.0\.1:22 \(--target auto: an SSH server answers on 127\.0\.0\.1:22\)/,
        );
      } else {
        expect(auto.proc.err).toMatch(
          /sessions go to the embedded SSH server \(--target auto: no SSH server answers on 127\.0\.0\.1:22\)/,
        );
        const add = await exec(BIN.agent, ['authorize', 'add', `${key}.pub`, '--state-dir', auto.stateDir], {
          timeoutMs: 15_000,
        });
        expect(add.code).toBe(0);
        const ok = await user.mssh(['ssh', '-i', key, 'x@rescue-auto', '--', 'echo', 'hi'], { timeoutMs: 30_000 });
        expect(ok.code).toBe(0);
        expect(ok.stdout.trim()).toBe('hi');
      }
    } finally {
      await auto.proc.stop();
    }
  });
});
