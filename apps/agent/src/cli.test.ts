import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { commanderExitCode } from '@mssh/cli-kit';
import { SOFTWARE_VERSION } from '@mssh/protocol';
import { buildProgram, type AgentHandlers } from './cli.js';

/** Parse argv with handlers that record their calls; what commander prints is captured. */
async function parse(argv: string[]) {
  const calls: unknown[][] = [];
  let out = '';
  const h = new Proxy({} as AgentHandlers, {
    get:
      (_t, name: string) =>
      async (...args: unknown[]) =>
        void calls.push([name, ...args]),
  });
  const program = buildProgram(h).configureOutput({ writeOut: (s) => (out += s), writeErr: () => {} });
  const error = await program.parseAsync(['node', 'mssh-agent', ...argv]).then(
    () => null,
    (e: unknown) => e,
  );
  return { calls, out, error };
}

describe('mssh-agent grammar', () => {
  it('--version prints the one software version (@mssh/protocol), the same as the packages', async () => {
    const r = await parse(['--version']);
    expect(r.out.trim()).toBe(SOFTWARE_VERSION);
    expect(commanderExitCode(r.error)).toBe(0);
    for (const pkg of ['../package.json', '../../relay/package.json', '../../client/package.json']) {
      const { version } = JSON.parse(readFileSync(new URL(pkg, import.meta.url), 'utf8')) as { version: string };
      expect(version).toBe(SOFTWARE_VERSION);
    }
  });

  it('install-service takes the run options after --; run takes --log-format', async () => {
    expect((await parse(['install-service', '--print', '--', '--target', '127.0.0.1:22'])).calls).toEqual([
      ['installService', ['--target', '127.0.0.1:22'], { print: true }],
    ]);
    expect((await parse(['run', '--log-format', 'pretty'])).calls).toEqual([['run', { logFormat: 'pretty' }]]);
  });
});
