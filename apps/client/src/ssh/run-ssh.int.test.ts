/**
 * The embedded SSH session layer against the real OpenSSH sshd fixture, over a plain TCP socket (the
 * relay path is covered end to end in e2e/). Host keys go through the product's rule with a real
 * known_hosts file.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { connect, type Socket } from 'node:net';
import { createHash, randomBytes } from 'node:crypto';
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable, Writable } from 'node:stream';
import { fingerprintKeyLine, parseSshPublicKeyLine } from '@mssh/protocol';
import { fixtures } from '@mssh/test-fixtures/inject';
import { KnownHostsFile } from '../known-hosts/known-hosts-file.js';
import { createHostKeyCheck } from '../known-hosts/host-key-policy.js';
import { noPrompter, type Prompter } from '@mssh/cli-kit';
import { runSsh, exitCodeFor, type RunSshOptions } from './run-ssh.js';
import { cliError, type CliError } from '../errors.js';
import { identityFilesFor } from './auth.js';

class Sink extends Writable {
  chunks: Buffer[] = [];
  override _write(chunk: Buffer, _enc: BufferEncoding, cb: () => void) {
    this.chunks.push(chunk);
    cb();
  }
  get text() {
    return Buffer.concat(this.chunks).toString('utf8');
  }
}

let dir: string;
let agent: ChildProcess | null = null;
beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), 'mssh-ssh-int-'));
});
afterAll(() => {
  agent?.kill();
  rmSync(dir, { recursive: true, force: true });
});

function tcp(): Socket {
  return connect(fixtures().sshd.port, '127.0.0.1');
}

let n = 0;
/** A fresh known_hosts per case; `attested` defaults to the sshd's real keys. */
function session(over: Partial<RunSshOptions> & { attested?: string[]; knownHosts?: KnownHostsFile } = {}) {
  const f = fixtures().sshd;
  const knownHosts = over.knownHosts ?? new KnownHostsFile(join(dir, `known_hosts_${n++}`));
  const stdout = new Sink();
  const stderr = new Sink();
  const opts: RunSshOptions = {
    sock: tcp(),
    host: 'laptop',
    user: f.user,
    hostKey: createHostKeyCheck({ host: 'laptop', knownHosts, attested: over.attested ?? f.hostKeys }),
    auth: { agentSocket: null, identityFiles: [f.clientKey], prompter: noPrompter },
    command: null,
    pty: false,
    stdin: Readable.from([]),
    stdout,
    stderr,
    ...over,
  };
  return { run: () => runSsh(opts), stdout, stderr, knownHosts };
}

describe('embedded ssh session over TCP to a real sshd', () => {
  it('runs `echo hi`, exit 0, and pins the attested key under the host name', async () => {
    const s = session({ command: 'echo hi' });
    expect(await s.run()).toBe(0);
    expect(s.stdout.text).toBe('hi\n');
    expect(s.stderr.text).toBe('');
    const pinned = s.knownHosts.lookup('laptop').map((k) => `${k.type} ${k.blob.toString('base64')}`);
    expect(pinned).toHaveLength(1);
    expect(fixtures().sshd.hostKeys).toContain(pinned[0]);
  });

  it("propagates the exit status of sh -c 'exit 7' and stderr separately", async () => {
    const s = session({ command: "sh -c 'echo oops >&2; exit 7'" });
    expect(await s.run()).toBe(7);
    expect(s.stderr.text).toBe('oops\n');
    expect(s.stdout.text).toBe('');
  });

  it('a remote signal gives 128 + signum', async () => {
    const s = session({ command: 'kill -TERM $$' });
    expect(await s.run()).toBe(128 + 15);
    expect(exitCodeFor(null, 'KILL')).toBe(137);
  });

  it('8 MiB of stdin through sha256sum matches, and stdin EOF ends the remote input', async () => {
    const data = randomBytes(8 * 1024 * 1024);
    const chunks: Buffer[] = [];
    for (let i = 0; i < data.length; i += 64 * 1024) chunks.push(data.subarray(i, i + 64 * 1024));
    const s = session({ command: 'sha256sum', stdin: Readable.from(chunks) });
    expect(await s.run()).toBe(0);
    expect(s.stdout.text.split(/\s+/)[0]).toBe(createHash('sha256').update(data).digest('hex'));
  });

  it('binary output is byte-exact', async () => {
    const s = session({ command: 'head -c 300000 /dev/urandom | tee /dev/stderr | sha256sum' });
    expect(await s.run()).toBe(0);
    const raw = Buffer.concat(s.stderr.chunks);
    expect(raw.length).toBe(300000);
    expect(s.stdout.text.split(/\s+/)[0]).toBe(createHash('sha256').update(raw).digest('hex'));
  });

  it('allocates a PTY when asked; end of stdin reaches the remote program as Ctrl-D', async () => {
    const s = session({
      command: 'tty; cat',
      pty: true,
      term: 'xterm',
      stdin: Readable.from([Buffer.from('hello\n')]),
    });
    expect(await s.run()).toBe(0);
    expect(s.stdout.text).toMatch(/\/dev\/pts\/\d+/);
    expect(s.stdout.text).toContain('hello');
  });

  it('prefers the key type already pinned (here ecdsa, although the server also has ed25519)', async () => {
    const f = fixtures().sshd;
    const ecdsa = f.hostKeys.find((k) => k.startsWith('ecdsa-'))!;
    const knownHosts = new KnownHostsFile(join(dir, 'known_hosts_ecdsa'));
    knownHosts.add('laptop', parseSshPublicKeyLine(ecdsa)!.blob);
    const s = session({ command: 'true', knownHosts, attested: [] });
    expect(await s.run()).toBe(0);
    expect(knownHosts.lookup('laptop')).toHaveLength(1);
  });

  it('refuses a changed host key with both fingerprints and the fix, even when the relay attests it', async () => {
    const f = fixtures().sshd;
    const knownHosts = new KnownHostsFile(join(dir, 'known_hosts_changed'));
    const keyFile = join(dir, 'other_host_key');
    execFileSync('ssh-keygen', ['-q', '-t', 'ed25519', '-N', '', '-f', keyFile]);
    const otherLine = execFileSync('ssh-keygen', ['-y', '-f', keyFile]).toString().trim();
    knownHosts.add('laptop', parseSshPublicKeyLine(otherLine)!.blob);
    const s = session({ command: 'echo should-not-run', knownHosts, attested: f.hostKeys });
    const err = (await s.run().then(
      () => null,
      (e: CliError) => e,
    ))!;
    expect(err.code).toBe('CLI_ERR_HOST_KEY_CHANGED');
    expect(err.message).toContain('HOST KEY FOR laptop HAS CHANGED');
    expect(err.message).toContain(fingerprintKeyLine(otherLine)!);
    const presented = f.hostKeys.map((k) => fingerprintKeyLine(k)!).filter((fp) => err.message.includes(fp));
    expect(presented).toHaveLength(1);
    expect(err.hint).toContain('mssh known-hosts forget laptop');
    expect(s.stdout.text).toBe('');
    expect(knownHosts.lookup('laptop')).toHaveLength(1);
  });

  it('refuses a first-use key the relay does not attest, and pins nothing', async () => {
    const keyFile = join(dir, 'attested_other');
    execFileSync('ssh-keygen', ['-q', '-t', 'ed25519', '-N', '', '-f', keyFile]);
    const attested = [execFileSync('ssh-keygen', ['-y', '-f', keyFile]).toString().trim()];
    const s = session({ command: 'true', attested });
    const err = (await s.run().then(
      () => null,
      (e: CliError) => e,
    ))!;
    expect(err.code).toBe('CLI_ERR_HOST_KEY_NOT_ATTESTED');
    expect(s.knownHosts.lookup('laptop')).toEqual([]);
  });

  it('a key the server does not accept fails with the methods tried', async () => {
    const keyFile = join(dir, 'unknown_client_key');
    execFileSync('ssh-keygen', ['-q', '-t', 'ed25519', '-N', '', '-f', keyFile]);
    const s = session({ command: 'true', auth: { agentSocket: null, identityFiles: [keyFile], prompter: noPrompter } });
    const err = (await s.run().then(
      () => null,
      (e: CliError) => e,
    ))!;
    expect(err.code).toBe('CLI_ERR_SSH_AUTH_FAILED');
    expect(err.message).toContain('permission denied');
    expect(err.message).toContain(keyFile);
  });

  it('a peer that is not an SSH server fails with a coded error, not a hang', async () => {
    const { createServer } = await import('node:net');
    const srv = createServer((c) => c.end('HTTP/1.1 400 Bad Request\r\n\r\n'));
    await new Promise<void>((r) => srv.listen(0, '127.0.0.1', () => r()));
    const port = (srv.address() as { port: number }).port;
    const s = session({ command: 'true', sock: connect(port, '127.0.0.1') });
    const err = (await s.run().then(
      () => null,
      (e: CliError) => e,
    ))!;
    srv.close();
    expect(err.code).toBe('CLI_ERR_SSH_CONNECTION');
  });

  it('authenticates with a key held by ssh-agent ($SSH_AUTH_SOCK) and no key file', async () => {
    const sock = join(dir, 'agent.sock');
    agent = spawn('ssh-agent', ['-D', '-a', sock], { stdio: 'ignore' });
    for (let i = 0; i < 100 && !existsSync(sock); i++) await new Promise((r) => setTimeout(r, 50));
    execFileSync('ssh-add', ['-q', fixtures().sshd.clientKey], {
      env: { ...process.env, SSH_AUTH_SOCK: sock },
      stdio: 'ignore',
    });
    const s = session({
      command: 'echo via-agent',
      auth: { agentSocket: sock, identityFiles: [], prompter: noPrompter },
    });
    expect(await s.run()).toBe(0);
    expect(s.stdout.text).toBe('via-agent\n');
  });

  it('key order: the ssh-agent first, then the -i keys, then ~/.ssh/id_* (each file once)', async () => {
    const f = fixtures().sshd;
    const home = join(dir, 'home-order');
    mkdirSync(join(home, '.ssh'), { recursive: true });
    const encrypted = join(home, '.ssh', 'id_ed25519'); // not authorized, and asks for a passphrase
    execFileSync('ssh-keygen', ['-q', '-t', 'ed25519', '-N', 'secret words', '-f', encrypted]);
    const stranger = join(dir, 'stranger_key'); // a valid key the server does not know
    execFileSync('ssh-keygen', ['-q', '-t', 'ed25519', '-N', '', '-f', stranger]);
    expect(identityFilesFor([stranger, encrypted], home)).toEqual([stranger, encrypted]);
    expect(identityFilesFor([stranger], home)).toEqual([stranger, encrypted]);
    const asked: string[] = [];
    const recording: Prompter = {
      available: () => true,
      ask: async (q) => {
        asked.push(q);
        throw cliError('CLI_ERR_PROMPT_ABORTED', 'cancelled at the prompt');
      },
      say: () => {},
    };
    // The agent (holding the authorized key) logs in before any key file is read: no passphrase prompt
    // for the encrypted ~/.ssh key.
    const sock = join(dir, 'agent-order.sock');
    const orderAgent = spawn('ssh-agent', ['-D', '-a', sock], { stdio: 'ignore' });
    try {
      for (let i = 0; i < 100 && !existsSync(sock); i++) await new Promise((r) => setTimeout(r, 50));
      execFileSync('ssh-add', ['-q', f.clientKey], { env: { ...process.env, SSH_AUTH_SOCK: sock }, stdio: 'ignore' });
      const viaAgent = session({
        command: 'echo agent-first',
        auth: { agentSocket: sock, identityFiles: identityFilesFor([], home), prompter: recording },
      });
      expect(await viaAgent.run()).toBe(0);
      expect(viaAgent.stdout.text).toBe('agent-first\n');
    } finally {
      orderAgent.kill();
    }
    expect(asked).toEqual([]);
    // No agent: the -i key is tried before ~/.ssh/id_* (which would prompt).
    const viaI = session({
      command: 'echo i-second',
      auth: { agentSocket: null, identityFiles: identityFilesFor([f.clientKey], home), prompter: recording },
    });
    expect(await viaI.run()).toBe(0);
    expect(asked).toEqual([]);
    // A -i key the server refuses: ~/.ssh/id_* comes next (OpenSSH would stop at -i); here it prompts.
    const thenHome = session({
      command: 'true',
      auth: { agentSocket: null, identityFiles: identityFilesFor([stranger], home), prompter: recording },
    });
    const err = (await thenHome.run().then(
      () => null,
      (e: CliError) => e,
    ))!;
    expect(asked).toEqual([`Enter passphrase for key '${encrypted}': `]);
    expect(err.code).toBe('CLI_ERR_PROMPT_ABORTED');
  });

  it('an unusable ssh-agent socket (not a socket, refusing, silent, hanging up) does not break login with -i', async () => {
    const { createServer } = await import('node:net');
    const notSocket = join(dir, 'not-a-socket');
    writeFileSync(notSocket, 'x');
    const held: Socket[] = [];
    const silentPath = join(dir, 'silent.sock');
    const silent = createServer((c) => held.push(c)); // accepts, never answers
    await new Promise<void>((r) => silent.listen(silentPath, () => r()));
    const hangupPath = join(dir, 'hangup.sock');
    const hangup = createServer((c) => c.destroy());
    await new Promise<void>((r) => hangup.listen(hangupPath, () => r()));
    try {
      for (const agentSocket of [notSocket, silentPath, hangupPath]) {
        const started = Date.now();
        const s = session({
          command: 'echo still-works',
          auth: {
            agentSocket,
            agentTimeoutMs: 1_000,
            identityFiles: [fixtures().sshd.clientKey],
            prompter: noPrompter,
          },
        });
        expect(await s.run(), agentSocket).toBe(0);
        expect(s.stdout.text).toBe('still-works\n');
        expect(Date.now() - started).toBeLessThan(8_000);
      }
    } finally {
      for (const c of held) c.destroy();
      silent.close();
      hangup.close();
    }
  });

  it('a reader that goes away (EPIPE) ends the session like SIGPIPE, instead of stalling', async () => {
    const broken = new Writable({
      write(_c, _e, cb) {
        cb(Object.assign(new Error('write EPIPE'), { code: 'EPIPE' }));
      },
    });
    broken.on('error', () => {});
    const s = session({ command: 'yes', stdout: broken });
    expect(await s.run()).toBe(128 + 13);
  });
});
