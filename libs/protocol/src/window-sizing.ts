/**
 * HTTP/2 receive windows that follow the path's bandwidth-delay product (BDP), as gRPC and Go's http2 do.
 *
 * Fixed windows cap every stream at one window per round trip: 1 MiB per 80 ms hop is 12.5 MB/s, and the
 * relay reads a client's stream only as fast as the agent's stream accepts, so on a long path one session
 * moved about one window per END-TO-END round trip. This end measures what it receives instead: while
 * bytes arrive it sends a PING, counts the bytes that arrive until the PING's answer, and when that sample
 * is at least half the stream window (BETA below) AND the highest bandwidth seen so far (a longer round
 * trip alone must not grow it), it sets the window to twice the sample, up to a cap:
 *
 * - per stream: SETTINGS_INITIAL_WINDOW_SIZE through `session.settings()`. Node has no per-stream window
 *   call; a new initial window applies to the streams already open too (RFC 9113 6.9.2), so running
 *   transfers speed up at once.
 * - per connection: `session.setLocalWindowSize()`, kept at CONNECTION_PER_STREAM times the stream window
 *   (never below where it started).
 *
 * Windows only grow (as in gRPC): a window is a bound on what the peer may send before this end reads,
 * not a reservation, and shrinking one mid-stream is what the RFC warns against.
 *
 * The caps. Big fixed windows (16 MiB / 128 MiB) once froze Node-to-Node links with both directions
 * saturated. One cause was Node's Http2Session not reading its socket while its own write is pending
 * (every Node-to-Node link now has one write-decoupled end, decoupled-socket.ts), but 8 / 16 MiB still
 * froze the flood test with it, and so did 4 / 8 MiB (MAX_STREAM_WINDOW below): hence `fixed` by default. What the decoupled end holds unsent is bounded by the connection window its peer grants:
 * MAX_CONNECTION_WINDOW stays well under the view's DEFAULT_MAX_BUFFERED (checked below), and the test
 * "both directions saturated at the largest windows" runs every link at these caps.
 * Memory: a peer can make this end buffer at most one connection window per link that it does not read.
 *
 * `MSSH_H2_WINDOWS` (read when a link opens): `auto` as above; `fixed` (the DEFAULT for now) keeps the
 * initial windows, as before; `max` starts every link at the caps (the both-directions-saturated test at
 * the largest windows). Not on by default: at the caps the both-directions flood still froze (below).
 */
import type { Http2Session } from 'node:http2';
import { DEFAULT_MAX_BUFFERED } from './decoupled-socket.js';
import { H2_CONNECTION_WINDOW, H2_STREAM_WINDOW } from './constants.js';

/** Where every window starts (H2_SETTINGS; the fixed values of before, enough for a LAN or a short path). */
export const INITIAL_STREAM_WINDOW = H2_STREAM_WINDOW;
export const INITIAL_CONNECTION_WINDOW = H2_CONNECTION_WINDOW;
/**
 * The largest windows the estimator grants: 4 MiB per stream covers 50 MB/s per session at 80 ms (an SSH
 * channel's own 2 MiB window binds first). With every link started at the caps (`max`), the
 * both-directions flood test froze at 8 / 16 MiB (3 runs of 4) and at 4 / 8 MiB (1 of 1), both times in
 * its first round with 48 KiB back: every byte the client sent was taken and acknowledged by the relay,
 * nothing more came back from the agent hop, all socket queues empty; the write-decoupled view was in
 * place. At the fixed 1 / 4 MiB it ran 42 rounds in 5 minutes without a stall. Hence `fixed` by default;
 * docs/architecture.md, "Flow control".
 */
export const MAX_STREAM_WINDOW = 4 * 1024 * 1024;
export const MAX_CONNECTION_WINDOW = 8 * 1024 * 1024;
/** Connection window = this x the stream window (within the bounds above), so a few busy streams fit. */
const CONNECTION_PER_STREAM = 2;

// Frames, PINGs and WINDOW_UPDATEs ride on top of the DATA a window allows: keep a wide margin.
if (MAX_CONNECTION_WINDOW * 1.5 > DEFAULT_MAX_BUFFERED) {
  throw new Error('MAX_CONNECTION_WINDOW must stay well below the decoupled view cap (window-sizing.ts)');
}

/**
 * Grow when a sample reaches half the stream window (gRPC: 2/3), to twice the sample. Half, because behind
 * the relay a hop is not held by its own window alone: the relay forwards a client's bytes only as fast as
 * the agent's hop takes them, so with equal windows each hop moves about one window per END-TO-END round
 * trip, i.e. about half a window per round trip of its own. In a 3-hop chain at 40 ms per leg
 * (bench/h2-chain.ts), where fixed windows moved 4.4-6.3 MB/s (one 1 MiB window per 164 ms), gRPC's 2/3
 * first fired after ~1.5 s of transfer; with 1/2 the chain moved 10.3-13.3 MB/s.
 */
const BETA = 1 / 2;
const GAMMA = 2;
/** How often links are checked for arriving bytes (one shared, unref'd timer). */
const POLL_MS = 50;
/**
 * Bytes that must arrive between two looks to start a sample. A trickle (keepalive PINGs, keystrokes) is
 * not worth a PING (growing takes half a window per round trip), and the two ends' own PINGs, which are
 * bytes read at the other end, must not set each other off.
 */
const MIN_ARRIVED = 16 * 1024;
/** A PING unanswered this long is given up on (the keepalive watchdogs judge dead links, not this). */
const PING_GIVE_UP_MS = 30_000;

export type WindowMode = 'auto' | 'fixed' | 'max';

/**
 * `MSSH_H2_WINDOWS`: `auto` or `max`; anything else is `fixed`, the default until the freeze at larger
 * windows (MAX_STREAM_WINDOW) is understood.
 */
export function windowMode(env: NodeJS.ProcessEnv = process.env): WindowMode {
  const v = env.MSSH_H2_WINDOWS?.trim().toLowerCase();
  return v === 'auto' || v === 'max' ? v : 'fixed';
}

export interface WindowSizingOptions {
  /** Default: windowMode() of the environment. */
  mode?: WindowMode;
  /** Bytes this end has read from the link so far; default `session.socket.bytesRead`. */
  bytesRead?: () => number;
  /** Largest windows (tests); defaults MAX_STREAM_WINDOW / MAX_CONNECTION_WINDOW. */
  maxStreamWindow?: number;
  maxConnectionWindow?: number;
  /** Called after each growth (logs, tests). */
  onGrow?: (w: { streamWindow: number; connectionWindow: number; sample: number; rttMs: number }) => void;
}

export interface WindowSizer {
  readonly streamWindow: number;
  readonly connectionWindow: number;
  /** Smoothed PING round trip in ms (0 before the first sample). */
  readonly rttMs: number;
  stop(): void;
}

class Sizer implements WindowSizer {
  streamWindow = INITIAL_STREAM_WINDOW;
  connectionWindow = INITIAL_CONNECTION_WINDOW;
  rttMs = 0;
  private samples = 0;
  private bwMax = 0;
  private lastSeen: number;
  private pingSentAt = 0;
  private pingStartBytes = 0;
  private pinging = false;
  private stopped = false;
  readonly maxStream: number;
  readonly maxConnection: number;
  private readonly bytesRead: () => number;

  constructor(
    private readonly session: Http2Session,
    private readonly opts: WindowSizingOptions,
  ) {
    this.maxStream = Math.min(opts.maxStreamWindow ?? MAX_STREAM_WINDOW, MAX_STREAM_WINDOW);
    this.maxConnection = Math.min(opts.maxConnectionWindow ?? MAX_CONNECTION_WINDOW, MAX_CONNECTION_WINDOW);
    this.bytesRead =
      opts.bytesRead ??
      (() => {
        try {
          return (session.socket as { bytesRead?: number } | undefined)?.bytesRead ?? 0;
        } catch {
          return 0;
        }
      });
    this.lastSeen = this.bytesRead();
  }

  /** From the shared poll: start a sample when bytes arrived since the last look. */
  poll(now: number): void {
    if (this.session.destroyed || this.session.closed) return this.stop();
    if (this.pinging) {
      if (now - this.pingSentAt > PING_GIVE_UP_MS) this.pinging = false;
      return;
    }
    const seen = this.bytesRead();
    const arrived = seen - this.lastSeen;
    this.lastSeen = seen;
    if (arrived < MIN_ARRIVED) return;
    if (this.streamWindow >= this.maxStream && this.connectionWindow >= this.maxConnection) return;
    this.startSample(seen);
  }

  private startSample(seen: number): void {
    this.pinging = true;
    this.pingSentAt = performance.now();
    this.pingStartBytes = seen;
    try {
      const sent = this.session.ping((err, duration) => {
        this.pinging = false;
        if (err || this.stopped) return;
        this.onAnswer(duration);
      });
      if (!sent) this.pinging = false;
    } catch {
      this.pinging = false; // session closing
    }
  }

  private onAnswer(duration: number): void {
    const now = this.bytesRead();
    this.lastSeen = now;
    const sample = now - this.pingStartBytes;
    // While data flows on a long path, sample again at once (one sample per round trip, as gRPC); on a short
    // one (a PING per fraction of a millisecond would cost CPU for nothing) the next poll restarts it.
    const again = sample >= MIN_ARRIVED && duration >= POLL_MS / 5 && !this.stopped;
    const rtt = Math.max(duration, 0.05);
    this.samples++;
    // gRPC: mean of the first ten samples, then an exponential average.
    this.rttMs =
      this.samples < 10 ? this.rttMs + (rtt - this.rttMs) / this.samples : this.rttMs + (rtt - this.rttMs) * 0.9;
    const bw = sample / (this.rttMs * 1.5);
    if (bw > this.bwMax) this.bwMax = bw;
    this.judge(sample, bw);
    if (again && (this.streamWindow < this.maxStream || this.connectionWindow < this.maxConnection))
      this.startSample(now);
  }

  private judge(sample: number, bw: number): void {
    if (sample < BETA * this.streamWindow || bw < this.bwMax) return;
    const stream = Math.min(this.maxStream, Math.max(this.streamWindow, Math.ceil(GAMMA * sample)));
    const connection = Math.min(this.maxConnection, Math.max(this.connectionWindow, CONNECTION_PER_STREAM * stream));
    try {
      if (!this.growTo(stream, connection)) return;
    } catch {
      return; // closing, or too many SETTINGS waiting for their ACK: the next sample tries again
    }
    this.opts.onGrow?.({ streamWindow: stream, connectionWindow: connection, sample, rttMs: this.rttMs });
  }

  /** Raises the windows to these sizes (never lowers one); false when there was nothing to raise. */
  growTo(stream: number, connection: number): boolean {
    if (stream <= this.streamWindow && connection <= this.connectionWindow) return false;
    if (connection > this.connectionWindow) this.session.setLocalWindowSize(connection);
    if (stream > this.streamWindow) this.session.settings({ initialWindowSize: stream });
    this.streamWindow = Math.max(stream, this.streamWindow);
    this.connectionWindow = Math.max(connection, this.connectionWindow);
    return true;
  }

  stop(): void {
    if (this.stopped) return;
    this.stopped = true;
    active.delete(this);
    if (active.size === 0 && timer) {
      clearInterval(timer);
      timer = undefined;
    }
  }
}

const active = new Set<Sizer>();
let timer: NodeJS.Timeout | undefined;

function pollAll(): void {
  const now = performance.now();
  for (const s of active) s.poll(now);
}

/**
 * Starts the window sizing on an HTTP/2 session: sets the initial connection window now (or once the
 * session connects) and grows both windows with the measured BDP until the session closes. The session
 * must have been created with `settings.initialWindowSize` = INITIAL_STREAM_WINDOW (H2_SETTINGS).
 */
export function sizeWindowsToPath(session: Http2Session, opts: WindowSizingOptions = {}): WindowSizer {
  const sizer = new Sizer(session, opts);
  const mode = opts.mode ?? windowMode();
  const setInitial = () => {
    try {
      if (mode === 'max') sizer.growTo(sizer.maxStream, sizer.maxConnection);
      else session.setLocalWindowSize(INITIAL_CONNECTION_WINDOW);
    } catch {
      // The session went away before its settings were exchanged.
    }
  };
  if (session.connecting) session.once('connect', setInitial);
  else setInitial();
  if (mode !== 'auto') return sizer;
  active.add(sizer);
  session.once('close', () => sizer.stop());
  if (!timer) {
    timer = setInterval(pollAll, POLL_MS);
    timer.unref();
  }
  return sizer;
}
