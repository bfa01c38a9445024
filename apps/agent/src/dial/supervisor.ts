/**
 * Keeps the agent online: one RelayLink at a time, reconnecting with backoff after every failure or
 * drop, until stopped (SIGTERM) or refused permanently by the relay (exit status 78, EX_CONFIG).
 */
import type pino from 'pino';
import { Backoff, type FailureKind } from './backoff.js';
import { RelayLink, type RelayLinkOptions, type LinkOutcome } from './relay-link.js';
import { formatHostPort } from './endpoint.js';

/** Exit status for a permanent refusal (sysexits EX_CONFIG): a service manager should not restart. */
export const EXIT_REFUSED = 78;

export interface SupervisorOptions extends Omit<RelayLinkOptions, 'onWelcomed'> {
  backoff?: Backoff;
  /** Called with every link outcome (tests, metrics). */
  onOutcome?: (o: LinkOutcome) => void;
}

export interface SupervisorResult {
  exitCode: number;
  /** The permanent refusal that ended the agent, if that is why it stopped. */
  refusal: { code: string; message: string } | null;
}

export class AgentSupervisor {
  private readonly o: SupervisorOptions;
  private readonly log: pino.Logger;
  private readonly backoff: Backoff;
  private link: RelayLink | null = null;
  private stopping = false;
  private wake: (() => void) | null = null;
  private running: Promise<SupervisorResult> | null = null;

  constructor(opts: SupervisorOptions) {
    this.o = opts;
    this.log = opts.logger;
    this.backoff = opts.backoff ?? new Backoff();
  }

  /** The current link, if one is up or being dialled. */
  current(): RelayLink | null {
    return this.link;
  }

  /** Run until stopped or permanently refused. Calling it twice returns the same run. */
  run(): Promise<SupervisorResult> {
    this.running ??= this.loop();
    return this.running;
  }

  private async loop(): Promise<SupervisorResult> {
    const where = formatHostPort(this.o.endpoint);
    for (let attempt = 1; !this.stopping; attempt++) {
      this.log.debug({ relay: where, attempt }, `connecting to relay ${where}`);
      const link = new RelayLink({ ...this.o, onWelcomed: () => this.backoff.connected() });
      this.link = link;
      const out = await link.run();
      this.link = null;
      try {
        this.o.onOutcome?.(out);
      } catch (err) {
        // An observer's bug must not stop the agent, nor go unseen.
        this.log.error({ err, outcome: out.kind }, 'an onOutcome observer threw; the agent keeps dialling');
      }
      if (this.stopping) break;
      let kind: FailureKind = 'other';
      if (out.kind === 'failed') {
        this.log.warn({ relay: where, code: out.error.code }, `cannot connect to relay ${where}: ${out.error.message}`);
        if (out.refused) kind = 'refused';
      } else if (out.kind === 'refused') {
        if (out.permanent) return { exitCode: EXIT_REFUSED, refusal: { code: out.code, message: out.message } };
      } else {
        this.backoff.disconnected();
        this.log.warn({ relay: where, reason: out.reason }, `disconnected from relay: ${out.reason}`);
      }
      const delay = this.backoff.next(kind);
      this.log.info({ delayMs: delay }, `retry in ${delay} ms`);
      await this.sleep(delay);
    }
    return { exitCode: 0, refusal: null };
  }

  private sleep(ms: number): Promise<void> {
    if (this.stopping) return Promise.resolve();
    return new Promise((resolve) => {
      const t = setTimeout(done, ms);
      function done(): void {
        clearTimeout(t);
        resolve();
      }
      this.wake = () => {
        this.wake = null;
        done();
      };
    });
  }

  /** Stop: close the link gracefully (running sessions get graceMs), stop retrying. */
  async stop(graceMs = 5_000): Promise<void> {
    this.stopping = true;
    this.wake?.();
    const link = this.link;
    if (link) await link.close(graceMs);
    if (this.running) await this.running;
  }
}
