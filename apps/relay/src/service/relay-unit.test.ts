import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { CliError, systemdAnalyzeVerify } from '@mssh/cli-kit';
import { installRelayService, relayUnit } from './relay-unit.js';

// The unit runs the real node and the real launcher of this checkout (ExecStart must name existing files).
const running = {
  execPath: process.execPath,
  script: resolve(fileURLToPath(new URL('../../bin/mssh-relay.js', import.meta.url))),
};

function codeOf(fn: () => unknown): string | undefined {
  try {
    fn();
  } catch (e) {
    if (e instanceof CliError) return e.code;
    throw e;
  }
  throw new Error('expected a CliError');
}

const setting = (unit: string, key: string) =>
  unit
    .split('\n')
    .filter((l) => l.startsWith(`${key}=`))
    .map((l) => l.slice(key.length + 1));

let dir: string;
beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), 'mssh-relay-unit-'));
});
afterEach(() => rmSync(dir, { recursive: true, force: true }));

function verified(unit: string, name = 'mssh-relay'): string {
  const file = join(dir, `${name}.service`);
  writeFileSync(file, unit);
  expect(systemdAnalyzeVerify(file)).toEqual({ status: 0, complaints: [] });
  return unit;
}

describe('mssh-relay install-service --print', () => {
  it('runs serve with the operator flags, port 443 gets CAP_NET_BIND_SERVICE, stop outlasts the drain', () => {
    const unit = verified(
      relayUnit(['--listen', '0.0.0.0:443', '--data-dir', '/var/lib/mssh-relay', '--drain-timeout', '120'], {}, running)
        .unit,
    );
    expect(setting(unit, 'ExecStart')).toEqual([
      `${process.execPath} ${running.script} serve --listen 0.0.0.0:443 --data-dir /var/lib/mssh-relay --drain-timeout 120`,
    ]);
    expect(setting(unit, 'User')).toEqual(['mssh-relay']);
    expect(setting(unit, 'StateDirectory')).toEqual(['mssh-relay']);
    expect(setting(unit, 'AmbientCapabilities')).toEqual(['CAP_NET_BIND_SERVICE']);
    expect(setting(unit, 'KillSignal')).toEqual(['SIGTERM']);
    expect(Number(setting(unit, 'TimeoutStopSec')[0])).toBeGreaterThan(120 + 15);
    expect(setting(unit, 'Restart')).toEqual(['always']);
    expect(setting(unit, 'NoNewPrivileges')).toEqual(['yes']);
    expect(setting(unit, 'ProtectSystem')).toEqual(['strict']);
    expect(setting(unit, 'ProtectHome')).toEqual(['yes']);
    // 2 x (4096 sessions + 1024 agents) + 1024
    expect(setting(unit, 'LimitNOFILE')).toEqual(['11264']);
  });

  it('adds the data dir when none is given; high ports get no capability; caps size LimitNOFILE', () => {
    const unit = verified(
      relayUnit(
        ['--listen', '0.0.0.0:8443', '--max-sessions', '20000', '--max-agents', '5000'],
        { name: 'relay2' },
        running,
      ).unit,
      'relay2',
    );
    expect(setting(unit, 'ExecStart')[0]).toMatch(/ serve --listen 0\.0\.0\.0:8443 .* --data-dir \/var\/lib\/relay2$/);
    expect(setting(unit, 'StateDirectory')).toEqual(['relay2']);
    expect(setting(unit, 'AmbientCapabilities')).toEqual([]);
    expect(setting(unit, 'CapabilityBoundingSet')).toEqual(['']);
    expect(setting(unit, 'LimitNOFILE')).toEqual([String(Math.ceil((2 * 25000 + 1024) / 1024) * 1024)]);
  });

  it('the SSH jump listener on port 22 also needs the capability', () => {
    const unit = verified(relayUnit(['--ssh-listen', '0.0.0.0:22'], {}, running).unit);
    expect(setting(unit, 'AmbientCapabilities')).toEqual(['CAP_NET_BIND_SERVICE']);
  });

  it('a data dir outside /var/lib is a ReadWritePaths; files under /home make ProtectHome read-only', () => {
    const unit = verified(
      relayUnit(
        ['--data-dir', '/srv/mssh-relay', '--tls-cert', '/home/ops/cert.pem', '--tls-key', '/home/ops/key.pem'],
        { envFile: '/etc/mssh-relay/env', user: 'ops' },
        running,
      ).unit,
    );
    expect(setting(unit, 'ExecStart')[0]).toContain('--data-dir /srv/mssh-relay --tls-cert /home/ops/cert.pem');
    expect(setting(unit, 'ReadWritePaths')).toEqual(['/srv/mssh-relay']);
    expect(setting(unit, 'StateDirectory')).toEqual([]);
    expect(setting(unit, 'ProtectHome')).toEqual(['read-only']);
    expect(setting(unit, 'EnvironmentFile')).toEqual(['/etc/mssh-relay/env']);
    expect(setting(unit, 'User')).toEqual(['ops']);
  });
});

describe('mssh-relay install-service refusals', () => {
  it('options serve does not know [RLY_CLI_ERR_SERVICE_ARGS]', () => {
    expect(codeOf(() => relayUnit(['--lissten', '0.0.0.0:443'], {}, running))).toBe('RLY_CLI_ERR_SERVICE_ARGS');
  });
  it('relative paths, which mean nothing to systemd [RLY_CLI_ERR_SERVICE_ARGS]', () => {
    expect(codeOf(() => relayUnit(['--data-dir', 'data'], {}, running))).toBe('RLY_CLI_ERR_SERVICE_ARGS');
    expect(codeOf(() => relayUnit([], { envFile: 'env' }, running))).toBe('RLY_CLI_ERR_SERVICE_ARGS');
  });
  it('a data dir with blanks outside /var/lib, which ReadWritePaths cannot take [RLY_CLI_ERR_SERVICE_ARGS]', () => {
    expect(codeOf(() => relayUnit(['--data-dir', '/srv/mssh relay'], {}, running))).toBe('RLY_CLI_ERR_SERVICE_ARGS');
  });
  it('a database password on the command line [RLY_CLI_ERR_SERVICE_ARGS]', () => {
    expect(codeOf(() => relayUnit(['--database-url', 'postgres://relay:s3cret@db/mssh'], {}, running))).toBe(
      'RLY_CLI_ERR_SERVICE_ARGS',
    );
  });
  it('a bad unit name [RLY_CLI_ERR_SERVICE_ARGS]', () => {
    expect(codeOf(() => relayUnit([], { name: 'a b' }, running))).toBe('RLY_CLI_ERR_SERVICE_ARGS');
  });
  it('values serve would refuse [CLI_ERR_USAGE]', () => {
    expect(codeOf(() => relayUnit(['--listen', 'nowhere'], {}, running))).toBe('CLI_ERR_USAGE');
  });
  it('a node binary or script that is not there [RLY_CLI_ERR_SERVICE_EXEC]', () => {
    expect(codeOf(() => relayUnit([], { node: join(dir, 'node') }, running))).toBe('RLY_CLI_ERR_SERVICE_EXEC');
    expect(codeOf(() => relayUnit([], { script: 'bin/mssh-relay.js' }, running))).toBe('RLY_CLI_ERR_SERVICE_EXEC');
  });
});

describe('mssh-relay install-service', () => {
  it('writes the unit into --unit-dir and says what to run; other content needs --force', () => {
    const r = installRelayService(['--listen', '0.0.0.0:443'], { unitDir: dir, user: 'root' }, { running });
    expect(r.unitPath).toBe(join(dir, 'mssh-relay.service'));
    expect(systemdAnalyzeVerify(r.unitPath)).toEqual({ status: 0, complaints: [] });
    expect(r.lines.join('\n')).toContain('systemctl daemon-reload && systemctl enable --now mssh-relay');
    expect(
      codeOf(() => installRelayService(['--listen', '0.0.0.0:8443'], { unitDir: dir, user: 'root' }, { running })),
    ).toBe('RLY_CLI_ERR_SERVICE_EXISTS');
    installRelayService(['--listen', '0.0.0.0:8443'], { unitDir: dir, user: 'root', force: true }, { running });
    expect(readFileSync(r.unitPath, 'utf8')).toContain('serve --listen 0.0.0.0:8443');
  });
  it('without root: use sudo or --print [RLY_CLI_ERR_SERVICE_NOT_ROOT]', () => {
    try {
      installRelayService([], { user: 'root' }, { running, system: { uid: () => 1000 } });
      expect.unreachable();
    } catch (e) {
      expect((e as CliError).code).toBe('RLY_CLI_ERR_SERVICE_NOT_ROOT');
      expect((e as CliError).hint).toMatch(/sudo.*--print/);
    }
  });
  it('a missing user, unless --create-user [RLY_CLI_ERR_SERVICE_USER]', () => {
    expect(codeOf(() => installRelayService([], { unitDir: dir, user: 'mssh-no-such-user-7f3a' }, { running }))).toBe(
      'RLY_CLI_ERR_SERVICE_USER',
    );
  });
});
