/**
 * Issue 3: an agent that stops answering (SIGSTOP: its kernel still ACKs TCP, the process answers no
 * HTTP/2 PING) is evicted within 15 s; its sessions end with the reason agent_unresponsive, and a new
 * session attempt fails at once (503 RLY_ERR_AGENT_OFFLINE) instead of waiting for the agent.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type http2 from 'node:http2';
import { PATHS } from '@mssh/protocol';
import { fixtures } from './fixtures/inject.js';
import {
  startRelay,
  startAgent,
  stopAll,
  loginUser,
  sshArgs,
  run,
  BIN,
  type Relay,
  type Agent,
} from './fixtures/stack.js';
import { adminSession, openTunnel, sshExec, readKey } from './fixtures/tunnel-client.js';
import { rawRequest } from './fixtures/h2-raw.js';
import { waitFor } from './fixtures/net.js';

afterAll(stopAll);

describe('unresponsive agent eviction', () => {
  let relay: Relay;
  let agent: Agent;
  let h2: http2.ClientHttp2Session;
  let token: string;

  beforeAll(async () => {
    relay = await startRelay('pglite');
    agent = await startAgent(relay, 'frozen');
    ({ h2, token } = await adminSession(relay));
  });
  afterAll(async () => {
    if (agent?.proc?.running) {
      agent.proc.child.kill('SIGCONT');
      await agent.proc.stop();
    }
    h2?.close();
    await relay?.proc.stop();
  });

  const online = async () => {
    const r = await rawRequest(h2, {
      ':method': 'GET',
      ':path': PATHS.host('frozen'),
      authorization: `Bearer ${token}`,
    });
    return r.body.online as boolean;
  };

  it('a SIGSTOPped agent is evicted within 15 s; its session ends with a reason; a new attempt fails within 5 s', async () => {
    const f = fixtures();
    const sock = await openTunnel(h2, token, 'frozen');
    const { client, channel } = await sshExec(sock, {
      user: f.sshd.user,
      privateKey: readKey(f.sshd.clientKey),
      command: 'cat',
    });
    let sessionClosed = false;
    channel.on('close', () => (sessionClosed = true));
    client.on('close', () => (sessionClosed = true));
    sock.on('close', () => (sessionClosed = true));
    client.on('error', () => {});
    sock.on('error', () => {});
    expect(await online()).toBe(true);
    // And a user's own `mssh ssh`, which must end with an error that says what happened.
    const user = await loginUser(relay);
    const cli = run(BIN.mssh, [...sshArgs('frozen'), '--', 'echo started; sleep 120'], { env: user.env });
    await cli.waitOutput(/started/, 20_000, 'out');

    agent.proc.child.kill('SIGSTOP');
    const stoppedAt = Date.now();
    // Eviction is a deadline of the relay (PING every 5 s, 10 s to answer): bounded here by 15 s plus
    // a little for polling and this test's own scheduling.
    await waitFor(async () => !(await online()), 17_000, 'the frozen agent to be evicted', 100);
    const evictedAfter = Date.now() - stoppedAt;
    expect(evictedAfter).toBeLessThanOrEqual(16_000);

    const attemptAt = Date.now();
    const refused = await Promise.race([
      openTunnel(h2, token, 'frozen').then(
        () => 'opened',
        (e: { status: number; body: unknown }) => e,
      ),
      new Promise((r) => setTimeout(() => r('no answer within 5 s'), 5_000)),
    ]);
    expect(refused).toMatchObject({ status: 503, body: { code: 'RLY_ERR_AGENT_OFFLINE' } });
    expect(Date.now() - attemptAt).toBeLessThan(5_000);

    await waitFor(() => sessionClosed, 10_000, 'the session of the evicted agent to end');
    const code = await Promise.race([cli.exited, new Promise((r) => setTimeout(() => r('still running'), 10_000))]);
    console.log(`[evict] mssh ssh exit ${String(code)}: ${cli.err.trim()}`);
    expect(code).toBe(255);
    expect(cli.err).toMatch(/CLI_ERR_(SSH_CONNECTION|TUNNEL_BROKEN)/);
    expect(cli.err).toMatch(/gone offline|cut by the relay/);
    await waitFor(() => /agent_unresponsive/.test(relay.proc.err), 5_000, 'the relay to log why the session ended');
    expect(relay.proc.err).toMatch(/did not answer PING within 10000 ms; evicting/);

    // Woken up, the agent notices and comes back by itself.
    agent.proc.child.kill('SIGCONT');
    await waitFor(() => online(), 30_000, 'the agent to reconnect after SIGCONT', 200);
  });
});
