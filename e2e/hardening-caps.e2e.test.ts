/**
 * Issue 3, caps and protocol versions through the real relay, agent and sshd: --max-sessions-per-user
 * refuses the 4th session at once with its code while the first three keep working; --max-agents
 * refuses an agent beyond the cap; --min-protocol-version refuses old agents and clients with a message
 * each prints.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createHash, randomBytes } from 'node:crypto';
import type http2 from 'node:http2';
import { PATHS } from '@mssh/protocol';
import { fixtures } from './fixtures/inject.js';
import {
  adminAuditEvents,
  startRelay,
  startAgent,
  stopAll,
  run,
  exec,
  loginUser,
  sshArgs,
  BIN,
  ADMIN_PASSWORD,
  type Relay,
} from './fixtures/stack.js';
import { adminSession, login, openTunnel, sshExec, readKey } from './fixtures/tunnel-client.js';
import { h2From, rawRequest } from './fixtures/h2-raw.js';
import { waitFor } from './fixtures/net.js';
import type ssh2 from 'ssh2';

afterAll(stopAll);

interface Sess {
  client: ssh2.Client;
  channel: ssh2.ClientChannel;
  received: Buffer[];
  closed: boolean;
}

async function catSession(h2: http2.ClientHttp2Session, token: string, host: string): Promise<Sess> {
  const f = fixtures();
  const sock = await openTunnel(h2, token, host);
  const { client, channel } = await sshExec(sock, {
    user: f.sshd.user,
    privateKey: readKey(f.sshd.clientKey),
    command: 'cat',
  });
  const s: Sess = { client, channel, received: [], closed: false };
  channel.on('data', (d: Buffer) => s.received.push(d));
  channel.on('close', () => (s.closed = true));
  return s;
}

async function echo(s: Sess, payload: Buffer): Promise<void> {
  s.received.length = 0;
  s.channel.write(payload);
  await waitFor(() => Buffer.concat(s.received).length >= payload.length || s.closed, 20_000, 'echo');
  expect(createHash('sha256').update(Buffer.concat(s.received)).digest('hex')).toBe(
    createHash('sha256').update(payload).digest('hex'),
  );
}

describe('session and agent caps', () => {
  let relay: Relay;
  let h2: http2.ClientHttp2Session;
  let token: string;
  const sessions: Sess[] = [];

  beforeAll(async () => {
    relay = await startRelay('pglite', ['--max-sessions-per-user', '3', '--max-agents', '1']);
    await startAgent(relay, 'laptop');
    ({ h2, token } = await adminSession(relay));
  });
  afterAll(async () => {
    for (const s of sessions) s.client.end();
    h2?.close();
    await relay?.proc.stop();
  });

  it('with --max-sessions-per-user 3 the 4th session is refused at once with the code; the first three keep working', async () => {
    for (let i = 0; i < 3; i++) sessions.push(await catSession(h2, token, 'laptop'));
    const refused = await openTunnel(h2, token, 'laptop').then(
      () => null,
      (e: { status: number; body: { message: string } }) => e,
    );
    expect(refused).not.toBeNull();
    expect(refused!.status).toBe(429);
    expect(refused!.body).toMatchObject({ statusCode: 429, code: 'RLY_ERR_USER_SESSION_LIMIT' });
    expect(refused!.body.message).toContain('--max-sessions-per-user');
    for (const s of sessions) await echo(s, randomBytes(32 * 1024));
    expect(sessions.every((s) => !s.closed)).toBe(true);
    // The mssh client says which limit and what to do.
    const user = await loginUser(relay);
    const cli = await user.mssh(sshArgs('laptop').concat(['--', 'true']), { timeoutMs: 30_000 });
    expect(cli.code).toBe(255);
    expect(cli.stderr).toMatch(/CLI_ERR_RELAY_LIMIT/);
    expect(cli.stderr).toMatch(/RLY_ERR_USER_SESSION_LIMIT/);
    expect(cli.stderr).toMatch(/Close one of your sessions/);
    for (const s of sessions) await echo(s, randomBytes(1024));
    // Both refusals are audited as session.denied (reason cap), and neither left a session.start behind.
    const events = await adminAuditEvents(user, ['--type', 'session.*']);
    expect(events.filter((e) => e.type === 'session.start')).toHaveLength(3);
    const denied = events.filter((e) => e.type === 'session.denied');
    expect(denied).toHaveLength(2);
    expect(denied.every((e) => e.details.reason === 'cap' && e.details.code === 'RLY_ERR_USER_SESSION_LIMIT')).toBe(
      true,
    );

    // Another user is not affected by admin's cap.
    const add = await relay.cli(['user', 'add', 'bob', '--password-stdin'], 'bob-long-password\n');
    expect(add.code, add.stderr).toBe(0);
    const grant = await relay.cli(['grant', 'bob', 'laptop']); // non-admins reach nothing until granted
    expect(grant.code, grant.stderr).toBe(0);
    const bob = await catSession(h2, await login(h2, 'bob', 'bob-long-password'), 'laptop');
    await echo(bob, randomBytes(1024));
    bob.client.end();

    // Ending one frees its slot.
    const first = sessions.shift()!;
    first.client.end();
    await waitFor(() => first.closed, 10_000, 'first session to close');
    const again = await waitFor(() => catSession(h2, token, 'laptop').catch(() => null), 10_000, 'a slot to free up');
    sessions.push(again);
    await echo(again, randomBytes(1024));
    for (const s of sessions) await echo(s, randomBytes(1024));
  });

  it('with --max-agents 1 a second agent is refused (and keeps retrying) while the first stays online', async () => {
    const second = await startAgent(relay, 'desktop', { start: false });
    second.proc = run(BIN.agent, ['run', '--state-dir', second.stateDir, '--log-level', 'info']);
    await second.proc.waitOutput(/RLY_ERR_AGENT_LIMIT/, 20_000, 'err');
    expect(second.proc.running).toBe(true); // not permanent: it retries with back-off
    const hosts = await rawRequest(h2, { ':method': 'GET', ':path': PATHS.hosts, authorization: `Bearer ${token}` });
    const online = (hosts.body.hosts as Array<{ name: string; online: boolean }>)
      .filter((h) => h.online)
      .map((h) => h.name);
    expect(online).toEqual(['laptop']);
    await second.proc.stop();
  });
});

describe('protocol floor (--min-protocol-version)', () => {
  let relay: Relay;
  afterAll(async () => {
    await relay?.proc.stop();
  });

  it('an agent below the floor is refused for good and prints why; so is the mssh client; requests without a version are served', async () => {
    relay = await startRelay('pglite');
    const agent = await startAgent(relay, 'oldie');
    // The same relay again, now refusing protocol 1 (what this build speaks).
    await relay.proc.stop();
    const args = [
      'serve',
      '--listen',
      `127.0.0.1:${relay.port}`,
      '--data-dir',
      relay.dataDir,
      '--log-level',
      'info',
      '--min-protocol-version',
      '2',
    ];
    relay.proc = run(BIN.relay, args, { env: { ...process.env, DATABASE_URL: '' } });
    await relay.proc.waitOutput(/mssh-relay listening on/, 30_000, 'out');

    await agent.proc.waitOutput(/RLY_ERR_PROTOCOL_TOO_OLD/, 30_000, 'err');
    expect(
      await Promise.race([agent.proc.exited, new Promise((r) => setTimeout(() => r('still running'), 10_000))]),
    ).toBe(78);
    expect(agent.proc.err).toMatch(/agent protocol 1 is older than the relay accepts \(2\); upgrade mssh-agent/);
    expect(agent.proc.err).toMatch(/Upgrade mssh-agent/);

    const f = fixtures();
    const r = await exec(
      BIN.mssh,
      ['login', '--relay', relay.url, '--user', 'admin', '--password-stdin', '--relay-fingerprint', relay.fingerprint],
      {
        env: { ...process.env, MSSH_CONFIG_DIR: `${f.root}/floor-client-${Date.now()}` },
        input: `${ADMIN_PASSWORD}\n`,
      },
    );
    expect(r.code).not.toBe(0);
    expect(r.stderr).toMatch(/CLI_ERR_PROTOCOL_TOO_OLD|newer mssh/);

    const h2 = await h2From(relay);
    try {
      const old = await rawRequest(h2, {
        ':method': 'GET',
        ':path': PATHS.healthz,
        'x-mssh-protocol': '1',
        'x-mssh-version': '0.1.0',
      });
      expect(old.status).toBe(426);
      expect(old.body).toMatchObject({ code: 'RLY_ERR_PROTOCOL_TOO_OLD' });
      expect(old.body.message).toMatch(/protocol 1 .*accepts 2 or newer: upgrade mssh/);
      expect((await rawRequest(h2, { ':method': 'GET', ':path': PATHS.healthz, 'x-mssh-protocol': '2' })).status).toBe(
        200,
      );
      expect((await rawRequest(h2, { ':method': 'GET', ':path': PATHS.healthz })).status).toBe(200);
      expect(
        (await rawRequest(h2, { ':method': 'GET', ':path': PATHS.healthz, 'x-mssh-protocol': 'banana' })).status,
      ).toBe(400);
    } finally {
      h2.close();
    }
  });
});
