/**
 * Issue 21 item 5: stock OpenSSH with shared connections (ControlMaster/ControlPersist, as Ansible runs
 * it) through the block `mssh config ssh --install` writes.
 *   - A refusal of `mssh proxy` reaches the user through OpenSSH even though a ControlPersist master sends
 *     the ProxyCommand's stderr to /dev/null: the proxy answers as a minimal SSH server and disconnects
 *     with the mssh code and text, which ssh prints.
 *   - Two mssh logins on one Unix account never share a master: the ControlPath carries the login id,
 *     `mssh login` writes the block again for a new login, and `mssh proxy --login-id` refuses a login
 *     the block was not written for.
 *
 *   ssh -F ~/.ssh/config -o ControlMaster=auto -o ControlPersist=30 bob@web.mssh
 *     --ControlPath ~/.ssh/mssh-cm-%C-<login id>--> master --mssh proxy --login-id ID--> relay --> agent --> sshd
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { mkdirSync, readFileSync, readdirSync } from 'node:fs';
import { homedir } from 'node:os';
import { join } from 'node:path';
import { fixtures } from './fixtures/inject.js';
import { runCommand } from './fixtures/files.js';
import {
  adminAuditEvents,
  exec,
  loginUser,
  startAgent,
  startRelay,
  stopAll,
  BIN,
  type Relay,
  type User,
} from './fixtures/stack.js';

afterAll(stopAll);

describe('OpenSSH shared connections through the generated config', () => {
  let relay: Relay;
  let admin: User;
  let home: string;
  let cfg: string;
  /** The env of the Unix account: one HOME (so one ~/.ssh/config), one mssh config dir. */
  let env: NodeJS.ProcessEnv;
  const masters: string[][] = [];

  /** ssh with the installed config and connection sharing on; ssh's stderr is what the user sees. */
  const ssh = (host: string, cmd: string[], e: NodeJS.ProcessEnv = env) => {
    const args = [
      '-F',
      cfg,
      '-i',
      fixtures().sshd.clientKey,
      '-o',
      'IdentitiesOnly=yes',
      '-o',
      'BatchMode=yes',
      '-o',
      'ControlMaster=auto',
      '-o',
      'ControlPersist=30',
    ];
    masters.push([...args, '-O', 'exit', `${fixtures().sshd.user}@${host}.mssh`]);
    return runCommand('ssh', [...args, `${fixtures().sshd.user}@${host}.mssh`, ...cmd], { env: e, timeoutMs: 30_000 });
  };
  const mssh = (args: string[], input?: string, e: NodeJS.ProcessEnv = env) =>
    exec(BIN.mssh, args, { env: e, input, timeoutMs: 30_000 });

  beforeAll(async () => {
    relay = await startRelay('pglite');
    await Promise.all([
      startAgent(relay, 'web-a'),
      startAgent(relay, 'web-b'),
      startAgent(relay, 'sleepy', { start: false }),
    ]);
    admin = await loginUser(relay);
    for (const [name, pw] of [
      ['alice', 'alice-password'],
      ['bob', 'bob-password-1'],
    ]) {
      const add = await admin.mssh(['admin', 'users', 'add', name!, '--password-stdin'], { input: `${pw}\n` });
      expect(add.code, add.stderr).toBe(0);
    }
    expect((await admin.mssh(['admin', 'grant', 'alice', 'web-a'])).code).toBe(0);
    expect((await admin.mssh(['admin', 'grant', 'alice', 'sleepy'])).code).toBe(0);
    expect((await admin.mssh(['admin', 'grant', 'bob', 'web-b'])).code).toBe(0);
    // alice on "the Unix account": its own HOME and mssh config dir.
    const alice = await loginUser(relay, 'alice', 'alice-password');
    home = join(alice.configDir, 'home');
    mkdirSync(join(home, '.ssh'), { recursive: true, mode: 0o700 });
    env = { ...alice.env, HOME: home };
    const inst = await mssh(['config', 'ssh', '--install']);
    expect(inst.code, inst.stderr).toBe(0);
    cfg = join(home, '.ssh', 'config'); // OpenSSH reads the passwd home's config: name it with -F
  }, 120_000);
  afterAll(async () => {
    for (const m of masters) await runCommand('ssh', m, { env, timeoutMs: 10_000 });
    await relay?.proc.stop();
  });

  const loginId = () => /--login-id ([0-9a-f]{12}) /.exec(readFileSync(cfg, 'utf8'))?.[1];

  it('the block names the login: ControlPath with its id, the proxy with --login-id', () => {
    const text = readFileSync(cfg, 'utf8');
    const id = loginId();
    expect(id).toMatch(/^[0-9a-f]{12}$/);
    expect(text).toContain(`    ControlPath ~/.ssh/mssh-cm-%C-${id}\n`);
  });

  it('a refusal reaches the user through a ControlPersist master as an SSH disconnect with the mssh code', async () => {
    const offline = await ssh('sleepy', ['true']);
    expect(offline.code).toBe(255);
    expect(offline.stderr).toMatch(
      /Received disconnect from UNKNOWN port 65535:11: mssh: CLI_ERR_HOST_OFFLINE: sleepy is offline/,
    );
    expect(offline.stderr).not.toMatch(/kex_exchange_identification/);
    const denied = await ssh('web-b', ['true']);
    expect(denied.code).toBe(255);
    expect(denied.stderr).toMatch(/disconnect .*: mssh: CLI_ERR_NO_GRANT: you have no access to web-b/);
    // No control character of the relay's or ours reaches the terminal (OpenSSH ends its lines with CR LF).
    // eslint-disable-next-line no-control-regex -- asserts no control character is printed
    expect(denied.stderr.replaceAll('\r\n', '\n')).not.toMatch(/[\x00-\x08\x0b-\x1f\x7f]/);
  });

  it("a second login on the same account does not use the first login's open master, and is audited as itself", async () => {
    const first = await ssh('web-a', ['echo', 'alice-here']);
    expect(first.stdout, first.stderr).toBe('alice-here\n');
    const aliceId = loginId();
    // alice's master stays open (ControlPersist): its socket carries alice's login id.
    const sockets = () => readdirSync(join(homedir(), '.ssh')).filter((f) => f.startsWith('mssh-cm-'));
    expect(sockets().some((f) => f.endsWith(`-${aliceId}`))).toBe(true);

    // bob logs in with the same mssh config dir: the installed block is written again for bob.
    const login = await mssh(
      ['login', '--relay', relay.url, '--user', 'bob', '--password-stdin', '--relay-fingerprint', relay.fingerprint],
      'bob-password-1\n',
    );
    expect(login.code, login.stderr).toBe(0);
    expect(login.stderr).toMatch(/Wrote the mssh block in .* again for this login/);
    const bobId = loginId();
    expect(bobId).not.toBe(aliceId);

    // web-a is alice's, not bob's: bob gets a connection of his own, refused, not alice's master.
    const over = await ssh('web-a', ['echo', 'reached']);
    expect(over.stdout).toBe('');
    expect(over.code).toBe(255);
    expect(over.stderr).toMatch(/mssh: CLI_ERR_NO_GRANT: you have no access to web-a/);
    const own = await ssh('web-b', ['echo', 'bob-here']);
    expect(own.stdout, own.stderr).toBe('bob-here\n');

    const starts = (await adminAuditEvents(admin, ['--limit', '10000'])).filter((e) => e.type === 'session.start');
    expect(starts.filter((e) => e.host === 'web-a').map((e) => e.actor)).toEqual(['alice']);
    expect(starts.filter((e) => e.host === 'web-b').map((e) => e.actor)).toEqual(['bob']);
  });

  it('a login the block was not written for is refused (CLI_ERR_LOGIN_CHANGED), inside the SSH stream', async () => {
    // alice again, from a config dir of her own, while the block is bob's.
    const alice2 = await loginUser(relay, 'alice', 'alice-password');
    const r = await ssh('web-a', ['true'], { ...alice2.env, HOME: home });
    expect(r.code).toBe(255);
    expect(r.stderr).toMatch(
      /disconnect .*: mssh: CLI_ERR_LOGIN_CHANGED: the mssh block of your ssh config was written for another mssh login/,
    );
    expect(r.stderr).toMatch(/mssh config ssh --install/);
  });
});
