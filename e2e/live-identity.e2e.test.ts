/**
 * Issue 16 item 1 and issue 17 item 5: who a live connection still is. Real relay (Postgres), agent,
 * fixture sshd, stock OpenSSH and the built `mssh`.
 *
 *   ssh -M -S ctl -N alice@relay:PORT          (a ControlMaster to the jump listener, alice's key)
 *   ssh -S ctl -W emb-1:22 alice@relay:PORT    (a new channel through it: judged on alice as she is NOW)
 *
 * A changed account (disabled, key gone, role changed) refuses the next channel with a reason OpenSSH
 * prints, and a removed key or a role change closes the master within 2 s. A live `mssh ssh` /
 * `ssh -o ProxyCommand='mssh proxy %n'` session ended by an admin says why, with its code.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import pg from 'pg';
import { fixtures } from './fixtures/inject.js';
import { runCommand } from './fixtures/files.js';
import { sshKeygen, writeSshConfig } from './fixtures/openssh.js';
import { freePort, waitFor } from './fixtures/net.js';
import {
  BIN,
  Proc,
  exec,
  loginUser,
  proxyCommandSshOpts,
  run,
  sshArgs,
  startAgent,
  startRelay,
  stopAll,
  type Relay,
  type User,
} from './fixtures/stack.js';

afterAll(stopAll);

const ALICE_PASSWORD = 'alice-password-for-tests';

describe('live connections are judged on the user as they are now', () => {
  let relay: Relay;
  let alice: User;
  let dir: string;
  let ctlDir: string;
  let sshPort: number;
  let aliceKey: string;
  let cfg: string;
  let db: pg.Client;

  const env = () => ({ ...process.env, SSH_AUTH_SOCK: '' });
  const ctl = () => join(ctlDir, 'ctl');
  const jumpArgs = () => ['-F', cfg, '-p', String(sshPort)];
  /** `ssh -S ctl -W emb-1:22` through the master (it falls back to a new connection only if the master is gone). */
  const throughMaster = () =>
    runCommand('ssh', [...jumpArgs(), '-S', ctl(), '-o', 'ControlMaster=no', '-W', 'emb-1:22', 'alice@127.0.0.1'], {
      env: env(),
      timeoutMs: 30_000,
    });

  async function startMaster(): Promise<Proc> {
    rmSync(ctl(), { force: true });
    const master = new Proc(
      spawn('ssh', [...jumpArgs(), '-M', '-S', ctl(), '-o', 'ControlPersist=no', '-N', 'alice@127.0.0.1'], {
        env: env(),
        stdio: ['ignore', 'pipe', 'pipe'],
      }),
    );
    await waitFor(
      async () => {
        if (!master.running) throw new Error(`the ControlMaster exited (${master.child.exitCode}): ${master.err}`);
        const check = await runCommand('ssh', [...jumpArgs(), '-S', ctl(), '-O', 'check', 'alice@127.0.0.1'], {
          env: env(),
          timeoutMs: 5_000,
        });
        return check.code === 0;
      },
      20_000,
      'the ControlMaster to be up',
      200,
    );
    // The master forwards: the machine's sshd answers through it.
    const ok = await throughMaster();
    expect(ok.stdout, ok.stderr).toMatch(/^SSH-2\.0-/);
    return master;
  }

  async function sql(text: string, params: unknown[] = []): Promise<void> {
    await db.query(text, params);
  }

  beforeAll(async () => {
    sshPort = await freePort();
    relay = await startRelay('postgres', ['--ssh-listen', `127.0.0.1:${sshPort}`]);
    await relay.proc.waitOutput(/SSH host key fingerprint: (SHA256:\S+)/, 5_000, 'out');
    await startAgent(relay, 'emb-1');
    expect((await relay.cli(['user', 'add', 'alice', '--password-stdin'], `${ALICE_PASSWORD}\n`)).code).toBe(0);
    expect((await relay.cli(['grant', '--role', 'ops', 'emb-*'])).code).toBe(0);
    expect((await relay.cli(['user', 'set-role', 'alice', 'ops'])).code).toBe(0);
    alice = await loginUser(relay, 'alice', ALICE_PASSWORD);
    dir = mkdtempSync(join(fixtures().root, 'live-id-'));
    // A short path: unix socket paths are limited to ~100 bytes.
    ctlDir = mkdtempSync('/tmp/mssh-ctl-');
    aliceKey = sshKeygen(dir, 'alice_ed25519');
    const add = await alice.mssh(['keys', 'add', `${aliceKey}.pub`]);
    expect(add.code, add.stderr).toBe(0);
    const relayKey = readFileSync(join(relay.dataDir, 'ssh', 'ssh_host_ed25519_key.pub'), 'utf8')
      .trim()
      .split(/\s+/)
      .slice(0, 2)
      .join(' ');
    writeFileSync(join(dir, 'known_hosts'), `[127.0.0.1]:${sshPort} ${relayKey}\n`);
    cfg = writeSshConfig(dir, 'ssh_config', [['*', aliceKey]]);
    db = new pg.Client({ connectionString: relay.databaseUrl });
    await db.connect();
  }, 120_000);
  afterAll(async () => {
    await db?.end();
    await relay?.proc.stop();
    if (ctlDir) rmSync(ctlDir, { recursive: true, force: true });
  });

  it('user disabled while the master is open (no --kill-sessions): the next channel is refused with the reason', async () => {
    const master = await startMaster();
    try {
      const d = await relay.cli(['user', 'disable', 'alice']);
      expect(d.code, d.stderr).toBe(0);
      expect(master.running).toBe(true); // nothing closed it: only the channel's own check can refuse
      const r = await throughMaster();
      expect(r.code, `${r.stderr} / master: ${master.err}`).toBe(255);
      expect(r.stdout).toBe('');
      expect(r.stderr).toMatch(/Stdio forwarding request failed: Session open refused by peer/);
      // The master is closed, and OpenSSH prints the reason the relay gave (the mux client only hears "refused").
      await waitFor(() => !master.running, 2_000, 'the master to be closed after the refusal');
      expect(master.err).toMatch(
        /Received disconnect from 127\.0\.0\.1 port \d+:11: mssh: your account was disabled by an admin; this connection is closed \(AUTH_ERR_USER_DISABLED\)/,
      );
    } finally {
      await master.stop();
      expect((await relay.cli(['user', 'enable', 'alice'])).code).toBe(0);
    }
  });

  it("key taken from alice and role changed behind the relay's back (SQL): the next channel is refused with the reason", async () => {
    let master = await startMaster();
    try {
      await sql("UPDATE ssh_keys SET user_name = 'nobody-else' WHERE user_name = 'alice'");
      expect(master.running).toBe(true);
      const r = await throughMaster();
      expect(r.code, `${r.stderr} / master: ${master.err}`).toBe(255);
      expect(r.stdout).toBe('');
      expect(r.stderr).toMatch(/Session open refused by peer/);
      await waitFor(() => !master.running, 2_000, 'the master to be closed after the refusal');
      expect(master.err).toMatch(
        /Received disconnect .*: mssh: the SSH key this connection logged in with was removed/,
      );
    } finally {
      await master.stop();
      await sql("UPDATE ssh_keys SET user_name = 'alice' WHERE user_name = 'nobody-else'");
    }
    master = await startMaster();
    try {
      await sql("UPDATE users SET role = NULL WHERE name = 'alice'");
      expect(master.running).toBe(true);
      const r = await throughMaster();
      expect(r.code, `${r.stderr} / master: ${master.err}`).toBe(255);
      expect(r.stdout).toBe('');
      expect(r.stderr).toMatch(/Session open refused by peer/);
      await waitFor(() => !master.running, 2_000, 'the master to be closed after the refusal');
      expect(master.err).toMatch(
        /Received disconnect .*: mssh: your role changed since this connection logged in; connect again \(AUTH_ERR_SESSION_ENDED\)/,
      );
    } finally {
      await master.stop();
      await sql("UPDATE users SET role = 'ops' WHERE name = 'alice'");
    }
  });

  it('role cleared by an admin: the master is closed within 2 s, and -W is refused', async () => {
    const master = await startMaster();
    try {
      const r = await relay.cli(['user', 'set-role', 'alice']);
      expect(r.code, r.stderr).toBe(0);
      await waitFor(() => !master.running, 2_000, 'the ControlMaster to be closed after the role change');
      expect(master.err).toMatch(
        /Received disconnect .*: mssh: your role changed since this connection logged in; connect again \(AUTH_ERR_SESSION_ENDED\)/,
      );
      // No master now: a new connection logs in (the key is still hers) and the grant is gone.
      const w = await throughMaster();
      expect(w.code).toBe(255);
      expect(w.stdout).toBe('');
      expect(w.stderr).toMatch(/forwarding failed/);
    } finally {
      await master.stop();
      expect((await relay.cli(['user', 'set-role', 'alice', 'ops'])).code).toBe(0);
    }
  });

  it('key deleted (204, key list empty): the master is closed within 2 s; a new connection is refused', async () => {
    alice = await loginUser(relay, 'alice', ALICE_PASSWORD); // the role changes above ended her token
    const master = await startMaster();
    try {
      const rm = await alice.mssh(['keys', 'remove', `${aliceKey}.pub`]);
      expect(rm.code, rm.stderr).toBe(0);
      const list = await alice.mssh(['keys', 'list']);
      expect(list.stdout).not.toMatch(/SHA256:/);
      await waitFor(() => !master.running, 2_000, 'the ControlMaster to be closed after the key removal');
      expect(master.err).toMatch(
        /Received disconnect .*: mssh: the SSH key this connection logged in with was removed/,
      );
      const w = await throughMaster();
      expect(w.code).toBe(255);
      expect(w.stdout).toBe('');
      expect(w.stderr).toMatch(/Permission denied \(publickey\)/);
    } finally {
      await master.stop();
    }
  });

  it('disabled with --kill-sessions: live mssh ssh and mssh proxy sessions say the account was disabled by an admin', async () => {
    alice = await loginUser(relay, 'alice', ALICE_PASSWORD);
    const f = fixtures();
    const sshLive = run(BIN.mssh, [...sshArgs('emb-1'), '--', 'echo started; sleep 60'], { env: alice.env });
    const proxyLive = new Proc(
      spawn(
        'ssh',
        [
          ...proxyCommandSshOpts(join(dir, 'known_hosts_proxy'), f.sshd.clientKey),
          `${f.sshd.user}@emb-1`,
          'echo started; sleep 60',
        ],
        { env: alice.env, stdio: ['pipe', 'pipe', 'pipe'] },
      ),
    );
    try {
      await sshLive.waitOutput(/started/, 20_000, 'out');
      await proxyLive.waitOutput(/started/, 20_000, 'out');
      const d = await relay.cli(['user', 'disable', 'alice', '--kill-sessions']);
      expect(d.code, d.stderr).toBe(0);
      expect(d.stdout).toMatch(/Ended 2 live session/);
      await waitFor(() => !sshLive.running && !proxyLive.running, 2_000, 'both sessions to end');
      expect(await sshLive.exited).toBe(255);
      expect(sshLive.err).toMatch(/disabled by an admin \[CLI_ERR_ACCOUNT_DISABLED\]/);
      expect(sshLive.err).not.toMatch(/gone offline|was lost/);
      expect(await proxyLive.exited).toBe(255);
      expect(proxyLive.err).toMatch(/disabled by an admin \[CLI_ERR_ACCOUNT_DISABLED\]/);
      expect(proxyLive.err).not.toMatch(/gone offline|was cut/);

      // A fresh login: the right password hears why; a wrong one only "wrong user name or password".
      const loginArgs = [
        'login',
        '--relay',
        relay.url,
        '--user',
        'alice',
        '--password-stdin',
        '--relay-fingerprint',
        relay.fingerprint,
      ];
      const right = await exec(BIN.mssh, loginArgs, { env: alice.env, input: `${ALICE_PASSWORD}\n` });
      expect(right.code).not.toBe(0);
      expect(right.stderr).toMatch(/disabled by an admin \[CLI_ERR_ACCOUNT_DISABLED\]/);
      const wrong = await exec(BIN.mssh, loginArgs, { env: alice.env, input: 'not-alices-password\n' });
      expect(wrong.code).not.toBe(0);
      expect(wrong.stderr).toMatch(/wrong user name or password \[CLI_ERR_BAD_CREDENTIALS\]/);
      expect(wrong.stderr).not.toMatch(/disabled/);

      // Enabled again: the token she had stays ended, and mssh says so.
      expect((await relay.cli(['user', 'enable', 'alice'])).code).toBe(0);
      const ls = await alice.mssh(['ls']);
      expect(ls.code).toBe(1);
      expect(ls.stderr).toMatch(/ended by an admin; log in again \[CLI_ERR_SESSION_ENDED\]/);
      expect(ls.stderr).toMatch(/mssh login --relay/);
    } finally {
      await sshLive.stop('SIGKILL');
      await proxyLive.stop('SIGKILL');
      await relay.cli(['user', 'enable', 'alice']);
    }
  });

  it('role changed by an admin: a live mssh ssh session ends saying so; an admin password reset ends the token', async () => {
    alice = await loginUser(relay, 'alice', ALICE_PASSWORD);
    const sshLive = run(BIN.mssh, [...sshArgs('emb-1'), '--', 'echo started; sleep 60'], { env: alice.env });
    try {
      await sshLive.waitOutput(/started/, 20_000, 'out');
      expect((await relay.cli(['user', 'set-role', 'alice', 'ops2'])).code).toBe(0);
      await waitFor(() => !sshLive.running, 2_000, 'the session to end');
      expect(await sshLive.exited).toBe(255);
      expect(sshLive.err).toMatch(/ended by an admin: your role on \S+ changed \[CLI_ERR_SESSION_ENDED\]/);
    } finally {
      await sshLive.stop('SIGKILL');
      expect((await relay.cli(['user', 'set-role', 'alice', 'ops'])).code).toBe(0);
    }
    alice = await loginUser(relay, 'alice', ALICE_PASSWORD);
    expect((await alice.mssh(['ls'])).code).toBe(0);
    expect((await relay.cli(['user', 'passwd', 'alice', '--password-stdin'], 'alice-new-password-1\n')).code).toBe(0);
    const ls = await alice.mssh(['ls']);
    expect(ls.code).toBe(1);
    expect(ls.stderr).toMatch(/\[CLI_ERR_SESSION_ENDED\]/);
  });
});
