/**
 * /healthz is unauthenticated: its database counts are read once per TTL and shared, so a flood of
 * /healthz costs no database work (on PGlite a query runs on the relay's event loop). Over a real
 * database of each kind; the repository is the real one, wrapped only to count the queries it runs.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createRepositories, type AgentRepository } from '../db/index.js';
import { agentIdentity, DB_KINDS, openTestDatabase, stubRouter } from '../test-support.js';
import { HostService } from './host-service.js';

describe.each(DB_KINDS)('HostService.health on %s', (kind) => {
  let db: Awaited<ReturnType<typeof openTestDatabase>>;
  let agents: AgentRepository;
  let queries = 0;

  beforeAll(async () => {
    db = await openTestDatabase(kind);
    const real = createRepositories(db.database.db).agents;
    // The real repository; only the two count queries are counted on their way through.
    agents = Object.create(real, {
      countEnrolled: {
        value: () => {
          queries++;
          return real.countEnrolled();
        },
      },
      countStale: {
        value: (before: Date) => {
          queries++;
          return real.countStale(before);
        },
      },
    }) as AgentRepository;
    await real.create({
      name: 'box-1',
      publicKey: agentIdentity().publicKey,
      hostKeys: [],
      agentVersion: '0.1.0',
      protocolVersion: 1,
    });
  });
  afterAll(async () => {
    await db?.cleanup();
  });

  it('200 concurrent /healthz read the database once; a change shows after the TTL', async () => {
    const hosts = new HostService({ agents, router: stubRouter(), healthCountsTtlMs: 1_500 });
    queries = 0;
    const answers = await Promise.all(Array.from({ length: 200 }, () => hosts.health()));
    expect(queries).toBe(2); // countEnrolled + countStale, once
    expect(new Set(answers.map((a) => a.agentsEnrolled))).toEqual(new Set([1]));

    await createRepositories(db.database.db).agents.create({
      name: 'box-2',
      publicKey: agentIdentity().publicKey,
      hostKeys: [],
      agentVersion: '0.1.0',
      protocolVersion: 1,
    });
    expect((await hosts.health()).agentsEnrolled).toBe(1); // still within the TTL
    expect(queries).toBe(2);
    const t0 = Date.now();
    let enrolled = 1;
    while (enrolled !== 2 && Date.now() - t0 < 5_000) {
      await new Promise((res) => setTimeout(res, 50));
      enrolled = (await hosts.health()).agentsEnrolled;
    }
    expect(enrolled).toBe(2);
    expect(queries).toBe(4);
  });
});
