/**
 * mssh-relay as a process (the built program): the stdout lines others parse, the CLI through the
 * admin socket while serving and on the database when stopped, restart after kill -9 (stale socket),
 * graceful SIGTERM, and one-or-two-line failures. On both databases.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { fixtures } from '@mssh/test-fixtures/inject';
import { clonePglite } from '@mssh/test-fixtures/pglite';
import { createTestDatabase } from '@mssh/test-fixtures/postgres';
import { waitFor } from '@mssh/test-fixtures/net';
import { DB_KINDS } from './test-support.js';

const ROOT = resolve(import.meta.dirname, '../../..');
/** The built program (npm test builds first): from source with tsx each start cost ~2.5x the CPU. */
const MAIN = join(ROOT, 'apps/relay/bin/mssh-relay.js');
const PASSWORD = 'bootstrap-password-1';

interface Proc {
  child: ChildProcess;
  out: string;
  err: string;
  exited: Promise<number | null>;
}
const live = new Set<ChildProcess>();

function start(args: string[], env: NodeJS.ProcessEnv): Proc {
  const child = spawn(process.execPath, [MAIN, ...args], {
    cwd: ROOT,
    env,
    stdio: ['pipe', 'pipe', 'pipe'],
  });
  live.add(child);
  const p: Proc = {
    child,
    out: '',
    err: '',
    exited: new Promise((res) =>
      child.once('exit', (code, sig) => {
        live.delete(child);
        res(code ?? (sig ? 128 : null));
      }),
    ),
  };
  child.stdout.on('data', (d: Buffer) => (p.out += d.toString()));
  child.stderr.on('data', (d: Buffer) => (p.err += d.toString()));
  return p;
}

async function cli(
  args: string[],
  env: NodeJS.ProcessEnv,
  input?: string,
): Promise<{ code: number | null; out: string; err: string }> {
  const p = start(args, env);
  p.child.stdin!.end(input);
  const t = setTimeout(() => p.child.kill('SIGKILL'), 90_000);
  const code = await p.exited;
  clearTimeout(t);
  return { code, out: p.out, err: p.err };
}

afterAll(() => {
  for (const c of live) c.kill('SIGKILL');
});

describe.each(DB_KINDS)('mssh-relay process on %s', (kind) => {
  let dataDir: string;
  let dbArgs: string[];
  let env: NodeJS.ProcessEnv;
  let relay: Proc;
  let port: number;
  let fingerprint: string;

  const serve = async (): Promise<Proc> => {
    const p = start(['serve', '--listen', '127.0.0.1:0', '--data-dir', dataDir, ...dbArgs, '--log-level', 'warn'], env);
    await waitFor(
      () => {
        if (p.child.exitCode !== null) throw new Error(`relay exited: ${p.out}${p.err}`);
        return /TLS certificate fingerprint: /.test(p.out);
      },
      90_000,
      'the relay to start',
    );
    return p;
  };

  beforeAll(async () => {
    const f = fixtures();
    dataDir = mkdtempSync(join(f.root, 'relay-main-'));
    if (kind === 'pglite') {
      clonePglite(f.pgliteTemplate, join(dataDir, 'db'));
      dbArgs = [];
    } else {
      dbArgs = ['--database-url', await createTestDatabase(f.runId)];
    }
    env = {
      ...process.env,
      MSSH_BOOTSTRAP_PASSWORD: PASSWORD,
      DATABASE_URL: '',
      MSSH_LISTEN: '',
      MSSH_DATA_DIR: '',
      MSSH_SSH_LISTEN: 'off',
    };
    relay = await serve();
  });
  afterAll(async () => {
    if (relay?.child.exitCode === null) relay.child.kill('SIGKILL');
  });

  it('prints the listening line with the real port, the fingerprint and the bootstrap password once', () => {
    const lines = relay.out.trim().split('\n');
    const m = /^mssh-relay listening on https:\/\/127\.0\.0\.1:(\d+)$/.exec(lines[0]!);
    expect(m, relay.out).not.toBeNull();
    port = Number(m![1]);
    expect(port).toBeGreaterThan(0);
    fingerprint = /^TLS certificate fingerprint: (SHA256:[A-Za-z0-9+/]{43})$/.exec(lines[1]!)![1]!;
    expect(lines[2]).toBe(`Created user "admin" with password: ${PASSWORD} (shown once)`);
    expect(lines).toHaveLength(3);
  });

  it('user add and agent enroll work through the admin socket while serving', { timeout: 180_000 }, async () => {
    const u = await cli(
      ['user', 'add', 'carol', '--password-stdin', '--data-dir', dataDir, ...dbArgs],
      env,
      'carol-password\n',
    );
    expect(u.err).toBe(
      `(relay pid ${relay.child.pid} via admin socket ${join(dataDir, 'admin.sock')}, database ${kind === 'pglite' ? `PGlite ${join(dataDir, 'db')}` : dbArgs[1]})\n`,
    );
    expect(u.out).toBe(
      'Created user "carol".\nThey reach no machine until granted: mssh-relay grant carol \'PATTERN\'\n',
    );
    expect(u.code).toBe(0);
    const e = await cli(['agent', 'enroll', 'box', '--data-dir', dataDir, ...dbArgs], env);
    expect(e.code, e.err).toBe(0);
    const m = /--token (\S+)/.exec(e.out);
    expect(e.out).toContain(
      `mssh-agent enroll --relay https://127.0.0.1:${port} --token ${m![1]} --name box --relay-fingerprint ${fingerprint}\n`,
    );
    const i = await cli(['info', '--data-dir', dataDir, ...dbArgs], env);
    expect(i.code).toBe(0);
    expect(i.out).toContain(`TLS certificate fingerprint: ${fingerprint}`);
    expect(i.out).toMatch(/Relay: running/);
    expect(i.out).toContain(
      kind === 'pglite'
        ? `Database: pglite ${join(dataDir, 'db')} (used by the running relay)`
        : `Database: postgres ${dbArgs[1]} (used by the running relay)`,
    );
    // --json: one object with the same facts (issue 17.8).
    const j = await cli(['info', '--json', '--data-dir', dataDir, ...dbArgs], env);
    expect(j.code, j.err).toBe(0);
    expect(JSON.parse(j.out)).toMatchObject({
      dataDir,
      dataDirExists: true,
      database: {
        kind,
        where: kind === 'pglite' ? join(dataDir, 'db') : dbArgs[1],
        source: 'running-relay',
        differsFromFlags: null,
      },
      tlsFingerprint: fingerprint,
      relay: { running: true, pid: relay.child.pid, url: `https://127.0.0.1:${port}` },
    });
  });

  it('fails in one or two lines, non-zero', { timeout: 180_000 }, async () => {
    const taken = await cli(
      ['user', 'add', 'carol', '--password-stdin', '--data-dir', dataDir, ...dbArgs],
      env,
      'carol-password\n',
    );
    expect(taken.code).not.toBe(0);
    // The line naming the relay and database, then the failure in two lines.
    expect(taken.err.trim().split('\n')).toHaveLength(3);
    expect(taken.err).toMatch(/^\(relay pid \d+ via admin socket /);
    expect(taken.err).toMatch(/already exists/);
    const bad = await cli(['agent', 'enroll', 'Not_A_Name', '--data-dir', dataDir], env);
    expect(bad.code).not.toBe(0);
    expect(bad.err).toMatch(/^mssh-relay: /);
    expect(bad.err).not.toMatch(/\n\s+at /);
    const second = await cli(['serve', '--listen', '127.0.0.1:0', '--data-dir', dataDir, ...dbArgs], env);
    expect(second.code).not.toBe(0);
    expect(second.err).toMatch(/already running/);
    expect(second.err).toContain('[RLY_CLI_ERR_DATA_DIR_BUSY]'); // the data dir's lock, before the database opens
    expect(second.err.trim().split('\n')).toHaveLength(2);
  });

  it(
    'restarts after kill -9 (stale admin socket), without a second bootstrap; SIGTERM exits 0',
    { timeout: 180_000 },
    async () => {
      relay.child.kill('SIGKILL');
      await relay.exited;
      expect(existsSync(join(dataDir, 'admin.sock'))).toBe(true);
      relay = await serve();
      expect(relay.out).toContain(`TLS certificate fingerprint: ${fingerprint}`);
      expect(relay.out).not.toContain('Created user');
      relay.child.kill('SIGTERM');
      const code = await relay.exited;
      expect({ code, signal: relay.child.signalCode }, relay.err.slice(-3000)).toEqual({ code: 0, signal: null });
      expect(existsSync(join(dataDir, 'admin.sock'))).toBe(false);
    },
  );

  it('user add works on the database while the relay is stopped', { timeout: 180_000 }, async () => {
    const u = await cli(
      ['user', 'add', 'erin', '--admin', '--password-stdin', '--data-dir', dataDir, ...dbArgs],
      env,
      'erin-password\n',
    );
    expect(u.err).toBe(
      `(relay not running: on the database directly, ${kind === 'pglite' ? `PGlite ${join(dataDir, 'db')}` : dbArgs[1]}; data dir ${dataDir})\n`,
    );
    expect(u.out).toBe('Created user "erin" (admin).\n');
    expect(u.code).toBe(0);
  });
});

describe('mssh-relay info with damaged key files', () => {
  it(
    'tells a missing certificate or host key ("none yet") from a damaged one (RLY_CLI_ERR_KEY_FILE)',
    { timeout: 120_000 },
    async () => {
      const dir = mkdtempSync(join(fixtures().root, 'relay-info-'));
      const env = { ...process.env, DATABASE_URL: '', MSSH_DATA_DIR: '' };
      const info = () => cli(['info', '--data-dir', dir], env);
      const fresh = await info();
      expect(fresh.code, fresh.err).toBe(0);
      expect(fresh.out).toMatch(/TLS certificate fingerprint: \(none yet/);
      expect(fresh.out).toMatch(/SSH jump host key fingerprint: \(none yet/);

      const cert = join(dir, 'tls', 'cert.pem');
      mkdirSync(join(dir, 'tls'));
      writeFileSync(cert, 'not a certificate\n');
      const badCert = await info();
      expect(badCert.code).toBe(1);
      expect(badCert.err).toContain('[RLY_CLI_ERR_KEY_FILE]');
      expect(badCert.err).toContain(`${cert} is not a PEM certificate`);
      expect(badCert.out).not.toMatch(/TLS certificate fingerprint/);
      rmSync(join(dir, 'tls'), { recursive: true });

      const key = join(dir, 'ssh', 'ssh_host_ed25519_key');
      mkdirSync(key, { recursive: true }); // unreadable as a file: EISDIR (root reads through chmod 000)
      const unreadableKey = await info();
      expect(unreadableKey.code).toBe(1);
      expect(unreadableKey.err).toContain('[RLY_CLI_ERR_KEY_FILE]');
      expect(unreadableKey.err).toContain(`cannot read the SSH jump host key ${key}: EISDIR`);
      rmSync(key, { recursive: true });
      writeFileSync(key, '-----BEGIN OPENSSH PRIVATE KEY-----\ngarbage\n-----END OPENSSH PRIVATE KEY-----\n', {
        mode: 0o600,
      });
      const badKey = await info();
      expect(badKey.code).toBe(1);
      expect(badKey.err).toContain('[RLY_CLI_ERR_KEY_FILE]');
      expect(badKey.err).toContain(`${key} is not a valid unencrypted SSH private key`);
      expect(badKey.out).not.toMatch(/SSH jump host key fingerprint/);
    },
  );
});
