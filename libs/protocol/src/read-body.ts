/**
 * Read a small message body with a size cap and a deadline (agent-link control messages). Rejects
 * instead of buffering without bound or waiting forever on a misbehaving peer.
 */
import type { Readable } from 'node:stream';

export class BodyReadError extends Error {
  constructor(
    message: string,
    readonly reason: 'too_large' | 'timeout' | 'closed' | 'error',
  ) {
    super(message);
    this.name = 'BodyReadError';
  }
}

export function readBody(stream: Readable, maxBytes: number, timeoutMs: number): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    let done = false;
    const finish = (err: BodyReadError | null): void => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      stream.off('data', onData);
      stream.off('end', onEnd);
      // The 'error' listener stays: a later error on this stream must never go unhandled.
      stream.off('close', onClose);
      if (err) reject(err);
      else resolve(Buffer.concat(chunks, size));
    };
    const onData = (chunk: Buffer): void => {
      size += chunk.length;
      if (size > maxBytes) {
        finish(new BodyReadError(`body larger than ${maxBytes} bytes`, 'too_large'));
        stream.destroy();
        return;
      }
      chunks.push(chunk);
    };
    const onEnd = (): void => finish(null);
    const onError = (e: Error): void => finish(new BodyReadError(`stream failed: ${e.message}`, 'error'));
    const onClose = (): void => finish(new BodyReadError('stream closed before the body ended', 'closed'));
    const timer = setTimeout(() => {
      finish(new BodyReadError(`no complete body within ${timeoutMs} ms`, 'timeout'));
      stream.destroy();
    }, timeoutMs);
    timer.unref?.();
    stream.on('data', onData);
    stream.once('end', onEnd);
    stream.on('error', onError);
    stream.once('close', onClose);
  });
}
