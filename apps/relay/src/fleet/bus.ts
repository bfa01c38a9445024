/**
 * Fleet-wide news over Postgres LISTEN/NOTIFY (channel `mssh_fleet`): what one relay did that every
 * other relay must act on at once (end a user's sessions, drop a revoked agent, close the jump
 * connections of a removed key, reload rotated signing keys). One dedicated connection LISTENs; it
 * reconnects by itself (Postgres restarted), and after a reconnect `onResync` runs, since news sent while
 * it was away is lost (NOTIFY is not queued for absent listeners).
 */
import pg from 'pg';
import { sql } from 'drizzle-orm';
import type { Logger } from 'pino';
import type { Db } from '../db/index.js';
import type { SessionEndReason } from '../tunnel/types.js';
import type { UserChange } from '../auth/user-changes.js';

export const FLEET_CHANNEL = 'mssh_fleet';

export type FleetNews =
  | { t: 'end-user-sessions'; user: string; reason: SessionEndReason }
  | { t: 'close-agent'; name: string; reason: SessionEndReason; agentId?: string }
  | { t: 'user-change'; change: UserChange }
  | { t: 'keys-rotated' }
  /** A machine's labels changed: end the sessions to it that no grant matches any more. */
  | { t: 'host-access-changed'; host: string }
  | { t: 'grants-changed' };

interface Envelope {
  from: string;
  news: FleetNews;
}

export interface FleetBusOptions {
  databaseUrl: string;
  db: Db;
  relayId: string;
  logger: Logger;
  /** News from another relay. Must not throw. */
  onNews(news: FleetNews, from: string): void;
  /** The listener (re)connected after having been down: catch up on what may have been missed. */
  onResync?(): void;
  /** Reconnect delays, doubling (default 250 ms up to 5 s). */
  minRetryMs?: number;
  maxRetryMs?: number;
}

export class FleetBus {
  private client: pg.Client | null = null;
  private stopped = false;
  private retryMs: number;
  private retryTimer: NodeJS.Timeout | null = null;
  /** The reconnect attempt retryTimer will run (retryNow runs it at once). */
  private pendingAttempt: (() => void) | null = null;
  private everConnected = false;
  private readonly log: Logger;

  constructor(private readonly o: FleetBusOptions) {
    this.retryMs = o.minRetryMs ?? 250;
    this.log = o.logger.child({ component: 'relay.fleet.bus' });
  }

  /** Resolves once listening (or rejects with the first connection's error). */
  async start(): Promise<void> {
    await this.connect();
  }

  /** Tell every other relay. Failures are logged (the local action is done anyway). */
  async publish(news: FleetNews): Promise<void> {
    const payload = JSON.stringify({ from: this.o.relayId, news } satisfies Envelope);
    try {
      await this.o.db.execute(sql`SELECT pg_notify(${FLEET_CHANNEL}, ${payload})`);
    } catch (err) {
      this.log.warn({ err: (err as Error).message, news: news.t }, 'could not tell the fleet (database unavailable)');
    }
  }

  async stop(): Promise<void> {
    this.stopped = true;
    if (this.retryTimer) clearTimeout(this.retryTimer);
    const c = this.client;
    this.client = null;
    if (c) await c.end().catch(() => {});
  }

  private async connect(): Promise<void> {
    const client = new pg.Client({ connectionString: this.o.databaseUrl, connectionTimeoutMillis: 5_000 });
    client.on('error', (err) => {
      this.log.warn({ err: err.message }, 'fleet news listener lost its database connection');
      this.reconnect(client);
    });
    client.on('end', () => this.reconnect(client));
    client.on('notification', (n) => {
      if (n.channel !== FLEET_CHANNEL || !n.payload) return;
      let env: Envelope;
      try {
        env = JSON.parse(n.payload) as Envelope;
      } catch {
        return;
      }
      if (!env || typeof env.from !== 'string' || env.from === this.o.relayId || !env.news) return;
      try {
        this.o.onNews(env.news, env.from);
      } catch (err) {
        this.log.error({ err, news: env.news.t }, 'acting on fleet news failed');
      }
    });
    this.client = client;
    try {
      await client.connect();
      await client.query(`LISTEN ${FLEET_CHANNEL}`);
    } catch (err) {
      client.removeAllListeners('end');
      await client.end().catch(() => {});
      if (this.client === client) this.client = null;
      throw err;
    }
    if (this.everConnected) {
      this.log.info('fleet news listener reconnected');
      try {
        this.o.onResync?.();
      } catch (err) {
        this.log.error({ err }, 'fleet resync failed');
      }
    }
    this.everConnected = true;
    this.retryMs = this.o.minRetryMs ?? 250;
  }

  /**
   * The database answers again (the lease was just renewed): if the listener is waiting to retry, retry
   * now rather than at the end of its back-off, so news sent from now on is not missed.
   */
  retryNow(): void {
    if (this.stopped || !this.retryTimer || !this.pendingAttempt) return;
    clearTimeout(this.retryTimer);
    this.retryTimer = null;
    this.pendingAttempt();
  }

  private reconnect(client: pg.Client): void {
    if (this.stopped || this.client !== client) return;
    this.client = null;
    client.removeAllListeners('end');
    client.end().catch(() => {});
    const attempt = (): void => {
      this.retryTimer = null;
      this.pendingAttempt = null;
      if (this.stopped) return;
      this.connect().catch((err: unknown) => {
        this.log.debug({ err: (err as Error).message, retryMs: this.retryMs }, 'fleet news listener: retrying');
        this.retryMs = Math.min(this.o.maxRetryMs ?? 5_000, this.retryMs * 2);
        this.retryTimer = setTimeout(attempt, this.retryMs);
        this.retryTimer.unref();
        this.pendingAttempt = attempt;
      });
    };
    this.retryTimer = setTimeout(attempt, this.retryMs);
    this.retryTimer.unref();
    this.pendingAttempt = attempt;
  }
}
