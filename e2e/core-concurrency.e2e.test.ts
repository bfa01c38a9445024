/**
 * Issue 2: many sessions share ONE agent connection; ending or kill -9'ing one client leaves the others
 * running and intact (the old prototype collapsed the whole tunnel when one forward ended).
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createHash, randomBytes } from 'node:crypto';
import type http2 from 'node:http2';
import { fixtures } from './fixtures/inject.js';
import {
  startRelay,
  startAgent,
  loginUser,
  stopAll,
  BIN,
  run,
  type Relay,
  type Agent,
  type User,
} from './fixtures/stack.js';
import { adminSession, openTunnel, sshExec, readKey, tcpConnectionsTo } from './fixtures/tunnel-client.js';
import { waitFor } from './fixtures/net.js';
import type ssh2 from 'ssh2';

afterAll(stopAll);

interface Sess {
  client: ssh2.Client;
  channel: ssh2.ClientChannel;
  received: Buffer[];
  closed: boolean;
}

/** Write `payload` to a `cat` session and wait until exactly it came back. */
async function echo(s: Sess, payload: Buffer, timeoutMs = 30_000): Promise<void> {
  s.received.length = 0;
  s.channel.write(payload);
  await waitFor(() => Buffer.concat(s.received).length >= payload.length || s.closed, timeoutMs, 'echo');
  const got = Buffer.concat(s.received);
  expect(createHash('sha256').update(got).digest('hex')).toBe(createHash('sha256').update(payload).digest('hex'));
}

describe('50 concurrent sessions over one agent connection', () => {
  let relay: Relay;
  let agent: Agent;
  let user: User;
  let h2: http2.ClientHttp2Session;
  let token: string;
  const sessions: Sess[] = [];

  beforeAll(async () => {
    relay = await startRelay('pglite');
    agent = await startAgent(relay, 'laptop');
    user = await loginUser(relay);
    ({ h2, token } = await adminSession(relay));
  });
  afterAll(async () => {
    for (const s of sessions) s.client.end();
    h2?.close();
    await relay?.proc.stop();
  });

  it('opens 49 in-process sessions and 1 `mssh ssh` process, all working, while the agent holds exactly one connection', async () => {
    const f = fixtures();
    const key = readKey(f.sshd.clientKey);
    const t0 = Date.now();
    const opened = await Promise.all(
      Array.from({ length: 49 }, async () => {
        const sock = await openTunnel(h2, token, 'laptop');
        const { client, channel } = await sshExec(sock, { user: f.sshd.user, privateKey: key, command: 'cat' });
        const s: Sess = { client, channel, received: [], closed: false };
        channel.on('data', (d: Buffer) => s.received.push(d));
        channel.on('close', () => (s.closed = true));
        return s;
      }),
    );
    sessions.push(...opened);
    console.log(`[figure] 49 concurrent ssh sessions through the relay up in ${Date.now() - t0} ms`);

    const proc = run(BIN.mssh, ['ssh', '-i', f.sshd.clientKey, `${f.sshd.user}@laptop`, '--', 'cat'], {
      env: user.env,
    });
    proc.child.stdin!.write('marker-from-process\n');
    await proc.waitOutput(/marker-from-process/, 20_000, 'out');

    await Promise.all(sessions.map((s) => echo(s, randomBytes(64 * 1024))));
    expect(tcpConnectionsTo(agent.proc.child.pid!, relay.port)).toBe(1);
    expect(sessions.every((s) => !s.closed)).toBe(true);

    // kill -9 the process client, end one in-process session cleanly: the other 48 keep working.
    proc.child.kill('SIGKILL');
    await proc.exited;
    const ended = sessions.shift()!;
    ended.channel.end();
    ended.client.end();
    await waitFor(() => ended.closed, 10_000, 'ended session to close');

    await Promise.all(sessions.map((s) => echo(s, randomBytes(256 * 1024))));
    expect(sessions.length).toBe(48);
    expect(sessions.every((s) => !s.closed)).toBe(true);
    expect(tcpConnectionsTo(agent.proc.child.pid!, relay.port)).toBe(1);
  });
});
