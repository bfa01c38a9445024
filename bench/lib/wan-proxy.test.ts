import net from 'node:net';
import { randomBytes } from 'node:crypto';
import { describe, expect, it, afterEach } from 'vitest';
import {
  BURST_BYTES,
  DelayLine,
  highWaterBytes,
  mbitToBytesPerSec,
  startLegProxy,
  type LegProxy,
  type LinkCondition,
} from './wan-proxy.js';

describe('DelayLine', () => {
  it('releases each chunk delayMs after it arrived, in order', () => {
    const line = new DelayLine(() => ({ delayMs: 10, rateBytesPerSec: 0 }));
    line.push(Buffer.from('a'), 0);
    line.push(Buffer.from('b'), 5);
    expect(line.nextAt()).toBe(10);
    expect(line.take(9.9)).toEqual([]);
    expect(Buffer.concat(line.take(10)).toString()).toBe('a');
    expect(line.nextAt()).toBe(15);
    expect(Buffer.concat(line.take(100)).toString()).toBe('b');
    expect(line.empty).toBe(true);
    expect(line.bytes).toBe(0);
  });

  it('keeps the order when the delay drops while chunks wait', () => {
    const c: LinkCondition = { delayMs: 40, rateBytesPerSec: 0 };
    const line = new DelayLine(() => c);
    line.push(Buffer.from('x'), 0);
    c.delayMs = 0;
    line.push(Buffer.from('y'), 1);
    expect(line.take(20)).toEqual([]);
    expect(Buffer.concat(line.take(40)).toString()).toBe('xy');
  });

  it('caps the rate with a bucket of BURST_BYTES and splits larger chunks', () => {
    const rate = 1_000_000; // 1,000 bytes per ms
    const line = new DelayLine(() => ({ delayMs: 0, rateBytesPerSec: rate }));
    line.push(randomBytes(4 * BURST_BYTES), 0);
    const first = line.take(0);
    expect(first.map((b) => b.length)).toEqual([BURST_BYTES]);
    expect(line.nextAt()).toBeCloseTo(BURST_BYTES / 1000, 6);
    expect(line.take(BURST_BYTES / 1000 - 0.01)).toEqual([]);
    expect(line.take(BURST_BYTES / 1000).map((b) => b.length)).toEqual([BURST_BYTES]);
  });

  it('loses no rate when the timer fires late: what was due leaves in one go', () => {
    const rate = 12_500_000; // 100 Mbit/s: a 16 KiB bucket fills in 1.3 ms
    const line = new DelayLine(() => ({ delayMs: 10, rateBytesPerSec: rate }));
    const total = 25_000_000; // 2 s at the cap
    for (let i = 0; i < total / 50_000; i++) line.push(Buffer.alloc(50_000), 0);
    let sent = 0;
    let t = 0;
    // Ticks every 7 ms (five bucket fills), for at most 10 s of simulated time.
    for (let i = 0; i < 10_000 / 7 && !line.empty; i++) {
      t += 7;
      for (const b of line.take(t)) sent += b.length;
    }
    expect(sent).toBe(total);
    // 10 ms of delay plus 2 s at the rate, within one tick.
    expect(t).toBeGreaterThanOrEqual(10 + 2000 - 7);
    expect(t).toBeLessThanOrEqual(10 + 2000 + 7);
  });
});

describe('highWaterBytes', () => {
  it('is the bandwidth-delay product plus 256 KiB when capped', () => {
    expect(highWaterBytes({ delayMs: 40, rateBytesPerSec: mbitToBytesPerSec(100) })).toBe(500_000 + 256 * 1024);
    expect(mbitToBytesPerSec(100)).toBe(12_500_000);
  });
});

describe('startLegProxy on loopback', () => {
  const closers: (() => Promise<void> | void)[] = [];
  afterEach(async () => {
    for (const c of closers.splice(0).reverse()) await c();
  });

  /** An upstream server on 127.0.0.1: port 0. */
  async function upstream(onConn: (s: net.Socket) => void): Promise<number> {
    const sockets = new Set<net.Socket>();
    const server = net.createServer({ allowHalfOpen: true }, (s) => {
      sockets.add(s);
      onConn(s);
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    closers.push(
      () =>
        new Promise<void>((r) => {
          for (const s of sockets) s.destroy();
          server.close(() => r());
        }),
    );
    return (server.address() as net.AddressInfo).port;
  }

  async function proxy(upstreamPort: number, c: LinkCondition): Promise<LegProxy> {
    const p = await startLegProxy({ upstreamPort, condition: () => c });
    closers.push(() => p.close());
    return p;
  }

  function connect(port: number): Promise<net.Socket> {
    return new Promise((resolve, reject) => {
      const s = net.connect({ host: '127.0.0.1', port, allowHalfOpen: true }, () => resolve(s));
      s.once('error', reject);
      closers.push(() => void s.destroy());
    });
  }

  function within<T>(p: Promise<T>, ms: number, what: string): Promise<T> {
    let t: NodeJS.Timeout | undefined;
    return Promise.race([
      p.finally(() => clearTimeout(t)),
      new Promise<T>((_, reject) => {
        t = setTimeout(() => reject(new Error(`${what}: no result within ${ms} ms`)), ms);
      }),
    ]);
  }

  it('delays the upstream accept by 3 x delay and a round trip by 2 x delay, and passes half-closes on', async () => {
    const D = 25;
    let acceptedAt = 0;
    let serverSawEnd = 0;
    const port = await upstream((s) => {
      acceptedAt = performance.now();
      s.on('data', (d) => s.write(d));
      s.on('end', () => {
        serverSawEnd = performance.now();
        s.end('bye');
      });
    });
    const p = await proxy(port, { delayMs: D, rateBytesPerSec: 0 });
    const t0 = performance.now();
    const c = await connect(p.port);
    const got: Buffer[] = [];
    const firstEcho = new Promise<number>((resolve) => c.once('data', () => resolve(performance.now())));
    c.on('data', (d: Buffer) => got.push(d));
    const ended = new Promise<void>((resolve) => c.once('end', resolve));
    c.write('k');
    const echoAt = await within(firstEcho, 5_000, 'echo');
    expect(acceptedAt - t0).toBeGreaterThanOrEqual(3 * D - 1);
    // The byte waits for the upstream connection (3 D), then goes back (D).
    expect(echoAt - t0).toBeGreaterThanOrEqual(4 * D - 1);
    const t1 = performance.now();
    const second = new Promise<number>((resolve) => c.once('data', () => resolve(performance.now())));
    c.write('j');
    expect((await within(second, 5_000, 'second echo')) - t1).toBeGreaterThanOrEqual(2 * D - 1);
    const t2 = performance.now();
    c.end();
    await within(ended, 5_000, 'end');
    expect(serverSawEnd - t2).toBeGreaterThanOrEqual(D - 1);
    expect(performance.now() - t2).toBeGreaterThanOrEqual(2 * D - 1);
    expect(Buffer.concat(got).toString()).toBe('kjbye');
  });

  it('carries bytes intact at no more than the rate cap', async () => {
    const bytes = randomBytes(2 * 1024 * 1024);
    let received: Buffer[] = [];
    const done = new Promise<void>((resolve) => {
      void upstream((s) => {
        received = [];
        s.on('data', (d: Buffer) => received.push(d));
        s.on('end', () => {
          s.end();
          resolve();
        });
      }).then(async (port) => {
        const p = await proxy(port, { delayMs: 5, rateBytesPerSec: mbitToBytesPerSec(50) });
        const c = await connect(p.port);
        c.resume();
        c.end(bytes);
      });
    });
    const t0 = performance.now();
    await within(done, 10_000, 'transfer');
    const s = (performance.now() - t0) / 1000;
    expect(Buffer.concat(received).equals(bytes)).toBe(true);
    // 2 MiB at 6.25 MB/s: 0.336 s, less one bucket.
    expect(s).toBeGreaterThanOrEqual((bytes.length - BURST_BYTES) / mbitToBytesPerSec(50));
  });

  it('bounds what a direction holds and pauses the sender when the receiver stops reading', async () => {
    const c: LinkCondition = { delayMs: 10, rateBytesPerSec: mbitToBytesPerSec(100) };
    let server: net.Socket | undefined;
    const port = await upstream((s) => {
      server = s;
      s.pause();
    });
    const p = await proxy(port, c);
    const client = await connect(p.port);
    const block = Buffer.alloc(256 * 1024);
    // Write until the client's own buffer backs up (the kernel buffers and the proxy are full), at most 64 MiB.
    const deadline = performance.now() + 5_000;
    for (let i = 0; i < 256 && performance.now() < deadline; i++) {
      if (!client.write(block)) {
        const drained = await Promise.race([
          new Promise<boolean>((r) => client.once('drain', () => r(true))),
          new Promise<boolean>((r) => setTimeout(() => r(false), 500)),
        ]);
        if (!drained) break;
      }
    }
    const st = p.stats();
    expect(st.pauses).toBeGreaterThanOrEqual(1);
    expect(st.maxHeld).toBeGreaterThan(highWaterBytes(c));
    // Above the mark by at most a read (64 KiB) and the writing socket's buffer.
    expect(st.maxHeld).toBeLessThanOrEqual(highWaterBytes(c) + 256 * 1024);
    expect(client.writableLength).toBeGreaterThan(0);
    server?.resume();
  });

  it('resets the other side when one side resets', async () => {
    let serverClosed!: () => void;
    const closed = new Promise<void>((r) => (serverClosed = r));
    const port = await upstream((s) => {
      s.on('error', () => {});
      s.on('close', () => serverClosed());
    });
    const p = await proxy(port, { delayMs: 5, rateBytesPerSec: 0 });
    const client = await connect(p.port);
    client.write('x');
    await new Promise((r) => setTimeout(r, 50));
    client.resetAndDestroy();
    await within(closed, 5_000, 'upstream close');
    expect(p.stats().open).toBe(0);
  });
});
