/**
 * Whether this relay is draining (issue 19, upgrade without downtime): one flag, set once, read by every
 * part that answers differently from the first instant of a drain:
 *
 *   drain.begin() --> GET /readyz answers 503 RLY_ERR_DRAINING        (http/routes/health.ts)
 *                 --> the session gate refuses new sessions           (session/gate.ts, every door)
 *                 --> every client HTTP/2 connection gets a GOAWAY    (http/server.ts, via onBegin)
 *
 * Nothing here waits or closes: relay.ts runs the drain's sequence (listeners, sessions, stop).
 */
export class DrainState {
  private startedAt: number | null = null;
  private readonly listeners: Array<() => void> = [];

  /** True from the first instant of a drain, for good. */
  get draining(): boolean {
    return this.startedAt !== null;
  }

  /** When the drain began (Date.now()), or null while serving. */
  get since(): number | null {
    return this.startedAt;
  }

  /** Start draining; false if it had already started (then nothing is told again). */
  begin(): boolean {
    if (this.startedAt !== null) return false;
    this.startedAt = Date.now();
    for (const fn of this.listeners) fn();
    return true;
  }

  /** Run fn when the drain begins (registration order); at once if it has begun already. */
  onBegin(fn: () => void): void {
    if (this.startedAt !== null) fn();
    else this.listeners.push(fn);
  }
}

/** What a drain found when it began (the admin socket's answer to `mssh-relay drain`). */
export interface DrainReport {
  pid: number;
  /** The drain had begun before this request (nothing was done again). */
  alreadyDraining: boolean;
  /** When it began (ISO time). */
  since: string;
  /** Sessions running when it began. */
  sessions: number;
  /** Agents connected when it began. */
  agents: number;
  /** Agents told to move (router.moveAgents); null when this relay cannot move them (they stay until the stop). */
  agentsMoved: number | null;
  /** --drain-delay and --drain-timeout, in ms. */
  delayMs: number;
  timeoutMs: number;
}

/** A drain's progress (`mssh-relay drain --wait`). */
export interface DrainStatus {
  pid: number;
  draining: boolean;
  since: string | null;
  /** Sessions still running, agents still connected. */
  sessions: number;
  agents: number;
  /** The listeners have stopped accepting. */
  listenersClosed: boolean;
  delayMs: number;
  timeoutMs: number;
}
