/**
 * Issue 6, part 2: the relay's SSH jump listener with stock OpenSSH and no mssh on the client:
 *
 *   ssh -J alice@relay:PORT bob@laptop --ssh (alice's registered key)--> relay jump listener
 *        --direct-tcpip laptop:22--> agent link --> fixture sshd (bob's session, end to end)
 *
 * Keys are registered with `mssh keys add` (REST, alice's token). Everything else the listener is asked
 * (addresses, localhost, unenrolled names, -R, exec) is refused.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { execFileSync, spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import pg from 'pg';
import { fixtures } from './fixtures/inject.js';
import { MiB, runCommand, sha256File, writeRandomFile } from './fixtures/files.js';
import { freePort, waitFor } from './fixtures/net.js';
import { sshKeygen, writeSshConfig } from './fixtures/openssh.js';
import { startRelay, startAgent, loginUser, stopAll, Proc, type Relay, type User } from './fixtures/stack.js';
import { relaySession, request } from './fixtures/tunnel-client.js';
import { PATHS } from '@mssh/protocol';

afterAll(stopAll);

const ALICE_PASSWORD = 'alice-password-for-tests';

describe('SSH jump listener (ssh -J) with stock OpenSSH', () => {
  let relay: Relay;
  let alice: User;
  let dir: string;
  let sshPort: number;
  let aliceKey: string;
  let cfg: string;

  const keygen = (name: string): string => sshKeygen(dir, name);

  /** An ssh_config where the jump host (127.0.0.1:PORT) logs in with `jumpKey` and the machines with the fixture key. */
  function writeConfig(name: string, jumpKey: string): string {
    return writeSshConfig(dir, name, [
      ['127.0.0.1', jumpKey],
      ['laptop desktop', fixtures().sshd.clientKey],
    ]);
  }

  const jump = () => `alice@127.0.0.1:${sshPort}`;
  const target = () => `${fixtures().sshd.user}@laptop`;
  const env = () => ({ ...process.env, SSH_AUTH_SOCK: '' });
  const ssh = (args: string[], config = cfg) =>
    runCommand('ssh', ['-F', config, ...args], { env: env(), timeoutMs: 30_000 });

  beforeAll(async () => {
    sshPort = await freePort();
    relay = await startRelay('postgres', ['--ssh-listen', `127.0.0.1:${sshPort}`]);
    await relay.proc.waitOutput(/SSH host key fingerprint: (SHA256:\S+)/, 5_000, 'out');
    await startAgent(relay, 'laptop');
    await startAgent(relay, 'desktop', { start: false }); // enrolled, offline
    await startAgent(relay, 'vault'); // online, but alice has no grant for it
    const add = await relay.cli(['user', 'add', 'alice', '--password-stdin'], `${ALICE_PASSWORD}\n`);
    expect(add.code, add.stderr).toBe(0);
    for (const pattern of ['laptop', 'desk*']) {
      const g = await relay.cli(['grant', 'alice', pattern]);
      expect(g.code, g.stderr).toBe(0);
    }
    alice = await loginUser(relay, 'alice', ALICE_PASSWORD);
    dir = mkdtempSync(join(fixtures().root, 'jump-'));
    aliceKey = keygen('alice_ed25519');
    const r = await alice.mssh(['keys', 'add', `${aliceKey}.pub`]);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toMatch(/Added SHA256:/);
    // known_hosts: the relay's jump host key (from its data dir) and the machine's keys under its name.
    const relayKey = readFileSync(join(relay.dataDir, 'ssh', 'ssh_host_ed25519_key.pub'), 'utf8')
      .trim()
      .split(/\s+/)
      .slice(0, 2)
      .join(' ');
    writeFileSync(
      join(dir, 'known_hosts'),
      [`[127.0.0.1]:${sshPort} ${relayKey}`, ...fixtures().sshd.hostKeys.map((k) => `laptop ${k}`), ''].join('\n'),
    );
    cfg = writeConfig('ssh_config', aliceKey);
  });
  afterAll(async () => {
    await relay?.proc.stop();
  });

  it('mssh-relay info shows the SSH host key fingerprint the relay printed', async () => {
    const printed = relay.proc.out.match(/SSH host key fingerprint: (SHA256:\S+)/)![1];
    const info = await relay.cli(['info']);
    expect(info.stdout).toContain(`SSH jump host key fingerprint: ${printed}`);
    const fp = execFileSync('/usr/bin/ssh-keygen', [
      '-l',
      '-f',
      join(relay.dataDir, 'ssh', 'ssh_host_ed25519_key.pub'),
    ]).toString();
    expect(fp).toContain(printed);
  });

  it('mssh keys list shows the registered key', async () => {
    const r = await alice.mssh(['keys', 'list']);
    expect(r.code).toBe(0);
    const fp = execFileSync('/usr/bin/ssh-keygen', ['-l', '-f', `${aliceKey}.pub`])
      .toString()
      .split(/\s+/)[1];
    expect(r.stdout).toContain(fp);
  });

  it('ssh -J alice@relay bob@laptop -- echo ok prints ok, audited as a jump session', async () => {
    const r = await ssh(['-J', jump(), target(), '--', 'echo', 'ok']);
    expect(r.stderr).toBe('');
    expect(r.stdout).toBe('ok\n');
    expect(r.code).toBe(0);
    const db = new pg.Client({ connectionString: relay.databaseUrl });
    await db.connect();
    try {
      let rows: Array<{ type: string; actor: string; host: string; details: { via?: string } }> = [];
      for (let i = 0; i < 50; i++) {
        rows = (
          await db.query(
            "select type, actor, host, details from audit_events where type in ('session.start','session.end') and actor = 'alice'",
          )
        ).rows;
        if (rows.length >= 2) break;
        await new Promise((res) => setTimeout(res, 100));
      }
      expect(rows.map((x) => x.type).sort()).toEqual(['session.end', 'session.start']);
      for (const x of rows) {
        expect(x.host).toBe('laptop');
        expect(x.details.via).toBe('jump');
      }
      const keyEvents = (
        await db.query("select type from audit_events where type = 'ssh_key.added' and actor = 'alice'")
      ).rows;
      expect(keyEvents).toHaveLength(1);
    } finally {
      await db.end();
    }
  });

  it('scp -J copies both ways byte-exact', async () => {
    const src = join(dir, 'jump-up.bin');
    const sum = writeRandomFile(src, 3 * MiB + 5);
    const remote = join(dir, 'jump-remote.bin');
    const back = join(dir, 'jump-back.bin');
    const up = await runCommand('scp', ['-F', cfg, '-J', jump(), src, `${target()}:${remote}`], { env: env() });
    expect(up.stderr).toBe('');
    expect(up.code).toBe(0);
    expect(sha256File(remote)).toBe(sum);
    const down = await runCommand('scp', ['-F', cfg, '-J', jump(), `${target()}:${remote}`, back], { env: env() });
    expect(down.code).toBe(0);
    expect(sha256File(back)).toBe(sum);
  });

  it('a jump session whose client is killed is torn down on the relay', async () => {
    const h2 = await relaySession(relay);
    try {
      const active = async () => (await request(h2, 'GET', PATHS.healthz)).body.activeSessions as number;
      const p = new Proc(
        spawn('ssh', ['-F', cfg, '-J', jump(), target(), 'echo started; sleep 60'], {
          env: env(),
          stdio: ['pipe', 'pipe', 'pipe'],
        }),
      );
      await p.waitOutput(/started/, 20_000, 'out');
      expect(await active()).toBe(1);
      p.child.kill('SIGKILL');
      await p.exited;
      await waitFor(async () => (await active()) === 0, 10_000, 'the session to end on the relay');
    } finally {
      h2.close();
    }
  });

  it('ssh -p PORT alice@relay lists exactly the machines alice may reach and exits 0', async () => {
    const r = await ssh(['-T', '-p', String(sshPort), 'alice@127.0.0.1']);
    expect(r.code).toBe(0);
    const listed = [...r.stdout.matchAll(/^ {2}(\S+)\s+(online|offline)\r?$/gm)].map((m) => [m[1], m[2]]);
    expect(listed).toEqual([
      ['desktop', 'offline'],
      ['laptop', 'online'],
    ]);
    expect(r.stdout).toContain(`ssh -J alice@127.0.0.1:${sshPort} LOGIN@MACHINE`);
  });

  it('direct-tcpip to an address, localhost, an unenrolled name, an ungranted machine or another port is refused by the guard that owns it', async () => {
    const f = fixtures();
    // The destination check (ssh-jump/destination.ts) refuses what is not a machine name on port 22, before
    // the session gate; the gate refuses names alice has no grant for. Each says so with its code.
    const address = 'RLY_ERR_BAD_REQUEST: not a machine name (addresses are never dialled)';
    const port = (p: number) => `RLY_ERR_BAD_REQUEST: port ${p}: only port 22 of an enrolled machine`;
    const noGrant = (h: string) => `RLY_ERR_NO_GRANT: you have no grant for a machine named ${h}`;
    const cases: Array<[dest: string, said: string]> = [
      ['vault:22', noGrant('vault')],
      ['vault.mssh:22', noGrant('vault')],
      ['not-enrolled:22', noGrant('not-enrolled')],
      ['localhost:22', noGrant('localhost')],
      ['127.0.0.1:22', address],
      [`127.0.0.1:${f.sshd.port}`, address],
      ['[::1]:22', address],
      [`localhost:${f.sshd.port}`, port(f.sshd.port)],
      ['localhost:80', port(80)],
      ['laptop:80', port(80)],
      [`laptop:${f.sshd.port}`, port(f.sshd.port)],
    ];
    for (const [dest, said] of cases) {
      // LogLevel INFO: OpenSSH prints a refused channel's reason (`open failed: ...: CODE: message`) at INFO.
      const r = await ssh(['-o', 'LogLevel=INFO', '-W', dest, '-p', String(sshPort), 'alice@127.0.0.1']);
      expect(r.code, dest).toBe(255);
      expect(r.stderr, dest).toContain(`open failed: administratively prohibited: ${said}`);
      expect(r.stdout, dest).toBe('');
    }
    // The same names through -J (whose inner ssh logs at the config's LogLevel ERROR: the codes are
    // asserted above and in ssh-jump-reasons): the inner ssh never gets a byte of an SSH server.
    const viaJ = await ssh(['-J', jump(), `${f.sshd.user}@localhost`, 'true']);
    expect(viaJ.code).toBe(255);
    // vault is online and reachable for an admin, but not for alice: refused, and audited as denied.
    const denied = await ssh(['-J', jump(), `${f.sshd.user}@vault`, 'true']);
    expect(denied.code).toBe(255);
    expect(denied.stdout).toBe('');
  });

  it('exec, subsystems and remote forwards (-R) on the relay are refused', async () => {
    const exec = await ssh(['-p', String(sshPort), 'alice@127.0.0.1', 'id']);
    expect(exec.code).toBe(255);
    expect(exec.stderr).toMatch(/exec request failed/);
    expect(exec.stdout).toBe('');
    const sftp = await runCommand('sftp', ['-F', cfg, '-b', '/dev/null', '-P', String(sshPort), 'alice@127.0.0.1'], {
      env: env(),
      timeoutMs: 30_000,
    });
    expect(sftp.code).not.toBe(0);
    expect(sftp.stderr).toMatch(/subsystem request failed/);
    const fwd = await ssh([
      '-N',
      '-o',
      'ExitOnForwardFailure=yes',
      '-R',
      '127.0.0.1:0:127.0.0.1:22',
      '-p',
      String(sshPort),
      'alice@127.0.0.1',
    ]);
    expect(fwd.code).toBe(255);
    expect(fwd.stderr).toMatch(/remote port forwarding failed/i);
  });

  it('a key that is not registered cannot log in', async () => {
    const other = keygen('unregistered_ed25519');
    const c = writeConfig('ssh_config_unregistered', other);
    const r = await ssh(['-J', jump(), target(), 'true'], c);
    expect(r.code).toBe(255);
    expect(r.stderr).toMatch(/Permission denied/);
    // Alice's key under another user name is refused too.
    const asAdmin = await ssh(['-T', '-p', String(sshPort), 'admin@127.0.0.1']);
    expect(asAdmin.code).toBe(255);
    expect(asAdmin.stderr).toMatch(/Permission denied/);
  });

  it('a removed key stops working at once', async () => {
    const before = await ssh(['-T', '-p', String(sshPort), 'alice@127.0.0.1']);
    expect(before.code).toBe(0);
    const rm = await alice.mssh(['keys', 'remove', `${aliceKey}.pub`]);
    expect(rm.code, rm.stderr).toBe(0);
    const after = await ssh(['-J', jump(), target(), 'true']);
    expect(after.code).toBe(255);
    expect(after.stderr).toMatch(/Permission denied/);
    const again = await alice.mssh(['keys', 'remove', `${aliceKey}.pub`]);
    expect(again.code).toBe(1);
    expect(again.stderr).toMatch(/no SSH key/);
  });
});
