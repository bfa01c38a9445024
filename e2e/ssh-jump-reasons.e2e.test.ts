/**
 * Issue 17.10: the SSH jump listener says why, with the relay's code, where stock OpenSSH shows it:
 *
 *   - a jump to a machine the user may not reach: `open failed: administratively prohibited:
 *     RLY_ERR_NO_GRANT: ...` (was `open failed: connect failed: ` with nothing after it); a port other
 *     than 22: RLY_ERR_BAD_REQUEST; an enrolled machine whose agent is offline: RLY_ERR_AGENT_OFFLINE;
 *   - during a database outage: `Received disconnect ...: RLY_ERR_DATABASE_UNAVAILABLE: ...` (was only
 *     `Connection closed`), as the HTTPS doors say.
 *
 * A private Postgres cluster (the shared one must never be stopped), real `ssh -J` / `ssh -W`.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fixtures } from './fixtures/inject.js';
import { runCommand } from './fixtures/files.js';
import { freePort, waitFor } from './fixtures/net.js';
import { startPrivatePostgres, type PrivatePostgres } from './fixtures/private-postgres.js';
import { loginUser, startAgent, startRelay, stopAll, type Relay } from './fixtures/stack.js';

afterAll(stopAll);

const ALICE_PASSWORD = 'alice-password-for-tests';

describe('SSH jump listener: refusals carry the relay code', () => {
  let pg: PrivatePostgres;
  let relay: Relay;
  let sshPort: number;
  let cfg: string;

  const ssh = (args: string[]) =>
    runCommand('ssh', ['-F', cfg, ...args], { env: { ...process.env, SSH_AUTH_SOCK: '' }, timeoutMs: 30_000 });
  const jump = () => `alice@127.0.0.1:${sshPort}`;

  beforeAll(async () => {
    const f = fixtures();
    pg = await startPrivatePostgres();
    sshPort = await freePort();
    relay = await startRelay('postgres', ['--ssh-listen', `127.0.0.1:${sshPort}`], { databaseUrl: pg.url });
    await startAgent(relay, 'laptop');
    await startAgent(relay, 'vault'); // online, no grant for alice
    await startAgent(relay, 'desktop', { start: false }); // granted, agent offline
    const add = await relay.cli(['user', 'add', 'alice', '--password-stdin'], `${ALICE_PASSWORD}\n`);
    expect(add.code, add.stderr).toBe(0);
    for (const host of ['laptop', 'desktop']) expect((await relay.cli(['grant', 'alice', host])).code).toBe(0);
    const alice = await loginUser(relay, 'alice', ALICE_PASSWORD);
    const dir = mkdtempSync(join(f.root, 'jump-reasons-'));
    const key = join(dir, 'alice_ed25519');
    execFileSync('/usr/bin/ssh-keygen', ['-q', '-t', 'ed25519', '-N', '', '-f', key]);
    const r = await alice.mssh(['keys', 'add', `${key}.pub`]);
    expect(r.code, r.stderr).toBe(0);
    const relayKey = readFileSync(join(relay.dataDir, 'ssh', 'ssh_host_ed25519_key.pub'), 'utf8')
      .trim()
      .split(/\s+/)
      .slice(0, 2)
      .join(' ');
    writeFileSync(
      join(dir, 'known_hosts'),
      [
        `[127.0.0.1]:${sshPort} ${relayKey}`,
        ...['laptop', 'vault', 'desktop'].flatMap((h) => f.sshd.hostKeys.map((k) => `${h} ${k}`)),
        '',
      ].join('\n'),
    );
    cfg = join(dir, 'ssh_config');
    writeFileSync(
      cfg,
      [
        'Host 127.0.0.1',
        `    IdentityFile ${key}`,
        'Host laptop vault desktop',
        `    IdentityFile ${f.sshd.clientKey}`,
        'Host *',
        `    UserKnownHostsFile ${join(dir, 'known_hosts')}`,
        '    GlobalKnownHostsFile /dev/null',
        '    StrictHostKeyChecking yes',
        // LogLevel stays at OpenSSH's default (INFO), as users have it: `open failed` is logged at INFO.
        '    IdentitiesOnly yes',
        '    BatchMode yes',
        '    ConnectTimeout 20',
        '',
      ].join('\n'),
    );
  }, 180_000);
  afterAll(async () => {
    await stopAll();
    pg?.remove();
  });

  it('a machine without a grant, a wrong port and an offline agent are refused with the code and the reason', async () => {
    const f = fixtures();
    const ok = await ssh(['-J', jump(), `${f.sshd.user}@laptop`, 'echo', 'ok']);
    expect(ok.stdout, ok.stderr).toBe('ok\n');

    const denied = await ssh(['-J', jump(), `${f.sshd.user}@vault`, 'true']);
    expect(denied.code).toBe(255);
    expect(denied.stderr).toMatch(
      /open failed: administratively prohibited: RLY_ERR_NO_GRANT: you have no grant for a machine named vault/,
    );
    expect(denied.stderr).toContain('mssh admin grant alice vault');

    const port = await ssh(['-W', 'laptop:80', '-p', String(sshPort), 'alice@127.0.0.1']);
    expect(port.code).toBe(255);
    expect(port.stderr).toMatch(/open failed: administratively prohibited: RLY_ERR_BAD_REQUEST: port 80/);

    const offline = await ssh(['-J', jump(), `${f.sshd.user}@desktop`, 'true']);
    expect(offline.code).toBe(255);
    expect(offline.stderr).toMatch(
      /open failed: connect failed: RLY_ERR_AGENT_OFFLINE: desktop is enrolled but its agent is not connected/,
    );
  });

  it(
    'during a database outage the jump listener says RLY_ERR_DATABASE_UNAVAILABLE, and works again afterwards',
    { timeout: 90_000 },
    async () => {
      const f = fixtures();
      pg.stop();
      try {
        const r = await ssh(['-J', jump(), `${f.sshd.user}@laptop`, 'true']);
        expect(r.code).toBe(255);
        expect(r.stderr).toMatch(/RLY_ERR_DATABASE_UNAVAILABLE: the relay's database is unavailable/);
      } finally {
        pg.start();
      }
      await waitFor(
        async () => {
          const r = await ssh(['-J', jump(), `${f.sshd.user}@laptop`, 'echo', 'back']);
          return r.stdout === 'back\n' || null;
        },
        60_000,
        'jump sessions to work again once the database is back',
        1_000,
      );
    },
  );
});
