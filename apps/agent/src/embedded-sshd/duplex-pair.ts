/**
 * Two in-memory Duplex streams wired back to back (what one writes, the other reads), with backpressure:
 * a write completes only when the peer's reader wants more, and is delivered on a later tick. Ending one side ends the peer's readable side;
 * destroying one side destroys the other (as a closed socket would). Node 20 has no stream.duplexPair.
 */
import { Duplex } from 'node:stream';

class PairSide extends Duplex {
  peer!: PairSide;
  /** Callback of our write that waits for the peer's reader. */
  private pendingWrite: ((err?: Error | null) => void) | undefined;

  override _read(): void {
    const cb = this.peer.pendingWrite;
    if (cb) {
      this.peer.pendingWrite = undefined;
      cb();
    }
  }

  // Delivery is deferred to the next tick: a synchronous push runs the peer's 'data' handlers inside our
  // writer's write() call, and with ssh2 on both ends that re-entrancy stalled a bulk transfer (measured:
  // 8 MiB through `cat` never finished; with deferred delivery it does).
  override _write(chunk: Buffer, _enc: BufferEncoding, cb: (err?: Error | null) => void): void {
    process.nextTick(() => {
      if (this.peer.destroyed || this.peer.readableEnded) return cb(new Error('the other end of the stream is closed'));
      if (this.peer.push(chunk)) cb();
      else this.pendingWrite = cb;
    });
  }

  override _final(cb: (err?: Error | null) => void): void {
    process.nextTick(() => {
      if (!this.peer.destroyed) this.peer.push(null);
      cb();
    });
  }

  override _destroy(err: Error | null, cb: (err?: Error | null) => void): void {
    const pending = this.pendingWrite;
    this.pendingWrite = undefined;
    pending?.(err ?? new Error('stream destroyed'));
    if (!this.peer.destroyed) this.peer.destroy();
    cb(err);
  }
}

export function duplexPair(): [Duplex, Duplex] {
  const a = new PairSide();
  const b = new PairSide();
  a.peer = b;
  b.peer = a;
  return [a, b];
}
