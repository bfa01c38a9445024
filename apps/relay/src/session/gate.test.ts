/**
 * The gate's decisions at unit level, over in-memory stand-ins of the router and the ledger (the real ones,
 * the database and both doors are in e2e/session-gate.e2e.test.ts): the order of the checks, what each
 * refusal audits, the race where a concurrent session takes the last slot between the check and the open,
 * and the one end path of an admitted session.
 */
import { describe, expect, it } from 'vitest';
import type { ClientHttp2Stream } from 'node:http2';
import { PassThrough } from 'node:stream';
import pino from 'pino';
import { RelayError, relayError } from '../errors.js';
import type { RecordedSession, SessionStartInfo, TunnelSessionSummary } from '../tunnel/types.js';
import { createSessionGate, type AdmitRequest } from './gate.js';

interface World {
  online: Set<string>;
  enrolled: Set<string>;
  grants: Set<string>;
  capError: RelayError | null;
  openError: RelayError | null;
  ledgerError: Error | null;
  opened: string[];
  closedStreams: number[];
  ends: Array<{ reason: string }>;
  denied: Array<{ reason: string; code: string; via: string; source: string | null }>;
  spliced: number;
  draining: boolean;
  /** Grant and host lookups made (a draining relay makes none). */
  lookups: number;
}

/** A fleet stand-in: `holders` is what the presence rows say now; a draining holder no longer has the link. */
interface FleetWorld {
  holders: Array<{ relayId: string; draining: boolean }>;
  openedVia: string[];
  lookups: number;
}

function fleetOver(f: FleetWorld) {
  const stream = () =>
    ({ close: () => {}, closed: false, destroyed: false, once: () => {} }) as unknown as ClientHttp2Stream;
  return {
    holders: async () => {
      f.lookups++;
      return f.holders.map((h) => ({ ...h, peerUrl: 'https://127.0.0.1:1', peerFingerprint: 'x' }));
    },
    open: async (_host: string, holders: Array<{ relayId: string; draining: boolean }>) => {
      for (const h of holders) {
        if (h.draining) continue; // it moved the agent away: RLY_ERR_AGENT_OFFLINE, try the next
        f.openedVia.push(h.relayId);
        return { stream: stream(), relayId: h.relayId };
      }
      throw relayError('RLY_ERR_AGENT_OFFLINE');
    },
  };
}

function gateOver(w: World, fleet?: FleetWorld, moveWaitMs?: number) {
  const stream = () => ({ close: (code: number) => w.closedStreams.push(code) }) as unknown as ClientHttp2Stream;
  return createSessionGate({
    router: {
      isOnline: (n) => w.online.has(n),
      checkSessionSlot: () => {
        if (w.capError) throw w.capError;
      },
      takeSessionSlot: () => () => {},
      openSession: async (n) => {
        w.opened.push(n);
        if (w.openError) throw w.openError;
        return stream();
      },
      spliceSession: async (_c, _s, meta) => {
        w.spliced++;
        return { sessionId: meta.sessionId } as TunnelSessionSummary;
      },
      agentIdOf: () => 'agent-1',
    },
    hosts: {
      exists: async (n) => {
        w.lookups++;
        return w.enrolled.has(n);
      },
    },
    access: {
      canReach: async (u, h) => {
        w.lookups++;
        return u.admin || w.grants.has(h);
      },
    },
    ledger: {
      start: async (s: SessionStartInfo): Promise<RecordedSession> => {
        if (w.ledgerError) throw w.ledgerError;
        return { sessionId: s.sessionId, attachCounters: () => undefined, end: (e) => w.ends.push(e) };
      },
    },
    audit: { sessionDenied: (e) => w.denied.push(e) },
    logger: pino({ level: 'silent' }),
    draining: () => w.draining,
    fleet: fleet ? fleetOver(fleet) : undefined,
    moveWaitMs,
  });
}

function world(): World {
  return {
    online: new Set(['laptop']),
    enrolled: new Set(['laptop', 'desktop']),
    grants: new Set(['laptop', 'desktop', 'ghost']),
    capError: null,
    openError: null,
    ledgerError: null,
    opened: [],
    closedStreams: [],
    ends: [],
    denied: [],
    spliced: 0,
    draining: false,
    lookups: 0,
  };
}

const req = (host: string, door: 'https' | 'jump' = 'jump'): AdmitRequest => ({
  principal: { name: 'alice', admin: false, role: null, authAt: 0 },
  host,
  door,
  source: '192.0.2.7',
});

async function refusal(p: Promise<unknown>): Promise<RelayError> {
  const e = await p.then(
    () => null,
    (err: unknown) => err,
  );
  expect(e).toBeInstanceOf(RelayError);
  return e as RelayError;
}

describe('session gate', () => {
  it('checks grant, then enrolled/online, then caps, each refusal with its code and one session.denied row; nothing is opened', async () => {
    const w = world();
    const g = gateOver(w);
    expect((await refusal(g.admit(req('vault')))).code).toBe('RLY_ERR_NO_GRANT');
    expect((await refusal(g.admit(req('ghost')))).code).toBe('RLY_ERR_UNKNOWN_HOST');
    expect((await refusal(g.admit(req('desktop')))).code).toBe('RLY_ERR_AGENT_OFFLINE');
    w.capError = relayError('RLY_ERR_AGENT_SESSION_LIMIT');
    expect((await refusal(g.admit(req('laptop', 'https')))).code).toBe('RLY_ERR_AGENT_SESSION_LIMIT');
    expect(w.denied).toEqual([
      expect.objectContaining({ reason: 'no_grant', code: 'RLY_ERR_NO_GRANT', via: 'jump', source: '192.0.2.7' }),
      expect.objectContaining({
        reason: 'unknown_host',
        code: 'RLY_ERR_UNKNOWN_HOST',
        via: 'jump',
        source: '192.0.2.7',
      }),
      expect.objectContaining({
        reason: 'host_offline',
        code: 'RLY_ERR_AGENT_OFFLINE',
        via: 'jump',
        source: '192.0.2.7',
      }),
      expect.objectContaining({
        reason: 'cap',
        code: 'RLY_ERR_AGENT_SESSION_LIMIT',
        via: 'https',
        source: '192.0.2.7',
      }),
    ]);
    expect(w.opened).toEqual([]);
    expect((await refusal(g.admit(req('not a name')))).code).toBe('RLY_ERR_BAD_REQUEST');
    expect(w.denied).toHaveLength(4);
  });

  it('a draining relay refuses every new session first, on both doors, with RLY_ERR_DRAINING (503) and one session.denied row each; nothing is looked up or opened', async () => {
    const w = world();
    const g = gateOver(w);
    const running = await g.admit(req('laptop', 'https'));
    const lookupsBefore = w.lookups;
    w.draining = true;
    for (const [host, door] of [
      ['laptop', 'https'],
      ['laptop', 'jump'],
      ['vault', 'jump'], // no grant: still the drain's answer, and no lookup
    ] as const) {
      const e = await refusal(g.admit(req(host, door)));
      expect(e.code).toBe('RLY_ERR_DRAINING');
      expect(e.statusCode).toBe(503);
    }
    expect(w.denied).toEqual([
      expect.objectContaining({ reason: 'draining', code: 'RLY_ERR_DRAINING', via: 'https' }),
      expect.objectContaining({ reason: 'draining', code: 'RLY_ERR_DRAINING', via: 'jump' }),
      expect.objectContaining({ reason: 'draining', code: 'RLY_ERR_DRAINING', via: 'jump' }),
    ]);
    expect(w.lookups).toBe(lookupsBefore);
    expect(w.opened).toEqual(['laptop']);
    // The session admitted before the drain goes on.
    await running.splice(new PassThrough());
    expect(w.spliced).toBe(1);
  });

  it('a concurrent session took the last slot between the check and the open: refused as a cap, its committed start ended as error', async () => {
    const w = world();
    w.openError = relayError('RLY_ERR_USER_SESSION_LIMIT');
    expect((await refusal(gateOver(w).admit(req('laptop')))).code).toBe('RLY_ERR_USER_SESSION_LIMIT');
    expect(w.denied).toEqual([expect.objectContaining({ reason: 'cap', code: 'RLY_ERR_USER_SESSION_LIMIT' })]);
    expect(w.ends).toEqual([expect.objectContaining({ reason: 'error', bytesFromClient: 0, bytesToClient: 0 })]);
  });

  it('a start that cannot be committed: RLY_ERR_DATABASE_UNAVAILABLE, the opened agent stream cancelled, nothing spliced', async () => {
    const w = world();
    w.ledgerError = new Error('connection refused');
    const e = await refusal(gateOver(w).admit(req('laptop')));
    expect(e.code).toBe('RLY_ERR_DATABASE_UNAVAILABLE');
    expect(e.statusCode).toBe(503);
    expect(w.opened).toEqual(['laptop']);
    expect(w.closedStreams).toEqual([8]); // NGHTTP2_CANCEL
    expect(w.spliced).toBe(0);
    expect(w.denied).toEqual([]);
  });

  it('an admitted session ends one way only: cancel after splice does nothing, splice after cancel throws', async () => {
    const w = world();
    const g = gateOver(w);
    const a = await g.admit(req('laptop'));
    await a.splice(new PassThrough());
    a.cancel('client_closed');
    expect(w.closedStreams).toEqual([]);
    const b = await g.admit(req('laptop'));
    b.cancel('client_closed');
    b.cancel('error');
    expect(w.closedStreams).toEqual([8]);
    expect(w.ends).toEqual([expect.objectContaining({ reason: 'client_closed' })]);
    expect(() => b.splice(new PassThrough())).toThrow(/already spliced or cancelled/);
    expect(w.spliced).toBe(1);
  });

  describe('an agent a draining relay asked to move (fleet)', () => {
    const fleetWorld = (): FleetWorld => ({ holders: [{ relayId: 'old', draining: true }], openedVia: [], lookups: 0 });

    it('is waited for: once a serving relay holds it, the session goes there', async () => {
      const w = world();
      const f = fleetWorld();
      const g = gateOver(w, f, 3_000);
      const t0 = performance.now();
      setTimeout(() => f.holders.unshift({ relayId: 'new', draining: false }), 300);
      const s = await g.admit(req('desktop', 'https'));
      expect(performance.now() - t0).toBeGreaterThanOrEqual(250);
      expect(s.host).toBe('desktop');
      expect(f.openedVia).toEqual(['new']);
      expect(f.lookups).toBeGreaterThan(1);
      expect(w.denied).toEqual([]);
      s.cancel('client_closed');
    });

    it('is waited for: when its new link is to this relay, the session is opened here', async () => {
      const w = world();
      const f = fleetWorld();
      const g = gateOver(w, f, 3_000);
      setTimeout(() => w.online.add('desktop'), 200);
      const s = await g.admit(req('desktop', 'https'));
      expect(w.opened).toEqual(['desktop']);
      expect(f.openedVia).toEqual([]);
      s.cancel('client_closed');
    });

    it('not back within the wait: RLY_ERR_AGENT_OFFLINE, audited host_offline once', async () => {
      const w = world();
      const f = fleetWorld();
      const g = gateOver(w, f, 300);
      const t0 = performance.now();
      expect((await refusal(g.admit(req('desktop', 'https')))).code).toBe('RLY_ERR_AGENT_OFFLINE');
      expect(performance.now() - t0).toBeGreaterThanOrEqual(250);
      expect(w.denied).toEqual([expect.objectContaining({ reason: 'host_offline', code: 'RLY_ERR_AGENT_OFFLINE' })]);
    });

    it('a serving holder is used at once, without waiting', async () => {
      const w = world();
      const f: FleetWorld = { holders: [{ relayId: 'b', draining: false }], openedVia: [], lookups: 0 };
      const s = await gateOver(w, f, 3_000).admit(req('desktop', 'https'));
      expect(f.openedVia).toEqual(['b']);
      expect(f.lookups).toBe(1);
      s.cancel('client_closed');
    });
  });
});
