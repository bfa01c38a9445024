import { spawnSync } from 'node:child_process';
import { chmodSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createServer, type Server, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { noPrompter } from '@mssh/cli-kit';
import { buildProgram, type Handlers } from '../cli.js';
import { parseConfig } from '../config/config.js';
import { CredentialsStore } from '../config/credentials-store.js';
import type { CliContext } from '../commands/context.js';
import { KnownHostsFile } from '../known-hosts/known-hosts-file.js';
import { connectRelay } from '../relay-client/relay-connection.js';
import { completionScript, type Shell } from './completion-script.js';
import { HOST_CACHE_FILE, completionHostNames } from './host-cache.js';

/** The built program (npm test builds first). */
const MAIN = fileURLToPath(new URL('../../bin/mssh.js', import.meta.url));
const REPO = fileURLToPath(new URL('../../../../', import.meta.url));

function script(shell: Shell): string {
  const handlers = new Proxy({} as Handlers, { get: () => async () => 0 });
  const { program } = buildProgram(handlers, { writeOut: () => {}, writeErr: () => {} });
  return completionScript(shell, program);
}

let dir: string;
beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), 'mssh-completion-'));
});
afterEach(() => rmSync(dir, { recursive: true, force: true }));

/** What bash completion offers for the words (the last one is the word being completed). */
function complete(words: string[], env: Record<string, string> = {}): string[] {
  const file = join(dir, 'mssh.bash');
  writeFileSync(file, script('bash'));
  const arr = words.map((w) => `'${w}'`).join(' ');
  const r = spawnSync(
    'bash',
    [
      '-c',
      `source ${file}; COMP_WORDS=(${arr}); COMP_CWORD=${words.length - 1}; _mssh; printf '%s\\n' "\${COMPREPLY[@]}"`,
    ],
    { encoding: 'utf8', timeout: 30_000, env: { ...process.env, ...env } },
  );
  expect(r.stderr).toBe('');
  expect(r.status).toBe(0);
  return r.stdout.split('\n').filter((l) => l !== '');
}

function context(configDir: string, env: Record<string, string> = {}): CliContext {
  const config = parseConfig({ ...process.env, MSSH_CONFIG_DIR: configDir, MSSH_RELAY: '', ...env });
  return {
    config,
    store: new CredentialsStore(configDir),
    knownHosts: new KnownHostsFile(join(configDir, 'known_hosts')),
    prompter: noPrompter,
    io: { stdin: process.stdin, stdout: process.stdout, stderr: process.stderr },
    connect: connectRelay,
    now: () => new Date(),
  };
}

const writeCache = (configDir: string, relay: string, ageMs: number, names: string[]) => {
  mkdirSync(configDir, { recursive: true, mode: 0o700 });
  writeFileSync(join(configDir, HOST_CACHE_FILE), JSON.stringify({ relay, fetchedAt: Date.now() - ageMs, names }), {
    mode: 0o600,
  });
};

describe('mssh completion bash', () => {
  it('is valid bash (bash -n)', () => {
    const file = join(dir, 'mssh.bash');
    writeFileSync(file, script('bash'));
    const r = spawnSync('bash', ['-n', file], { encoding: 'utf8', timeout: 30_000 });
    expect(r.stderr).toBe('');
    expect(r.status).toBe(0);
  });

  it('completes the sub-commands, not the hidden one', () => {
    const top = complete(['mssh', '']);
    for (const c of ['login', 'ls', 'ssh', 'proxy', 'admin', 'keys', 'known-hosts', 'completion'])
      expect(top).toContain(c);
    expect(top.some((c) => c.startsWith('_'))).toBe(false);
    expect(complete(['mssh', 'kn'])).toEqual(['known-hosts']);
    expect(complete(['mssh', 'admin', 'users', ''])).toEqual(expect.arrayContaining(['add', 'list', 'disable']));
    expect(complete(['mssh', '--version', 'admin', 'ag'])).toEqual(['agents']);
    expect(complete(['mssh', 'login', '--re'])).toEqual(expect.arrayContaining(['--relay', '--relay-fingerprint']));
    // After `ls` (no sub-commands, no machine argument) nothing is offered; after `--` neither.
    expect(complete(['mssh', 'ls', ''])).toEqual([]);
    expect(complete(['mssh', 'ssh', 'web-1', '--', ''])).toEqual([]);
  });

  it('completes machine names from the cache, after options with values and with user@', () => {
    const configDir = join(dir, 'config');
    const relay = 'https://relay.test:8443';
    writeCache(configDir, relay, 1_000, ['web-1', 'web-2', 'db-1']);
    const bin = join(dir, 'bin');
    mkdirSync(bin);
    writeFileSync(join(bin, 'mssh'), `#!/bin/sh\ncd '${REPO}' && exec '${process.execPath}' '${MAIN}' "$@"\n`);
    chmodSync(join(bin, 'mssh'), 0o755);
    const env = { PATH: `${bin}:${process.env.PATH ?? ''}`, MSSH_CONFIG_DIR: configDir, MSSH_RELAY: relay };
    expect(complete(['mssh', 'ssh', 'web'], env)).toEqual(['web-1', 'web-2']);
    expect(complete(['mssh', 'ssh', '-l', 'root', '-i', 'key', 'd'], env)).toEqual(['db-1']);
    expect(complete(['mssh', 'ssh', 'root@we'], env)).toEqual(['root@web-1', 'root@web-2']);
    expect(complete(['mssh', 'known-hosts', 'forget', ''], env)).toEqual(['db-1', 'web-1', 'web-2']);
    expect(complete(['mssh', 'exec', 'we'], env)).toEqual(['web-1', 'web-2']);
  });
});

/** zsh and fish must be installed (bash .ci/run installs them): a missing shell fails, it is not skipped. */
function needShell(bin: string): void {
  if (!existsSync(bin))
    throw new Error(`${bin} is missing: install Debian's zsh and fish (bash .ci/run does: apt-get install zsh fish)`);
}

describe('mssh completion zsh and fish', () => {
  it('are checked by their shells (zsh -n, fish -n)', () => {
    for (const [shell, bin] of [
      ['zsh', '/usr/bin/zsh'],
      ['fish', '/usr/bin/fish'],
    ] as const) {
      const text = script(shell);
      const file = join(dir, `mssh.${shell}`);
      writeFileSync(file, text);
      expect(text).toContain('__complete hosts');
      expect(text).toContain('timeout 3');
      needShell(bin);
      const r = spawnSync(bin, ['-n', file], { encoding: 'utf8', timeout: 30_000 });
      expect(r.stderr).toBe('');
      expect(r.status).toBe(0);
    }
  });
});

describe('mssh completion zsh and fish, run', () => {
  it('offer the same words as bash', () => {
    const bin = join(dir, 'bin');
    mkdirSync(bin);
    writeFileSync(join(bin, 'mssh'), '#!/bin/sh\necho web-1\necho web-2\n'); // stands in for `mssh __complete hosts`
    chmodSync(join(bin, 'mssh'), 0o755);
    const env = { ...process.env, PATH: `${bin}:${process.env.PATH ?? ''}` };
    needShell('/usr/bin/fish');
    needShell('/usr/bin/zsh');
    {
      const file = join(dir, 'mssh.fish');
      writeFileSync(file, script('fish'));
      const r = spawnSync(
        '/usr/bin/fish',
        [
          '-c',
          `source ${file}; complete -C 'mssh admin us'; complete -C 'mssh ssh -i k root@w'; complete -C 'mssh ls '`,
        ],
        { encoding: 'utf8', timeout: 30_000, env },
      );
      expect(r.stderr).toBe('');
      expect(r.stdout.split('\n').filter((l) => l)).toEqual(['users', 'root@web-1', 'root@web-2']);
    }
    {
      const file = join(dir, '_mssh');
      writeFileSync(file, script('zsh'));
      const r = spawnSync(
        '/usr/bin/zsh',
        [
          '-f',
          '-c',
          `autoload -U compinit; compinit -u -D; source ${file}
compadd() { print -r -- "$*"; }; _files() { print -r -- _files; }
t() { words=("$@"); CURRENT=$#; _mssh; }
t mssh admin users ''; t mssh ssh -l root we; t mssh ssh root@we`,
        ],
        { encoding: 'utf8', timeout: 30_000, env },
      );
      expect(r.stderr).toBe('');
      expect(r.stdout.split('\n').filter((l) => l)).toEqual([
        '-- list disable enable passwd set-role add help',
        '-- web-1 web-2',
        '-P root@ -- web-1 web-2',
      ]);
    }
  });
});

describe('completion host cache', () => {
  it('not logged in: no names, no waiting', async () => {
    expect(await completionHostNames(context(join(dir, 'none')))).toEqual([]);
  });

  it('fresh: the cached names without asking the relay (which is not there)', async () => {
    const configDir = join(dir, 'c');
    writeCache(configDir, 'https://127.0.0.1:1', 5_000, ['b-2', 'a-1', 'bad name']);
    const ctx = context(configDir, { MSSH_RELAY: 'https://127.0.0.1:1' });
    expect(await completionHostNames(ctx)).toEqual(['a-1', 'b-2']);
  });

  describe('a relay that accepts connections and never answers', () => {
    let server: Server;
    const sockets = new Set<Socket>();
    beforeEach(async () => {
      server = createServer((s) => {
        sockets.add(s);
        s.on('error', () => {});
      });
      await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    });
    afterEach(async () => {
      for (const s of sockets) s.destroy();
      await new Promise<void>((r) => server.close(() => r()));
    });

    it('stale cache: the refresh gives up within its bound and the old names are used', async () => {
      const configDir = join(dir, 'c');
      const { port } = server.address() as { port: number };
      const relay = `https://127.0.0.1:${port}`;
      writeCache(configDir, relay, 120_000, ['old-1']);
      const ctx = context(configDir);
      ctx.store.saveLogin({
        url: relay,
        fingerprint: `SHA256:${'A'.repeat(43)}`,
        token: 't'.repeat(40),
        user: 'alice',
        admin: false,
        expiresAt: new Date(Date.now() + 3_600_000).toISOString(),
      });
      const t0 = Date.now();
      expect(await completionHostNames(ctx, { timeoutMs: 400 })).toEqual(['old-1']);
      expect(Date.now() - t0).toBeLessThan(2_000);
      expect(sockets.size).toBeGreaterThan(0); // it did try
      // The cache was not overwritten by the failed refresh.
      expect(JSON.parse(readFileSync(join(configDir, HOST_CACHE_FILE), 'utf8')).names).toEqual(['old-1']);
    });
  });
});
