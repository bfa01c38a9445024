/**
 * Issue 17.4: the SSH server behind an agent gets new host keys while the agent keeps running.
 *
 *   - `mssh ssh` refuses with CLI_ERR_HOST_KEY_CHANGED and names `mssh known-hosts forget laptop`;
 *   - OpenSSH through the `mssh config ssh` block refuses too: `mssh proxy` sends CLI_ERR_HOST_KEY_CHANGED
 *     and that same mssh command in an SSH disconnect message, which OpenSSH prints (instead of only
 *     OpenSSH's `ssh-keygen -R` advice); and an older block's KnownHostsCommand (`mssh known-hosts
 *     openssh %H %t %K`) still refuses with the fix on stderr;
 *   - after `mssh known-hosts forget laptop`, `mssh ssh` works again within a bounded time WITHOUT
 *     restarting the agent: the client's refusal of an unattested key makes the relay ask the agent to
 *     rescan (rate-limited there), and the new attested key is pinned; OpenSSH then works as well.
 *
 * Its own sshd (the shared one must keep its keys), restarted on the same port with new host keys.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fixtures } from './fixtures/inject.js';
import { runCommand } from './fixtures/files.js';
import { waitFor } from './fixtures/net.js';
import { startSshd } from './fixtures/sshd.js';
import { loginUser, startAgent, startRelay, stopAll, type Agent, type Relay, type User } from './fixtures/stack.js';

afterAll(stopAll);

type Sshd = Awaited<ReturnType<typeof startSshd>>;

describe('a target whose host keys change while its agent runs', () => {
  let sshd: Sshd;
  let sshdDir: string;
  let relay: Relay;
  let agent: Agent;
  let admin: User;
  let cfg: string;

  const msshSsh = (word: string) =>
    admin.mssh(['ssh', '-i', sshd.clientKey, `${sshd.user}@laptop`, '--', 'echo', word], { timeoutMs: 60_000 });
  let olderCfg: string;
  const openssh = (word: string, config = cfg) =>
    runCommand(
      'ssh',
      [
        '-F',
        config,
        '-o',
        'BatchMode=yes',
        '-o',
        'IdentitiesOnly=yes',
        '-i',
        sshd.clientKey,
        `${sshd.user}@laptop.mssh`,
        'echo',
        word,
      ],
      { env: { ...admin.env }, timeoutMs: 60_000 },
    );
  const pinnedLines = () =>
    readFileSync(join(admin.configDir, 'known_hosts'), 'utf8')
      .split('\n')
      .filter((l) => l.startsWith('laptop '));

  beforeAll(async () => {
    sshdDir = mkdtempSync(join(fixtures().root, 'sshd-rekey-'));
    sshd = await startSshd({ dir: sshdDir });
    relay = await startRelay('pglite');
    agent = await startAgent(relay, 'laptop', { target: `127.0.0.1:${sshd.port}` });
    admin = await loginUser(relay);
    const block = await admin.mssh(['config', 'ssh']);
    expect(block.code, block.stderr).toBe(0);
    cfg = join(admin.configDir, 'ssh_config');
    writeFileSync(cfg, block.stdout);
    // The block of an mssh before issue 21 item 5: a KnownHostsCommand beside the proxy.
    const mssh = /ProxyCommand (.*) proxy /.exec(block.stdout)![1]!;
    olderCfg = join(admin.configDir, 'ssh_config_older');
    writeFileSync(
      olderCfg,
      [
        'Host *.mssh',
        `    ProxyCommand ${mssh} proxy %n`,
        `    KnownHostsCommand ${mssh} known-hosts openssh %H %t %K`,
        '    UserKnownHostsFile /dev/null',
        '    GlobalKnownHostsFile /dev/null',
        '    StrictHostKeyChecking yes',
        '    HostKeyAlgorithms ^ssh-ed25519',
        '',
      ].join('\n'),
    );
  }, 120_000);
  afterAll(async () => {
    await relay?.proc.stop();
    await sshd?.stop();
  });

  it(
    'refuses the changed key with the mssh fix on both paths, and after forget connects without an agent restart',
    { timeout: 180_000 },
    async () => {
      const first = await msshSsh('one');
      expect(first.stdout, first.stderr).toBe('one\n');
      expect(pinnedLines().map((l) => l.split(' ').slice(1).join(' '))).toEqual([expect.toBeOneOf(sshd.hostKeys)]);
      const viaOpenssh = await openssh('one');
      expect(viaOpenssh.stdout, viaOpenssh.stderr).toBe('one\n');
      const agentPid = agent.proc.child.pid;

      // New host keys for the SSH server, same port; the agent keeps running.
      const oldKeys = sshd.hostKeys;
      await sshd.stop();
      sshd = await startSshd({ dir: sshdDir, port: sshd.port });
      expect(sshd.hostKeys.some((k) => oldKeys.includes(k))).toBe(false);

      const refused = await msshSsh('two');
      expect(refused.code).toBe(255);
      expect(refused.stdout).toBe('');
      expect(refused.stderr).toContain('CLI_ERR_HOST_KEY_CHANGED');
      expect(refused.stderr).toContain('mssh known-hosts forget laptop');

      const refusedOpenssh = await openssh('two');
      expect(refusedOpenssh.code).toBe(255);
      expect(refusedOpenssh.stdout).toBe('');
      expect(refusedOpenssh.stderr).toMatch(/Received disconnect .*mssh: CLI_ERR_HOST_KEY_CHANGED/);
      expect(refusedOpenssh.stderr).toContain('mssh known-hosts forget laptop');
      // A block written by an older mssh (KnownHostsCommand, no known hosts file of the proxy's) too.
      const older = await openssh('two', olderCfg);
      expect(older.code).toBe(255);
      expect(older.stderr).toMatch(/Host key verification failed/);
      expect(older.stderr).toContain('CLI_ERR_HOST_KEY_CHANGED');
      expect(older.stderr).toContain('mssh known-hosts forget laptop');
      // The pinned key still wins: nothing was replaced by the refusals.
      expect(pinnedLines().map((l) => l.split(' ').slice(1).join(' '))).toEqual([expect.toBeOneOf(oldKeys)]);

      const forget = await admin.mssh(['known-hosts', 'forget', 'laptop']);
      expect(forget.code, forget.stderr).toBe(0);

      // Bounded: the agent rescans at most every 10 s, so a retry may be needed; no restart, no yes/no.
      const t0 = Date.now();
      const ok = await waitFor(
        async () => {
          const r = await msshSsh('three');
          return r.code === 0 ? r : null;
        },
        40_000,
        'mssh ssh to work again after forget',
        2_000,
      );
      expect(ok.stdout).toBe('three\n');
      expect(Date.now() - t0).toBeLessThan(40_000);
      expect(agent.proc.running).toBe(true);
      expect(agent.proc.child.pid).toBe(agentPid);
      expect(pinnedLines().map((l) => l.split(' ').slice(1).join(' '))).toEqual([expect.toBeOneOf(sshd.hostKeys)]);
      const after = await openssh('four');
      expect(after.stdout, after.stderr).toBe('four\n');
    },
  );
});
