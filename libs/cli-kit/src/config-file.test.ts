import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { chmodSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { configKeysOf, didYouMean, loadConfigFile, type ConfigKey, type OptionLike } from './config-file.js';
import { CliError, EXIT } from './errors.js';

const opt = (long: string, attr: string, o: Partial<OptionLike> = {}): OptionLike => ({
  long,
  description: long,
  required: true,
  optional: false,
  variadic: false,
  attributeName: () => attr,
  ...o,
});
const KEYS: ConfigKey[] = configKeysOf(
  {
    options: [
      opt('--config', 'config'),
      opt('--listen', 'listen'),
      opt('--drain-timeout', 'drainTimeout'),
      opt('--tls-san', 'tlsSan', { parseArg: () => [] }),
      opt('--allow-forwarding', 'allowForwarding', { required: false }),
      opt('--database-url', 'databaseUrl'),
    ],
  },
  ['config'],
);
const CODES = { FILE: 'T_ERR_CONFIG_FILE', MODE: 'T_ERR_CONFIG_FILE_MODE' };

let dir: string;
beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), 'kit-config-'));
});
afterEach(() => rmSync(dir, { recursive: true, force: true }));

function file(text: string, mode = 0o600): string {
  const p = join(dir, 'relay.yaml');
  writeFileSync(p, text);
  chmodSync(p, mode);
  return p;
}
const load = (path: string) =>
  loadConfigFile(path, {
    keys: KEYS,
    codes: CODES,
    helpCommand: 'test serve --help',
    isSecret: (key, v) => key === 'database-url' && typeof v === 'string' && v.includes(':pw@'),
  });
function refusal(path: string): CliError {
  try {
    load(path);
  } catch (e) {
    if (e instanceof CliError) return e;
    throw e;
  }
  throw new Error('expected a CliError');
}

describe('configKeysOf', () => {
  it('takes every long option but the excluded ones; repeatable ones are lists, flags without a value booleans', () => {
    expect(KEYS.map((k) => [k.key, k.attribute, k.kind])).toEqual([
      ['listen', 'listen', 'value'],
      ['drain-timeout', 'drainTimeout', 'value'],
      ['tls-san', 'tlsSan', 'list'],
      ['allow-forwarding', 'allowForwarding', 'boolean'],
      ['database-url', 'databaseUrl', 'value'],
    ]);
  });
});

describe('loadConfigFile', () => {
  it('reads values by attribute with the line of each key; numbers as written, lists, booleans', () => {
    const f = load(
      file(
        [
          '# a comment',
          'listen: 127.0.0.1:8443',
          'drain-timeout: 30',
          'tls-san:',
          '  - a.example',
          '  - 10.0.0.1',
          'allow-forwarding: true',
        ].join('\n'),
      ),
    );
    expect(Object.fromEntries(f.values)).toEqual({
      listen: { key: 'listen', value: '127.0.0.1:8443', line: 2 },
      drainTimeout: { key: 'drain-timeout', value: '30', line: 3 },
      tlsSan: { key: 'tls-san', value: ['a.example', '10.0.0.1'], line: 4 },
      allowForwarding: { key: 'allow-forwarding', value: true, line: 7 },
    });
    // One value for a list key is a list of one; a fraction stays text (the schema refuses it).
    const g = load(file('tls-san: b.example\ndrain-timeout: 1.50\n'));
    expect(g.values.get('tlsSan')?.value).toEqual(['b.example']);
    expect(g.values.get('drainTimeout')?.value).toBe('1.50');
  });

  it('an empty file (or only comments) sets nothing', () => {
    expect(load(file('')).values.size).toBe(0);
    expect(load(file('# nothing yet\n')).values.size).toBe(0);
  });

  it('an unknown key names the file, the line and the key, with a guess [T_ERR_CONFIG_FILE, exit 78]', () => {
    const path = file('listen: 127.0.0.1:1\n\nlistne: 0.0.0.0:2\n');
    const e = refusal(path);
    expect(e.code).toBe('T_ERR_CONFIG_FILE');
    expect(e.exitCode).toBe(EXIT.CONFIG);
    expect(e.message).toBe(`${path} line 3: unknown key \`listne\` (did you mean \`listen\`?)`);
    expect(e.hint).toContain('test serve --help');
    expect(refusal(file('--listen: x\n')).message).toMatch(
      /line 1: unknown key `--listen` \(did you mean `listen`\?\)/,
    );
    expect(refusal(file('colour: blue\n')).message).toMatch(/line 1: unknown key `colour`$/);
  });

  it('values of the wrong shape, each with its line, all at once [T_ERR_CONFIG_FILE]', () => {
    const path = file(
      ['listen: [a, b]', 'allow-forwarding: yes', 'drain-timeout:', 'tls-san: {a: 1}', 'nope: 1'].join('\n'),
    );
    const e = refusal(path);
    expect(e.code).toBe('T_ERR_CONFIG_FILE');
    expect(e.message.split('\n')).toEqual([
      `the config file ${path} has 5 problems:`,
      `  ${path} line 1: \`listen\`: expected a single value, not a list`,
      `  ${path} line 2: \`allow-forwarding\`: expected true or false`,
      `  ${path} line 3: \`drain-timeout\`: has no value (remove the line for the default)`,
      `  ${path} line 4: \`tls-san\`: expected a list of values (or one value), not a mapping`,
      `  ${path} line 5: unknown key \`nope\``,
    ]);
  });

  it('not YAML, a duplicate key, not a mapping: with the line [T_ERR_CONFIG_FILE]', () => {
    const bad = refusal(file('listen: 127.0.0.1:1\ntls-san: [a,\n'));
    expect(bad.code).toBe('T_ERR_CONFIG_FILE');
    expect(bad.message).toMatch(/relay\.yaml line \d: not valid YAML: /);
    const dup = refusal(file('listen: a:1\ndrain-timeout: 3\nlisten: b:1\n'));
    expect(dup.message).toMatch(/relay\.yaml line 3: not valid YAML: Map keys must be unique/);
    const list = refusal(file('- listen\n- drain-timeout\n'));
    expect(list.code).toBe('T_ERR_CONFIG_FILE');
    expect(list.message).toMatch(/relay\.yaml line 1: the file must be a mapping of keys to values/);
    expect(refusal(file('just words\n')).message).toMatch(/line 1: the file must be a mapping/);
  });

  it('a file that cannot be read [T_ERR_CONFIG_FILE]', () => {
    const missing = refusal(join(dir, 'missing.yaml'));
    expect(missing.code).toBe('T_ERR_CONFIG_FILE');
    expect(missing.exitCode).toBe(EXIT.CONFIG);
    expect(missing.message).toBe(`cannot read the config file ${join(dir, 'missing.yaml')}: no such file`);
    mkdirSync(join(dir, 'd.yaml'));
    expect(refusal(join(dir, 'd.yaml')).message).toMatch(/: it is a directory$/);
  });

  it('a secret in a file others may read, or its group change, is refused; 0600 and 0640 are fine [T_ERR_CONFIG_FILE_MODE]', () => {
    const secret = 'database-url: postgres://relay:pw@db/mssh\n';
    for (const mode of [0o644, 0o604, 0o660, 0o666]) {
      const e = refusal(file(secret, mode));
      expect(e.code, mode.toString(8)).toBe('T_ERR_CONFIG_FILE_MODE');
      expect(e.exitCode).toBe(EXIT.CONFIG);
      expect(e.hint).toMatch(/chmod 600/);
    }
    expect(refusal(file(secret, 0o644)).message).toMatch(/holds a secret but its mode 644 lets other users read it/);
    for (const mode of [0o600, 0o640, 0o400])
      expect(load(file(secret, mode)).values.get('databaseUrl')?.value).toContain(':pw@');
    // No secret: any mode.
    expect(load(file('database-url: postgres://relay@db/mssh\n', 0o644)).values.size).toBe(1);
  });
});

describe('didYouMean', () => {
  it('suggests a close key only', () => {
    expect(didYouMean('drain-timout', ['drain-delay', 'drain-timeout'])).toBe('drain-timeout');
    expect(didYouMean('LISTEN', ['listen'])).toBe('listen');
    expect(didYouMean('colour', ['listen', 'links'])).toBeUndefined();
  });
});
