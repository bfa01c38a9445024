import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { chmodSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { Command } from 'commander';
import { CliError, EXIT } from '@mssh/cli-kit';
import { buildProgram, type AgentHandlers } from './cli.js';
import { RUN_CONFIG_KEYS, formatSettings, resolveRunSettings, settingRows, settingsJson } from './config-file.js';
import { AgentError } from './errors.js';
import { agentUnit } from './service/agent-unit.js';

const README = resolve(import.meta.dirname, '../README.md');
const running = {
  execPath: process.execPath,
  script: resolve(fileURLToPath(new URL('../bin/mssh-agent.js', import.meta.url))),
};

let dir: string;
beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), 'mssh-agent-config-'));
});
afterEach(() => rmSync(dir, { recursive: true, force: true }));

function file(text: string, name = 'agent.yaml'): string {
  const p = join(dir, name);
  writeFileSync(p, text);
  chmodSync(p, 0o644);
  return p;
}

function refusal(fn: () => unknown): CliError | AgentError {
  try {
    fn();
  } catch (e) {
    if (e instanceof CliError || e instanceof AgentError) return e;
    throw e;
  }
  throw new Error('expected a coded error');
}

const noop = async () => {};
function sub(path: string[]): Command {
  let c: Command = buildProgram(new Proxy({} as AgentHandlers, { get: () => noop }));
  for (const name of path) c = c.commands.find((x) => x.name() === name)!;
  return c;
}

describe('agent config file keys', () => {
  it('every option of `mssh-agent run` but --config has a key; `relay` is a list; `config show` takes the same', () => {
    const runLongs = sub(['run'])
      .options.map((o) => o.long!.slice(2))
      .filter((k) => k !== 'config');
    expect(RUN_CONFIG_KEYS.map((k) => k.key)).toEqual(runLongs);
    expect(RUN_CONFIG_KEYS.map((k) => `${k.key}:${k.kind}`)).toEqual(
      expect.arrayContaining(['relay:list', 'links:value', 'allow-forwarding:boolean', 'metrics-listen:value']),
    );
    expect(sub(['config', 'show']).options.map((o) => o.long!.slice(2))).toEqual(['config', ...runLongs, 'json']);
  });

  it('apps/agent/README.md documents every key in its "Configuration file" table', () => {
    const readme = readFileSync(README, 'utf8');
    const start = readme.indexOf('\n### Configuration file');
    expect(start).toBeGreaterThan(0);
    const section = readme.slice(start, readme.indexOf('\n## ', start));
    const documented = [...section.matchAll(/^\| `([a-z-]+)` +\|/gm)].map((m) => m[1]);
    expect(documented).toEqual(RUN_CONFIG_KEYS.map((k) => k.key));
  });
});

describe('run settings: flag > env > file > default', () => {
  it('each layer wins over the ones below, and config show names the source of each', () => {
    const path = file(
      [
        'target: 127.0.0.1:22', // also a flag: the flag wins
        'links: 2', // also env: env wins
        'relay:', // only here
        '  - https://relay2.example:8443',
        '  - https://relay3.example',
        'allow-forwarding: true',
        'log-level: debug',
      ].join('\n'),
    );
    const r = resolveRunSettings(
      { config: path, target: 'embedded' },
      { MSSH_LINKS: '3', MSSH_AGENT_STATE_DIR: '/srv/agent' },
    );
    expect(r.cfg).toMatchObject({
      target: { kind: 'embedded' },
      links: 3,
      allowForwarding: true,
      logLevel: 'debug',
      stateDir: '/srv/agent',
      metricsListen: null,
    });
    expect(r.cfg.relays.map((u) => u.origin)).toEqual(['https://relay2.example:8443', 'https://relay3.example']);
    const rows = Object.fromEntries(settingRows(r).map((x) => [x.key, x]));
    expect(rows.target).toEqual({ key: 'target', value: 'embedded', source: { kind: 'flag' } });
    expect(rows.links).toEqual({ key: 'links', value: '3', source: { kind: 'env', name: 'MSSH_LINKS' } });
    expect(rows['state-dir']!.source).toEqual({ kind: 'env', name: 'MSSH_AGENT_STATE_DIR' });
    expect(rows.relay).toEqual({
      key: 'relay',
      value: 'https://relay2.example:8443, https://relay3.example',
      source: { kind: 'file', path, line: 3, key: 'relay' },
    });
    expect(rows['allow-forwarding']!.source).toMatchObject({ kind: 'file', line: 6 });
    expect(rows['metrics-listen']).toEqual({ key: 'metrics-listen', value: 'off', source: { kind: 'default' } });
    const text = formatSettings(r);
    expect(text.split('\n')[0]).toBe(`config file: ${path}`);
    expect(text).toMatch(/^links +3 +env MSSH_LINKS$/m);
    expect(text).toMatch(/^log-level +debug +file:7$/m);
    expect(text).toMatch(/^metrics-listen +off +default$/m);
    expect(settingsJson(r)).toMatchObject({
      configFile: path,
      settings: expect.arrayContaining([{ key: 'log-level', value: 'debug', source: 'file', line: 7 }]),
    });
  });

  it('MSSH_CONFIG names the file when --config does not', () => {
    const path = file('links: 4\n');
    expect(resolveRunSettings({}, { MSSH_CONFIG: path }).cfg.links).toBe(4);
    expect(resolveRunSettings({}, {}).file).toBeUndefined();
  });
});

describe('run settings: refusals', () => {
  it('bad values name the file, the line and the key, every one [AGT_ERR_CONFIG_FILE, exit 78]', () => {
    const path = file('target: nowhere\n\nlinks: 9\nrelay: [ftp://x.example]\n');
    const e = refusal(() => resolveRunSettings({ config: path }, {}));
    expect(e.code).toBe('AGT_ERR_CONFIG_FILE');
    expect((e as CliError).exitCode).toBe(EXIT.CONFIG);
    expect(e.message.split('\n')).toEqual([
      'invalid settings:',
      `  ${path} line 1: \`target\` must be auto, embedded or HOST:PORT (e.g. 127.0.0.1:22), not "nowhere"`,
      `  ${path} line 4: \`relay\` must be an https URL of a relay of the same fleet, such as https://relay2.example:8443, not "ftp://x.example"`,
      `  ${path} line 3: \`links\` must be a whole number from 1 to 8 (links held at once, each to a different relay), not "9"`,
    ]);
  });

  it('an unknown key, a value of the wrong shape [AGT_ERR_CONFIG_FILE]', () => {
    const path = file('target: auto\nlinsk: 2\nallow-forwarding: yes\n');
    const e = refusal(() => resolveRunSettings({ config: path }, {}));
    expect(e.code).toBe('AGT_ERR_CONFIG_FILE');
    expect(e.message).toContain(`${path} line 2: unknown key \`linsk\` (did you mean \`links\`?)`);
    expect(e.message).toContain(`${path} line 3: \`allow-forwarding\`: expected true or false`);
  });

  it('a file that cannot be read [AGT_ERR_CONFIG_FILE]; bad flags alone stay AGT_ERR_CONFIG', () => {
    expect(refusal(() => resolveRunSettings({ config: join(dir, 'none.yaml') }, {})).code).toBe('AGT_ERR_CONFIG_FILE');
    expect(refusal(() => resolveRunSettings({ links: '9' }, {})).code).toBe('AGT_ERR_CONFIG');
  });
});

describe('install-service -- --config FILE', () => {
  it('passes --config on and takes the target and state dir from the file', () => {
    const path = file('target: 127.0.0.1:22\nstate-dir: /srv/mssh-agent\n');
    const u = agentUnit(['--config', path], {}, running).unit;
    expect(u).toContain(`ExecStart=${process.execPath} ${running.script} run --config ${path}\n`);
    expect(u).toContain('User=mssh-agent'); // forwarding to sshd: the unprivileged user and strict sandbox
    expect(u).toContain('ReadWritePaths=/srv/mssh-agent');
    expect(u).toContain(`Settings from ${path}`);
  });

  it('refuses a relative --config or state-dir [AGT_ERR_SERVICE_ARGS], a bad file [AGT_ERR_CONFIG_FILE]', () => {
    expect(refusal(() => agentUnit(['--config', 'agent.yaml'], {}, running)).code).toBe('AGT_ERR_SERVICE_ARGS');
    expect(refusal(() => agentUnit(['--config', file('state-dir: state\n')], {}, running)).code).toBe(
      'AGT_ERR_SERVICE_ARGS',
    );
    expect(refusal(() => agentUnit(['--config', file('tagret: auto\n')], {}, running)).code).toBe(
      'AGT_ERR_CONFIG_FILE',
    );
  });
});
