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

describe('splice and a peer that resets its HTTP/2 stream', () => {
  it('aborts the other side when the peer resets with RST_STREAM(NO_ERROR), even if that side never speaks', async () => {
    const http2 = await import('node:http2');
    const net = await import('node:net');
    // A target that accepts and never speaks nor closes (not even on FIN).
    const held = new Set<import('node:net').Socket>();
    // held: connections whose client side has not closed yet (its FIN or RST is what the target sees).
    const silent = net.createServer({ allowHalfOpen: true }, (s) => {
      held.add(s);
      s.on('end', () => held.delete(s));
      s.on('close', () => held.delete(s));
      s.on('error', () => {});
      s.resume();
    });
    await new Promise<void>((r) => silent.listen(0, '127.0.0.1', r));
    const server = http2.createServer();
    let result: Promise<Awaited<ReturnType<typeof splice>>> | null = null;
    let target: import('node:net').Socket | null = null;
    server.on('stream', (stream) => {
      stream.respond({ ':status': 200 });
      target = net.connect({
        port: (silent.address() as import('node:net').AddressInfo).port,
        host: '127.0.0.1',
        allowHalfOpen: true,
      });
      target.on('error', () => {});
      result = splice(stream, target);
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    const client = http2.connect(`http://127.0.0.1:${(server.address() as import('node:net').AddressInfo).port}`);
    try {
      const req = client.request({ ':method': 'POST', ':path': '/' }, { endStream: false });
      req.on('error', () => {});
      await new Promise((r) => req.once('response', r));
      req.write('SSH-2.0-client\r\n');
      for (let i = 0; i < 100 && held.size === 0; i++) await new Promise((r) => setTimeout(r, 10));
      expect(held.size).toBe(1);
      req.destroy(); // RST_STREAM(NO_ERROR)
      const r = await Promise.race([result!, new Promise<null>((res) => setTimeout(() => res(null), 3_000))]);
      expect(r).not.toBeNull();
      expect(r!.clean).toBe(false);
      expect(r!.first).toBe('a');
      expect(target!.destroyed).toBe(true);
      for (let i = 0; i < 100 && held.size > 0; i++) await new Promise((res) => setTimeout(res, 10));
      expect(held.size).toBe(0);
    } finally {
      client.destroy();
      server.close();
      for (const s of held) s.destroy();
      silent.close();
    }
  });
});

/** A connected loopback TCP pair: [the end we splice, the peer the test drives]. */
async function socketPair(): Promise<[import('node:net').Socket, import('node:net').Socket]> {
  const net = await import('node:net');
  const server = net.createServer({ allowHalfOpen: true });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const port = (server.address() as import('node:net').AddressInfo).port;
  const accepted = new Promise<import('node:net').Socket>((r) => server.once('connection', r));
  const client = net.connect({ port, host: '127.0.0.1', allowHalfOpen: true });
  await new Promise((r) => client.once('connect', r));
  const peer = await accepted;
  server.close();
  return [peer, client];
}

describe('splice half-close linger', () => {
  it('a side that sent EOF while the other stays silent: both aborted after the linger, not clean', async () => {
    const [a, aPeer] = await socketPair();
    const [b, bPeer] = await socketPair();
    const t0 = Date.now();
    const done = splice(a, b, undefined, undefined, { halfCloseLingerMs: 300 });
    aPeer.end(); // the client's EOF; bPeer (the target) never writes nor ends
    // The target's connection is closed too (FIN or RST: it sees its end or an error).
    const bGone = new Promise((r) => {
      bPeer.once('end', r);
      bPeer.once('error', r);
      bPeer.once('close', r);
    });
    bPeer.resume();
    bPeer.on('error', () => {});
    aPeer.on('error', () => {});
    const r = await Promise.race([done, new Promise<null>((res) => setTimeout(() => res(null), 5_000))]);
    expect(r).not.toBeNull();
    expect(r!.clean).toBe(false);
    expect(r!.first).toBe('a');
    expect(Date.now() - t0).toBeGreaterThanOrEqual(250);
    expect(
      await Promise.race([bGone.then(() => 'gone'), new Promise((res) => setTimeout(() => res('still open'), 5_000))]),
    ).toBe('gone');
    aPeer.destroy();
    bPeer.destroy();
  });

  it('bytes from the other side keep a half-closed splice open; its own EOF then ends it cleanly', async () => {
    const [a, aPeer] = await socketPair();
    const [b, bPeer] = await socketPair();
    const done = splice(a, b, undefined, undefined, { halfCloseLingerMs: 300 });
    aPeer.resume();
    aPeer.end();
    // The other side answers for longer than the linger, a chunk every 100 ms.
    for (let i = 0; i < 8; i++) {
      bPeer.write(`chunk ${i}\n`);
      await new Promise((res) => setTimeout(res, 100));
    }
    expect(a.destroyed).toBe(false);
    bPeer.end();
    const r = await Promise.race([done, new Promise<null>((res) => setTimeout(() => res(null), 5_000))]);
    expect(r).toMatchObject({ clean: true, bytesAtoB: 0 });
    expect(r!.bytesBtoA).toBeGreaterThan(0);
  });

  it('without a linger, a half-closed splice towards a silent side stays open', async () => {
    const [a, aPeer] = await socketPair();
    const [b, bPeer] = await socketPair();
    const done = splice(a, b);
    aPeer.end();
    // bPeer sees the EOF passed on; nothing else happens on its own.
    await new Promise((r) => bPeer.once('end', r));
    bPeer.resume();
    expect(a.destroyed || b.destroyed).toBe(false);
    a.destroy();
    b.destroy();
    await done;
    aPeer.destroy();
    bPeer.destroy();
  });
});
