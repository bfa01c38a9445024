/**
 * Issues 16 (items 5, 9, 11) and 17 (items 6, 8, 9), through the real programs: the built `mssh`,
 * `mssh-relay` and `mssh-agent` against one relay (PGlite, SSH jump listener on a random port), one agent
 * and the fixture sshd.
 *
 *   - a failed login under a name with a newline stays on one row of `mssh admin audit` (escaped);
 *   - `--type` short forms (`login`), an unknown type is an error naming the valid ones; bytes in columns;
 *   - every listing's `--json` is one JSON array, whoami's one object;
 *   - `mssh keys add` prints the jump port the relay is bound to;
 *   - a key registered by another user tells nothing about its owner and takes nothing from them;
 *   - a second `mssh-agent run` on the same state dir refuses with the first one's pid, and after
 *     kill -9 of the first a new one starts (no stale lock).
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { fixtures } from './fixtures/inject.js';
import { runCommand } from './fixtures/files.js';
import { freePort, waitFor } from './fixtures/net.js';
import {
  BIN,
  exec,
  loginUser,
  run,
  startAgent,
  startRelay,
  stopAll,
  type Agent,
  type Relay,
  type User,
} from './fixtures/stack.js';

afterAll(stopAll);

const FORGED = 'evil\n{"level":30,"msg":"user admin logged in"}';

describe('mssh output: escaping, --json, audit filters, keys, one agent per state dir', () => {
  let relay: Relay;
  let agent: Agent;
  let admin: User;
  let sshPort: number;
  let dir: string;

  const relayCli = async (args: string[], input?: string) => {
    const r = await relay.cli(args, input);
    expect(r.code, `mssh-relay ${args.join(' ')}: ${r.stderr}`).toBe(0);
    return r;
  };
  const keygen = (name: string): string => {
    const f = join(dir, name);
    execFileSync('/usr/bin/ssh-keygen', ['-q', '-t', 'ed25519', '-N', '', '-C', name, '-f', f]);
    return f;
  };
  /** `ssh -p JUMP USER@127.0.0.1` with one key: the jump listener's machine list, or a refusal. */
  const jumpLogin = (user: string, key: string) =>
    runCommand(
      'ssh',
      [
        '-F',
        '/dev/null',
        '-p',
        String(sshPort),
        '-i',
        key,
        '-o',
        'IdentitiesOnly=yes',
        '-o',
        'BatchMode=yes',
        '-o',
        'StrictHostKeyChecking=accept-new',
        '-o',
        `UserKnownHostsFile=${join(dir, 'known_hosts')}`,
        '-o',
        'LogLevel=ERROR',
        '-T',
        `${user}@127.0.0.1`,
      ],
      { env: { ...process.env, SSH_AUTH_SOCK: '' }, timeoutMs: 30_000 },
    );

  beforeAll(async () => {
    sshPort = await freePort();
    relay = await startRelay('pglite', ['--ssh-listen', `127.0.0.1:${sshPort}`]);
    await relay.proc.waitOutput(/SSH jump listener on 127\.0\.0\.1:(\d+)/, 5_000, 'out');
    agent = await startAgent(relay, 'laptop');
    admin = await loginUser(relay);
    for (const u of ['alice', 'bob']) {
      await relayCli(['user', 'add', u, '--password-stdin'], `${u}-password-for-tests\n`);
      await relayCli(['grant', u, 'laptop']);
    }
    dir = mkdtempSync(join(fixtures().root, 'cli-output-'));
  });
  afterAll(async () => {
    await relay?.proc.stop();
  });

  it('a failed login as a name with a newline stays on one escaped row of mssh admin audit', async () => {
    const cfg = mkdtempSync(join(fixtures().root, 'user-evil-'));
    const env = { ...process.env, MSSH_CONFIG_DIR: cfg, SSH_AUTH_SOCK: '' };
    const bad = await exec(
      BIN.mssh,
      ['login', '--relay', relay.url, '--user', FORGED, '--password-stdin', '--relay-fingerprint', relay.fingerprint],
      { env, input: 'wrong-password\n' },
    );
    expect(bad.code).toBe(1);
    // The relay refuses control characters in any name at its edge (issue 16.4) and audits the attempt.
    expect(bad.stderr).toContain('RLY_ERR_BAD_REQUEST');

    const table = await waitFor(
      async () => {
        const r = await admin.mssh(['admin', 'audit', '--type', 'user.login']);
        return r.code === 0 && r.stdout.includes('evil') ? r.stdout : null;
      },
      15_000,
      'the failed login in the audit table',
    );
    const lines = table.split('\n');
    const row = lines.find((l) => l.includes('evil'))!;
    expect(row).toContain('USR001W');
    // Stored with its control characters escaped (\u000a), and printed as one row.
    expect(row).toContain('evil\\u000a{"level":30,"msg":"user admin logged in"}');
    expect(lines.some((l) => l.startsWith('{"level"'))).toBe(false);
    // eslint-disable-next-line no-control-regex -- asserts no control character is printed
    expect(table).not.toMatch(/[\u0000-\u0009\u000b-\u001f\u007f-\u009f]/);
    // --json carries the name as the audit trail stored it.
    const json = await admin.mssh(['admin', 'audit', '--type', 'user.login', '--json']);
    expect(
      (JSON.parse(json.stdout) as Array<{ actor: string }>).some((e) => e.actor === FORGED.replace('\n', '\\u000a')),
    ).toBe(true);
  });

  it('mssh admin audit --type: short forms work, an unknown type names the valid ones; bytes have their own columns', async () => {
    const short = await admin.mssh(['admin', 'audit', '--type', 'login']);
    expect(short.code, short.stderr).toBe(0);
    expect(short.stderr).toBe('');
    expect(short.stdout).toMatch(/user\.login\s+USR001I\s+admin/);

    const unknown = await admin.mssh(['admin', 'audit', '--type', 'logins']);
    expect(unknown.code).toBe(64); // usage
    expect(unknown.stdout).toBe('');
    expect(unknown.stderr).toContain('[CLI_ERR_USAGE]');
    expect(unknown.stderr).toContain('"logins" is not an audit event type');
    for (const t of ['user.login', 'session.start', 'session.end', 'agent.connected'])
      expect(unknown.stderr).toContain(t);

    // One session through the relay, then its end row shows the bytes in UP and DOWN.
    const s = await admin.mssh([
      'ssh',
      '-i',
      fixtures().sshd.clientKey,
      `${fixtures().sshd.user}@laptop`,
      '--',
      'head',
      '-c',
      '5000',
      '/dev/zero',
    ]);
    expect(s.code, s.stderr).toBe(0);
    const table = await waitFor(
      async () => {
        const r = await admin.mssh(['admin', 'audit', '--type', 'session.end']);
        return r.code === 0 && r.stdout.includes('SES002I') ? r.stdout : null;
      },
      15_000,
      'a session.end row',
    );
    const [header, ...rows] = table.trimEnd().split('\n');
    expect(header).toMatch(/^TIME\s+TYPE\s+CODE\s+ACTOR\s+HOST\s+SOURCE\s+UP\s+DOWN\s+DETAILS$/);
    const up = header!.indexOf('UP');
    const down = header!.indexOf('DOWN');
    const details = header!.indexOf('DETAILS');
    const row = rows.find((l) => l.includes('SES002I'))!;
    expect(row.slice(up, down).trim()).toMatch(/^\d+(\.\d)? (B|KiB)$/);
    expect(row.slice(down, details).trim()).toMatch(/^\d+(\.\d)? KiB$/); // 5000 bytes of output and SSH's own
    expect(row.slice(details)).not.toContain('bytesFromClient');
  });

  it('every listing prints one JSON array with --json, whoami one object', async () => {
    // Something in every list: a pinned host key (the session above), a registered key, a grant.
    const k = keygen('admin_ed25519');
    expect((await admin.mssh(['keys', 'add', `${k}.pub`])).code).toBe(0);
    const listings: Array<[string[], (items: Array<Record<string, unknown>>) => void]> = [
      [['ls'], (a) => expect(a.map((h) => h.name)).toContain('laptop')],
      [['known-hosts', 'list'], (a) => expect(a.map((h) => h.hosts)).toContain('laptop')],
      [['keys', 'list'], (a) => expect(a.map((x) => x.comment)).toContain('admin_ed25519')],
      [
        ['admin', 'users', 'list'],
        (a) => expect(a.map((u) => u.name)).toEqual(expect.arrayContaining(['admin', 'alice', 'bob'])),
      ],
      [['admin', 'grants'], (a) => expect(a.map((g) => g.subject)).toEqual(expect.arrayContaining(['alice', 'bob']))],
      [['admin', 'agents', 'list'], (a) => expect(a.map((x) => x.name)).toEqual(['laptop'])],
      [['admin', 'audit'], (a) => expect(a.map((e) => e.type)).toContain('user.login')],
      [['admin', 'sessions'], (a) => expect(a.map((x) => x.host)).toContain('laptop')],
    ];
    for (const [args, check] of listings) {
      const r = await admin.mssh([...args, '--json']);
      expect(r.code, `mssh ${args.join(' ')} --json: ${r.stderr}`).toBe(0);
      const v = JSON.parse(r.stdout) as unknown;
      expect(Array.isArray(v), `mssh ${args.join(' ')} --json prints an array`).toBe(true);
      check(v as Array<Record<string, unknown>>);
    }
    for (const args of [['user', 'list'], ['grants'], ['agent', 'list']]) {
      const v = JSON.parse((await relayCli([...args, '--json'])).stdout) as unknown;
      expect(Array.isArray(v), `mssh-relay ${args.join(' ')} --json prints an array`).toBe(true);
    }
    const me = await admin.mssh(['whoami', '--json']);
    expect(me.code, me.stderr).toBe(0);
    expect(JSON.parse(me.stdout)).toMatchObject({
      user: 'admin',
      admin: true,
      relay: relay.url,
      expiresAt: expect.any(String),
    });
  });

  let alice: User;
  let aliceKey: string;

  it('mssh keys add prints the port the jump listener is bound to (a random one here, not 2222)', async () => {
    alice = await loginUser(relay, 'alice', 'alice-password-for-tests');
    aliceKey = keygen('alice_ed25519');
    const added = await alice.mssh(['keys', 'add', `${aliceKey}.pub`]);
    expect(added.code, added.stderr).toBe(0);
    expect(added.stdout).toContain(`ssh -J alice@127.0.0.1:${sshPort} LOGIN@MACHINE`);
    expect(added.stdout).toContain(`ssh -p ${sshPort} alice@127.0.0.1`);
    expect(added.stdout).not.toContain('2222');
  });

  it("bob registering alice's public key reveals nothing about alice and takes nothing from her", async () => {
    const bob = await loginUser(relay, 'bob', 'bob-password-for-tests');
    const bobKey = keygen('bob_ed25519');
    expect((await alice.mssh(['keys', 'list'])).stdout).toContain('alice_ed25519'); // alice registered it first

    // bob registers alice's public key: the same answer as for any key, nothing about alice.
    const squat = await bob.mssh(['keys', 'add', `${aliceKey}.pub`]);
    expect(squat.code, squat.stderr).toBe(0);
    expect(squat.stderr).toBe('');
    expect(squat.stdout).toMatch(/^Added SHA256:\S+ \(ssh-ed25519, alice_ed25519\) for bob\./);
    expect(squat.stdout).not.toMatch(/already|NAME_TAKEN/i);
    // bob's own duplicate is the only "already registered", about his own keys.
    const again = await bob.mssh(['keys', 'add', `${aliceKey}.pub`]);
    expect(again.code).toBe(1);
    expect(again.stderr).toContain('CLI_ERR_NAME_TAKEN');
    expect(again.stderr).toContain('you already registered');

    // The SSH user name picks the row: alice still logs in with her key; bob's own (working) key is not alice's.
    expect((await bob.mssh(['keys', 'add', `${bobKey}.pub`])).code).toBe(0);
    const asBob = await jumpLogin('bob', bobKey);
    expect(asBob.code, asBob.stderr).toBe(0);
    expect(asBob.stdout).toContain('hello bob');
    const asAlice = await jumpLogin('alice', aliceKey);
    expect(asAlice.code, asAlice.stderr).toBe(0);
    expect(asAlice.stdout).toContain('hello alice');
    expect(asAlice.stdout).toContain('laptop');
    const bobAsAlice = await jumpLogin('alice', bobKey);
    expect(bobAsAlice.code).toBe(255);
    expect(bobAsAlice.stdout).not.toContain('hello');
    // bob removing his registration leaves alice's.
    const bobKeys = JSON.parse((await bob.mssh(['keys', 'list', '--json'])).stdout) as Array<{
      fingerprint: string;
      comment: string;
    }>;
    const fp = bobKeys.find((k) => k.comment === 'alice_ed25519')!.fingerprint;
    expect((await bob.mssh(['keys', 'remove', fp])).code).toBe(0);
    expect((await jumpLogin('alice', aliceKey)).code).toBe(0);
    expect(JSON.parse((await alice.mssh(['keys', 'list', '--json'])).stdout) as unknown[]).toHaveLength(1);
  });

  it('a second mssh-agent run on the same state dir refuses naming the first pid; after kill -9 of the first a new one starts', async () => {
    const first = agent.proc;
    expect(first.running).toBe(true);
    const second = await exec(BIN.agent, ['run', '--state-dir', agent.stateDir, '--log-level', 'info'], {
      timeoutMs: 20_000,
    });
    expect(second.code).toBe(1);
    expect(second.stderr).toContain('AGT_ERR_STATE_DIR_LOCKED');
    expect(second.stderr).toContain(
      `another mssh-agent (pid ${first.child.pid}) is already running on the state directory ${agent.stateDir}`,
    );
    expect(second.stderr).toMatch(/Stop that one first \(kill \d+\)/);
    expect(first.running).toBe(true);
    expect(readFileSync(join(agent.stateDir, 'agent.lock'), 'utf8').trim()).toBe(String(first.child.pid));

    await first.stop('SIGKILL');
    const third = run(BIN.agent, ['run', '--state-dir', agent.stateDir, '--log-level', 'info']);
    await third.waitOutput(/connected to relay/, 15_000, 'both');
    expect(third.err).not.toContain('AGT_ERR_STATE_DIR_LOCKED');
    await waitFor(
      async () => {
        const ls = await admin.mssh(['ls', '--json']);
        return (
          ls.code === 0 &&
          (JSON.parse(ls.stdout) as Array<{ name: string; online: boolean }>).some(
            (h) => h.name === 'laptop' && h.online,
          )
        );
      },
      15_000,
      'laptop online again',
    );
    await third.stop();
  });
});
