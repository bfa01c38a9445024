import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { chmodSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { Command } from 'commander';
import { CliError, EXIT } from '@mssh/cli-kit';
import { buildProgram, type RelayHandlers } from './cli/program.js';
import {
  SERVE_CONFIG_KEYS,
  formatSettings,
  resolveServeConfig,
  settingRows,
  settingsJson,
  type SettingRow,
} from './config-file.js';
import { relayUnit } from './service/relay-unit.js';

const README = resolve(import.meta.dirname, '../README.md');
const running = {
  execPath: process.execPath,
  script: resolve(fileURLToPath(new URL('../bin/mssh-relay.js', import.meta.url))),
};

let dir: string;
beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), 'mssh-relay-config-'));
});
afterEach(() => rmSync(dir, { recursive: true, force: true }));

function file(text: string, mode = 0o600, name = 'mssh-relay.yaml'): string {
  const p = join(dir, name);
  writeFileSync(p, text);
  chmodSync(p, mode);
  return p;
}

function refusal(fn: () => unknown): CliError {
  try {
    fn();
  } catch (e) {
    if (e instanceof CliError) return e;
    throw e;
  }
  throw new Error('expected a CliError');
}

const noop = async () => {};
function sub(path: string[]): Command {
  let c: Command = buildProgram(new Proxy({} as RelayHandlers, { get: () => noop }));
  for (const name of path) c = c.commands.find((x) => x.name() === name)!;
  return c;
}
const row = (rows: SettingRow[], key: string) => rows.find((r) => r.key === key)!;

describe('config file keys', () => {
  it('every option of `mssh-relay serve` but --config has a key, and `config show` takes the same options', () => {
    const serveLongs = sub(['serve'])
      .options.map((o) => o.long!.slice(2))
      .filter((k) => k !== 'config');
    expect(SERVE_CONFIG_KEYS.map((k) => k.key)).toEqual(serveLongs);
    expect(serveLongs).toEqual(expect.arrayContaining(['listen', 'database-url', 'peer-listen', 'drain-timeout']));
    const showLongs = sub(['config', 'show']).options.map((o) => o.long!.slice(2));
    expect(showLongs).toEqual(['config', ...serveLongs, 'json']);
    expect(SERVE_CONFIG_KEYS.filter((k) => k.kind === 'list').map((k) => k.key)).toEqual(['tls-san', 'trusted-proxy']);
  });

  it('apps/relay/README.md documents every key in its "Configuration file" table', () => {
    const readme = readFileSync(README, 'utf8');
    const start = readme.indexOf('\n### Configuration file');
    expect(start).toBeGreaterThan(0);
    const section = readme.slice(start, readme.indexOf('\n## ', start));
    const documented = [...section.matchAll(/^\| `([a-z0-9-]+)` /gm)].map((m) => m[1]);
    expect(documented).toEqual(SERVE_CONFIG_KEYS.map((k) => k.key));
  });
});

describe('serve settings: flag > env > file > default', () => {
  it('each layer wins over the ones below, and config show names the source of each', () => {
    const path = file(
      [
        'listen: 127.0.0.1:9001', // also flag and env: the flag wins
        'drain-timeout: 40', // also env: env wins
        'drain-delay: 3', // only here
        'tls-san: [a.example, b.example]',
        'database-url: postgres://relay:s3cret@db.example/mssh',
      ].join('\n'),
    );
    const env = { MSSH_LISTEN: '127.0.0.1:9002', MSSH_DRAIN_TIMEOUT: '50' };
    const r = resolveServeConfig({ config: path, listen: '127.0.0.1:9003' }, env);
    expect(r.cfg).toMatchObject({
      listen: { host: '127.0.0.1', port: 9003 },
      drainTimeout: 50,
      drainDelay: 3,
      tlsSan: ['a.example', 'b.example'],
      maxSessions: 4096,
    });
    const rows = settingRows(r);
    expect(row(rows, 'listen')).toEqual({ key: 'listen', value: '127.0.0.1:9003', source: { kind: 'flag' } });
    expect(row(rows, 'drain-timeout')).toEqual({
      key: 'drain-timeout',
      value: '50',
      source: { kind: 'env', name: 'MSSH_DRAIN_TIMEOUT' },
    });
    expect(row(rows, 'drain-delay').source).toEqual({ kind: 'file', path, line: 3, key: 'drain-delay' });
    expect(row(rows, 'tls-san')).toMatchObject({ value: 'a.example, b.example', source: { kind: 'file', line: 4 } });
    expect(row(rows, 'max-sessions')).toEqual({ key: 'max-sessions', value: '4096', source: { kind: 'default' } });
    expect(row(rows, 'stale-after')).toMatchObject({ value: '30d', source: { kind: 'default' } });
    expect(row(rows, 'MSSH_FLEET_LEASE_MS')).toMatchObject({ value: '3000', source: { kind: 'default' } });
    // Secrets redacted, in text and JSON.
    expect(row(rows, 'database-url').value).toBe('postgres://relay:***@db.example/mssh');
    const text = formatSettings(r);
    expect(text).not.toContain('s3cret');
    expect(text.split('\n')[0]).toBe(`config file: ${path}`);
    expect(text).toMatch(/^listen +127\.0\.0\.1:9003 +flag$/m);
    expect(text).toMatch(/^drain-timeout +50 +env MSSH_DRAIN_TIMEOUT$/m);
    expect(text).toMatch(/^drain-delay +3 +file:3$/m);
    expect(text).toMatch(/^max-sessions +4096 +default$/m);
    const json = JSON.stringify(settingsJson(r));
    expect(json).not.toContain('s3cret');
    expect(settingsJson(r)).toMatchObject({
      configFile: path,
      settings: expect.arrayContaining([
        { key: 'drain-delay', value: '3', source: 'file', line: 3 },
        { key: 'drain-timeout', value: '50', source: 'env', env: 'MSSH_DRAIN_TIMEOUT' },
      ]),
    });
  });

  it('an empty variable counts as unset (the file applies); a repeatable flag replaces the file list', () => {
    const path = file('listen: 127.0.0.1:9001\ntrusted-proxy: [10.0.0.0/8]\n');
    const r = resolveServeConfig({ config: path, trustedProxy: ['192.168.0.1'] }, { MSSH_LISTEN: '' });
    expect(r.cfg.listen).toEqual({ host: '127.0.0.1', port: 9001 });
    expect(r.cfg.trustedProxy).toEqual(['192.168.0.1']);
  });

  it('MSSH_CONFIG names the file when --config does not; --config wins over it', () => {
    const a = file('listen: 127.0.0.1:9001\n', 0o600, 'a.yaml');
    const b = file('listen: 127.0.0.1:9002\n', 0o600, 'b.yaml');
    expect(resolveServeConfig({}, { MSSH_CONFIG: a }).cfg.listen.port).toBe(9001);
    expect(resolveServeConfig({ config: b }, { MSSH_CONFIG: a }).cfg.listen.port).toBe(9002);
    const none = resolveServeConfig({}, {});
    expect(none.file).toBeUndefined();
    expect(formatSettings(none).split('\n')[0]).toBe('config file: none (--config FILE or MSSH_CONFIG)');
    expect(settingRows(none).every((x) => x.source.kind === 'default')).toBe(true);
  });
});

describe('serve settings: refusals', () => {
  it('a bad value names the file, the line and the key [RLY_CLI_ERR_CONFIG_FILE, exit 78]', () => {
    const path = file('# relay\nlisten: 127.0.0.1:1\ndrain-timeout: soon\n');
    const e = refusal(() => resolveServeConfig({ config: path }, {}));
    expect(e.code).toBe('RLY_CLI_ERR_CONFIG_FILE');
    expect(e.exitCode).toBe(EXIT.CONFIG);
    expect(e.message).toBe(`${path} line 3: \`drain-timeout\`: must be whole seconds (0 or more)`);
    expect(e.hint).toContain(`Fix the value in ${path}`);
  });

  it('a bad value from the file overridden by a good flag is no problem', () => {
    const path = file('drain-timeout: soon\n');
    expect(resolveServeConfig({ config: path, drainTimeout: '5' }, {}).cfg.drainTimeout).toBe(5);
  });

  it('problems of flags and file together: every one, the file one with its line [RLY_CLI_ERR_CONFIG_FILE]', () => {
    const path = file('max-sessions: 1.5\npeer-listen: 0.0.0.0:8444\n');
    const e = refusal(() => resolveServeConfig({ config: path, listen: 'nowhere' }, {}));
    expect(e.code).toBe('RLY_CLI_ERR_CONFIG_FILE');
    const lines = e.message.split('\n');
    expect(lines[0]).toBe('invalid settings:');
    expect(lines).toContain(
      '  --listen (MSSH_LISTEN): "nowhere" is not HOST:PORT (e.g. 0.0.0.0:8443, [::]:8443, 127.0.0.1:0)',
    );
    expect(lines).toContain(`  ${path} line 1: \`max-sessions\`: must be a whole number`);
    expect(
      lines.some((l) => l.startsWith(`  ${path} line 2: \`peer-listen\`: a relay fleet shares one Postgres`)),
    ).toBe(true);
  });

  it('flags alone are still usage errors [CLI_ERR_USAGE, exit 64]', () => {
    const e = refusal(() => resolveServeConfig({ listen: 'nowhere' }, {}));
    expect(e.code).toBe('CLI_ERR_USAGE');
    expect(e.exitCode).toBe(EXIT.USAGE);
  });

  it('an unknown key, with a guess [RLY_CLI_ERR_CONFIG_FILE]', () => {
    const path = file('listen: 127.0.0.1:1\n\n\n\n\n\nlistne: 0.0.0.0:2\n');
    const e = refusal(() => resolveServeConfig({ config: path }, {}));
    expect(e.code).toBe('RLY_CLI_ERR_CONFIG_FILE');
    expect(e.message).toBe(`${path} line 7: unknown key \`listne\` (did you mean \`listen\`?)`);
    // --config itself is no key.
    expect(refusal(() => resolveServeConfig({ config: file('config: /x.yaml\n') }, {})).message).toMatch(
      /line 1: unknown key `config`/,
    );
  });

  it('a file that cannot be read, or is not a mapping [RLY_CLI_ERR_CONFIG_FILE]', () => {
    const missing = refusal(() => resolveServeConfig({}, { MSSH_CONFIG: join(dir, 'none.yaml') }));
    expect(missing.code).toBe('RLY_CLI_ERR_CONFIG_FILE');
    expect(missing.message).toMatch(/cannot read the config file .*none\.yaml: no such file/);
    const list = refusal(() => resolveServeConfig({ config: file('- listen: 127.0.0.1:1\n') }, {}));
    expect(list.code).toBe('RLY_CLI_ERR_CONFIG_FILE');
    expect(list.message).toMatch(/line 1: the file must be a mapping/);
  });

  it('a database password in a file others may read [RLY_CLI_ERR_CONFIG_FILE_MODE]', () => {
    const secret = 'database-url: postgres://relay:s3cret@db/mssh\n';
    const e = refusal(() => resolveServeConfig({ config: file(secret, 0o644) }, {}));
    expect(e.code).toBe('RLY_CLI_ERR_CONFIG_FILE_MODE');
    expect(e.exitCode).toBe(EXIT.CONFIG);
    expect(e.message).not.toContain('s3cret');
    expect(resolveServeConfig({ config: file(secret, 0o640) }, {}).cfg.databaseUrl).toContain('s3cret');
    // Without a password the mode does not matter.
    expect(
      resolveServeConfig({ config: file('database-url: postgres://relay@db/mssh\n', 0o644) }, {}).file,
    ).toBeDefined();
  });
});

describe('install-service -- --config FILE', () => {
  const exec = (unit: string) => unit.split('\n').find((l) => l.startsWith('ExecStart='))!;
  const setting = (unit: string, key: string) =>
    unit
      .split('\n')
      .filter((l) => l.startsWith(`${key}=`))
      .map((l) => l.slice(key.length + 1));

  it('passes --config on and reads the file for the unit: ports, data dir, drain', () => {
    const path = file('listen: 0.0.0.0:443\ndata-dir: /srv/mssh-relay\ndrain-timeout: 100\n');
    const u = relayUnit(['--config', path], {}, running).unit;
    expect(exec(u)).toBe(`ExecStart=${process.execPath} ${running.script} serve --config ${path}`);
    expect(setting(u, 'AmbientCapabilities')).toEqual(['CAP_NET_BIND_SERVICE']);
    expect(setting(u, 'ReadWritePaths')).toEqual(['/srv/mssh-relay']);
    expect(Number(setting(u, 'TimeoutStopSec')[0])).toBeGreaterThan(100 + 15);
    expect(u).toContain(`Settings from ${path}`);
    // No data-dir in the file: the unit adds the flag, as without a file.
    const plain = relayUnit(['--config', file('listen: 0.0.0.0:8443\n', 0o600, 'b.yaml')], {}, running).unit;
    expect(exec(plain)).toMatch(/ serve --config \S+b\.yaml --data-dir \/var\/lib\/mssh-relay$/);
  });

  it('refuses a relative --config, a relative path in the file [RLY_CLI_ERR_SERVICE_ARGS], a bad file [RLY_CLI_ERR_CONFIG_FILE]', () => {
    expect(refusal(() => relayUnit(['--config', 'relay.yaml'], {}, running)).code).toBe('RLY_CLI_ERR_SERVICE_ARGS');
    const rel = refusal(() => relayUnit(['--config', file('data-dir: data\n')], {}, running));
    expect(rel.code).toBe('RLY_CLI_ERR_SERVICE_ARGS');
    expect(rel.message).toMatch(/data-dir in .* "data" is not an absolute path/);
    expect(refusal(() => relayUnit(['--config', file('lisen: x\n')], {}, running)).code).toBe(
      'RLY_CLI_ERR_CONFIG_FILE',
    );
  });
});
