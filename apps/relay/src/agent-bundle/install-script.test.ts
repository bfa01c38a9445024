import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { installOneLiner, shQuote } from '@mssh/cli-kit';
import { INSTALL_EXIT, renderInstallScript } from './install-script.js';

const values = {
  relayUrl: 'https://relay.example:8443',
  publicKeyPin: 'sha256//Xr3H5mJt9zkI0uOn4q0ZrGmtXmYXk2Jm0n1tXpzzK0c=',
  fingerprint: 'SHA256:abcDEF',
  tarballPath: '/install/mssh-agent-linux-x64.tar.gz',
  tarballSha256: 'a'.repeat(64),
  version: '0.1.0',
};
const script = renderInstallScript(values);
const dir = mkdtempSync(join(tmpdir(), 'mssh-install-script-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

/** Run the script as `curl ... | sh -s -- ARGS` runs it (on stdin). */
const sh = (args: string[]) => spawnSync('sh', ['-s', '--', ...args], { input: script, encoding: 'utf8' });

describe('the install script', () => {
  it('is valid POSIX sh (sh -n) with the relay URL, pin, fingerprint and sha256 in it', () => {
    expect(spawnSync('sh', ['-n'], { input: script }).status).toBe(0);
    expect(script).toContain(`RELAY_URL='https://relay.example:8443'`);
    expect(script).toContain(`RELAY_PIN='${values.publicKeyPin}'`);
    expect(script).toContain(`RELAY_FINGERPRINT='SHA256:abcDEF'`);
    expect(script).toContain(`TARBALL_SHA256='${'a'.repeat(64)}'`);
    expect(script).toMatch(/^#!\/bin\/sh\n/);
    expect(script).toContain('set -eu');
  });

  it('--help prints the usage and exits 0', () => {
    const r = sh(['--help']);
    expect(r.status).toBe(0);
    expect(r.stdout).toContain('--uninstall [--purge]');
  });

  it('usage errors are coded, exit 64, and touch nothing', () => {
    const unknown = sh(['--frobnicate']);
    expect(unknown.status).toBe(INSTALL_EXIT.INSTALL_ERR_USAGE);
    expect(unknown.stderr).toContain('mssh-agent install: INSTALL_ERR_USAGE: unknown option --frobnicate');
    const relative = sh(['--prefix', 'opt/x']);
    expect(relative.stderr).toContain('--prefix must be an absolute path');
    const prefix = join(dir, 'p1');
    const noToken = sh(['--prefix', prefix, '--state-dir', join(dir, 's1')]);
    expect(noToken.status).toBe(64);
    expect(noToken.stderr).toContain('not enrolled yet');
    expect(noToken.stderr).toContain('mssh-relay agent enroll NAME');
    expect(existsSync(prefix)).toBe(false);
  });

  it('--uninstall where nothing was installed: INSTALL_ERR_NOT_INSTALLED', () => {
    const r = sh(['--uninstall', '--prefix', join(dir, 'never')]);
    expect(r.status).toBe(INSTALL_EXIT.INSTALL_ERR_NOT_INSTALLED);
    expect(r.stderr).toContain('INSTALL_ERR_NOT_INSTALLED: no mssh agent installed by this script in');
  });
});

describe('--uninstall of an install', () => {
  it('removes the prefix; the state only with --purge, and only an agent state', () => {
    const prefix = join(dir, 'installed');
    const state = join(dir, 'state');
    const fake = () => {
      mkdirSync(join(prefix, 'current/bin'), { recursive: true });
      mkdirSync(state, { recursive: true });
      writeFileSync(join(state, 'agent.json'), '{}');
      writeFileSync(join(prefix, '.mssh-agent-install'), `state=${state}\nmode=foreground\nversion=0.1.0\n`);
    };
    fake();
    const keep = sh(['--uninstall', '--prefix', prefix]);
    expect(keep.status, keep.stderr).toBe(0);
    expect(existsSync(prefix)).toBe(false);
    expect(keep.stdout).toContain(`kept the agent's identity in ${state} (--uninstall --purge removes it)`);
    expect(existsSync(join(state, 'agent.json'))).toBe(true);
    fake();
    const purge = sh(['--uninstall', '--purge', '--prefix', prefix]);
    expect(purge.status, purge.stderr).toBe(0);
    expect(existsSync(prefix)).toBe(false);
    expect(existsSync(state)).toBe(false);
    expect(purge.stdout).toContain("removed the agent's state");
  });
});

describe('the one-liner', () => {
  it('pins the key, skips the chain check (self-signed), and passes the token and name to sh', () => {
    expect(installOneLiner({ relayUrl: 'https://r:8443', publicKeyPin: 'sha256//K=', token: 'tok', name: 'box' })).toBe(
      "curl -fsS --pinnedpubkey 'sha256//K=' -k https://r:8443/install/agent.sh | sudo sh -s -- --token tok --name box",
    );
    expect(shQuote("it's")).toBe(`'it'\\''s'`);
  });
});
