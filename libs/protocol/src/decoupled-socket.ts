/**
 * Keeps a Node HTTP/2 session reading while its writes wait on a full socket.
 *
 * Node's Http2Session stops reading its socket while one of its own writes is pending. When both ends
 * of a link are Node and both directions are saturated, each waits for the other to read: the link
 * freezes for good, without an error (seen with 50 concurrent bulk sessions; see docs/architecture.md).
 * Handing HTTP/2 this Duplex instead of the raw socket makes every HTTP/2 write complete at once (the
 * bytes wait in the socket's own buffer), so this end always keeps reading and the other end's writes
 * always drain. One end of each link doing this is enough.
 *
 *   HTTP/2 session <-> decoupled Duplex <-> TLS socket
 *
 * Memory: what waits here is bounded by the flow-control windows this end's peer grants; `maxBuffered`
 * is a safety net against a peer that grants windows and then stops reading.
 */
import { Duplex } from 'node:stream';

export const DEFAULT_MAX_BUFFERED = 32 * 1024 * 1024;

export function decoupleWrites(socket: Duplex, maxBuffered = DEFAULT_MAX_BUFFERED): Duplex {
  // HTTP/2 turns Nagle off only on a socket it sees; behind this wrapper it cannot, and every small write
  // (keystrokes, SSH handshake steps) would wait ~40 ms for the peer's delayed ACK. Turn it off here.
  (socket as Partial<{ setNoDelay(v: boolean): unknown }>).setNoDelay?.(true);
  const d = new Duplex({
    allowHalfOpen: true,
    read() {
      if (socket.isPaused()) socket.resume();
    },
    write(chunk: Buffer, _enc, cb) {
      if (socket.destroyed) {
        cb(new Error('socket closed'));
        return;
      }
      socket.write(chunk);
      if (socket.writableLength > maxBuffered) {
        cb(new Error(`peer is not reading (${socket.writableLength} bytes waiting)`));
        return;
      }
      cb();
    },
    final(cb) {
      if (!socket.destroyed) socket.end();
      cb();
    },
    destroy(err, cb) {
      if (!socket.destroyed) socket.destroy(err ?? undefined);
      cb(err);
    },
  });
  socket.on('data', (chunk: Buffer) => {
    if (!d.push(chunk)) socket.pause();
  });
  socket.once('end', () => d.push(null));
  socket.on('error', (err: Error) => d.destroy(err));
  socket.once('close', () => d.destroy());
  return d;
}
