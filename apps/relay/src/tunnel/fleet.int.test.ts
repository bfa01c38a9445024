/**
 * One agent and the relays of a fleet, in this process: each relay is the REAL tunnel router behind its
 * own TLS listener (the production ALPN dispatch), all on ONE Postgres database (the shared agents
 * table: the agent is enrolled once and accepted by every relay) and ONE certificate (one pinned
 * fingerprint). The agent is the REAL supervisor, in-process so that its back-off can be read; its
 * target is the echo target. Loopback only (127.0.0.1, .2 and .3).
 *
 *   moveAgents() on relay 1  -> the agent is on relay 2 at once; relay 1's session goes on until it ends
 *   relay 1 killed           -> failover to relay 2 at once, back-off unchanged
 *   a refusing relay         -> skipped, no back-off while another relay works
 *   --links 2                -> one link per relay; a second link to a held relay is declined, not a fight
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { generateKeyPairSync, randomUUID } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import type { ClientHttp2Stream } from 'node:http2';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import tls from 'node:tls';
import pino from 'pino';
import { PROTOCOL_VERSION, SOFTWARE_VERSION } from '@mssh/protocol';
import { fixtures } from '@mssh/test-fixtures/inject';
import { freePort, waitFor } from '@mssh/test-fixtures/net';
import { createTestDatabase, dropTestDatabase } from '@mssh/test-fixtures/postgres';
import { exchange, startEchoTarget, type EchoTarget } from '@mssh/test-fixtures/echo-target';
import { Backoff } from '../../../agent/src/dial/backoff.js';
import { AgentSupervisor, type SupervisorOptions } from '../../../agent/src/dial/supervisor.js';
import { identityFromPrivateKey, type AgentIdentity } from '../../../agent/src/enroll/identity.js';
import { TcpTarget } from '../../../agent/src/target/tcp-target.js';
import { createRepositories, openDatabase, type Database } from '../db/index.js';
import { loadOrCreateTls, type RelayTls } from '../tls/certificate.js';
import { agentAlpnCallback, routeAgentSockets } from './alpn-dispatch.js';
import { createTunnelRouter, type RelayTunnelRouter } from './router.js';
import type { TunnelAuditSink } from './types.js';

const quiet = pino({ level: process.env.MSSH_TEST_LOG_LEVEL ?? 'silent' });

class RecordingAudit implements TunnelAuditSink {
  readonly connected: string[] = [];
  readonly disconnected: Array<{ name: string; reason: string }> = [];
  agentConnected(e: { name: string }): void {
    this.connected.push(e.name);
  }
  agentDisconnected(e: { name: string; reason: string }): void {
    this.disconnected.push({ name: e.name, reason: e.reason });
  }
  agentRejected(): void {}
}

type PingOptions = { pingIntervalMs?: number; pingTimeoutMs?: number };

/** One relay of the fleet: the tunnel router on its own pool of the shared database. */
class FleetRelay {
  readonly id = randomUUID();
  readonly audit = new RecordingAudit();
  readonly router: RelayTunnelRouter;
  /** Agent sockets accepted, by listener address. */
  readonly accepted = new Map<string, number>();
  private readonly servers: tls.Server[] = [];
  private readonly sockets = new Set<tls.TLSSocket>();

  private constructor(
    private readonly database: Database,
    private readonly cert: RelayTls,
    ping: PingOptions,
  ) {
    this.router = createTunnelRouter({
      directory: createRepositories(database.db).agents,
      audit: this.audit,
      logger: quiet,
      minProtocolVersion: PROTOCOL_VERSION,
      relayId: this.id,
      ...ping,
    });
  }

  static async start(
    databaseUrl: string,
    cert: RelayTls,
    listen: Array<{ host: string; port: number }>,
    ping: PingOptions = {},
  ) {
    const r = new FleetRelay(await openDatabase({ databaseUrl }), cert, ping);
    for (const at of listen) await r.listen(at.host, at.port);
    return r;
  }

  async listen(host: string, port: number): Promise<void> {
    const server = tls.createServer({ key: this.cert.key, cert: this.cert.cert, ALPNCallback: agentAlpnCallback });
    routeAgentSockets(server, (socket) => {
      this.accepted.set(host, (this.accepted.get(host) ?? 0) + 1);
      this.sockets.add(socket);
      socket.once('close', () => this.sockets.delete(socket));
      this.router.acceptAgentSocket(socket);
    });
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(port, host, () => resolve());
    });
    this.servers.push(server);
  }

  acceptedTotal(): number {
    return [...this.accepted.values()].reduce((a, b) => a + b, 0);
  }

  /** Stop accepting (a draining relay): new connections are refused (ECONNREFUSED). */
  stopListening(): void {
    for (const s of this.servers.splice(0)) s.close();
  }

  /** What the kernel does for a relay process killed -9: listeners gone, every socket closed, no GOAWAY. */
  kill(): void {
    this.stopListening();
    for (const s of this.sockets) s.destroy();
  }

  async close(): Promise<void> {
    this.kill();
    await this.router.close();
    await this.database.close();
  }
}

interface AgentRun {
  supervisor: AgentSupervisor;
  run: Promise<unknown>;
  lines: Array<{ level: number; msg: string; [k: string]: unknown }>;
  /** Log lines matching re. */
  logged(re: RegExp): Array<{ level: number; msg: string; [k: string]: unknown }>;
}

describe('one agent, a fleet of relays on one database', () => {
  let databaseUrl: string;
  let database: Database;
  let tmp: string;
  let cert: RelayTls;
  let echo: EchoTarget;
  const relays: FleetRelay[] = [];
  const agents: AgentRun[] = [];

  beforeAll(async () => {
    databaseUrl = await createTestDatabase(fixtures().runId);
    database = await openDatabase({ databaseUrl });
    tmp = mkdtempSync(join(fixtures().root, 'fleet-'));
    cert = await loadOrCreateTls({ dataDir: tmp }); // all relays of a fleet share one certificate
    echo = await startEchoTarget(fixtures().sshd.port, 10);
  });

  afterAll(async () => {
    for (const a of agents) await a.supervisor.stop(200);
    for (const r of relays) await r.close();
    await echo?.close();
    await database?.close();
    if (databaseUrl) await dropTestDatabase(databaseUrl);
    if (tmp) rmSync(tmp, { recursive: true, force: true });
  });

  async function relay(listen: Array<{ host: string; port: number }>, ping: PingOptions = {}): Promise<FleetRelay> {
    const r = await FleetRelay.start(databaseUrl, cert, listen, ping);
    relays.push(r);
    return r;
  }

  /** Enrol `name` once in the shared agents table and start its supervisor over these relay addresses. */
  async function agent(
    name: string,
    at: Array<{ host: string; port: number }>,
    opts: Partial<SupervisorOptions> = {},
  ): Promise<AgentRun> {
    const identity: AgentIdentity = identityFromPrivateKey(generateKeyPairSync('ed25519').privateKey);
    const created = await createRepositories(database.db).agents.create({
      name,
      publicKey: identity.publicKey,
      hostKeys: [],
      agentVersion: SOFTWARE_VERSION,
      protocolVersion: PROTOCOL_VERSION,
    });
    expect(created.ok).toBe(true);
    const lines: AgentRun['lines'] = [];
    const logger = pino(
      { level: 'debug' },
      new Writable({ write: (c: Buffer, _e, cb) => (lines.push(JSON.parse(c.toString())), cb()) }),
    );
    const supervisor = new AgentSupervisor({
      relays: at.map((endpoint) => ({ label: `https://${endpoint.host}:${endpoint.port}`, endpoint })),
      relayFingerprint: cert.fingerprint,
      name,
      identity,
      target: new TcpTarget({
        address: { host: '127.0.0.1', port: echo.port },
        logger: quiet,
        knownHostKeys: fixtures().sshd.hostKeys,
        scanTimeoutMs: 3_000,
      }),
      logger,
      ...opts,
    });
    const a: AgentRun = {
      supervisor,
      run: supervisor.run(),
      lines,
      logged: (re) => lines.filter((l) => re.test(l.msg)),
    };
    agents.push(a);
    return a;
  }

  /** A session through this relay to the agent's echo target, past its greeting. */
  async function session(r: FleetRelay, name: string): Promise<ClientHttp2Stream> {
    const stream = await r.router.openSession(name, { sessionId: randomUUID(), user: 'alice' });
    await exchange(stream, 100, echo.greeting + 100, 10_000);
    return stream;
  }

  it('moveAgents(): the agent is welcomed by the other relay at once, a running session stays until it ends, the back-off does not move', async () => {
    const [p1, p2] = [await freePort(), await freePort()];
    const r1 = await relay([{ host: '127.0.0.1', port: p1 }]);
    const r2 = await relay([{ host: '127.0.0.1', port: p2 }]);
    const backoff = new Backoff({ baseMs: 1_000, capMs: 30_000 });
    const a = await agent(
      'mover',
      [
        { host: '127.0.0.1', port: p1 },
        { host: '127.0.0.1', port: p2 },
      ],
      { backoff },
    );
    await waitFor(() => r1.router.isOnline('mover'), 15_000, 'mover online on relay 1');
    const running = await session(r1, 'mover');
    const attempts = backoff.attempts;
    const ceiling = backoff.ceiling();

    const t0 = performance.now();
    expect(r1.router.moveAgents()).toBe(1);
    // Out of relay 1's registry at once: no new session goes there.
    expect(r1.router.isOnline('mover')).toBe(false);
    await expect(r1.router.openSession('mover', { sessionId: randomUUID(), user: 'alice' })).rejects.toMatchObject({
      code: 'RLY_ERR_AGENT_OFFLINE',
    });
    await waitFor(() => r2.router.isOnline('mover'), 5_000, 'mover online on relay 2');
    const movedInMs = performance.now() - t0;
    expect(movedInMs).toBeLessThan(2_000);

    // The session through relay 1 still works, and new ones go through relay 2.
    await exchange(running, 5_000, 5_000, 10_000);
    const fresh = await session(r2, 'mover');
    fresh.end();
    expect(a.supervisor.status()[0]).toMatchObject({ relayId: r2.id, welcomed: true, moving: 1 });
    // The back-off: untouched, no "retry in" wait.
    expect(backoff.attempts).toBe(attempts);
    expect(backoff.ceiling()).toBe(ceiling);
    expect(a.logged(/^retry in/)).toEqual([]);
    const moved = a.logged(/moved from relay/);
    expect(moved).toHaveLength(1);
    expect(moved[0]!.msg).toBe(
      `connected to relay 127.0.0.1:${p2} as mover: moved from relay 127.0.0.1:${p1} (it sent GOAWAY; 1 running session(s) stay there until they end)`,
    );
    expect(moved[0]).toMatchObject({ level: 30, fromRelayId: r1.id, relayId: r2.id });

    // The session ends: relay 1's link closes with it.
    expect(r1.audit.disconnected).toEqual([]);
    running.end();
    await waitFor(() => r1.audit.disconnected.length === 1, 10_000, 'relay 1 to close the moved link');
    expect(r1.audit.disconnected[0]).toEqual({ name: 'mover', reason: 'moved to another relay' });
    await waitFor(() => a.supervisor.status()[0]!.moving === 0, 5_000, 'the agent to let the moved link go');
    expect(r2.router.isOnline('mover')).toBe(true);
    expect(r2.audit.disconnected).toEqual([]);
  });

  it('a moved link outlives many PING intervals: Node cancels PINGs after a GOAWAY, and neither end takes that for a dead link', async () => {
    // 200 ms PINGs on both ends: a moved link's running session must outlast 10 of them. Before the fix the
    // first cancelled PING (ERR_HTTP2_PING_CANCEL) tore the link down with its sessions.
    const ping = { pingIntervalMs: 200, pingTimeoutMs: 1_000 };
    const [p1, p2] = [await freePort(), await freePort()];
    const r1 = await relay([{ host: '127.0.0.1', port: p1 }], ping);
    const r2 = await relay([{ host: '127.0.0.1', port: p2 }], ping);
    const a = await agent(
      'pinger',
      [
        { host: '127.0.0.1', port: p1 },
        { host: '127.0.0.1', port: p2 },
      ],
      ping,
    );
    await waitFor(() => r1.router.isOnline('pinger'), 15_000, 'pinger online on relay 1');
    const running = await session(r1, 'pinger');
    expect(r1.router.moveAgents()).toBe(1);
    await waitFor(() => r2.router.isOnline('pinger'), 5_000, 'pinger online on relay 2');
    await new Promise((r) => setTimeout(r, 2_000)); // 10 PING intervals
    expect(r1.audit.disconnected).toEqual([]);
    expect(a.logged(/PING/)).toEqual([]);
    await exchange(running, 5_000, 5_000, 10_000);
    running.end();
    await waitFor(() => r1.audit.disconnected.length === 1, 10_000, 'relay 1 to close the moved link');
    expect(r1.audit.disconnected[0]).toEqual({ name: 'pinger', reason: 'moved to another relay' });
  });

  it('a relay killed hard: the agent fails over to the next relay at once, back-off unchanged', async () => {
    const [p1, p2] = [await freePort(), await freePort()];
    const r1 = await relay([{ host: '127.0.0.1', port: p1 }]);
    const r2 = await relay([{ host: '127.0.0.1', port: p2 }]);
    const backoff = new Backoff({ baseMs: 1_000, capMs: 30_000 });
    const a = await agent(
      'survivor',
      [
        { host: '127.0.0.1', port: p1 },
        { host: '127.0.0.1', port: p2 },
      ],
      { backoff },
    );
    await waitFor(() => r1.router.isOnline('survivor'), 15_000, 'survivor online on relay 1');
    const t0 = performance.now();
    r1.kill();
    await waitFor(() => r2.router.isOnline('survivor'), 5_000, 'survivor online on relay 2');
    expect(performance.now() - t0).toBeLessThan(2_000);
    expect(backoff.attempts).toBe(0);
    expect(a.logged(/^retry in/)).toEqual([]);
    const over = a.logged(/failed over from relay/);
    expect(over).toHaveLength(1);
    expect(over[0]!.msg).toMatch(
      new RegExp(
        `^connected to relay 127\\.0\\.0\\.1:${p2} as survivor: failed over from relay 127\\.0\\.0\\.1:${p1} \\(`,
      ),
    );
  });

  it('a relay that stopped listening (draining) is skipped without back-off while another relay works', async () => {
    const [p1, p2] = [await freePort(), await freePort()];
    const r1 = await relay([{ host: '127.0.0.1', port: p1 }]);
    const r2 = await relay([{ host: '127.0.0.1', port: p2 }]);
    const backoff = new Backoff({ baseMs: 1_000, capMs: 30_000 });
    const a = await agent(
      'drifter',
      [
        { host: '127.0.0.1', port: p1 },
        { host: '127.0.0.1', port: p2 },
      ],
      { backoff },
    );
    await waitFor(() => r1.router.isOnline('drifter'), 15_000, 'drifter online on relay 1');
    // Relay 1 drains: it stops listening, then moves its agents.
    r1.stopListening();
    r1.router.moveAgents();
    await waitFor(() => r2.router.isOnline('drifter'), 5_000, 'drifter online on relay 2');
    // Relay 2 asks it to move too: relay 1 refuses the connection, and relay 2 (the only one left) takes it back.
    const before = r2.audit.connected.length;
    r2.router.moveAgents();
    await waitFor(() => r2.audit.connected.length > before && r2.router.isOnline('drifter'), 5_000, 'back on relay 2');
    expect(a.logged(new RegExp(`^cannot connect to relay 127\\.0\\.0\\.1:${p1}: .*ECONNREFUSED`))).toHaveLength(1);
    expect(backoff.attempts).toBe(0);
    expect(a.logged(/^retry in/)).toEqual([]);
  });

  it('--links 2: one link per relay; a second link to a held relay is declined (no fight) and retried at back-off pace', async () => {
    const [p1, p3] = [await freePort(), await freePort()];
    // Relay 1 answers on two addresses (a name with two addresses, or a balancer); relay 3 is not up yet.
    const r1 = await relay([
      { host: '127.0.0.1', port: p1 },
      { host: '127.0.0.2', port: p1 },
    ]);
    const a = await agent(
      'pair',
      [
        { host: '127.0.0.1', port: p1 },
        { host: '127.0.0.2', port: p1 },
        { host: '127.0.0.3', port: p3 },
      ],
      { links: 2, backoff: () => new Backoff({ baseMs: 10, capMs: 50, refusedCapMs: 50 }) },
    );
    await waitFor(() => r1.router.isOnline('pair'), 15_000, 'pair online on relay 1');
    // The other loop reached relay 1 too, through either address.
    await waitFor(() => r1.acceptedTotal() >= 2, 10_000, 'a second link to relay 1');
    const acceptedAt = r1.acceptedTotal();
    await new Promise((r) => setTimeout(r, 3_000));
    // One link on relay 1, never replaced by the other loop's links to it (no disconnect, one connect).
    expect(r1.router.isOnline('pair')).toBe(true);
    expect(r1.audit.connected).toEqual(['pair']);
    expect(r1.audit.disconnected).toEqual([]);
    // The other loop keeps trying, but at a pace: a short pause after each declined link.
    const redials = r1.acceptedTotal() - acceptedAt;
    expect(a.logged(/already holds another link of this agent; trying another relay$/).length).toBeGreaterThanOrEqual(
      1,
    );
    expect(redials).toBeGreaterThanOrEqual(1);
    expect(redials).toBeLessThanOrEqual(8);

    // A third relay appears: the second link goes there, the first stays where it is.
    const r3 = await relay([{ host: '127.0.0.3', port: p3 }]);
    await waitFor(() => r3.router.isOnline('pair'), 10_000, 'pair online on relay 3');
    const ids = a.supervisor.status().map((s) => s.relayId);
    expect(ids.sort()).toEqual([r1.id, r3.id].sort());
    expect(r1.audit.connected).toEqual(['pair']);

    // Relay 3 dies: the loop that held it cannot take relay 1 (held), and relay 1's link does not move.
    const declined = a.logged(/already holds another link/).length;
    r3.kill();
    await waitFor(() => a.logged(/already holds another link/).length > declined, 10_000, 'another declined link');
    await new Promise((r) => setTimeout(r, 500));
    expect(r1.router.isOnline('pair')).toBe(true);
    expect(r1.audit.connected).toEqual(['pair']);
    expect(r1.audit.disconnected).toEqual([]);
  });
});
