/**
 * The embedded SSH server driven by the stock OpenSSH client (ssh, sftp, scp) over a loopback TCP listener.
 */
import { randomBytes } from 'node:crypto';
import { createWriteStream, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import * as pty from 'node-pty';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { waitFor } from '@mssh/test-fixtures/net';
import { addAuthorizedKey, removeAuthorizedKey } from './authorized-keys.js';
import { makeClientKey, pgrep, run, sha256, startTestSshd, type TestSshd } from './test-support.js';

/** Bulk transfers run ssh2's crypto in JS land: give them room on a loaded 2-core machine. */
const BULK = { timeout: 180_000 };

let t: TestSshd;

beforeAll(async () => {
  t = await startTestSshd();
});

afterAll(async () => {
  await t?.stop();
});

function ssh(extra: string[], command: string[], o: Parameters<typeof run>[2] = {}) {
  return run('ssh', [...t.sshOpts(), '-p', String(t.port), ...extra, 'anyuser@127.0.0.1', ...command], o);
}

async function writeRandomFile(path: string, mib: number): Promise<string> {
  const chunks: Buffer[] = [];
  const out = createWriteStream(path);
  for (let i = 0; i < mib; i++) {
    const b = randomBytes(1024 * 1024);
    chunks.push(b);
    if (!out.write(b)) await new Promise<void>((r) => out.once('drain', () => r()));
  }
  await new Promise<void>((resolve, reject) => out.end((e?: Error | null) => (e ? reject(e) : resolve())));
  return sha256(Buffer.concat(chunks));
}

describe('embedded sshd with the OpenSSH client', () => {
  it('runs an interactive pty shell: stty size follows a resize, UTF-8 and LANG round trip, exit 3 gives status 3', async () => {
    const p = pty.spawn(
      'ssh',
      [...t.sshOpts(), '-p', String(t.port), '-o', 'SetEnv=LANG=C.UTF-8', 'whoever@127.0.0.1'],
      {
        name: 'xterm-256color',
        cols: 80,
        rows: 24,
        env: { ...process.env, TERM: 'xterm-256color' },
      },
    );
    let out = '';
    p.onData((d) => (out += d));
    const exited = new Promise<number>((resolve) => p.onExit(({ exitCode }) => resolve(exitCode)));
    try {
      // The marker's arithmetic only appears evaluated in the output, never in the echoed command line.
      p.write('echo "S1:$(stty size):$((40+2))"\r');
      await waitFor(() => out.includes('S1:24 80:42'), 15_000, `stty size 24 80 in ${JSON.stringify(out.slice(-300))}`);
      p.resize(100, 30);
      // ssh sends window-change when its terminal is resized; give the shell a fresh line after it.
      await new Promise((r) => setTimeout(r, 200));
      p.write('echo "S2:$(stty size):$((40+3))"\r');
      await waitFor(
        () => out.includes('S2:30 100:43'),
        10_000,
        `stty size 30 100 in ${JSON.stringify(out.slice(-300))}`,
      );
      p.write('echo "U:héllo ✓ 日本語:$LANG:$TERM:$((40+4))"\r');
      await waitFor(
        () => out.includes('U:héllo ✓ 日本語:C.UTF-8:xterm-256color:44'),
        10_000,
        `UTF-8 echo in ${JSON.stringify(out.slice(-300))}`,
      );
      p.write('exit 3\r');
      expect(await Promise.race([exited, new Promise<number>((r) => setTimeout(() => r(-1), 10_000))])).toBe(3);
    } finally {
      p.kill('SIGKILL');
    }
  });

  it(
    'exec of a command producing 50 MiB is byte-exact, with stderr separate and the exit status passed on',
    BULK,
    async () => {
      const file = join(t.dir, 'big.bin');
      const want = await writeRandomFile(file, 50);
      const r = await ssh([], [`cat '${file}'; echo on-stderr >&2; exit 5`], {
        keepStdout: false,
        timeoutMs: BULK.timeout - 10_000,
      });
      expect(r.stderr).toContain('on-stderr');
      expect(r.stdoutBytes).toBe(50 * 1024 * 1024);
      expect(r.stdoutSha256).toBe(want);
      expect(r.code).toBe(5);
    },
  );

  it(
    'heavy stdout and stderr at the same time both arrive complete and in order (ssh2 parked-write bug)',
    BULK,
    async () => {
      const file = join(t.dir, 'mixed.bin');
      const want = await writeRandomFile(file, 20);
      // stderr: 300,000 numbered lines written while stdout streams 20 MiB, both fighting for one window
      const r = await ssh([], [`seq 1 300000 >&2 & cat '${file}'; wait; echo end >&2`], {
        keepStdout: false,
        timeoutMs: BULK.timeout - 10_000,
      });
      const lines = r.stderr.trimEnd().split('\n');
      expect(lines.at(-1)).toBe('end');
      const nums = lines.filter((l) => l !== 'end');
      expect(nums.length).toBe(300_000);
      expect(nums.every((l, i) => l === String(i + 1))).toBe(true);
      expect(r.stdoutBytes).toBe(20 * 1024 * 1024);
      expect(r.stdoutSha256).toBe(want);
      expect(r.code).toBe(0);
    },
  );

  it('exec passes stdin through binary-safe and shows the login banner', async () => {
    const input = randomBytes(300_000);
    const r = await run('ssh', ['-o', 'LogLevel=INFO', ...t.sshOpts(), '-p', String(t.port), 'root@127.0.0.1', 'cat'], {
      input,
    });
    expect(r.code).toBe(0);
    expect(sha256(r.stdout)).toBe(sha256(input));
    expect(r.stderr).toMatch(/the SSH user name you give is ignored/);
  });

  it('sftp put and get of a 10 MiB file are byte-exact (OpenSSH sftp-server)', BULK, async () => {
    const src = join(t.dir, 'ten.bin');
    const want = await writeRandomFile(src, 10);
    const remote = join(t.dir, 'remote-ten.bin');
    const back = join(t.dir, 'back-ten.bin');
    const batch = join(t.dir, 'batch');
    writeFileSync(batch, `put ${src} ${remote}\nget ${remote} ${back}\n`);
    const r = await run('sftp', [...t.sshOpts(), '-P', String(t.port), '-b', batch, 'x@127.0.0.1'], {
      timeoutMs: BULK.timeout - 10_000,
    });
    expect(r.stderr).not.toMatch(/error|fail/i);
    expect(r.code).toBe(0);
    expect(sha256(readFileSync(remote))).toBe(want);
    expect(sha256(readFileSync(back))).toBe(want);
  });

  it('refuses a key not in authorized_keys, accepts it once added (no restart), refuses it again once removed', async () => {
    const other = makeClientKey(t.dir, 'other');
    const attempt = () =>
      run('ssh', [...t.sshOpts(other.key), '-p', String(t.port), 'u@127.0.0.1', 'echo in'], { timeoutMs: 15_000 });
    const refused = await attempt();
    expect(refused.code).toBe(255);
    expect(refused.stderr).toMatch(/Permission denied \(publickey\)/);

    const { added } = await addAuthorizedKey(t.stateDir, other.pub);
    expect(added).toHaveLength(1);
    const ok = await attempt();
    expect(ok.stdout.toString()).toBe('in\n');
    expect(ok.code).toBe(0);

    await removeAuthorizedKey(t.stateDir, 'other@test');
    expect((await attempt()).code).toBe(255);
  });

  it('honours authorized_keys options: restrict and a forced command', async () => {
    const k = makeClientKey(t.dir, 'forced');
    const pub = readFileSync(k.pub, 'utf8').trim();
    await addAuthorizedKey(t.stateDir, `restrict,command="echo forced:$SSH_ORIGINAL_COMMAND" ${pub}`);
    const r = await run('ssh', [...t.sshOpts(k.key), '-p', String(t.port), 'u@127.0.0.1', 'asked for this'], {
      timeoutMs: 15_000,
    });
    expect(r.stdout.toString()).toBe('forced:asked for this\n');
    expect(r.code).toBe(0);
    // restrict includes no-pty: a forced tty (-tt) is refused, which OpenSSH's client treats as fatal
    const p = await run('ssh', [...t.sshOpts(k.key), '-p', String(t.port), '-tt', 'u@127.0.0.1', 'x'], {
      timeoutMs: 15_000,
    });
    expect(p.stderr).toMatch(/PTY allocation request failed/);
    expect(p.code).toBe(255);
  });

  it('refuses password and keyboard-interactive authentication', async () => {
    const r = await run(
      'ssh',
      [
        '-F',
        '/dev/null',
        '-p',
        String(t.port),
        '-o',
        'PubkeyAuthentication=no',
        '-o',
        'BatchMode=yes',
        '-o',
        'PreferredAuthentications=password,keyboard-interactive',
        '-o',
        `UserKnownHostsFile=${t.knownHosts}`,
        '-o',
        'StrictHostKeyChecking=yes',
        'u@127.0.0.1',
        'true',
      ],
      { timeoutMs: 15_000 },
    );
    expect(r.code).toBe(255);
    expect(r.stderr).toMatch(/Permission denied \(publickey\)/);
  });

  for (const mode of ['exec', 'pty'] as const) {
    it(`kill -9 of the client during sleep leaves no process of that session after 2 s (${mode})`, async () => {
      const marker = `1000.${Date.now() % 100000}${mode === 'pty' ? 1 : 2}`;
      const args = [
        ...t.sshOpts(),
        '-p',
        String(t.port),
        ...(mode === 'pty' ? ['-tt'] : []),
        'u@127.0.0.1',
        `sleep ${marker}; true`,
      ];
      const { spawn } = await import('node:child_process');
      const client = spawn('ssh', args, { stdio: ['pipe', 'ignore', 'ignore'] });
      const gone = new Promise<void>((r) => client.once('exit', () => r()));
      try {
        await waitFor(() => pgrep(`^sleep ${marker}`).length > 0, 15_000, 'the remote sleep to start');
        client.kill('SIGKILL');
        await gone;
        const deadline = Date.now() + 2000;
        await waitFor(
          () => pgrep(`sleep ${marker}`).length === 0 || Date.now() > deadline,
          2500,
          'the session to be killed',
        );
        expect(pgrep(`sleep ${marker}`)).toEqual([]);
      } finally {
        client.kill('SIGKILL');
      }
    });
  }

  it('a dropped connection (tunnel gone) also kills the session processes', async () => {
    const marker = `1000.${Date.now() % 100000}3`;
    const { spawn } = await import('node:child_process');
    const client = spawn('ssh', [...t.sshOpts(), '-p', String(t.port), 'u@127.0.0.1', `sleep ${marker}; true`], {
      stdio: ['pipe', 'ignore', 'ignore'],
    });
    try {
      await waitFor(() => pgrep(`^sleep ${marker}`).length > 0, 15_000, 'the remote sleep to start');
      for (const s of t.sockets) s.destroy();
      const deadline = Date.now() + 2000;
      await waitFor(
        () => pgrep(`^sleep ${marker}`).length === 0 || Date.now() > deadline,
        2500,
        'the session to be killed',
      );
      expect(pgrep(`^sleep ${marker}`)).toEqual([]);
    } finally {
      client.kill('SIGKILL');
    }
  });

  it('refuses forwarding by default: -W (direct-tcpip) and -R (tcpip-forward)', async () => {
    const w = await run('ssh', [...t.sshOpts(), '-p', String(t.port), '-W', `127.0.0.1:${t.port}`, 'u@127.0.0.1'], {
      timeoutMs: 15_000,
    });
    expect(w.code).toBe(255);
    expect(w.stderr).toMatch(/administratively prohibited|open failed|stdio forwarding failed/);
    const r = await ssh(['-o', 'ExitOnForwardFailure=yes', '-R', '0:127.0.0.1:9'], ['echo should-not-run'], {
      timeoutMs: 15_000,
    });
    expect(r.code).toBe(255);
    expect(r.stdout.toString()).not.toContain('should-not-run');
  });
});
