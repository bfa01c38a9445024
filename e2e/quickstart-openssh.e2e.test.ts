/**
 * Issue 17.3: the OpenSSH command that `npm start` (scripts/quickstart.mjs) prints connects without
 * OpenSSH's `yes/no` question: run exactly that line (its `export MSSH_CONFIG_DIR=...` too) as a real
 * `ssh` with BatchMode=yes and no StrictHostKeyChecking of our own; it connects and pins the key the
 * relay attests. A changed key is still refused.
 */
import { afterAll, describe, expect, it } from 'vitest';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { fixtures } from './fixtures/inject.js';
import { freePort } from './fixtures/net.js';
import { type Proc, run, stopAll } from './fixtures/stack.js';
import { runCommand } from './fixtures/files.js';

afterAll(stopAll);

const ROOT = resolve(import.meta.dirname, '..');

describe('quick start: the printed OpenSSH command', () => {
  let qs: Proc | null = null;
  afterAll(async () => {
    await qs?.stop('SIGTERM', 8_000);
  });

  it('connects with BatchMode=yes and no yes/no, and a changed key is refused', { timeout: 240_000 }, async () => {
    const dir = mkdtempSync(join(fixtures().root, 'quickstart-'));
    const port = await freePort();
    qs = run(join(ROOT, 'scripts/quickstart.mjs'), [], {
      cwd: ROOT,
      env: { ...process.env, MSSH_QUICKSTART_DIR: dir, MSSH_LISTEN: `127.0.0.1:${port}`, DATABASE_URL: '' },
    });
    await qs.waitOutput(/Ctrl-C stops the relay and the agent/, 180_000, 'out');
    const configDir = qs.out.match(/^\s*export MSSH_CONFIG_DIR=(\S+)$/m)?.[1];
    const line = qs.out.match(/^\s*(ssh \S.*?)\s+# your own OpenSSH/m)?.[1];
    expect(configDir, qs.out).toBeTruthy();
    expect(line, qs.out).toBeTruthy();
    const name = line!.match(/@(\S+)$/)![1]!;
    // Exactly the printed line, with BatchMode (a prompt would fail instead of hanging) and a command.
    const cmd = line!.replace(/^ssh /, 'ssh -o BatchMode=yes ') + ' echo connected';
    const env = { ...process.env, MSSH_CONFIG_DIR: configDir!, SSH_AUTH_SOCK: '', HOME: dir };
    const ok = await runCommand('sh', ['-c', cmd], { env, timeoutMs: 60_000 });
    expect(ok.stderr).not.toMatch(/authenticity|yes\/no|Host key verification failed/);
    expect(ok.stdout, ok.stderr).toBe('connected\n');
    expect(ok.code).toBe(0);
    // The key is pinned under the machine's name.
    const known = join(configDir!, 'known_hosts');
    const pinned = readFileSync(known, 'utf8');
    const machine = name.replace(/\.mssh$/, '');
    expect(pinned).toMatch(new RegExp(`^${machine} `, 'm'));

    // Someone else's key pinned for that name: OpenSSH refuses, without a prompt.
    const other = fixtures().sshd.clientPub.split(/\s+/).slice(0, 2).join(' '); // an ed25519 key that is not the machine's
    writeFileSync(known, `${machine} ${other}\n`);
    const refused = await runCommand('sh', ['-c', cmd], { env, timeoutMs: 60_000 });
    expect(refused.code).toBe(255);
    expect(refused.stdout).toBe('');
    // Told by `mssh proxy` in an SSH disconnect message, with the mssh fix.
    expect(refused.stderr).toMatch(/mssh: CLI_ERR_HOST_KEY_CHANGED: HOST KEY FOR .* HAS CHANGED/);
    expect(refused.stderr).toContain(`mssh known-hosts forget ${machine}`);
    expect(refused.stderr).not.toMatch(/yes\/no/);
  });
});
