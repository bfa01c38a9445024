/**
 * Splices two duplex byte streams (client tunnel <-> agent session on the relay; relay session <-> target on the agent) with
 * backpressure both ways and half-close preserved:
 *
 *   a.readable --data--> b.write()   (a paused while b's buffer is full, resumed on 'drain')
 *   b.readable --data--> a.write()
 *   a 'end' --> b.end()               (half-close: b can still send to a)
 *
 * A side that closes before both of its directions completed through the splice (RST, error, destroy,
 * a peer gone) aborts the other side, so nothing is left half-dead. "Completed" means: its readable
 * ended AND the splice itself ended its writable (because the other side's readable ended). A stream
 * whose writable Node ended for us is not completed: an HTTP/2 peer that resets its stream with
 * RST_STREAM(NO_ERROR) (what `stream.destroy()` sends) makes Node end both halves of the stream and
 * close it "cleanly", and the other side, half-closed towards a target that never answers, would
 * otherwise stay open for ever (issue 17.2). Counts the bytes each way.
 *
 * Half-close linger (opts.halfCloseLingerMs): once one side's readable has ended, the other side must
 * move a byte or end within that time, else both are aborted. An SSH transport is never half-closed on
 * purpose, so a half-closed splice that goes quiet is a peer gone: an OpenSSH ControlMaster whose
 * `ssh -J` client gave up sends EOF on its forwarding channel but no CLOSE until the target speaks, and
 * a target that never speaks would keep the session open until the master ends (issue 17.2).
 */
import type { Duplex } from 'node:stream';
import { constants as h2c } from 'node:http2';

export interface SpliceResult {
  /** Bytes read from a and written to b. */
  bytesAtoB: number;
  /** Bytes read from b and written to a. */
  bytesBtoA: number;
  /** The side whose readable ended or that closed first ('a' or 'b'). */
  first: 'a' | 'b';
  /** Whether both sides completed both directions normally. */
  clean: boolean;
  /** The first error seen on either side, if any. */
  error: Error | null;
}

interface MaybeHttp2Stream extends Duplex {
  close?: (code?: number) => void;
  rstCode?: number;
  session?: unknown;
}

function isHttp2Stream(s: Duplex): s is MaybeHttp2Stream & { close: (code?: number) => void } {
  const m = s as MaybeHttp2Stream;
  return typeof m.close === 'function' && 'rstCode' in m && 'session' in m;
}

/** Abort a stream: RST_STREAM(CANCEL) for HTTP/2 streams, destroy() for sockets. Never throws. */
export function abortStream(s: Duplex): void {
  try {
    if (s.destroyed) return;
    if (isHttp2Stream(s)) s.close(h2c.NGHTTP2_CANCEL);
    else s.destroy();
  } catch {
    try {
      s.destroy();
    } catch {
      /* already gone */
    }
  }
}

function completed(s: Duplex, endedBySplice: boolean): boolean {
  if (!endedBySplice) return false;
  if (!(s.readableEnded && s.writableFinished)) return false;
  if (isHttp2Stream(s) && typeof s.rstCode === 'number' && s.rstCode !== h2c.NGHTTP2_NO_ERROR) return false;
  return true;
}

/**
 * Sockets get the chunks of one tick in ONE writev: an HTTP/2 stream emits one 'data' per DATA frame
 * (16 KiB), several per socket read, and writing each to the target's TCP socket on its own was most of
 * the agent's CPU in a bulk transfer (bench/README.md, profiling findings).
 */
function isSocket(s: Duplex): boolean {
  return typeof (s as Partial<{ setNoDelay: unknown }>).setNoDelay === 'function';
}

/**
 * Bulk chunks bound for an HTTP/2 stream are gathered and written as one buffer per event-loop turn
 * (at most COALESCE_MAX at a time). Node's HTTP/2 sends what one write() hands it in one go, but
 * separate writes leave separately: a 16 KiB DATA frame at a time, each sealed into a full TLS record
 * plus a tiny one (the frame header does not fit), each its own write(2) and a wake-up of the peer.
 * On the relay that was two thirds of its writes to the agent (bench/README.md, finding 17). Chunks
 * below COALESCE_MIN (keystrokes, prompts, SSH handshakes) are written at once, unless bulk chunks are
 * already waiting, so that order is kept.
 */
export const COALESCE_MIN = 8 * 1024;
export const COALESCE_MAX = 64 * 1024;

function pump(src: Duplex, dst: Duplex, count: (n: number) => void, onEnd: () => void, onDstEnded: () => void): void {
  let waiting = false;
  let corked = false;
  const batch = isSocket(dst);
  let pending: Buffer[] = [];
  let pendingBytes = 0;
  let flushScheduled = false;
  const uncork = (): void => {
    corked = false;
    if (!dst.destroyed) dst.uncork();
  };
  const onDrain = (): void => {
    waiting = false;
    if (!src.destroyed) src.resume();
  };
  const write = (chunk: Buffer): void => {
    if (dst.destroyed || dst.writableEnded) return;
    if (!dst.write(chunk) && !waiting) {
      waiting = true;
      src.pause();
      dst.once('drain', onDrain);
    }
  };
  const flush = (): void => {
    flushScheduled = false;
    if (pending.length === 0) return;
    const buf = pending.length === 1 ? pending[0]! : Buffer.concat(pending, pendingBytes);
    pending = [];
    pendingBytes = 0;
    write(buf);
  };
  src.on('data', (chunk: Buffer) => {
    count(chunk.length);
    if (dst.destroyed || dst.writableEnded) return;
    if (!batch && (chunk.length >= COALESCE_MIN || pending.length > 0)) {
      pending.push(chunk);
      pendingBytes += chunk.length;
      if (pendingBytes >= COALESCE_MAX) flush();
      else if (!flushScheduled) {
        flushScheduled = true;
        setImmediate(flush);
      }
      return;
    }
    if (batch && !corked) {
      corked = true;
      dst.cork();
      process.nextTick(uncork);
    }
    write(chunk);
  });
  src.once('end', () => {
    flush();
    onEnd();
    if (!dst.destroyed && !dst.writableEnded) {
      onDstEnded();
      dst.end();
    }
  });
}

/**
 * Splice a and b until both are closed. Never rejects. `live`, when given, is kept up to date with the
 * bytes moved so far (the relay writes it periodically to its sessions index). `onBytes` is told of
 * every chunk moved either way (the relay feeds buffer-reclaim.ts with it).
 */
export interface SpliceOptions {
  /** See above: after one side's EOF, the most the other may stay quiet before both are aborted. */
  halfCloseLingerMs?: number;
}

export function splice(
  a: Duplex,
  b: Duplex,
  live?: { bytesAtoB: number; bytesBtoA: number },
  onBytes?: (n: number) => void,
  opts: SpliceOptions = {},
): Promise<SpliceResult> {
  return new Promise((resolve) => {
    let bytesAtoB = 0;
    let bytesBtoA = 0;
    let first: 'a' | 'b' | null = null;
    let error: Error | null = null;
    let clean = true;
    const isClosed = { a: false, b: false };
    /** Whether the splice ended this side's writable (its peer's readable ended first). */
    const endedBySplice = { a: false, b: false };
    const side = (x: 'a' | 'b'): Duplex => (x === 'a' ? a : b);
    const otherOf = (x: 'a' | 'b'): Duplex => (x === 'a' ? b : a);
    const mark = (x: 'a' | 'b'): void => {
      if (first === null) first = x;
    };
    const onError =
      (x: 'a' | 'b') =>
      (err: Error): void => {
        if (!error) error = err;
        clean = false;
        mark(x);
        abortStream(otherOf(x));
      };
    const onClose = (x: 'a' | 'b'): void => {
      if (isClosed[x]) return;
      isClosed[x] = true;
      mark(x);
      if (!completed(side(x), endedBySplice[x])) {
        clean = false;
        abortStream(otherOf(x));
      }
      if (isClosed.a && isClosed.b) {
        if (linger) clearTimeout(linger);
        resolve({ bytesAtoB, bytesBtoA, first: first ?? 'a', clean, error });
      }
    };
    // The half-close linger: armed by the first EOF, pushed back by every byte, cleared when both close.
    let linger: NodeJS.Timeout | null = null;
    let halfClosed = false;
    const lingerMs = opts.halfCloseLingerMs ?? 0;
    const armLinger = (): void => {
      if (lingerMs <= 0 || (isClosed.a && isClosed.b)) return;
      if (linger) linger.refresh();
      else {
        linger = setTimeout(() => {
          if (isClosed.a && isClosed.b) return;
          clean = false;
          abortStream(a);
          abortStream(b);
        }, lingerMs);
        linger.unref();
      }
    };
    const onEof = (x: 'a' | 'b'): void => {
      mark(x);
      halfClosed = true;
      armLinger();
    };
    const moved = (): void => {
      if (halfClosed && linger) linger.refresh();
    };
    a.on('error', onError('a'));
    b.on('error', onError('b'));
    a.once('close', () => onClose('a'));
    b.once('close', () => onClose('b'));
    pump(
      a,
      b,
      (n) => {
        bytesAtoB += n;
        if (live) live.bytesAtoB = bytesAtoB;
        onBytes?.(n);
        moved();
      },
      () => onEof('a'),
      () => (endedBySplice.b = true),
    );
    pump(
      b,
      a,
      (n) => {
        bytesBtoA += n;
        if (live) live.bytesBtoA = bytesBtoA;
        onBytes?.(n);
        moved();
      },
      () => onEof('b'),
      () => (endedBySplice.a = true),
    );
    // A side that was already destroyed may have emitted 'close' before we listened: settle it after
    // any pending close event had its chance (onClose ignores the second call).
    for (const x of ['a', 'b'] as const) {
      if (side(x).destroyed) setImmediate(() => onClose(x));
    }
  });
}
