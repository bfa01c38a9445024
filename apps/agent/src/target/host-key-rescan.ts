/**
 * Rate limit for host key rescans asked for by the relay (POST /mssh/host-keys, when a client was shown
 * a key the relay does not attest): at most one scan of the target per interval; callers in between get
 * the last scan's result (or share the one in flight). A relay, or users through it, can thus never make
 * the agent hammer its SSH server with key exchanges.
 */
export const DEFAULT_RESCAN_MIN_INTERVAL_MS = 10_000;

export class HostKeyRescanner {
  private last: { at: number; keys: Promise<string[]> } | null = null;

  constructor(
    private readonly scan: () => Promise<string[]>,
    private readonly minIntervalMs = DEFAULT_RESCAN_MIN_INTERVAL_MS,
    private readonly clock: () => number = () => performance.now(),
  ) {}

  /** The target's host keys: a fresh scan, unless one started less than the interval ago. */
  keys(): Promise<string[]> {
    const now = this.clock();
    if (this.last && now - this.last.at < this.minIntervalMs) return this.last.keys;
    const keys = this.scan();
    this.last = { at: now, keys };
    return keys;
  }
}
