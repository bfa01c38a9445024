import { mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { CliError } from './errors.js';
import { installService, quoteExecArg, renderUnit, type ServiceCodes, type UnitSpec } from './systemd-unit.js';
import { systemdAnalyzeVerify } from './systemd-verify.js';

const codes: ServiceCodes = {
  NOT_ROOT: 'T_NOT_ROOT',
  EXISTS: 'T_EXISTS',
  USER: 'T_USER',
  WRITE: 'T_WRITE',
  SYSTEMCTL: 'T_SYSTEMCTL',
  EXEC: 'T_EXEC',
  ARGS: 'T_ARGS',
};

const spec = (over: Partial<UnitSpec> = {}): UnitSpec => ({
  program: 'mssh-test',
  name: 'mssh-test',
  description: 'test unit',
  user: 'root',
  execStart: [process.execPath, '/dev/null', 'serve'],
  stateDirectory: 'mssh-test',
  readWritePaths: [],
  hardening: 'strict',
  protectHome: 'yes',
  capabilities: [],
  limitNofile: 4096,
  timeoutStopSec: 30,
  restartSec: 5,
  restartPreventExitStatus: [64, 78],
  comments: ['a comment'],
  ...over,
});

function codeOf(fn: () => unknown): string | undefined {
  try {
    fn();
  } catch (e) {
    if (e instanceof CliError) return e.code;
    throw e;
  }
  throw new Error('expected a CliError');
}

let dir: string;
beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), 'mssh-unit-'));
});
afterEach(() => rmSync(dir, { recursive: true, force: true }));

describe('quoteExecArg', () => {
  it('leaves plain words alone and escapes specifiers and variables', () => {
    expect(quoteExecArg('--listen')).toBe('--listen');
    expect(quoteExecArg('0.0.0.0:443')).toBe('0.0.0.0:443');
    expect(quoteExecArg('50%')).toBe('"50%%"');
    expect(quoteExecArg('$HOME')).toBe('"$$HOME"');
    expect(quoteExecArg('a b')).toBe('"a b"');
    expect(quoteExecArg('say "hi" \\o/')).toBe('"say \\"hi\\" \\\\o/"');
    expect(quoteExecArg('')).toBe('""');
  });
});

describe('renderUnit', () => {
  it('writes units systemd-analyze verify accepts, in both sandboxes, with awkward arguments', () => {
    const awkward = ['--x', 'a b', '50%', '$HOME', 'say "hi"', 'back\\slash', "it's"];
    for (const [i, s] of [
      spec({ execStart: [process.execPath, '/dev/null', 'serve', ...awkward] }),
      spec({ hardening: 'shell', name: 'mssh-test-shell' }),
      spec({ capabilities: ['CAP_NET_BIND_SERVICE'], stateDirectory: undefined, readWritePaths: ['/srv/mssh'] }),
      spec({ protectHome: 'read-only', environmentFile: '/etc/mssh/env' }),
    ].entries()) {
      const file = join(dir, `mssh-test-${i}.service`);
      writeFileSync(file, renderUnit(s, codes));
      expect(systemdAnalyzeVerify(file)).toEqual({ status: 0, complaints: [] });
    }
  });

  it('puts the sandbox in strict units only, and the capabilities asked for', () => {
    const strict = renderUnit(spec({ capabilities: ['CAP_NET_BIND_SERVICE'] }), codes);
    for (const line of ['NoNewPrivileges=yes', 'ProtectSystem=strict', 'ProtectHome=yes', 'Restart=always'])
      expect(strict).toContain(`\n${line}\n`);
    expect(strict).toContain('\nAmbientCapabilities=CAP_NET_BIND_SERVICE\n');
    expect(strict).toContain('\nCapabilityBoundingSet=CAP_NET_BIND_SERVICE\n');
    expect(renderUnit(spec(), codes)).toContain('\nCapabilityBoundingSet=\n');
    const shell = renderUnit(spec({ hardening: 'shell' }), codes);
    expect(shell).not.toMatch(/^(NoNewPrivileges|ProtectSystem|ProtectHome)=/m);
    expect(shell).toContain('\nStateDirectory=mssh-test\n');
  });

  it('refuses values that cannot go into a unit [T_ARGS]', () => {
    expect(codeOf(() => renderUnit(spec({ user: 'bad user' }), codes))).toBe('T_ARGS');
    expect(codeOf(() => renderUnit(spec({ execStart: [process.execPath, '/dev/null', 'a\nb'] }), codes))).toBe(
      'T_ARGS',
    );
  });
});

describe('installService', () => {
  const unit = renderUnit(spec(), codes);
  const base = { program: 'mssh-test', name: 'mssh-test', unit, user: 'root', userHome: '/var/lib/mssh-test', codes };

  it('writes the unit (0644) and says what to run when the directory is not systemd own', () => {
    const r = installService({ ...base, createUser: false, unitDir: dir, force: false });
    expect(r.unitPath).toBe(join(dir, 'mssh-test.service'));
    expect(readFileSync(r.unitPath, 'utf8')).toBe(unit);
    expect(statSync(r.unitPath).mode & 0o777).toBe(0o644);
    expect(r.lines.join('\n')).toContain('systemctl daemon-reload && systemctl enable --now mssh-test');
    // The same again is fine; other content needs --force.
    expect(installService({ ...base, createUser: false, unitDir: dir, force: false }).lines[0]).toMatch(/^Unchanged/);
    const other = { ...base, unit: renderUnit(spec({ limitNofile: 8192 }), codes), createUser: false, unitDir: dir };
    expect(codeOf(() => installService({ ...other, force: false }))).toBe('T_EXISTS');
    expect(installService({ ...other, force: true }).lines[0]).toMatch(/^Replaced/);
    expect(readFileSync(r.unitPath, 'utf8')).toContain('LimitNOFILE=8192');
  });

  it('refuses without root where root is needed [T_NOT_ROOT]', () => {
    const notRoot = { uid: () => 1000 };
    expect(
      codeOf(() =>
        installService({ ...base, createUser: false, unitDir: '/etc/systemd/system', force: false, system: notRoot }),
      ),
    ).toBe('T_NOT_ROOT');
    expect(
      codeOf(() => installService({ ...base, createUser: true, unitDir: dir, force: false, system: notRoot })),
    ).toBe('T_NOT_ROOT');
  });

  it('refuses a user that does not exist unless asked to create it [T_USER]', () => {
    const user = 'mssh-no-such-user-7f3a';
    expect(codeOf(() => installService({ ...base, user, createUser: false, unitDir: dir, force: false }))).toBe(
      'T_USER',
    );
  });

  it('names the unit directory it cannot write [T_WRITE]', () => {
    const file = join(dir, 'not-a-dir');
    writeFileSync(file, '');
    expect(codeOf(() => installService({ ...base, createUser: false, unitDir: file, force: false }))).toBe('T_WRITE');
  });
});
