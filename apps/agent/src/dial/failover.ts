/**
 * The reconnect rules of one link (one supervisor loop): what each way an attempt can end means for the
 * next dial and for the back-off (backoff.ts).
 *
 *   attempt ended         next                                   back-off
 *   ------------------    -------------------------------------  -----------------------------------------
 *   moved (relay GOAWAY)  a new round at once, that relay last    unchanged
 *   lost (was welcomed)   a new round at once, that relay last    unchanged (*)
 *   failed / refused-tcp  the next candidate of the round, now    unchanged while candidates are left;
 *                                                                 a whole round failed: one step, drawn
 *                                                                 under the refused cap when every
 *                                                                 failure of the round was ECONNREFUSED
 *   duplicate             the next candidate after a short pause  as failed (the round found no new relay)
 *   permanent             exit (78)
 *
 * (*) A relay that welcomes and drops the agent over and over must not turn into a reconnect storm: only
 * `freeRedials` moves or losses per `freeWindowMs` are free; past that, each one takes a back-off step.
 */
import { Backoff } from './backoff.js';

/** How one attempt (one candidate dialled) ended. */
export type AttemptEnd =
  /** The relay sent GOAWAY (NGHTTP2_NO_ERROR) on a welcomed link: it asks the agent to move. */
  | 'moved'
  /** A welcomed link ended: socket closed, PING timeout, GOAWAY with an error. */
  | 'lost'
  /** The relay welcomed a link while another link of this agent holds that relay: declined. */
  | 'duplicate'
  /** Nothing listens there (ECONNREFUSED): a relay restarting or draining. */
  | 'refused-tcp'
  /** Any other failure before the welcome: DNS, timeout, TLS, pin, ALPN, a non-permanent refusal. */
  | 'failed'
  /** The relay refused the agent for good (unknown key, revoked, ...). */
  | 'permanent';

export type NextStep =
  | { kind: 'exit' }
  /** Dial the next candidate of this round after delayMs. */
  | { kind: 'next-candidate'; delayMs: number }
  /** Start a new round (resolve the relays again) after delayMs; `backedOff`: the back-off took a step. */
  | { kind: 'new-round'; delayMs: number; backedOff: boolean };

export interface FailoverOptions {
  /** Free (immediate, back-off unchanged) redials after a move or a lost link, per window. */
  freeRedials: number;
  freeWindowMs: number;
  /** Pause before the next candidate after a declined duplicate (jittered between half and all of it). */
  duplicateDelayMs: number;
  now: () => number;
  random: () => number;
}

export const DEFAULT_FREE_REDIALS = 10;
export const DEFAULT_FREE_WINDOW_MS = 60_000;
export const DEFAULT_DUPLICATE_DELAY_MS = 1_000;

export class Failover {
  readonly backoff: Backoff;
  private readonly o: FailoverOptions;
  /** Every failure of the round so far was ECONNREFUSED. */
  private allRefused = true;
  /** The round declined a duplicate: its end waits at least duplicateDelayMs. */
  private sawDuplicate = false;
  private freeAt: number[] = [];

  constructor(backoff: Backoff = new Backoff(), opts: Partial<FailoverOptions> = {}) {
    this.backoff = backoff;
    this.o = {
      freeRedials: opts.freeRedials ?? DEFAULT_FREE_REDIALS,
      freeWindowMs: opts.freeWindowMs ?? DEFAULT_FREE_WINDOW_MS,
      duplicateDelayMs: opts.duplicateDelayMs ?? DEFAULT_DUPLICATE_DELAY_MS,
      now: opts.now ?? (() => performance.now()),
      random: opts.random ?? Math.random,
    };
  }

  /** A new round starts (its candidates were just resolved and ordered). */
  newRound(): void {
    this.allRefused = true;
    this.sawDuplicate = false;
  }

  /** A relay of the round could not even be dialled (its host name did not resolve): not a refusal. */
  resolveFailed(): void {
    this.allRefused = false;
  }

  /** A link was welcomed. */
  welcomed(): void {
    this.backoff.connected();
  }

  /** What to do after an attempt that ended with `end`, `left` candidates of the round not yet tried. */
  after(end: AttemptEnd, left: number): NextStep {
    switch (end) {
      case 'permanent':
        return { kind: 'exit' };
      case 'moved':
      case 'lost':
        this.backoff.disconnected();
        if (this.takeFreeRedial()) return { kind: 'new-round', delayMs: 0, backedOff: false };
        return { kind: 'new-round', delayMs: this.backoff.next('other'), backedOff: true };
      case 'duplicate':
        this.allRefused = false;
        this.sawDuplicate = true;
        return left > 0 ? { kind: 'next-candidate', delayMs: this.duplicateDelay() } : this.roundFailed();
      case 'refused-tcp':
      case 'failed':
        if (end === 'failed') this.allRefused = false;
        return left > 0 ? { kind: 'next-candidate', delayMs: 0 } : this.roundFailed();
    }
  }

  /** Every candidate of the round failed (or there were none): one back-off step. */
  roundFailed(): NextStep {
    const delay = this.backoff.next(this.allRefused ? 'refused' : 'other');
    return {
      kind: 'new-round',
      delayMs: this.sawDuplicate ? Math.max(delay, this.duplicateDelay()) : delay,
      backedOff: true,
    };
  }

  private duplicateDelay(): number {
    const r = Math.min(Math.max(this.o.random(), 0), 1);
    return Math.floor(this.o.duplicateDelayMs * (0.5 + r / 2));
  }

  private takeFreeRedial(): boolean {
    const now = this.o.now();
    this.freeAt = this.freeAt.filter((t) => now - t < this.o.freeWindowMs);
    if (this.freeAt.length >= this.o.freeRedials) return false;
    this.freeAt.push(now);
    return true;
  }
}
