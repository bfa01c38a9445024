/**
 * The fleet's lease and presence bookkeeping on a real Postgres (no agents, no peers): what one relay does
 * with the `relays` and `agent_presence` rows as it starts, and when it declares another relay lost.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { randomBytes } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { sql } from 'drizzle-orm';
import { createTestDatabase } from '@mssh/test-fixtures/postgres';
import { fixtures } from '@mssh/test-fixtures/inject';
import { openDatabase, type Database } from '../db/index.js';
import { silentLogger, stubRouter } from '../test-support.js';
import { Fleet } from './fleet.js';
import { loadOrCreatePeerIdentity } from './peer-identity.js';
import { FleetStore } from './store.js';

const rowsOf = <T>(res: unknown): T[] => (res as { rows: T[] }).rows;

describe('fleet leases and presence (real Postgres)', () => {
  let url: string;
  let database: Database;
  let dir: string;
  const fleets: Fleet[] = [];

  beforeAll(async () => {
    url = await createTestDatabase(fixtures().runId);
    database = await openDatabase({ databaseUrl: url });
    dir = mkdtempSync(join(fixtures().root, 'fleet-int-'));
  });

  afterAll(async () => {
    for (const f of fleets) {
      await f.stop();
      await f.closeLinks();
    }
    await database?.close();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  async function agent(name: string): Promise<string> {
    const rows = rowsOf<{ id: string }>(
      await database.db.execute(
        sql`INSERT INTO agents (name, public_key) VALUES (${name}, ${randomBytes(16).toString('hex')}) RETURNING id`,
      ),
    );
    return rows[0]!.id;
  }

  async function presenceOf(relayId: string): Promise<string[]> {
    return rowsOf<{ agent_name: string }>(
      await database.db.execute(
        sql`SELECT agent_name FROM agent_presence WHERE relay_id = ${relayId} ORDER BY agent_name`,
      ),
    ).map((r) => r.agent_name);
  }

  async function stateOf(relayId: string): Promise<string | undefined> {
    return rowsOf<{ state: string }>(await database.db.execute(sql`SELECT state FROM relays WHERE id = ${relayId}`))[0]
      ?.state;
  }

  async function startFleet(
    relayId: string,
    leaseMs: number,
    online: Record<string, string> = {},
    movedPresenceGraceMs?: number,
  ) {
    const router = stubRouter();
    for (const name of Object.keys(online)) router.online.add(name);
    const lost: Array<{ relayId: string; presenceDropped: number }> = [];
    const closed: string[] = [];
    const fleet = new Fleet({
      db: database.db,
      databaseUrl: url,
      relayId,
      identity: await loadOrCreatePeerIdentity(join(dir, relayId), relayId),
      peerListen: { host: '127.0.0.1', port: 0 },
      publicUrl: () => 'https://127.0.0.1:1',
      router: { ...router, agentIdOf: (name: string) => online[name] ?? '' },
      logger: silentLogger(),
      leaseMs,
      movedPresenceGraceMs,
      closeSessionsOf: async (id) => {
        closed.push(id);
        return 0;
      },
      onNews: () => {},
      onLost: (e) => lost.push({ relayId: e.relayId, presenceDropped: e.presenceDropped }),
    });
    fleets.push(fleet);
    await fleet.start();
    return { fleet, lost, closed };
  }

  it('a relay started again under its id within its lease replaces its previous run’s presence rows at start', async () => {
    const store = new FleetStore(database.db, 60_000);
    const [gone, stays] = [await agent('fi-gone'), await agent('fi-stays')];
    // The previous run: registered, held two agents, then was killed (its lease, 60 s, has not run out).
    await store.register({
      id: 'fi-restarted',
      peerUrl: 'https://127.0.0.1:9',
      peerFingerprint: 'x'.repeat(64),
      publicUrl: null,
      version: '0',
      pid: 1,
    });
    await store.addPresence('fi-restarted', gone, 'fi-gone');
    await store.addPresence('fi-restarted', stays, 'fi-stays');
    expect(await presenceOf('fi-restarted')).toEqual(['fi-gone', 'fi-stays']);
    // The new run holds only fi-stays when it joins; the heartbeat (every 20 s here) has not run yet.
    await startFleet('fi-restarted', 60_000, { 'fi-stays': stays });
    expect(await presenceOf('fi-restarted')).toEqual(['fi-stays']);
    expect(await store.holders('fi-gone', 'someone-else')).toEqual([]);
  });

  it('a relay whose renewals are only late is not declared lost; one silent for a lease past expiry is, its presence dropped in the same step', async () => {
    const leaseMs = 600;
    const survivor = await startFleet('fi-survivor', leaseMs);
    const store = new FleetStore(database.db, leaseMs);
    const held = await agent('fi-late');
    await store.register({
      id: 'fi-late-relay',
      peerUrl: 'https://127.0.0.1:9',
      peerFingerprint: 'y'.repeat(64),
      publicUrl: null,
      version: '0',
      pid: 2,
    });
    await store.addPresence('fi-late-relay', held, 'fi-late');
    // Alive but late: its lease is always 300 ms expired (half a lease) when the survivor looks, for 3 s
    // (the survivor sweeps every 200 ms once healthy for two leases, 1.2 s).
    const until = performance.now() + 3_000;
    while (performance.now() < until) {
      await database.db.execute(
        sql`UPDATE relays SET lease_until = now() - interval '300 milliseconds' WHERE id = 'fi-late-relay' AND state = 'serving'`,
      );
      await new Promise((r) => setTimeout(r, 100));
    }
    expect(survivor.lost).toEqual([]);
    expect(await stateOf('fi-late-relay')).toBe('serving');
    expect(await presenceOf('fi-late-relay')).toEqual(['fi-late']);
    // Silent from now on: declared lost within a lease past expiry (+ a sweep), presence gone with it.
    const t0 = performance.now();
    while (survivor.lost.length === 0 && performance.now() - t0 < 5_000) await new Promise((r) => setTimeout(r, 50));
    expect(survivor.lost).toEqual([{ relayId: 'fi-late-relay', presenceDropped: 1 }]);
    expect(survivor.closed).toEqual(['fi-late-relay']);
    expect(await stateOf('fi-late-relay')).toBe('lost');
    expect(await presenceOf('fi-late-relay')).toEqual([]);
  });

  it('claimLost: one statement claims and drops presence; a second claim finds nothing; a row registered again is left alone', async () => {
    const store = new FleetStore(database.db, 1_000);
    const a = await agent('fi-claim');
    await store.register({
      id: 'fi-claimed',
      peerUrl: 'https://127.0.0.1:9',
      peerFingerprint: 'z'.repeat(64),
      publicUrl: null,
      version: '0',
      pid: 3,
    });
    await store.addPresence('fi-claimed', a, 'fi-claim');
    await database.db.execute(
      sql`UPDATE relays SET lease_until = now() - interval '5 seconds' WHERE id = 'fi-claimed'`,
    );
    expect(await store.claimLost(10_000)).not.toContainEqual(expect.objectContaining({ relayId: 'fi-claimed' }));
    const claimed = await store.claimLost(1_000);
    expect(claimed).toContainEqual({ relayId: 'fi-claimed', presenceDropped: 1 });
    expect(await store.claimLost(1_000)).not.toContainEqual(expect.objectContaining({ relayId: 'fi-claimed' }));
    // It comes back: registers again and records its link; a later sweep leaves both alone.
    expect(await store.renew('fi-claimed')).toBe('lost');
    await store.register({
      id: 'fi-claimed',
      peerUrl: 'https://127.0.0.1:9',
      peerFingerprint: 'z'.repeat(64),
      publicUrl: null,
      version: '0',
      pid: 3,
    });
    await store.addPresence('fi-claimed', a, 'fi-claim');
    expect(await store.claimLost(0)).not.toContainEqual(expect.objectContaining({ relayId: 'fi-claimed' }));
    expect(await presenceOf('fi-claimed')).toEqual(['fi-claim']);
  });

  it('an agent this relay moved keeps its presence row for the grace (read as moving), then loses it; a stopped agent at once', async () => {
    const [moved, stopped] = [await agent('fi-moved'), await agent('fi-stopped')];
    const online = { 'fi-moved': moved, 'fi-stopped': stopped };
    const { fleet } = await startFleet('fi-mover', 60_000, online, 600);
    const waitRows = async (want: string[]) => {
      const t0 = performance.now();
      while (performance.now() - t0 < 3_000) {
        if (JSON.stringify(await presenceOf('fi-mover')) === JSON.stringify(want)) return performance.now() - t0;
        await new Promise((r) => setTimeout(r, 20));
      }
      throw new Error(
        `presence of fi-mover never became ${want.join(',')}: ${(await presenceOf('fi-mover')).join(',')}`,
      );
    };
    await waitRows(['fi-moved', 'fi-stopped']);
    fleet.presence({ agentId: stopped, name: 'fi-stopped', up: false });
    fleet.presence({ agentId: moved, name: 'fi-moved', up: false, moved: true });
    await waitRows(['fi-moved']);
    // Still there a little later (the grace is 600 ms), gone after it.
    await new Promise((r) => setTimeout(r, 300));
    expect(await presenceOf('fi-mover')).toEqual(['fi-moved']);
    const gone = await waitRows([]);
    expect(gone).toBeGreaterThan(100);
    // Back here within the grace: the removal is cancelled.
    fleet.presence({ agentId: moved, name: 'fi-moved', up: true });
    await waitRows(['fi-moved']);
    fleet.presence({ agentId: moved, name: 'fi-moved', up: false, moved: true });
    fleet.presence({ agentId: moved, name: 'fi-moved', up: true });
    await new Promise((r) => setTimeout(r, 900));
    expect(await presenceOf('fi-mover')).toEqual(['fi-moved']);
  });
});
