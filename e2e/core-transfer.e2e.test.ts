/**
 * Issue 2: bulk data through the relay is byte-exact, with the embedded client (`mssh ssh`) and with
 * stock OpenSSH (`ssh`/`scp` with ProxyCommand='mssh proxy %n').
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createHash } from 'node:crypto';
import { createReadStream, mkdtempSync, readFileSync } from 'node:fs';
import { MiB, runCommand, sha256File, writeRandomFile } from './fixtures/files.js';
import { join } from 'node:path';
import { fixtures } from './fixtures/inject.js';
import {
  startRelay,
  startAgent,
  loginUser,
  stopAll,
  BIN,
  proxyCommandSshOpts,
  run,
  type Relay,
  type User,
} from './fixtures/stack.js';

afterAll(stopAll);

describe('bulk transfer through the relay', () => {
  let relay: Relay;
  let user: User;
  let dir: string;
  let big: string;
  let bigSum: string;

  beforeAll(async () => {
    relay = await startRelay('pglite');
    await startAgent(relay, 'laptop');
    user = await loginUser(relay);
    dir = mkdtempSync(join(fixtures().root, 'transfer-'));
    big = join(dir, 'big.bin');
    bigSum = writeRandomFile(big, 64 * MiB);
  });
  afterAll(async () => {
    await relay?.proc.stop();
  });

  const openSshOpts = (): string[] => proxyCommandSshOpts(join(dir, 'openssh_known_hosts'), fixtures().sshd.clientKey);

  it('64 MiB through `mssh ssh laptop -- sha256sum` matches the local checksum', async () => {
    const f = fixtures();
    const t0 = Date.now();
    const r = await runCommand(
      process.execPath,
      [BIN.mssh, 'ssh', '-i', f.sshd.clientKey, `${f.sshd.user}@laptop`, '--', 'sha256sum'],
      { env: user.env, stdinFile: big },
    );
    const secs = (Date.now() - t0) / 1000;
    console.log(`[figure] mssh ssh 64 MiB -> sha256sum: ${secs.toFixed(2)} s, ${(64 / secs).toFixed(1)} MiB/s`);
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    expect(r.stdout.split(/\s+/)[0]).toBe(bigSum);
  });

  it('64 MiB through OpenSSH ssh with ProxyCommand=mssh proxy %n matches', async () => {
    const f = fixtures();
    const t0 = Date.now();
    const r = await runCommand('ssh', [...openSshOpts(), `${f.sshd.user}@laptop`, 'sha256sum'], {
      env: user.env,
      stdinFile: big,
    });
    const secs = (Date.now() - t0) / 1000;
    console.log(
      `[figure] OpenSSH via mssh proxy 64 MiB -> sha256sum: ${secs.toFixed(2)} s, ${(64 / secs).toFixed(1)} MiB/s`,
    );
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    expect(r.stdout.split(/\s+/)[0]).toBe(bigSum);
    // OpenSSH knows the machine under its own name, not as localhost:PORT.
    const kh = readFileSync(join(dir, 'openssh_known_hosts'), 'utf8');
    expect(kh).toMatch(/^laptop /m);
  });

  it('scp of a 10 MiB file there and back is byte-exact', async () => {
    const f = fixtures();
    const src = join(dir, 'ten.bin');
    const sum = writeRandomFile(src, 10 * MiB);
    const remote = join(dir, 'ten.remote.bin');
    const back = join(dir, 'ten.back.bin');
    const up = await runCommand('scp', [...openSshOpts(), src, `${f.sshd.user}@laptop:${remote}`], { env: user.env });
    expect(up.stderr).toBe('');
    expect(up.code).toBe(0);
    expect(sha256File(remote)).toBe(sum);
    const down = await runCommand('scp', [...openSshOpts(), `${f.sshd.user}@laptop:${remote}`, back], {
      env: user.env,
    });
    expect(down.code).toBe(0);
    expect(sha256File(back)).toBe(sum);
  });

  it('binary stdin/stdout through `mssh ssh -- cat` is byte-exact', async () => {
    const f = fixtures();
    const src = join(dir, 'bin.bin');
    const sum = writeRandomFile(src, 3 * MiB + 17);
    const p = run(BIN.mssh, ['ssh', '-i', f.sshd.clientKey, `${f.sshd.user}@laptop`, '--', 'cat'], { env: user.env });
    const h = createHash('sha256');
    p.child.stdout!.removeAllListeners('data');
    p.child.stdout!.on('data', (d: Buffer) => h.update(d));
    createReadStream(src).pipe(p.child.stdin!);
    const code = await p.exited;
    expect(code).toBe(0);
    expect(h.digest('hex')).toBe(sum);
  });
});
