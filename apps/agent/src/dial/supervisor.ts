/**
 * Keeps the agent online through the relays of its fleet: K link loops (`--links`, default 1), each
 * holding one RelayLink at a time, each to a DIFFERENT relay (told apart by the relay id of the welcome).
 * Runs until stopped (SIGTERM) or refused permanently by a relay (exit status 78, EX_CONFIG).
 *
 *   loop i:  resolve the relays (candidates.ts) -> order the round (start at candidate i, or right after
 *            the relay just lost; relays held by another loop, and the one that asked to move, last)
 *            -> dial each in turn until one welcomes the link -> serve until it ends -> next round
 *
 * What each ending means for the next dial and the back-off is failover.ts's: a lost or moved link
 * redials at once with the back-off unchanged; the back-off only grows when a whole round failed. A link
 * the relay asked to move (GOAWAY) keeps serving its running sessions while the loop dials elsewhere.
 */
import type pino from 'pino';
import { Backoff } from './backoff.js';
import { orderRound, resolveCandidates, type Candidate, type LookupAll, type RelaySource } from './candidates.js';
import { formatHostPort, type HostPort } from './endpoint.js';
import { Failover, type AttemptEnd, type FailoverOptions, type NextStep } from './failover.js';
import { RelayLink, type LinkOutcome, type RelayLinkOptions } from './relay-link.js';

/** Exit status for a permanent refusal (sysexits EX_CONFIG): a service manager should not restart. */
export const EXIT_REFUSED = 78;
/** Most links an agent holds at once (`--links`). */
export const MAX_LINKS = 8;
/** On a permanent refusal the other links get this long for their sessions before the agent exits. */
const REFUSAL_GRACE_MS = 1_000;

export interface SupervisorOptions extends Omit<
  RelayLinkOptions,
  'endpoint' | 'address' | 'onWelcomed' | 'acceptRelay' | 'onMove'
> {
  /** The relays of the fleet in order of preference (the enrolled one first). */
  relays?: RelaySource[];
  /** One relay only (as before the fleet): the same as relays [{ label: 'host:port', endpoint }]. */
  endpoint?: HostPort;
  /** Links held at once, each to a different relay (1..MAX_LINKS, default 1). */
  links?: number;
  /** The back-off of loop i: a factory, or one instance for loop 0 (the others get default ones). */
  backoff?: Backoff | ((loop: number) => Backoff);
  /** The reconnect rules' knobs (failover.ts). */
  failover?: Partial<FailoverOptions>;
  /** Resolves relay host names (default: dns.lookup, all addresses). */
  lookup?: LookupAll;
  /** Called with every link outcome (tests, metrics). */
  onOutcome?: (o: LinkOutcome) => void;
  /**
   * A relay welcomed a link (metrics). `reconnect`: this loop had a link before that was lost (`moved`:
   * the relay had asked it to move, a drain) rather than the loop's first link. Must not throw.
   */
  onLinkUp?: (e: { reconnect: boolean; moved: boolean }) => void;
}

export interface SupervisorResult {
  exitCode: number;
  /** The permanent refusal that ended the agent, if that is why it stopped. */
  refusal: { code: string; message: string } | null;
}

/** What one loop holds right now (tests, logs). */
export interface LinkStatus {
  loop: number;
  /** Where its current link dials (null between attempts). */
  relay: string | null;
  /** The id of the relay that welcomed it (null before the welcome or from a relay that sends none). */
  relayId: string | null;
  welcomed: boolean;
  /** Links of this loop that a relay asked to move and that still serve running sessions. */
  moving: number;
  /** Back-off steps taken since its last reset (Backoff.attempts). */
  backoffAttempts: number;
}

type Refusal = { code: string; message: string };
type AttemptResult = { end: AttemptEnd; relayKey: string | null; refusal?: Refusal };
type Lost = { where: string; relayId: string | null; moved: boolean; reason: string; at: number; sessions: number };

export class AgentSupervisor {
  private readonly o: SupervisorOptions;
  private readonly log: pino.Logger;
  private readonly sources: RelaySource[];
  private readonly loops: LinkLoop[];
  private readonly k: number;
  /** relay key (its id, else "address:HOST:PORT") -> the loop whose link holds it. */
  private readonly holders = new Map<string, LinkLoop>();
  /** candidate key -> the relay key last seen behind that address. */
  private readonly relayBehind = new Map<string, string>();
  private stopping = false;
  private running: Promise<SupervisorResult> | null = null;

  constructor(opts: SupervisorOptions) {
    this.o = opts;
    this.log = opts.logger;
    const sources =
      opts.relays ?? (opts.endpoint ? [{ label: formatHostPort(opts.endpoint), endpoint: opts.endpoint }] : []);
    if (sources.length === 0) throw new Error('AgentSupervisor: no relay to dial (relays or endpoint)');
    this.sources = sources;
    const k = Math.max(1, Math.min(MAX_LINKS, Math.floor(opts.links ?? 1)));
    this.k = k;
    this.loops = Array.from({ length: k }, (_, i) => {
      const b = opts.backoff;
      const backoff = typeof b === 'function' ? b(i) : i === 0 && b ? b : new Backoff();
      return new LinkLoop(i, this, new Failover(backoff, opts.failover));
    });
  }

  /** Loop 0's current link, if one is up or being dialled. */
  current(): RelayLink | null {
    return this.loops[0]!.current;
  }

  /** Every link this agent has: each loop's current one, and those still serving after a move. */
  links(): RelayLink[] {
    return this.loops.flatMap((l) => [...(l.current ? [l.current] : []), ...l.moving]);
  }

  status(): LinkStatus[] {
    return this.loops.map((l) => ({
      loop: l.index,
      relay: l.current?.where ?? null,
      relayId: l.current?.relayId ?? null,
      welcomed: l.current?.isWelcomed ?? false,
      moving: l.moving.size,
      backoffAttempts: l.failover.backoff.attempts,
    }));
  }

  /** Run until stopped or permanently refused. Calling it twice returns the same run. */
  run(): Promise<SupervisorResult> {
    this.running ??= this.supervise();
    return this.running;
  }

  /** Stop: close every link gracefully (running sessions get graceMs), stop retrying. */
  async stop(graceMs = 5_000): Promise<void> {
    this.stopping = true;
    for (const l of this.loops) l.wakeUp();
    await Promise.all(this.links().map((link) => link.close(graceMs)));
    if (this.running) await this.running;
  }

  // ---- for the loops ----

  get isStopping(): boolean {
    return this.stopping;
  }

  get linkCount(): number {
    return this.k;
  }

  get logger(): pino.Logger {
    return this.log;
  }

  get agentName(): string {
    return this.o.name;
  }

  linkOptions(c: Candidate): Omit<RelayLinkOptions, 'onWelcomed' | 'acceptRelay' | 'onMove'> {
    const {
      relays: _r,
      endpoint: _e,
      links: _l,
      backoff: _b,
      failover: _f,
      lookup: _k,
      onOutcome: _o,
      onLinkUp: _u,
      ...rest
    } = this.o;
    return { ...rest, endpoint: c.source.endpoint, address: c.address };
  }

  resolve(): ReturnType<typeof resolveCandidates> {
    return resolveCandidates(this.sources, this.o.lookup);
  }

  /** Take the relay behind candidate c for this loop; false when another loop holds it. */
  claim(relayKey: string, loop: LinkLoop, c: Candidate): boolean {
    this.relayBehind.set(c.key, relayKey);
    const holder = this.holders.get(relayKey);
    if (holder && holder !== loop) return false;
    this.holders.set(relayKey, loop);
    return true;
  }

  release(relayKey: string, loop: LinkLoop): void {
    if (this.holders.get(relayKey) === loop) this.holders.delete(relayKey);
  }

  relayBehindCandidate(c: Candidate): string | null {
    return this.relayBehind.get(c.key) ?? null;
  }

  /** Is the relay last seen behind c held by a loop other than this one? */
  heldByOther(c: Candidate, loop: LinkLoop): boolean {
    const key = this.relayBehind.get(c.key);
    const holder = key === undefined ? undefined : this.holders.get(key);
    return holder !== undefined && holder !== loop;
  }

  linkUp(e: { reconnect: boolean; moved: boolean }): void {
    try {
      this.o.onLinkUp?.(e);
    } catch (err) {
      this.log.error({ err }, 'an onLinkUp observer threw; the agent goes on');
    }
  }

  report(out: LinkOutcome): void {
    try {
      this.o.onOutcome?.(out);
    } catch (err) {
      // An observer's bug must not stop the agent, nor go unseen.
      this.log.error({ err, outcome: out.kind }, 'an onOutcome observer threw; the agent keeps dialling');
    }
  }

  private async supervise(): Promise<SupervisorResult> {
    let refusal: Refusal | null = null;
    await Promise.all(
      this.loops.map(async (loop) => {
        const r = await loop.run();
        if (r && !refusal) {
          refusal = r;
          // Refused for good by one relay of the fleet: the agent exits, its other links with it.
          this.stopping = true;
          for (const l of this.loops) l.wakeUp();
          await Promise.all(this.links().map((link) => link.close(REFUSAL_GRACE_MS)));
        }
      }),
    );
    const r = refusal as Refusal | null;
    return r ? { exitCode: EXIT_REFUSED, refusal: r } : { exitCode: 0, refusal: null };
  }
}

/** One link loop: one link at a time, rounds over the candidates, the failover rules. */
class LinkLoop {
  current: RelayLink | null = null;
  readonly moving = new Set<RelayLink>();
  private wake: (() => void) | null = null;
  /** The link lost (or moved) last, named in the next welcome's log line. */
  private lost: Lost | null = null;
  private readonly log: pino.Logger;

  constructor(
    readonly index: number,
    private readonly sup: AgentSupervisor,
    readonly failover: Failover,
  ) {
    this.log = sup.linkCount > 1 ? sup.logger.child({ link: index + 1 }) : sup.logger;
  }

  wakeUp(): void {
    this.wake?.();
  }

  /** Until stopped (null) or refused for good (the refusal). */
  async run(): Promise<Refusal | null> {
    /** The candidate just lost or moved from, and the relay behind it: the next round puts them last. */
    let after: string | null = null;
    let leaving: string | null = null;
    while (!this.sup.isStopping) {
      const { candidates, failures } = await this.sup.resolve();
      if (this.sup.isStopping) break;
      this.failover.newRound();
      for (const f of failures) {
        this.failover.resolveFailed();
        this.log.warn(
          { relay: f.source.label, code: f.error.code },
          `cannot connect to relay ${f.source.label}: ${f.error.message}`,
        );
      }
      const avoidRelay = leaving;
      const order = orderRound(candidates, {
        after,
        startAt: this.index,
        spread: Math.random(),
        avoid: (c) =>
          this.sup.heldByOther(c, this) || (avoidRelay !== null && this.sup.relayBehindCandidate(c) === avoidRelay),
      });
      after = leaving = null;
      let step: NextStep = order.length === 0 ? this.failover.roundFailed() : { kind: 'next-candidate', delayMs: 0 };
      for (let i = 0; i < order.length && !this.sup.isStopping; i++) {
        const c = order[i]!;
        const r = await this.attempt(c);
        if (this.sup.isStopping) break;
        step = this.failover.after(r.end, order.length - 1 - i);
        if (step.kind === 'exit') return r.refusal ?? { code: 'unknown', message: 'refused' };
        if (r.end === 'moved' || r.end === 'lost') {
          after = c.key;
          leaving = r.relayKey;
        }
        if (step.kind === 'new-round') break;
        if (step.delayMs > 0) await this.sleep(step.delayMs);
      }
      if (this.sup.isStopping) break;
      if (step.kind === 'new-round' && step.backedOff) {
        this.log.info(
          { delayMs: step.delayMs, backoffAttempts: this.failover.backoff.attempts },
          `retry in ${step.delayMs} ms`,
        );
        await this.sleep(step.delayMs);
      }
    }
    return null;
  }

  private async attempt(c: Candidate): Promise<AttemptResult> {
    let claimed: string | null = null;
    let movedSignal: () => void = () => {};
    const moved = new Promise<'moved'>((resolve) => (movedSignal = () => resolve('moved')));
    const link: RelayLink = new RelayLink({
      ...this.sup.linkOptions(c),
      logger: this.log,
      acceptRelay: (relayId) => {
        const key = relayId ?? `address:${c.key}`;
        if (!this.sup.claim(key, this, c)) return false;
        claimed = key;
        return true;
      },
      onWelcomed: () => this.welcomed(link, c),
      onMove: () => movedSignal(),
    });
    this.current = link;
    this.log.debug({ relay: c.where }, `connecting to relay ${c.where}`);
    const running = link.run();
    const first = await Promise.race([running, moved]);
    this.current = null;
    const relayKey = claimed as string | null;
    if (relayKey) this.sup.release(relayKey, this);
    if (first === 'moved') {
      // The relay took this link out of its registry: no new session comes here. It serves its running
      // sessions until they end while this loop dials elsewhere.
      this.moving.add(link);
      this.lost = {
        where: c.where,
        relayId: link.relayId,
        moved: true,
        reason: 'moved',
        at: performance.now(),
        sessions: link.activeSessions(),
      };
      void running.then((out) => {
        this.moving.delete(link);
        this.log.debug(
          { relay: c.where, reason: out.kind === 'closed' ? out.reason : out.kind },
          `the link to relay ${c.where} that moved has closed`,
        );
        this.sup.report(out);
      });
      return { end: 'moved', relayKey };
    }
    const out = first;
    this.sup.report(out);
    switch (out.kind) {
      case 'failed':
        this.log.warn(
          { relay: c.where, code: out.error.code },
          `cannot connect to relay ${c.where}: ${out.error.message}`,
        );
        return { end: out.refused ? 'refused-tcp' : 'failed', relayKey: null };
      case 'refused':
        // RelayLink logged the relay's code and message.
        return out.permanent
          ? { end: 'permanent', relayKey: null, refusal: { code: out.code, message: out.message } }
          : { end: 'failed', relayKey: null };
      case 'duplicate':
        this.log.info(
          { relay: c.where, relayId: out.relayId },
          `relay ${c.where} already holds another link of this agent; trying another relay`,
        );
        return { end: 'duplicate', relayKey: null };
      case 'closed':
        this.log.warn({ relay: c.where, reason: out.reason }, `disconnected from relay ${c.where}: ${out.reason}`);
        if (!out.welcomed) return { end: 'failed', relayKey: null };
        this.lost = {
          where: c.where,
          relayId: link.relayId,
          moved: out.moved === true,
          reason: out.reason,
          at: performance.now(),
          sessions: 0,
        };
        return { end: out.moved ? 'moved' : 'lost', relayKey };
    }
  }

  private welcomed(link: RelayLink, c: Candidate): void {
    this.failover.welcomed();
    const name = this.sup.agentName;
    const lost = this.lost;
    this.lost = null;
    this.sup.linkUp({ reconnect: lost !== null, moved: lost?.moved ?? false });
    const fields = { name, relay: c.where, relayId: link.relayId, backoffAttempts: this.failover.backoff.attempts };
    const of = this.sup.linkCount > 1 ? ` (link ${this.index + 1} of ${this.sup.linkCount})` : '';
    if (!lost) {
      this.log.info(fields, `connected to relay ${c.where} as ${name}${of}`);
      return;
    }
    const from = {
      ...fields,
      from: lost.where,
      fromRelayId: lost.relayId,
      afterMs: Math.round(performance.now() - lost.at),
    };
    const same = lost.relayId !== null ? lost.relayId === link.relayId : lost.where === c.where;
    if (same)
      this.log.info(
        from,
        `connected to relay ${c.where} as ${name}${of} again (${lost.moved ? 'it had sent GOAWAY, and no other relay took the link' : `the link was lost: ${lost.reason}`})`,
      );
    else if (lost.moved)
      this.log.info(
        { ...from, movedSessions: lost.sessions },
        `connected to relay ${c.where} as ${name}${of}: moved from relay ${lost.where} (it sent GOAWAY; ${lost.sessions} running session(s) stay there until they end)`,
      );
    else
      this.log.info(
        from,
        `connected to relay ${c.where} as ${name}${of}: failed over from relay ${lost.where} (${lost.reason})`,
      );
  }

  private sleep(ms: number): Promise<void> {
    if (this.sup.isStopping || ms <= 0) return Promise.resolve();
    return new Promise((resolve) => {
      const done = (): void => {
        clearTimeout(t);
        this.wake = null;
        resolve();
      };
      const t = setTimeout(done, ms);
      this.wake = done;
    });
  }
}
