/**
 * Issue 20 item 1, as an admin runs it: the one line that `mssh-relay agent enroll NAME` prints, run by sh
 * on a "bare" machine, i.e. with a PATH that holds the usual tools and no node (the script and the agent
 * must use the Node runtime the relay ships in its tarball):
 *
 *   curl --pinnedpubkey PIN -k RELAY/install/agent.sh | sudo sh -s -- --token T --name N
 *       --prefix TMP/opt --state-dir TMP/state --target SSHD --start-background
 *
 * Systemd is not PID 1 here, so --start-background starts the agent with nohup. Then mssh reaches the
 * fixture sshd through it; the same line again upgrades in place (same identity, reachable again);
 * --uninstall removes it and stops it. Failure paths: a wrong pin (curl refuses, nothing runs) and a
 * tampered tarball (INSTALL_ERR_CHECKSUM, nothing installed).
 */
import { spawn } from 'node:child_process';
import { X509Certificate } from 'node:crypto';
import {
  chmodSync,
  existsSync,
  mkdirSync,
  mkdtempSync,
  openSync,
  readFileSync,
  readSync,
  readdirSync,
  symlinkSync,
  writeFileSync,
  writeSync,
  closeSync,
} from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { publicKeyPin } from '@mssh/protocol';
import { fixtures } from './fixtures/inject.js';
import { waitFor } from './fixtures/net.js';
import { loginUser, sshArgs, startRelay, stopAll, type Relay, type User } from './fixtures/stack.js';

/** What the script and the launcher call; `sudo` is a stand-in (the tests run as root). */
const TOOLS = [
  'sh',
  'curl',
  'tar',
  'gzip',
  'sha256sum',
  'mktemp',
  'mkdir',
  'mv',
  'rm',
  'rmdir',
  'cat',
  'ln',
  'ls',
  'readlink',
  'dirname',
  'uname',
  'sleep',
  'grep',
  'nohup',
  'tail',
];

interface ShResult {
  code: number | null;
  stdout: string;
  stderr: string;
}

let relay: Relay;
let user: User;
let work: string;
let bin: string;
let env: NodeJS.ProcessEnv;
let oneLiner: string;

/** Run a command line with sh, in the bare environment. */
function sh(line: string, timeoutMs = 60_000): Promise<ShResult> {
  return new Promise((resolve, reject) => {
    const child = spawn(join(bin, 'sh'), ['-c', line], { env, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    const t = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
    child.once('error', reject);
    child.once('close', (code) => {
      clearTimeout(t);
      resolve({ code, stdout, stderr });
    });
  });
}

/** Running (a zombie nobody reaped has an empty command line: it has exited). */
const alive = (pid: number): boolean => {
  try {
    return readFileSync(`/proc/${pid}/cmdline`).length > 0;
  } catch {
    return false;
  }
};

/** `mssh ssh box -- echo ok`, until the (re)started agent is linked. */
async function reachBox(): Promise<void> {
  await waitFor(
    async () => {
      const r = await user.mssh([...sshArgs('box'), '--', 'echo', 'ok'], { timeoutMs: 20_000 });
      return r.code === 0 && r.stdout === 'ok\n' ? true : null;
    },
    30_000,
    'mssh ssh box -- echo ok through the installed agent',
  );
}

const prefix = () => join(work, 'opt');
const state = () => join(work, 'state');
const install = (extra = '') =>
  `${oneLiner} --prefix ${prefix()} --state-dir ${state()} --target 127.0.0.1:${fixtures().sshd.port} --start-background${extra}`;

beforeAll(async () => {
  relay = await startRelay('pglite');
  user = await loginUser(relay);
  work = mkdtempSync(join(fixtures().root, 'agent-install-'));
  bin = join(work, 'bin');
  mkdirSync(bin);
  for (const t of TOOLS) {
    const found = ['/usr/bin', '/bin', '/usr/sbin', '/sbin'].map((d) => join(d, t)).find((p) => existsSync(p));
    if (!found)
      throw new Error(`${t} is missing on this machine: apt-get install -y ${t} (bash .ci/run does this for curl)`);
    symlinkSync(found, join(bin, t));
  }
  writeFileSync(join(bin, 'sudo'), '#!/bin/sh\nexec "$@"\n');
  chmodSync(join(bin, 'sudo'), 0o755);
  env = { PATH: bin, HOME: work, LANG: 'C' };
  const e = await relay.cli(['agent', 'enroll', 'box']);
  expect(e.code, e.stderr).toBe(0);
  oneLiner = e.stdout
    .split('\n')
    .map((l) => l.trim())
    .find((l) => l.startsWith('curl '))!;
});

afterAll(async () => {
  // The background agent is not a child of this process: stop it if a test left it running.
  const pidFile = join(work ?? '/nonexistent', 'opt/agent.pid');
  if (existsSync(pidFile)) {
    const pid = Number(readFileSync(pidFile, 'utf8'));
    if (pid > 0 && alive(pid)) process.kill(pid, 'SIGKILL');
  }
  await relay?.proc.stop();
  await stopAll();
});

describe('one-line agent install', { timeout: 60_000 }, () => {
  it('the enrol output has the one-liner, pinned to the public key of the relay certificate', async () => {
    const pin = publicKeyPin(
      new X509Certificate(readFileSync(join(relay.dataDir, 'tls/cert.pem'))).publicKey.export({
        type: 'spki',
        format: 'der',
      }),
    );
    expect(oneLiner).toMatch(
      new RegExp(
        `^curl -fsS --pinnedpubkey '${pin.replace(/[+/]/g, '\\$&')}' -k ${relay.url}/install/agent\\.sh \\| sudo sh -s -- --token \\S+ --name box$`,
      ),
    );
    // mssh admin agents enroll prints the same line, with the pin it checked itself.
    const a = await user.mssh(['admin', 'agents', 'enroll', 'box2', '--json']);
    expect(a.code, a.stderr).toBe(0);
    const j = JSON.parse(a.stdout);
    expect(j.relayPublicKeyPin).toBe(pin);
    expect(j.install).toBe(
      `curl -fsS --pinnedpubkey '${pin}' -k ${relay.url}/install/agent.sh | sudo sh -s -- --token ${j.token} --name box2`,
    );
    // The bare environment has no node.
    const node = await sh('command -v node');
    expect(node.code).not.toBe(0);
  });

  it('a wrong pin: curl refuses the relay (exit 90) and nothing is installed', async () => {
    const wrong = oneLiner.replace(/sha256\/\/[^']+/, 'sha256//AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=');
    const curl = await sh(wrong.replace(/ \|.*$/, ' -o /dev/null'));
    expect(curl.code).toBe(90);
    const r = await sh(`${wrong} --prefix ${prefix()} --state-dir ${state()}`);
    expect(r.stderr).toMatch(/public key does not match pinned public key/);
    expect(existsSync(prefix())).toBe(false);
  });

  it('the script over HTTP/1.1 and HTTP/2 alike; a tampered tarball: INSTALL_ERR_CHECKSUM, nothing installed', async () => {
    const fetchScript = oneLiner.replace(/ \|.*$/, '');
    const [h2, h1] = [await sh(`${fetchScript} --http2`), await sh(`${fetchScript} --http1.1`)];
    expect(h2.code, h2.stderr).toBe(0);
    expect(h1.stdout).toBe(h2.stdout);
    expect(h2.stdout).toMatch(/^#!\/bin\/sh\n/);
    // Now the tarball is built (the script carries its sha256): change one byte of it on the relay's disk.
    const dir = join(relay.dataDir, 'agent-bundle');
    const file = join(
      dir,
      readdirSync(dir).find((f) => f.endsWith('.tar.gz'))!,
    );
    const fd = openSync(file, 'r+');
    const b = Buffer.alloc(1);
    const at = 1_000_000;
    readSync(fd, b, 0, 1, at);
    writeSync(fd, Buffer.from([b[0]! ^ 0xff]), 0, 1, at);
    try {
      const r = await sh(install());
      expect(r.code).toBe(71);
      expect(r.stderr).toMatch(/INSTALL_ERR_CHECKSUM: the download's SHA-256 is [0-9a-f]{64}, not [0-9a-f]{64}/);
      expect(r.stderr).toContain('nothing was installed');
      expect(existsSync(prefix())).toBe(false);
      expect(existsSync(state())).toBe(false);
    } finally {
      writeSync(fd, b, 0, 1, at);
      closeSync(fd);
    }
  });

  it('installs, enrols and starts the agent with no node on the PATH; mssh reaches sshd through it', async () => {
    const t0 = Date.now();
    const r = await sh(install());
    expect(r.code, `${r.stdout}\n${r.stderr}`).toBe(0);
    console.log(`one-line install took ${Date.now() - t0} ms`);
    expect(r.stdout).toContain('SHA-256 checked');
    expect(r.stdout).toMatch(/started in the background: pid \d+/);
    expect(existsSync(join(prefix(), 'current/bin/node'))).toBe(true);
    expect(existsSync(join(state(), 'agent.json'))).toBe(true);
    await reachBox();
  });

  it('the same line again upgrades in place: same identity, a new process, reachable again', async () => {
    const identity = readFileSync(join(state(), 'agent.json'), 'utf8');
    const pid = Number(readFileSync(join(prefix(), 'agent.pid'), 'utf8'));
    const r = await sh(install());
    expect(r.code, `${r.stdout}\n${r.stderr}`).toBe(0);
    expect(r.stdout).toContain('already enrolled');
    expect(r.stdout).toContain(`stopped the agent (pid ${pid})`);
    expect(readFileSync(join(state(), 'agent.json'), 'utf8')).toBe(identity);
    const next = Number(readFileSync(join(prefix(), 'agent.pid'), 'utf8'));
    expect(next).not.toBe(pid);
    expect(alive(pid)).toBe(false);
    await reachBox();
  });

  it('--uninstall stops the agent and removes the prefix; the identity stays unless --purge', async () => {
    const pid = Number(readFileSync(join(prefix(), 'agent.pid'), 'utf8'));
    const r = await sh(`${oneLiner.replace(/ --token .*$/, '')} --uninstall --prefix ${prefix()}`);
    expect(r.code, `${r.stdout}\n${r.stderr}`).toBe(0);
    expect(existsSync(prefix())).toBe(false);
    expect(alive(pid)).toBe(false);
    expect(r.stdout).toContain(`kept the agent's identity in ${state()}`);
    expect(existsSync(join(state(), 'agent.json'))).toBe(true);
  });
});
