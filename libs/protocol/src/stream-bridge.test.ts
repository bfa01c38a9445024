/**
 * splice's write pattern towards HTTP/2 streams (any non-socket Duplex): bulk chunks of one event-loop
 * turn go out as one write of up to COALESCE_MAX, small ones at once, and order and end are kept.
 */
import { describe, expect, it } from 'vitest';
import { randomBytes } from 'node:crypto';
import { Duplex } from 'node:stream';
import { COALESCE_MAX, COALESCE_MIN, splice } from './stream-bridge.js';

const turn = (): Promise<void> => new Promise((r) => setImmediate(r));

/** A Duplex that records every chunk written to it and reads whatever the test pushes. */
function recorder(): Duplex & { writes: Buffer[]; all: () => Buffer } {
  const writes: Buffer[] = [];
  const d = new Duplex({
    read() {},
    write(chunk: Buffer, _enc, cb) {
      writes.push(chunk);
      cb();
    },
  });
  return Object.assign(d, { writes, all: () => Buffer.concat(writes) });
}

/** a spliced to b; `close` destroys both and waits for the splice to settle. */
function spliced() {
  const a = recorder();
  const b = recorder();
  const done = splice(a, b);
  const close = async (): Promise<void> => {
    a.destroy();
    b.destroy();
    await done;
  };
  return { a, b, done, close };
}

describe('splice towards a non-socket stream', () => {
  it('writes the bulk chunks of one turn as one buffer per COALESCE_MAX, in order', async () => {
    const { a, b, close } = spliced();
    const chunks = Array.from({ length: 10 }, () => randomBytes(16 * 1024));
    for (const c of chunks) a.push(c);
    await turn();
    await turn();
    // 160 KiB: two full 64 KiB writes as soon as they filled up, the last 32 KiB at the end of the turn.
    expect(b.writes.map((w) => w.length)).toEqual([COALESCE_MAX, COALESCE_MAX, 32 * 1024]);
    expect(b.all().equals(Buffer.concat(chunks))).toBe(true);
    await close();
  });

  it('writes a small chunk at once, in the same turn', async () => {
    const { a, b, close } = spliced();
    a.push(Buffer.from('ls -l\r'));
    await new Promise((r) => process.nextTick(r));
    expect(b.writes.map(String)).toEqual(['ls -l\r']);
    await close();
  });

  it('does not let a small chunk overtake bulk chunks that are waiting', async () => {
    const { a, b, close } = spliced();
    const big1 = randomBytes(COALESCE_MIN);
    const small = Buffer.from('x');
    const big2 = randomBytes(COALESCE_MIN * 2);
    a.push(big1);
    a.push(small);
    a.push(big2);
    await turn();
    await turn();
    expect(b.writes).toHaveLength(1);
    expect(b.all().equals(Buffer.concat([big1, small, big2]))).toBe(true);
    await close();
  });

  it('flushes what is waiting before it passes the end on', async () => {
    const { a, b, done } = spliced();
    let ended = false;
    b.on('finish', () => (ended = true));
    const big = randomBytes(COALESCE_MIN * 3);
    a.push(big);
    a.push(null);
    await turn();
    await turn();
    expect(b.all().equals(big)).toBe(true);
    expect(ended).toBe(true);
    b.push(null);
    const r = await done;
    expect(r.bytesAtoB).toBe(big.length);
    expect(r.clean).toBe(true);
  });
});
