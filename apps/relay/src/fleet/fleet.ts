/**
 * This relay as a member of a fleet (docs/fleet.md): several relays on one Postgres, every machine
 * reachable through any of them. Postgres is the only coordination point:
 *
 *   relays          one row per relay: peer address + certificate pin, lease (heartbeat), state
 *   agent_presence  which relay holds which agent (written when a link is verified, deleted when it ends)
 *   LISTEN/NOTIFY   news every relay acts on at once (fleet/bus.ts)
 *
 *   client --> relay A (entry: grant, caps, session.start) ==peer link==> relay B (holding) --> agent
 *
 * Leases: each relay renews its own every leaseMs/3. A relay whose lease has expired is out of the
 * fleet at once (no lookup routes to it); one lease length later the first survivor to see it declares it
 * lost and drops its presence rows (one statement; a row lock makes exactly one win), then closes the
 * sessions it had entered as relay_crashed (one statement, never twice). A survivor only does so after its OWN lease has been renewed without a gap
 * for two lease periods, so that after a database outage every relay gets the time to renew before anyone
 * is declared lost.
 */
import type { ClientHttp2Stream } from 'node:http2';
import type { Logger } from 'pino';
import { SOFTWARE_VERSION } from '@mssh/protocol';
import { RelayError, relayError } from '../errors.js';
import type { Db } from '../db/index.js';
import { FleetBus, type FleetNews } from './bus.js';
import { PeerLinks } from './peer-client.js';
import type { PeerIdentity } from './peer-identity.js';
import { createPeerServer, type PeerServer } from './peer-server.js';
import { FleetStore, type Holder, type RelayInfo } from './store.js';
import type { PresenceChange, TunnelRouter } from '../tunnel/types.js';

export const DEFAULT_LEASE_MS = 3_000;

/**
 * How long the presence row of an agent this relay asked to move (a drain) stays after the move: while the
 * agent dials another relay, entry relays see it held only by a draining relay, i.e. on its way, and wait
 * for its new link (session/gate.ts) instead of answering "offline".
 */
export const MOVED_PRESENCE_GRACE_MS = 5_000;

export interface FleetOptions {
  db: Db;
  databaseUrl: string;
  relayId: string;
  identity: PeerIdentity;
  /** Where the peer listener listens. */
  peerListen: { host: string; port: number };
  /** The URL peers dial (default: https://<peerListen>, which must then not be a wildcard address). */
  peerUrl?: string;
  /** The URL clients and agents use (read at registration). */
  publicUrl: () => string;
  router: Pick<TunnelRouter, 'isOnline' | 'openSession' | 'spliceSession' | 'onlineNames' | 'agentIdOf'>;
  logger: Logger;
  /** Close a lost relay's open sessions (audit/session-recorder.ts recoverCrashed(relayId)). */
  closeSessionsOf(relayId: string): Promise<number>;
  /** News from another relay. */
  onNews(news: FleetNews, from: string): void;
  /** After the news listener was away: catch up (e.g. reload signing keys). */
  onResync?(): void;
  /** Told when this relay declares another lost. */
  onLost?(e: { relayId: string; sessionsClosed: number; presenceDropped: number }): void;
  onPeerRefused?(e: { source: string; fingerprint: string | null; why: string }): void;
  leaseMs?: number;
  /** How long a moved agent's presence row stays (default MOVED_PRESENCE_GRACE_MS). */
  movedPresenceGraceMs?: number;
}

export interface FleetRoute {
  /** The other relays holding a link of this agent now, best first (empty: none). */
  holders(host: string): Promise<Holder[]>;
  /**
   * Open the session through the first holder that takes it. Rejects with the last holder's RelayError
   * (RLY_ERR_AGENT_OFFLINE when none could be reached).
   */
  open(
    host: string,
    holders: Holder[],
    meta: { sessionId: string; user: string },
  ): Promise<{ stream: ClientHttp2Stream; relayId: string }>;
}

export class Fleet implements FleetRoute {
  readonly store: FleetStore;
  private readonly log: Logger;
  private readonly leaseMs: number;
  private bus: FleetBus | null = null;
  private readonly peers: PeerLinks;
  private server: PeerServer | null = null;
  private timer: NodeJS.Timeout | null = null;
  private peerUrl = '';
  /** performance.now() of the first renewal of the current unbroken run of renewals (null: last one failed). */
  private healthySince: number | null = null;
  private presenceDirty = false;
  private readonly presenceChain = new Map<string, Promise<void>>();
  /** Agents this relay moved, by id: the timer that removes their presence row after the grace. */
  private readonly movedRemovals = new Map<string, NodeJS.Timeout>();
  private online: { at: number; names: Promise<Set<string>> } | null = null;
  private ticking = false;
  private stopped = false;
  private state: 'serving' | 'draining' = 'serving';

  constructor(private readonly o: FleetOptions) {
    this.leaseMs = o.leaseMs ?? DEFAULT_LEASE_MS;
    this.store = new FleetStore(o.db, this.leaseMs);
    this.log = o.logger.child({ component: 'relay.fleet' });
    // Ready before start(): the public listener opens first, and a session arriving before this relay has
    // joined is forwarded to the agent's holder like any other (a restarted relay back in rotation at once).
    this.peers = new PeerLinks({ identity: o.identity, relayId: o.relayId, logger: o.logger });
  }

  get id(): string {
    return this.o.relayId;
  }

  /** Listen for peers, register, start the heartbeat and the news listener. Returns the peer address. */
  async start(): Promise<{ peerUrl: string }> {
    this.server = createPeerServer({
      identity: this.o.identity,
      memberByFingerprint: (fp) => this.store.memberByFingerprint(fp),
      router: this.o.router,
      logger: this.o.logger,
      onRefused: (e) => this.o.onPeerRefused?.(e),
    });
    const bound = await this.server.listen(this.o.peerListen.host, this.o.peerListen.port);
    this.peerUrl = this.o.peerUrl ?? `https://${hostForUrl(this.o.peerListen.host)}:${bound.port}`;
    await this.register();
    // Rows a previous run under this relay id left (it stopped within its lease, so no survivor dropped
    // them): make presence exactly this run's links now, not at the first heartbeat.
    await this.rewritePresence().catch((err: unknown) => {
      this.presenceDirty = true;
      this.log.warn({ err: (err as Error).message }, 'could not rewrite agent presence at start; retried');
    });
    this.healthySince = performance.now();
    this.bus = new FleetBus({
      databaseUrl: this.o.databaseUrl,
      db: this.o.db,
      relayId: this.o.relayId,
      logger: this.o.logger,
      onNews: (n, from) => this.o.onNews(n, from),
      onResync: () => {
        this.presenceDirty = true;
        this.o.onResync?.();
      },
    });
    await this.bus.start();
    this.timer = setInterval(() => void this.tick(), Math.max(100, Math.floor(this.leaseMs / 3)));
    this.timer.unref();
    this.log.info({ relay: this.o.relayId, peerUrl: this.peerUrl, leaseMs: this.leaseMs }, 'joined the relay fleet');
    return { peerUrl: this.peerUrl };
  }

  /**
   * An agent link became this relay's registered link for `name` (up) or stopped being it (down). A link
   * this relay asked to move keeps its row for MOVED_PRESENCE_GRACE_MS (the relay is draining, so lookups
   * read it as "moving") unless the agent's link comes back here first.
   */
  presence(e: PresenceChange): void {
    if (this.stopped) return;
    const pending = this.movedRemovals.get(e.agentId);
    if (pending) {
      clearTimeout(pending);
      this.movedRemovals.delete(e.agentId);
    }
    if (!e.up && e.moved) {
      const t = setTimeout(() => {
        this.movedRemovals.delete(e.agentId);
        this.presence({ ...e, moved: false });
      }, this.o.movedPresenceGraceMs ?? MOVED_PRESENCE_GRACE_MS);
      t.unref();
      this.movedRemovals.set(e.agentId, t);
      return;
    }
    this.online = null;
    const prev = this.presenceChain.get(e.agentId) ?? Promise.resolve();
    const next = prev
      .then(() =>
        e.up
          ? this.store.addPresence(this.o.relayId, e.agentId, e.name)
          : this.store.removePresence(this.o.relayId, e.agentId),
      )
      .catch((err: unknown) => {
        this.presenceDirty = true;
        this.log.warn(
          { err: (err as Error).message, agent: e.name, up: e.up },
          'could not record agent presence; it is rewritten once the database answers',
        );
      })
      .finally(() => {
        if (this.presenceChain.get(e.agentId) === next) this.presenceChain.delete(e.agentId);
      });
    this.presenceChain.set(e.agentId, next);
  }

  holders(host: string): Promise<Holder[]> {
    return this.store.holders(host, this.o.relayId);
  }

  async open(
    host: string,
    holders: Holder[],
    meta: { sessionId: string; user: string },
  ): Promise<{ stream: ClientHttp2Stream; relayId: string }> {
    let last: RelayError = relayError('RLY_ERR_AGENT_OFFLINE', `${host} is enrolled but its agent is not connected`);
    for (const h of holders) {
      try {
        const stream = await this.peers.open(h, { ...meta, host });
        return { stream, relayId: h.relayId };
      } catch (err) {
        last = err instanceof RelayError ? err : relayError('RLY_ERR_AGENT_OFFLINE', undefined, err);
        // A holder that no longer holds the agent, or cannot be reached: try the next one. Any other
        // answer (the agent failed, its cap is reached) is the session's answer.
        if (last.code !== 'RLY_ERR_AGENT_OFFLINE') throw last;
        this.log.debug({ host, holder: h.relayId, err: last.message }, 'holder unusable; trying the next');
      }
    }
    throw last;
  }

  /** Names of machines online anywhere in the fleet (this relay's links included), read at most every 500 ms. */
  async onlineNames(): Promise<Set<string>> {
    const t = performance.now();
    if (!this.online || t - this.online.at > 500) {
      const entry = {
        at: t,
        names: this.store.onlineNames().then((n) => new Set([...n, ...this.o.router.onlineNames()])),
      };
      entry.names.catch(() => {
        if (this.online === entry) this.online = null;
      });
      this.online = entry;
    }
    try {
      return await this.online.names;
    } catch {
      return new Set(this.o.router.onlineNames());
    }
  }

  list(): Promise<RelayInfo[]> {
    return this.store.list();
  }

  /** Forwarded sessions this relay carries for its peers (it holds their agents). */
  carried(): number {
    return this.server?.carried() ?? 0;
  }

  publish(news: FleetNews): void {
    void this.bus?.publish(news);
  }

  /** Draining: still a member (its running sessions go on), no longer preferred as a holder. */
  async drain(): Promise<void> {
    this.state = 'draining';
    await this.store
      .setState(this.o.relayId, 'draining')
      .catch((err: unknown) => this.log.warn({ err: (err as Error).message }, 'could not record the drain'));
  }

  /** Leave the fleet: state stopped, presence gone, peer listener and links closed. */
  async stop(): Promise<void> {
    if (this.stopped) return;
    this.stopped = true;
    if (this.timer) clearInterval(this.timer);
    for (const t of this.movedRemovals.values()) clearTimeout(t);
    this.movedRemovals.clear(); // leave() below drops every presence row of this relay
    await Promise.allSettled([...this.presenceChain.values()]);
    await this.store
      .leave(this.o.relayId)
      .catch((err: unknown) => this.log.warn({ err: (err as Error).message }, 'could not record leaving the fleet'));
    await this.bus?.stop();
  }

  /** After the agent links closed: end the peer links (forwarded sessions in both directions). */
  async closeLinks(): Promise<void> {
    this.peers.close();
    await this.server?.close(true);
  }

  private async register(): Promise<void> {
    await this.store.register({
      id: this.o.relayId,
      peerUrl: this.peerUrl,
      peerFingerprint: this.o.identity.fingerprint,
      publicUrl: this.o.publicUrl(),
      version: SOFTWARE_VERSION,
      pid: process.pid,
    });
  }

  /** Make this relay's presence rows exactly the links it holds now. */
  private async rewritePresence(): Promise<void> {
    const agents = this.o.router
      .onlineNames()
      .map((name) => ({ id: this.o.router.agentIdOf?.(name) ?? '', name }))
      .filter((a) => a.id !== '');
    await this.store.replacePresence(this.o.relayId, agents);
    this.online = null;
    this.log.info({ agents: agents.length }, 'agent presence rewritten');
  }

  private async tick(): Promise<void> {
    if (this.ticking || this.stopped) return;
    this.ticking = true;
    try {
      let renewed: 'ok' | 'lost';
      try {
        renewed = await this.store.renew(this.o.relayId);
      } catch (err) {
        if (this.healthySince !== null)
          this.log.warn({ err: (err as Error).message }, 'cannot renew the fleet lease (database unavailable)');
        this.healthySince = null;
        return;
      }
      if (renewed === 'lost') {
        this.log.warn(
          { relay: this.o.relayId },
          'this relay was declared lost by the fleet (its lease expired); registering again',
        );
        await this.register();
        if (this.state === 'draining') await this.store.setState(this.o.relayId, 'draining');
        this.presenceDirty = true;
      }
      if (this.healthySince === null) {
        this.healthySince = performance.now();
        this.presenceDirty = true;
        this.bus?.retryNow();
        this.log.info('fleet lease renewed again');
      }
      if (this.presenceDirty) {
        this.presenceDirty = false;
        try {
          await this.rewritePresence();
        } catch (err) {
          this.presenceDirty = true;
          throw err;
        }
      }
      if (performance.now() - this.healthySince >= 2 * this.leaseMs) await this.sweep();
    } catch (err) {
      this.log.warn({ err: (err as Error).message }, 'fleet heartbeat step failed');
    } finally {
      this.ticking = false;
    }
  }

  private async sweep(): Promise<void> {
    // One more lease of grace after expiry: a relay whose renewals are only late (a loaded event loop, a
    // slow database) is not declared lost, its live sessions closed in the audit trail, for a hiccup.
    // Routing does not wait for this: lookups skip an expired lease at once.
    const lost = await this.store.claimLost(this.leaseMs);
    for (const { relayId, presenceDropped } of lost) {
      this.online = null;
      const sessionsClosed = await this.o.closeSessionsOf(relayId);
      this.log.warn(
        { lost: relayId, sessionsClosed, presenceDropped },
        `relay ${relayId} is lost (its lease expired): closed ${sessionsClosed} of its sessions as relay_crashed`,
      );
      try {
        this.o.onLost?.({ relayId, sessionsClosed, presenceDropped });
      } catch {
        /* observer */
      }
    }
  }
}

function hostForUrl(host: string): string {
  return host.includes(':') ? `[${host}]` : host;
}
