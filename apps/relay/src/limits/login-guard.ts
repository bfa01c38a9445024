/**
 * Login abuse guard for POST /v1/auth/login: failed logins are counted per source address and per user
 * name (each with its own back-off, see backoff-limiter.ts); a blocked source or name is answered 429
 * RLY_ERR_RATE_LIMITED with Retry-After before any password is hashed. A refused attempt does not count
 * again, so an attacker hammering from one address cannot lock the user out elsewhere: the per-name
 * limit (looser) only trips on failures spread over many addresses. A successful login clears the name.
 */
import { AuthError } from '@mssh/auth';
import { relayError } from '../errors.js';
import { BackoffLimiter, type BackoffLimiterOptions } from './backoff-limiter.js';
import { limitKey } from './source-address.js';

export interface LoginGuardOptions {
  /** Free failed logins per minute and source address (default 5). */
  perSource?: number;
  /** Free failed logins per minute and user name, over all sources (default 10). */
  perUser?: number;
  /** Shared limiter tuning (tests shorten the blocks). */
  limiter?: Omit<BackoffLimiterOptions, 'limit'>;
}

export class LoginGuard {
  readonly bySource: BackoffLimiter;
  readonly byUser: BackoffLimiter;

  constructor(opts: LoginGuardOptions = {}) {
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
   * Run one login attempt under the limits; only AUTH_ERR_BAD_CREDENTIALS counts as a failure. `source`
   * is counted by address only (limitKey: no port, IPv6 by /64).
   */
  async attempt<T>(user: string, rawSource: string, login: () => Promise<T>): Promise<T> {
    const userKey = user.toLowerCase();
    const source = limitKey(rawSource);
    const blocked = [this.bySource.check(source), this.byUser.check(userKey)].find((v) => !v.ok);
    if (blocked && !blocked.ok) throw rateLimited(blocked.retryAfterMs);
    try {
      const r = await login();
      this.byUser.reset(userKey);
      return r;
    } catch (err) {
      if (err instanceof AuthError && err.code === 'AUTH_ERR_BAD_CREDENTIALS') {
        this.bySource.fail(source);
        this.byUser.fail(userKey);
      }
      throw err;
    }
  }
}

function rateLimited(retryAfterMs: number) {
  const seconds = Math.max(1, Math.ceil(retryAfterMs / 1000));
  const e = relayError('RLY_ERR_RATE_LIMITED', `too many failed logins; try again in ${seconds} s`);
  e.retryAfterSeconds = seconds;
  return e;
}
