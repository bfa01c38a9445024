/**
 * Issue 21: `mssh cp FILE SELECTOR:PATH` pushes one file to many machines over one relay connection. The
 * machines are agents with the embedded SSH server, each started with its own HOME, so a home-relative
 * destination (`web-*:inbox.txt`) lands in a different directory per machine: each copy is visible.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fixtures } from './fixtures/inject.js';
import { sha256File, writeRandomFile } from './fixtures/files.js';
import { waitFor } from './fixtures/net.js';
import {
  adminAuditEvents,
  agentEnroll,
  BIN,
  enrollToken,
  exec,
  loginUser,
  run,
  startAgent,
  startRelay,
  stopAll,
  type Relay,
  type User,
} from './fixtures/stack.js';

afterAll(stopAll);

describe('mssh cp pushes to many machines', () => {
  let relay: Relay;
  let user: User;
  let dir: string;
  let key: string;
  const homes: Record<string, string> = {};
  const cp = (args: string[]) => user.mssh(['cp', '-i', key, '-l', 'tester', ...args], { timeoutMs: 30_000 });

  /** An agent serving SSH itself (--target embedded) with HOME=its own directory, the test key authorised. */
  async function embeddedAgent(name: string, labels: string[]): Promise<void> {
    const root = fixtures().root;
    const token = await enrollToken(relay, name, labels);
    const stateDir = mkdtempSync(join(root, `agent-${name}-`));
    const e = await agentEnroll(relay, name, token, stateDir, 'embedded');
    if (e.code !== 0) throw new Error(`enroll ${name}: ${e.stderr}`);
    const a = await exec(BIN.agent, ['authorize', 'add', `${key}.pub`, '--state-dir', stateDir]);
    if (a.code !== 0) throw new Error(`authorize ${name}: ${a.stderr}`);
    homes[name] = mkdtempSync(join(root, `home-${name}-`));
    const proc = run(BIN.agent, ['run', '--state-dir', stateDir, '--log-level', 'info'], {
      env: { ...process.env, HOME: homes[name] },
    });
    await proc.waitOutput(/connected to relay/, 15_000);
  }

  beforeAll(async () => {
    relay = await startRelay('pglite');
    user = await loginUser(relay);
    dir = mkdtempSync(join(fixtures().root, 'cp-push-'));
    key = join(dir, 'id_ed25519');
    execFileSync('ssh-keygen', ['-q', '-t', 'ed25519', '-N', '', '-C', 'e2e-cp-push', '-f', key], { timeout: 10_000 });
    await Promise.all([
      embeddedAgent('web-1', ['env=prod']),
      embeddedAgent('web-2', ['env=prod']),
      embeddedAgent('web-3', ['env=dev']),
    ]);
    // Enrolled, never started: offline.
    await startAgent(relay, 'web-4', { target: 'embedded', start: false, labels: ['env=dev'] });
  });
  afterAll(async () => {
    await relay?.proc.stop();
  });

  it('a glob pushes to every matching machine; the offline one is reported unreachable (exit 255)', async () => {
    const file = join(dir, 'app.conf');
    const sum = writeRandomFile(file, 300_000);
    const r = await cp([file, 'web-*:']);
    expect(r.stderr).toMatch(
      /^mssh cp: 4 machines: 3 ok, 1 unreachable in \d+\.\d s \(run [0-9a-f]{16}\)\n {2}unreachable: +web-4 \(CLI_ERR_HOST_OFFLINE\)\n/,
    );
    expect(r.code).toBe(255);
    for (const h of ['web-1', 'web-2', 'web-3']) {
      expect(sha256File(join(homes[h]!, 'app.conf')), h).toBe(sum);
      expect(readdirSync(homes[h]!).filter((n) => n.endsWith('.part'))).toEqual([]);
    }
    // The relay audits one session per reached machine under the run id of the summary.
    const runId = r.stderr.match(/\(run ([0-9a-f]{16})\)/)![1]!;
    const rows = await waitFor(
      async () => {
        const evs = await adminAuditEvents(user, ['--run', runId]);
        return evs.filter((e) => e.type === 'session.end').length === 3 ? evs : null;
      },
      10_000,
      'three session.end rows of the run',
    );
    const started = rows.filter((e) => e.type === 'session.start').map((e) => e.host);
    expect(started.sort()).toEqual(['web-1', 'web-2', 'web-3']);
  });

  it('a label selector picks its machines only (exit 0), and a plain name is one machine, not a push', async () => {
    const file = join(dir, 'inbox.txt');
    writeFileSync(file, 'for prod\n');
    const r = await cp([file, 'env=prod:inbox.txt']);
    expect(r.stderr).toMatch(/^mssh cp: 2 machines: 2 ok in /);
    expect(r.code).toBe(0);
    expect(readFileSync(join(homes['web-1']!, 'inbox.txt'), 'utf8')).toBe('for prod\n');
    expect(readFileSync(join(homes['web-2']!, 'inbox.txt'), 'utf8')).toBe('for prod\n');
    expect(existsSync(join(homes['web-3']!, 'inbox.txt'))).toBe(false);

    // web-3: alone, relative to its home, no summary (-q: not even the server's banner); then back from it.
    const one = await cp(['-q', file, 'web-3:only-here.txt']);
    expect(one.stderr).toBe('');
    expect(one.code).toBe(0);
    expect(readFileSync(join(homes['web-3']!, 'only-here.txt'), 'utf8')).toBe('for prod\n');
    const back = join(dir, 'back');
    mkdirSync(back);
    const d = await cp(['web-3:only-here.txt', back]);
    expect(d.code).toBe(0);
    expect(readFileSync(join(back, 'only-here.txt'), 'utf8')).toBe('for prod\n');
  });

  it('a copy that fails on some machines is "failed" with its reason (exit 1); no match exits 2', async () => {
    mkdirSync(join(homes['web-1']!, 'drop'));
    const file = join(dir, 'partial.txt');
    writeFileSync(file, 'x\n');
    const r = await cp([file, 'web-1,web-2,web-3:drop/']);
    expect(r.stderr).toMatch(/^mssh cp: 3 machines: 1 ok, 2 failed in /);
    expect(r.stderr).toMatch(/failed: +web-2 \(exit 1\), web-3 \(exit 1\)/);
    expect(r.stderr).toMatch(/web-2: web-2:drop\/: no such directory .*\[CLI_ERR_CP_NO_SUCH_FILE\]/);
    expect(r.code).toBe(1);
    expect(readFileSync(join(homes['web-1']!, 'drop/partial.txt'), 'utf8')).toBe('x\n');

    const none = await cp([file, 'db-*:/tmp/']);
    expect(none.code).toBe(2);
    expect(none.stderr).toMatch(/\[CLI_ERR_NO_MATCH\]/);
  });

  it('--all takes :PATH and reaches every machine, the offline one included (as unreachable)', async () => {
    const file = join(dir, 'everyone.txt');
    writeFileSync(file, 'all\n');
    const r = await cp(['--all', '--parallel', '2', file, ':']);
    expect(r.stderr).toMatch(/^mssh cp: 4 machines: 3 ok, 1 unreachable in /);
    expect(r.code).toBe(255);
    for (const h of ['web-1', 'web-2', 'web-3'])
      expect(readFileSync(join(homes[h]!, 'everyone.txt'), 'utf8')).toBe('all\n');
    const bad = await cp(['--all', file, 'web-1:/tmp/']);
    expect(bad.code).toBe(64);
    expect(bad.stderr).toMatch(/--all selects the machines itself.*\[CLI_ERR_USAGE\]/);
  });
});
