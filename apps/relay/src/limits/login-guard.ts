/**
 * Login abuse guard for POST /v1/auth/login and the SSH jump listener (one instance for both, so a
 * guesser gets one budget whatever door it knocks on): failed logins are counted per source address and
 * per user name (each with its own back-off, see backoff-limiter.ts); a blocked source or name is
 * answered RLY_ERR_RATE_LIMITED (HTTP 429 with Retry-After, before any password is hashed; on SSH a
 * disconnect with that code, before any key is looked up). A refused attempt does not count
 * again, so an attacker hammering from one address cannot lock the user out elsewhere: the per-name
 * limit (looser) only trips on failures spread over many addresses. A successful login clears the name.
 */
import { AuthError } from '@mssh/auth';
import { relayError, type RelayError } from '../errors.js';
import { BackoffLimiter, type BackoffLimiterOptions } from './backoff-limiter.js';
import { limitKey } from './source-address.js';

/** What the guard tells the relay's metrics (metrics/relay-metrics.ts implements it). Must not throw. */
export interface LoginMetrics {
  /** A login succeeded (ok) or failed, on either door. */
  login(ok: boolean): void;
  /** An attempt was refused RLY_ERR_RATE_LIMITED before any password or key was checked. */
  blocked(): void;
}

export interface LoginGuardOptions {
  /** Free failed logins per minute and source address (default 5). */
  perSource?: number;
  /** Free failed logins per minute and user name, over all sources (default 10). */
  perUser?: number;
  /** Shared limiter tuning (tests shorten the blocks). */
  limiter?: Omit<BackoffLimiterOptions, 'limit'>;
  /** Logins and blocks for the metrics endpoint. Absent: not counted. */
  metrics?: LoginMetrics;
}

export class LoginGuard {
  readonly bySource: BackoffLimiter;
  readonly byUser: BackoffLimiter;
  private readonly metrics: LoginMetrics | undefined;

  constructor(opts: LoginGuardOptions = {}) {
    this.metrics = opts.metrics;
    this.bySource = new BackoffLimiter({ ...opts.limiter, limit: opts.perSource ?? 5 });
    this.byUser = new BackoffLimiter({ ...opts.limiter, limit: opts.perUser ?? 10 });
  }

  /** Entries both limiters hold (forgotten ones are swept out every minute). */
  get entries(): number {
    return this.bySource.size + this.byUser.size;
  }

  /** Stop the limiters' sweep timers (buildServer does it when the server closes). */
  close(): void {
    this.bySource.close();
    this.byUser.close();
  }

  /**
   * Null when `user` from `rawSource` may try to log in now; else the RLY_ERR_RATE_LIMITED error to
   * answer with (and the attempt does not count again). `rawSource` is counted by address only
   * (limitKey: no port, IPv6 by /64).
   */
  refusal(user: string, rawSource: string): RelayError | null {
    const blocked = [this.bySource.check(limitKey(rawSource)), this.byUser.check(user.toLowerCase())].find(
      (v) => !v.ok,
    );
    if (!blocked || blocked.ok) return null;
    this.metrics?.blocked();
    return rateLimited(blocked.retryAfterMs);
  }

  /** A failed login; `user` null counts the address only (a connection that never named a user). */
  failed(user: string | null, rawSource: string): void {
    this.metrics?.login(false);
    this.bySource.fail(limitKey(rawSource));
    if (user !== null) this.byUser.fail(user.toLowerCase());
  }

  /** A successful login forgets the failures of the user name. */
  succeeded(user: string): void {
    this.metrics?.login(true);
    this.byUser.reset(user.toLowerCase());
  }

  /** Run one password login under the limits; only AUTH_ERR_BAD_CREDENTIALS counts as a failure. */
  async attempt<T>(user: string, rawSource: string, login: () => Promise<T>): Promise<T> {
    const refused = this.refusal(user, rawSource);
    if (refused) throw refused;
    try {
      const r = await login();
      this.succeeded(user);
      return r;
    } catch (err) {
      if (err instanceof AuthError && err.code === 'AUTH_ERR_BAD_CREDENTIALS') this.failed(user, rawSource);
      else if (err instanceof AuthError) this.metrics?.login(false); // refused, but not a guess (disabled user)
      throw err;
    }
  }
}

function rateLimited(retryAfterMs: number): RelayError {
  const seconds = Math.max(1, Math.ceil(retryAfterMs / 1000));
  const e = relayError('RLY_ERR_RATE_LIMITED', `too many failed logins; try again in ${seconds} s`);
  e.retryAfterSeconds = seconds;
  return e;
}
