/**
 * Test helpers for the embedded SSH server's integration tests (not used by the agent itself): an
 * embedded server behind a real loopback TCP listener, a client key made by ssh-keygen, and a runner
 * for the stock OpenSSH client.
 */
import { execFileSync, spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createServer, type Server, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pino from 'pino';
import { addAuthorizedKey } from './authorized-keys.js';
import { createEmbeddedSshd, type EmbeddedSshd, type EmbeddedSshdOptions } from './server.js';

export interface TestSshd {
  dir: string;
  stateDir: string;
  port: number;
  /** Client private key (ed25519, no passphrase) listed in authorized_keys. */
  key: string;
  knownHosts: string;
  sshd: EmbeddedSshd;
  /** Server-side TCP sockets currently open (destroy one to simulate a dropped tunnel). */
  sockets: Set<Socket>;
  /** Common OpenSSH options: this key only, no user config, strict host key checking against knownHosts. */
  sshOpts(key?: string): string[];
  stop(): Promise<void>;
}

export function testLogger() {
  return pino({ level: process.env.MSSH_TEST_LOG ?? 'warn' }, pino.destination(2));
}

export function makeClientKey(dir: string, name: string): { key: string; pub: string } {
  const key = join(dir, name);
  execFileSync('ssh-keygen', ['-q', '-t', 'ed25519', '-N', '', '-C', `${name}@test`, '-f', key], { stdio: 'ignore' });
  return { key, pub: `${key}.pub` };
}

export async function startTestSshd(
  opts: Partial<Omit<EmbeddedSshdOptions, 'stateDir' | 'logger'>> = {},
): Promise<TestSshd> {
  const dir = mkdtempSync(join(tmpdir(), 'mssh-esd-'));
  const stateDir = join(dir, 'state');
  const { key, pub } = makeClientKey(dir, 'client');
  // /bin/sh rather than the tester's $SHELL: no ~/.bashrc start-up cost on every exec (keeps tests lean).
  const sshd = await createEmbeddedSshd({ stateDir, logger: testLogger(), shell: '/bin/sh', ...opts });
  await addAuthorizedKey(stateDir, pub);
  const sockets = new Set<Socket>();
  const server: Server = createServer((s) => {
    sockets.add(s);
    s.once('close', () => sockets.delete(s));
    sshd.handleConnection(s, { sessionId: `test-${sockets.size}` });
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => resolve());
  });
  const port = (server.address() as { port: number }).port;
  const knownHosts = join(dir, 'known_hosts');
  writeFileSync(
    knownHosts,
    sshd
      .hostPublicKeys()
      .map((k) => `[127.0.0.1]:${port} ${k}\n`)
      .join(''),
  );
  return {
    dir,
    stateDir,
    port,
    key,
    knownHosts,
    sshd,
    sockets,
    sshOpts: (k = key) => [
      '-F',
      '/dev/null',
      '-i',
      k,
      '-o',
      'IdentitiesOnly=yes',
      '-o',
      'IdentityAgent=none',
      '-o',
      'BatchMode=yes',
      '-o',
      `UserKnownHostsFile=${knownHosts}`,
      '-o',
      'StrictHostKeyChecking=yes',
      '-o',
      'LogLevel=ERROR',
    ],
    stop: async () => {
      await sshd.close();
      for (const s of sockets) s.destroy();
      await new Promise<void>((r) => server.close(() => r()));
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

export interface RunResult {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: Buffer;
  stdoutSha256: string;
  stdoutBytes: number;
  stderr: string;
}

/** Run a program to completion (killed after timeoutMs). keepStdout=false only hashes stdout. */
export function run(
  file: string,
  args: string[],
  o: { input?: string | Buffer; timeoutMs?: number; keepStdout?: boolean; env?: NodeJS.ProcessEnv } = {},
): Promise<RunResult> {
  return new Promise((resolve, reject) => {
    const child = spawn(file, args, { stdio: ['pipe', 'pipe', 'pipe'], env: o.env ?? process.env });
    const hash = createHash('sha256');
    const chunks: Buffer[] = [];
    let bytes = 0;
    let stderr = '';
    const keep = o.keepStdout !== false;
    child.stdout.on('data', (d: Buffer) => {
      hash.update(d);
      bytes += d.length;
      if (keep) chunks.push(d);
    });
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    const timer = setTimeout(() => child.kill('SIGKILL'), o.timeoutMs ?? 30_000);
    child.on('error', (e) => {
      clearTimeout(timer);
      reject(e);
    });
    child.on('close', (code, signal) => {
      clearTimeout(timer);
      resolve({
        code,
        signal,
        stdout: Buffer.concat(chunks),
        stdoutSha256: hash.digest('hex'),
        stdoutBytes: bytes,
        stderr,
      });
    });
    child.stdin.on('error', () => undefined);
    child.stdin.end(o.input ?? '');
  });
}

/** pids whose full command line matches the extended regex (pgrep -f), excluding pgrep itself. */
export function pgrep(pattern: string): number[] {
  try {
    return execFileSync('pgrep', ['-f', pattern], { encoding: 'utf8' }).split('\n').filter(Boolean).map(Number);
  } catch {
    return []; // exit 1: no match
  }
}

export function sha256(b: Buffer): string {
  return createHash('sha256').update(b).digest('hex');
}
