/**
 * Keeps a Node HTTP/2 session reading while its writes wait on a full socket.
 *
 * Node's Http2Session stops reading its socket while one of its own writes is pending. When both ends
 * of a link are Node and both directions are saturated, each waits for the other to read: the link
 * freezes for good, without an error (seen with 50 concurrent bulk sessions; see docs/architecture.md).
 * Handing HTTP/2 this view instead of the raw socket makes every HTTP/2 write complete at once (the
 * bytes wait in the socket's own buffer), so this end always keeps reading and the other end's writes
 * always drain. One end of each link doing this is enough.
 *
 *   HTTP/2 session <-> Node's JSStreamSocket <-> this view <-> TLS socket
 *
 * The view is deliberately NOT a stream of its own. Node wraps whatever is not a native socket in its
 * internal JSStreamSocket, which only listens for the stream's events, pauses and resumes it, and writes
 * to it corked; the view hands all of that straight to the socket and only changes when a write counts
 * as done. An earlier version was a full Duplex in between: every chunk then went through one more
 * Readable and Writable, and HTTP/2's frame header and payload (written as separate buffers) left as
 * two TLS records in two TCP segments. On the latency benchmark that layer was a measurable part of the
 * agent's and the client's CPU per keystroke (bench/README.md, profiling findings).
 *
 * Memory: what waits here is bounded by the flow-control windows this end's peer grants; `maxBuffered`
 * is a safety net against a peer that grants windows and then stops reading: past it the socket is
 * destroyed with an error that says so.
 */
import type { Duplex } from 'node:stream';
import { noteBytesMoved } from './buffer-reclaim.js';

export const DEFAULT_MAX_BUFFERED = 32 * 1024 * 1024;

// Listeners of any shape are passed through to the socket untouched.
// eslint-disable-next-line @typescript-eslint/no-explicit-any -- unknown[] would refuse every typed listener
type Listener = (...args: any[]) => void;

/** The part of a Duplex that Node's JSStreamSocket (and so HTTP/2) uses, passed through to `socket`. */
class WriteDecoupledView {
  private countingReads = false;

  constructor(
    private readonly socket: Duplex,
    private readonly maxBuffered: number,
  ) {}

  get readable(): boolean {
    return this.socket.readable;
  }
  get writable(): boolean {
    return this.socket.writable;
  }
  get destroyed(): boolean {
    return this.socket.destroyed;
  }
  readonly readableObjectMode = false;

  on(event: string, fn: Listener): this {
    this.socket.on(event, fn);
    // Counted for buffer-reclaim.ts. Added next to JSStreamSocket's own reader, never before it: a
    // 'data' listener on a socket nobody paused would start the flow before HTTP/2 is attached.
    if (event === 'data' && !this.countingReads) {
      this.countingReads = true;
      this.socket.on('data', (chunk: Buffer) => noteBytesMoved(chunk.length));
    }
    return this;
  }
  once(event: string, fn: Listener): this {
    this.socket.once(event, fn);
    return this;
  }
  removeListener(event: string, fn: Listener): this {
    this.socket.removeListener(event, fn);
    return this;
  }
  off(event: string, fn: Listener): this {
    return this.removeListener(event, fn);
  }
  pause(): this {
    this.socket.pause();
    return this;
  }
  resume(): this {
    this.socket.resume();
    return this;
  }
  // HTTP/2 writes a frame header and its payload corked: TLS seals what one cork holds into one record.
  cork(): void {
    this.socket.cork();
  }
  uncork(): void {
    this.socket.uncork();
  }

  /** Queues `chunk` on the socket and reports the write done at once (the point of this view). */
  write(chunk: Buffer, cb?: (err?: Error | null) => void): boolean {
    if (this.socket.destroyed) {
      cb?.(new Error('socket closed'));
      return false;
    }
    this.socket.write(chunk);
    noteBytesMoved(chunk.length);
    const waiting = this.socket.writableLength;
    if (waiting > this.maxBuffered) {
      const err = new Error(`peer is not reading (${waiting} bytes waiting to be sent)`);
      this.socket.destroy(err);
      cb?.(err);
      return false;
    }
    cb?.();
    return true;
  }

  end(cb?: () => void): this {
    if (this.socket.destroyed) cb?.();
    else this.socket.end(cb);
    return this;
  }

  destroy(err?: Error): this {
    if (!this.socket.destroyed) this.socket.destroy(err);
    return this;
  }
}

/**
 * The socket as HTTP/2 should see it on a Node-to-Node link (`http2.connect`'s `createConnection`, or
 * `server.emit('connection', ...)`). Typed as a Duplex because that is what those APIs take; it carries
 * the members Node's JSStreamSocket uses (see WriteDecoupledView).
 */
export function decoupleWrites(socket: Duplex, maxBuffered = DEFAULT_MAX_BUFFERED): Duplex {
  // HTTP/2 turns Nagle off only on a native socket it sees; behind this view it cannot, and every small
  // write (keystrokes, SSH handshake steps) would wait ~40 ms for the peer's delayed ACK. Turn it off here.
  (socket as Partial<{ setNoDelay(v: boolean): unknown }>).setNoDelay?.(true);
  return new WriteDecoupledView(socket, maxBuffered) as unknown as Duplex;
}
