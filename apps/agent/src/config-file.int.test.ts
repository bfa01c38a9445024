/**
 * `mssh-agent run --config FILE` and `config show` as processes (the built program): the file decides
 * the state directory `run` opens, and a bad file stops it with exit 78 and its code.
 */
import { describe, expect, it } from 'vitest';
import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';

const ROOT = resolve(import.meta.dirname, '../../..');
/** The built program (npm test builds first): from source with tsx each start cost ~2.5x the CPU. */
const MAIN = join(ROOT, 'apps/agent/bin/mssh-agent.js');

function run(args: string[], env: NodeJS.ProcessEnv): Promise<{ code: number | null; out: string; err: string }> {
  const child = spawn(process.execPath, [MAIN, ...args], { cwd: ROOT, env, stdio: 'pipe' });
  let out = '';
  let err = '';
  child.stdout.on('data', (d: Buffer) => (out += d.toString()));
  child.stderr.on('data', (d: Buffer) => (err += d.toString()));
  child.stdin.end();
  const t = setTimeout(() => child.kill('SIGKILL'), 60_000);
  return new Promise((res) =>
    child.once('exit', (code) => {
      clearTimeout(t);
      res({ code, out, err });
    }),
  );
}

describe('mssh-agent run --config FILE (process)', () => {
  it(
    'run takes its state dir from the file; config show names the sources; a bad file exits 78',
    { timeout: 120_000 },
    async () => {
      const dir = mkdtempSync(join(tmpdir(), 'mssh-agent-config-int-'));
      try {
        const env: NodeJS.ProcessEnv = { ...process.env };
        for (const k of Object.keys(env)) if (k.startsWith('MSSH_')) delete env[k];
        const stateDir = join(dir, 'state-from-file');
        const file = join(dir, 'agent.yaml');
        writeFileSync(file, `state-dir: ${stateDir}\ntarget: 127.0.0.1:22\nlinks: 2\n`);

        const show = await run(['config', 'show', '--config', file, '--links', '3'], env);
        expect(show.code, show.err).toBe(0);
        expect(show.out).toMatch(/^target +127\.0\.0\.1:22 +file:2$/m);
        expect(show.out).toMatch(/^links +3 +flag$/m);

        // Not enrolled: run refuses, naming the state directory of the file.
        const r = await run(['run', '--config', file], env);
        expect(r.code).toBe(1);
        expect(r.err).toContain('[AGT_ERR_NOT_ENROLLED]');
        expect(r.err).toContain(stateDir);

        writeFileSync(file, `state-dir: ${stateDir}\nlinks: 9\n`);
        const bad = await run(['run'], { ...env, MSSH_CONFIG: file });
        expect(bad.code).toBe(78);
        expect(bad.err.split('\n')[0]).toBe(
          `mssh-agent: ${file} line 2: \`links\` must be a whole number from 1 to 8 (links held at once, each to a different relay), not "9" [AGT_ERR_CONFIG_FILE]`,
        );
      } finally {
        rmSync(dir, { recursive: true, force: true });
      }
    },
  );
});
