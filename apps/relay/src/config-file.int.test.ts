/**
 * `mssh-relay serve --config FILE` as a process (the built program, PGlite): it listens where the file
 * says, with flags over the file; `config show` prints the sources; a bad file stops the start with exit 78
 * and its code.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { spawn, type ChildProcess } from 'node:child_process';
import { connect } from 'node:net';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { fixtures } from '@mssh/test-fixtures/inject';
import { clonePglite } from '@mssh/test-fixtures/pglite';
import { freePort, waitFor } from '@mssh/test-fixtures/net';

const ROOT = resolve(import.meta.dirname, '../../..');
/** The built program (npm test builds first): from source with tsx each start cost ~2.5x the CPU. */
const MAIN = join(ROOT, 'apps/relay/bin/mssh-relay.js');

interface Proc {
  child: ChildProcess;
  out: string;
  err: string;
  exited: Promise<number | null>;
}
const live = new Set<ChildProcess>();

function start(args: string[], env: NodeJS.ProcessEnv): Proc {
  const child = spawn(process.execPath, [MAIN, ...args], { cwd: ROOT, env, stdio: 'pipe' });
  live.add(child);
  const p: Proc = {
    child,
    out: '',
    err: '',
    exited: new Promise((res) =>
      child.once('exit', (code, sig) => {
        live.delete(child);
        res(code ?? (sig ? 128 : null));
      }),
    ),
  };
  child.stdout.on('data', (d: Buffer) => (p.out += d.toString()));
  child.stderr.on('data', (d: Buffer) => (p.err += d.toString()));
  return p;
}

async function run(args: string[], env: NodeJS.ProcessEnv): Promise<{ code: number | null; out: string; err: string }> {
  const p = start(args, env);
  p.child.stdin!.end();
  const t = setTimeout(() => p.child.kill('SIGKILL'), 90_000);
  const code = await p.exited;
  clearTimeout(t);
  return { code, out: p.out, err: p.err };
}

const accepts = (port: number) =>
  new Promise<boolean>((res) => {
    const c = connect(port, '127.0.0.1');
    c.once('connect', () => {
      c.destroy();
      res(true);
    });
    c.once('error', () => res(false));
  });

afterAll(() => {
  for (const c of live) c.kill('SIGKILL');
});

describe('mssh-relay serve --config FILE (process)', () => {
  let dir: string;
  let env: NodeJS.ProcessEnv;
  beforeAll(() => {
    const f = fixtures();
    dir = mkdtempSync(join(f.root, 'relay-config-'));
    clonePglite(f.pgliteTemplate, join(dir, 'data', 'db'));
    // Nothing from the test runner's environment may decide a setting here.
    env = { ...process.env, MSSH_BOOTSTRAP_PASSWORD: 'bootstrap-password-1' };
    for (const k of Object.keys(env)) if (/^(MSSH_(?!BOOTSTRAP)|DATABASE_URL$)/.test(k)) delete env[k];
  });

  it('listens where the file says, with the data dir and drain of the file', { timeout: 120_000 }, async () => {
    const port = await freePort();
    const file = join(dir, 'mssh-relay.yaml');
    writeFileSync(
      file,
      [
        '# the relay of this test',
        `listen: 127.0.0.1:${port}`,
        'ssh-listen: off',
        `data-dir: ${join(dir, 'data')}`,
        'drain-delay: 0',
        'log-level: warn',
      ].join('\n'),
      { mode: 0o600 },
    );
    const show = await run(['config', 'show', '--config', file, '--drain-timeout', '7'], env);
    expect(show.code, show.err).toBe(0);
    expect(show.out).toMatch(new RegExp(`^listen +127\\.0\\.0\\.1:${port} +file:2$`, 'm'));
    expect(show.out).toMatch(/^drain-timeout +7 +flag$/m);
    expect(show.out).toMatch(/^max-sessions +4096 +default$/m);

    const relay = start(['serve', '--config', file], env);
    await waitFor(
      () => {
        if (relay.child.exitCode !== null) throw new Error(`relay exited: ${relay.out}${relay.err}`);
        return /TLS certificate fingerprint: /.test(relay.out);
      },
      90_000,
      'the relay to start',
    );
    expect(relay.out.split('\n')[0]).toBe(`mssh-relay listening on https://127.0.0.1:${port}`);
    expect(await accepts(port)).toBe(true);
    relay.child.kill('SIGTERM');
    expect(await relay.exited).toBe(0);
  });

  it(
    'a bad file stops the start: exit 78, the line and the key [RLY_CLI_ERR_CONFIG_FILE]',
    { timeout: 120_000 },
    async () => {
      const file = join(dir, 'bad.yaml');
      writeFileSync(file, `data-dir: ${join(dir, 'data')}\nlistne: 127.0.0.1:1\n`, { mode: 0o600 });
      const r = await run(['serve', '--config', file], env);
      expect(r.code).toBe(78);
      expect(r.err.split('\n')[0]).toBe(
        `mssh-relay: ${file} line 2: unknown key \`listne\` (did you mean \`listen\`?) [RLY_CLI_ERR_CONFIG_FILE]`,
      );
      const secret = join(dir, 'secret.yaml');
      writeFileSync(secret, 'database-url: postgres://relay:s3cret@127.0.0.1:1/mssh\n', { mode: 0o644 });
      const m = await run(['serve'], { ...env, MSSH_CONFIG: secret });
      expect(m.code).toBe(78);
      expect(m.err).toContain('[RLY_CLI_ERR_CONFIG_FILE_MODE]');
      expect(m.err).not.toContain('s3cret');
    },
  );
});
