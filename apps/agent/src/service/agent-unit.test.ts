import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { CliError, systemdAnalyzeVerify } from '@mssh/cli-kit';
import { AgentError } from '../errors.js';
import { agentUnit, installAgentService } from './agent-unit.js';

// The unit runs the real node and the real launcher of this checkout (ExecStart must name existing files).
const running = {
  execPath: process.execPath,
  script: resolve(fileURLToPath(new URL('../../bin/mssh-agent.js', import.meta.url))),
};

function codeOf(fn: () => unknown): string | undefined {
  try {
    fn();
  } catch (e) {
    if (e instanceof CliError || e instanceof AgentError) return e.code;
    throw e;
  }
  throw new Error('expected a coded error');
}

const setting = (unit: string, key: string) =>
  unit
    .split('\n')
    .filter((l) => l.startsWith(`${key}=`))
    .map((l) => l.slice(key.length + 1));

let dir: string;
beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), 'mssh-agent-unit-'));
});
afterEach(() => rmSync(dir, { recursive: true, force: true }));

function verified(unit: string, name = 'mssh-agent'): string {
  const file = join(dir, `${name}.service`);
  writeFileSync(file, unit);
  expect(systemdAnalyzeVerify(file)).toEqual({ status: 0, complaints: [] });
  return unit;
}

describe('mssh-agent install-service --print', () => {
  it('forwarding to sshd: a dedicated user, the strict sandbox, no privilege', () => {
    const unit = verified(agentUnit(['--target', '127.0.0.1:22', '--links', '2'], {}, running).unit);
    expect(setting(unit, 'ExecStart')).toEqual([
      `${process.execPath} ${running.script} run --target 127.0.0.1:22 --links 2 --state-dir /var/lib/mssh-agent`,
    ]);
    expect(setting(unit, 'User')).toEqual(['mssh-agent']);
    expect(setting(unit, 'StateDirectory')).toEqual(['mssh-agent']);
    expect(setting(unit, 'NoNewPrivileges')).toEqual(['yes']);
    expect(setting(unit, 'ProtectSystem')).toEqual(['strict']);
    expect(setting(unit, 'ProtectHome')).toEqual(['yes']);
    expect(setting(unit, 'CapabilityBoundingSet')).toEqual(['']);
    expect(setting(unit, 'AmbientCapabilities')).toEqual([]);
    expect(setting(unit, 'Restart')).toEqual(['always']);
    expect(setting(unit, 'RestartPreventExitStatus')).toEqual(['64 78']);
    expect(setting(unit, 'LimitNOFILE')).toEqual(['8192']);
  });

  it('the embedded server: its login shells keep /home, sudo and a writable system', () => {
    const unit = verified(agentUnit(['--target', 'embedded'], {}, running).unit);
    expect(setting(unit, 'User')).toEqual(['root']);
    for (const key of ['ProtectHome', 'ProtectSystem', 'NoNewPrivileges']) expect(setting(unit, key)).toEqual([]);
    expect(setting(unit, 'StateDirectory')).toEqual(['mssh-agent']);
    expect(setting(unit, 'KillMode')).toEqual(['mixed']);
  });

  it('auto (the default) may become the embedded server: no sandbox, and a note how to get one', () => {
    const unit = verified(agentUnit([], { user: 'root' }, running).unit);
    expect(setting(unit, 'ProtectHome')).toEqual([]);
    expect(unit).toContain('# For the strict sandbox, pin the machine sshd: install-service -- --target 127.0.0.1:22');
  });

  it('without --target, the target stored at enrolment decides', () => {
    const stateDir = join(dir, 'state');
    mkdirSync(stateDir);
    writeFileSync(
      join(stateDir, 'agent.json'),
      JSON.stringify({
        version: 1,
        relayUrl: 'https://relay.example:8443',
        relayFingerprint: `SHA256:${'A'.repeat(43)}`,
        name: 'web-1',
        agentId: 'a1',
        agentEndpoint: null,
        target: '127.0.0.1:2222',
        enrolledAt: new Date(0).toISOString(),
      }),
    );
    const unit = verified(agentUnit(['--state-dir', stateDir], { name: 'mssh-agent-2' }, running).unit, 'mssh-agent-2');
    expect(setting(unit, 'User')).toEqual(['mssh-agent']);
    expect(setting(unit, 'ProtectSystem')).toEqual(['strict']);
    expect(setting(unit, 'ReadWritePaths')).toEqual([stateDir]);
    expect(setting(unit, 'StateDirectory')).toEqual([]);
  });
});

describe('mssh-agent install-service refusals', () => {
  it('options run does not know [AGT_ERR_SERVICE_ARGS]', () => {
    expect(codeOf(() => agentUnit(['--tagret', 'embedded'], {}, running))).toBe('AGT_ERR_SERVICE_ARGS');
  });
  it('a relative state dir [AGT_ERR_SERVICE_ARGS]', () => {
    expect(codeOf(() => agentUnit(['--state-dir', 'state'], {}, running))).toBe('AGT_ERR_SERVICE_ARGS');
  });
  it('values run would refuse [AGT_ERR_CONFIG]', () => {
    expect(codeOf(() => agentUnit(['--links', '99'], {}, running))).toBe('AGT_ERR_CONFIG');
  });
  it('a node binary that is not there [AGT_ERR_SERVICE_EXEC]', () => {
    expect(codeOf(() => agentUnit([], { node: join(dir, 'node') }, running))).toBe('AGT_ERR_SERVICE_EXEC');
  });
  it('without root: use sudo or --print [AGT_ERR_SERVICE_NOT_ROOT]', () => {
    expect(codeOf(() => installAgentService([], {}, { running, system: { uid: () => 1000 } }))).toBe(
      'AGT_ERR_SERVICE_NOT_ROOT',
    );
  });
  it('a missing user, unless --create-user [AGT_ERR_SERVICE_USER]', () => {
    expect(
      codeOf(() =>
        installAgentService(
          ['--target', '127.0.0.1:22'],
          { unitDir: dir, user: 'mssh-no-such-user-7f3a' },
          { running },
        ),
      ),
    ).toBe('AGT_ERR_SERVICE_USER');
  });
});

describe('mssh-agent install-service', () => {
  it('writes the unit into --unit-dir and says what to run', () => {
    const r = installAgentService(['--target', 'embedded'], { unitDir: dir }, { running });
    expect(systemdAnalyzeVerify(r.unitPath)).toEqual({ status: 0, complaints: [] });
    expect(r.lines.join('\n')).toContain('systemctl daemon-reload && systemctl enable --now mssh-agent');
  });
});
