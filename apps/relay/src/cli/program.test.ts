import { describe, expect, it } from 'vitest';
import { commanderExitCode } from '@mssh/cli-kit';
import { SOFTWARE_VERSION } from '@mssh/protocol';
import { buildProgram, type RelayHandlers } from './program.js';

/** Every handler records its call; the grammar is tested without running anything. */
function parse(argv: string[]) {
  const calls: unknown[][] = [];
  let err = '';
  const h = new Proxy({} as RelayHandlers, {
    get:
      (_t, name: string) =>
      async (...args: unknown[]) =>
        void calls.push([name, ...args]),
  });
  const program = buildProgram(h, { writeOut: () => undefined, writeErr: (s) => (err += s) });
  return program.parseAsync(['node', 'mssh-relay', ...argv]).then(
    () => ({ calls, err, error: null as unknown }),
    (error: unknown) => ({ calls, err, error }),
  );
}

describe('mssh-relay grammar', () => {
  it('each command calls its handler with its arguments and flags', async () => {
    expect((await parse(['user', 'add', 'alice', '--admin', '--password-stdin'])).calls).toEqual([
      ['userAdd', 'alice', { admin: true, passwordStdin: true }],
    ]);
    expect((await parse(['user', 'set-role', 'alice'])).calls).toEqual([['userSetRole', 'alice', undefined, {}]]);
    expect((await parse(['grant', '--role', 'ops', 'db-?'])).calls).toEqual([['grant', 'ops', 'db-?', { role: true }]]);
    expect((await parse(['agent', 'revoke', 'web-1', '--data-dir', '/d'])).calls).toEqual([
      ['agentRevoke', 'web-1', { dataDir: '/d' }],
    ]);
    expect((await parse(['serve', '--stale-after', '2w', '--tls-san', 'a', '--tls-san', 'b'])).calls).toEqual([
      ['serve', { staleAfter: '2w', tlsSan: ['a', 'b'] }],
    ]);
    // Absent repeatable options stay undefined, so that a --config file's list applies (config-file.ts).
    expect((await parse(['serve', '--drain-delay', '0', '--drain-timeout', '2'])).calls).toEqual([
      ['serve', { drainDelay: '0', drainTimeout: '2' }],
    ]);
    expect((await parse(['config', 'show', '--config', '/etc/mssh/relay.yaml', '--json'])).calls).toEqual([
      ['configShow', { config: '/etc/mssh/relay.yaml', json: true }],
    ]);
    expect(
      (await parse(['install-service', '--print', '--user', 'ops', '--', '--listen', '0.0.0.0:443'])).calls,
    ).toEqual([['installService', ['--listen', '0.0.0.0:443'], { print: true, user: 'ops' }]]);
    expect((await parse(['drain', '--wait', '--data-dir', '/d'])).calls).toEqual([
      ['drain', { wait: true, dataDir: '/d' }],
    ]);
    expect((await parse(['audit', 'prune', '--older-than', '52w'])).calls).toEqual([
      ['auditPrune', { olderThan: '52w' }],
    ]);
  });

  it('usage errors print `mssh-relay: <problem>` and the help hint, and map to exit 64; --help to 0', async () => {
    const bad = await parse(['user', 'add']);
    expect(bad.calls).toEqual([]);
    expect(bad.err).toBe("mssh-relay: missing required argument 'name'\nRun `mssh-relay --help` for usage.\n");
    expect(commanderExitCode(bad.error)).toBe(64);
    expect(commanderExitCode((await parse(['serve', '--no-such-flag'])).error)).toBe(64);
    expect(commanderExitCode((await parse(['audit', 'prune'])).error)).toBe(64);
    expect(commanderExitCode((await parse(['--help'])).error)).toBe(0);
  });

  it('--version prints the one software version (@mssh/protocol)', async () => {
    let out = '';
    const h = new Proxy({} as RelayHandlers, { get: () => async () => {} });
    const program = buildProgram(h, { writeOut: (s) => (out += s), writeErr: () => {} });
    const error = await program.parseAsync(['node', 'mssh-relay', '--version']).then(
      () => null,
      (e: unknown) => e,
    );
    expect(commanderExitCode(error)).toBe(0);
    expect(out.trim()).toBe(SOFTWARE_VERSION);
  });
});
