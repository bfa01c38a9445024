/**
 * Issue 19 item 3: lose a relay and keep working. Three relays on one Postgres behind a real haproxy (TCP
 * mode); agents given every relay's URL (`mssh-agent run --relay ...`); the user's mssh logged in to the
 * balancer's address with the fleet's one certificate pinned.
 *
 *   - kill -9 of the relay holding a machine: reachable again through the balancer within 5 s;
 *   - an agent with --links 2: the loss of one of its relays costs it no reachability at all;
 *   - the sessions the killed relay carried all get exactly one end (the entry relays record them; the
 *     killed relay's own entries are closed relay_crashed by a survivor once its lease expires).
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import pg from 'pg';
import { fixtures } from './fixtures/inject.js';
import { runCommand } from './fixtures/files.js';
import { startFleet, type Fleet } from './fixtures/fleet.js';
import { startHaproxy, type Haproxy } from './fixtures/haproxy.js';
import { waitFor } from './fixtures/net.js';
import { BIN, loginUser, run, startAgent, stopAll, type Agent, type User } from './fixtures/stack.js';
import { login, openTunnel, readKey, relaySession, sshExec } from './fixtures/tunnel-client.js';

afterAll(stopAll);

describe('relay fleet behind haproxy: losing a relay', () => {
  let fleet: Fleet;
  let lb: Haproxy;
  let user: User;
  let db: pg.Client;

  /** Enrol NAME through relay 0 and run its agent with every relay of the fleet (and extra args). */
  async function fleetAgent(name: string, extra: string[] = []): Promise<Agent> {
    const agent = await startAgent(fleet.relays[0]!, name, { start: false });
    const relays = fleet.relays.flatMap((r) => ['--relay', r.url]);
    agent.proc = run(BIN.agent, ['run', '--state-dir', agent.stateDir, '--log-level', 'info', ...relays, ...extra]);
    await agent.proc.waitOutput(/connected to relay/, 15_000, 'both');
    return agent;
  }
  const holders = async (name: string): Promise<string[]> =>
    (
      await db.query<{ relay_id: string }>(
        `SELECT p.relay_id FROM agent_presence p JOIN relays r ON r.id = p.relay_id
         WHERE p.agent_name = $1 AND r.lease_until > now() AND r.state = 'serving'`,
        [name],
      )
    ).rows.map((r) => r.relay_id);
  const sshTrue = (host: string) => {
    const f = fixtures();
    return runCommand(
      process.execPath,
      [BIN.mssh, 'ssh', '-i', f.sshd.clientKey, `${f.sshd.user}@${host}`, '--', 'echo', 'ok'],
      {
        env: user.env,
        timeoutMs: 20_000,
      },
    );
  };

  beforeAll(async () => {
    fleet = await startFleet(3);
    lb = await startHaproxy(fleet.relays.map((r, i) => ({ name: `r${i}`, port: r.port })));
    db = new pg.Client({ connectionString: fleet.databaseUrl });
    await db.connect();
    user = await loginUser({ ...fleet.relays[0]!, url: lb.url });
  }, 120_000);
  afterAll(async () => {
    await db?.end();
    await lb?.stop();
    for (const r of fleet?.relays ?? []) await r.proc.stop();
  });

  it('kill -9 of the relay holding a machine: reachable again through the balancer within 5 s; every session gets one end', async () => {
    await fleetAgent('fo-1');
    const [holderId] = await waitFor(
      async () => {
        const h = await holders('fo-1');
        return h.length === 1 ? h : null;
      },
      5_000,
      'fo-1 presence',
    );
    const holder = fleet.relays.find((r) => r.id === holderId)!;
    const entry = fleet.relays.find((r) => r.id !== holderId)!;
    expect((await sshTrue('fo-1')).stdout.trim()).toBe('ok');
    // A session through another relay, carried by the holder: it ends when the holder dies.
    const h2 = await relaySession(entry);
    const token = await login(h2, 'admin', 'admin-password-for-tests');
    const f = fixtures();
    const { client } = await sshExec(await openTunnel(h2, token, 'fo-1'), {
      user: f.sshd.user,
      privateKey: readKey(f.sshd.clientKey),
      command: 'sleep 60',
    });
    const cut = new Promise<void>((resolve) => client.once('close', () => resolve()));

    const t0 = performance.now();
    holder.proc.child.kill('SIGKILL');
    await holder.proc.exited;
    let attempts = 0;
    const back = await waitFor(
      async () => {
        attempts++;
        const r = await sshTrue('fo-1');
        return r.code === 0 && r.stdout.trim() === 'ok' ? performance.now() - t0 : null;
      },
      15_000,
      'fo-1 to be reachable through the balancer again',
    );
    console.log(
      `[figure] kill -9 of the holding relay -> reachable through haproxy in ${back.toFixed(0)} ms (${attempts} attempt(s))`,
    );
    expect(back).toBeLessThan(5_000);
    await cut; // the session it carried ended with it
    h2.close();
    // Every session has exactly one end once the killed relay's lease expired (nothing left open).
    await waitFor(
      async () =>
        (await db.query("SELECT 1 FROM sessions WHERE host = 'fo-1' AND ended_at IS NULL")).rows.length === 0 || null,
      15_000,
      'every fo-1 session to have its end',
    );
    const twice = await db.query(
      "SELECT session_id FROM audit_events WHERE type = 'session.end' GROUP BY session_id HAVING count(*) > 1",
    );
    expect(twice.rows).toEqual([]);
    const starts = await db.query<{ n: number }>(
      "SELECT count(*)::int AS n FROM audit_events WHERE type = 'session.start' AND host = 'fo-1'",
    );
    const ends = await db.query<{ n: number }>(
      "SELECT count(*)::int AS n FROM audit_events WHERE type = 'session.end' AND host = 'fo-1'",
    );
    expect(ends.rows[0]!.n).toBe(starts.rows[0]!.n);
    await holder.restart();
  }, 90_000);

  it('an agent with --links 2 holds two relays; killing one costs it no reachability at all', async () => {
    await fleetAgent('fo-2', ['--links', '2']);
    const two = await waitFor(
      async () => {
        const h = await holders('fo-2');
        return h.length === 2 ? h : null;
      },
      10_000,
      'fo-2 held by two relays',
    );
    const victim = fleet.relays.find((r) => r.id === two[0])!;
    victim.proc.child.kill('SIGKILL');
    await victim.proc.exited;
    // Right away, the first try through the balancer works (haproxy sends it to a live relay).
    const r = await sshTrue('fo-2');
    expect(r.stderr).toBe('');
    expect(r.stdout.trim()).toBe('ok');
    await victim.restart();
  }, 90_000);
});
