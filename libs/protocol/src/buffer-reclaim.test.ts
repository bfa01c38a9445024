/**
 * buffer-reclaim: a scavenge after every RECLAIM_EVERY bytes moved, one per burst, without leaving V8's
 * `gc` extension switched on for anybody else; and the data paths (the decoupled view, splice) report
 * what they move.
 */
import { describe, expect, it } from 'vitest';
import { execFileSync } from 'node:child_process';
import http2 from 'node:http2';
import net from 'node:net';
import { Duplex } from 'node:stream';
import { PerformanceObserver, constants as perf } from 'node:perf_hooks';
import vm from 'node:vm';
import { RECLAIM_EVERY, installBufferReclaim, noteBytesMoved, reclaimsRequested } from './buffer-reclaim.js';
import { decoupleWrites } from './decoupled-socket.js';
import { splice } from './stream-bridge.js';

const tick = (): Promise<void> => new Promise((r) => setImmediate(r));

// A program's main does this; this test file is such a program.
installBufferReclaim();

/** Counts the young-generation GCs V8 reports while `fn` runs (entries arrive asynchronously). */
async function minorGcsDuring(fn: () => Promise<void>): Promise<number> {
  let n = 0;
  const obs = new PerformanceObserver((list) => {
    for (const e of list.getEntries())
      if ((e as unknown as { detail?: { kind?: number } }).detail?.kind === perf.NODE_PERFORMANCE_GC_MINOR) n++;
  });
  obs.observe({ entryTypes: ['gc'] });
  try {
    await fn();
    await new Promise((r) => setTimeout(r, 50));
  } finally {
    obs.disconnect();
  }
  return n;
}

describe('noteBytesMoved', () => {
  it('asks for one scavenge once RECLAIM_EVERY bytes have moved, after the current callbacks', async () => {
    const before = reclaimsRequested();
    noteBytesMoved(RECLAIM_EVERY - 1);
    await tick();
    expect(reclaimsRequested()).toBe(before);

    const minors = await minorGcsDuring(async () => {
      noteBytesMoved(1);
      expect(reclaimsRequested()).toBe(before); // not inside the caller's callback
      await tick();
    });
    expect(reclaimsRequested()).toBe(before + 1);
    expect(minors).toBeGreaterThanOrEqual(1);
  });

  it('coalesces a burst into one scavenge and starts counting again after it', async () => {
    const before = reclaimsRequested();
    for (let i = 0; i < 10; i++) noteBytesMoved(RECLAIM_EVERY);
    await tick();
    expect(reclaimsRequested()).toBe(before + 1);
    noteBytesMoved(RECLAIM_EVERY / 2);
    await tick();
    expect(reclaimsRequested()).toBe(before + 1);
  });

  it('leaves no gc function behind, in this context or in new ones', async () => {
    noteBytesMoved(RECLAIM_EVERY);
    await tick();
    expect(typeof (globalThis as { gc?: unknown }).gc).toBe('undefined');
    expect(vm.runInNewContext('typeof gc')).toBe('undefined');
  });

  it('MSSH_BUFFER_RECLAIM=off asks for nothing', () => {
    const script = `
      import { installBufferReclaim, noteBytesMoved, reclaimsRequested, RECLAIM_EVERY } from ${JSON.stringify(new URL('./buffer-reclaim.ts', import.meta.url).href)};
      installBufferReclaim();
      noteBytesMoved(RECLAIM_EVERY * 3);
      setImmediate(() => console.log(reclaimsRequested()));
    `;
    const run = (env: NodeJS.ProcessEnv): string =>
      execFileSync(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', script], {
        env: { ...process.env, ...env },
        encoding: 'utf8',
        timeout: 30_000,
      }).trim();
    expect(run({ MSSH_BUFFER_RECLAIM: 'off' })).toBe('0');
    expect(run({ MSSH_BUFFER_RECLAIM: '' })).toBe('1');
  });

  it('is off until a program installs it: importing the module (or the transport) asks for nothing', () => {
    const script = `
      import { noteBytesMoved, reclaimsRequested, RECLAIM_EVERY } from ${JSON.stringify(new URL('./transport.ts', import.meta.url).href)};
      noteBytesMoved(RECLAIM_EVERY * 3);
      setImmediate(() => console.log(reclaimsRequested()));
    `;
    const out = execFileSync(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', script], {
      env: { ...process.env, MSSH_BUFFER_RECLAIM: '' },
      encoding: 'utf8',
      timeout: 30_000,
    }).trim();
    expect(out).toBe('0');
  });

  it('uses the gc of a process started with --expose-gc, and leaves it in place', () => {
    const script = `
      import { installBufferReclaim, noteBytesMoved, reclaimsRequested, RECLAIM_EVERY } from ${JSON.stringify(new URL('./buffer-reclaim.ts', import.meta.url).href)};
      import vm from 'node:vm';
      installBufferReclaim();
      noteBytesMoved(RECLAIM_EVERY);
      setImmediate(() => console.log(reclaimsRequested(), typeof globalThis.gc, vm.runInNewContext('typeof gc')));
    `;
    const out = execFileSync(
      process.execPath,
      ['--expose-gc', '--import', 'tsx', '--input-type=module', '-e', script],
      { encoding: 'utf8', timeout: 30_000 },
    ).trim();
    expect(out).toBe('1 function function');
  });
});

describe('data paths report what they move', () => {
  it('splice tells onBytes of every chunk, both ways', async () => {
    // Duplexes whose two sides are separate (a PassThrough would feed what it is given straight back).
    const end = (): Duplex =>
      new Duplex({
        read() {},
        write(_c, _e, cb) {
          cb();
        },
      });
    const a = end();
    const b = end();
    let seen = 0;
    const done = splice(a, b, undefined, (n) => (seen += n));
    a.push(Buffer.alloc(1000));
    b.push(Buffer.alloc(234));
    await tick();
    expect(seen).toBe(1234);
    a.destroy();
    b.destroy();
    await done;
  });

  /** An HTTP/2 server on loopback that answers GET with `size` bytes and swallows POST bodies. */
  async function h2Pair(size: number): Promise<{ session: http2.ClientHttp2Session; close: () => void }> {
    const server = http2.createServer();
    server.on('stream', (s, headers) => {
      s.respond({ ':status': 200 });
      if (headers[':method'] === 'GET') s.end(Buffer.alloc(size, 7));
      else s.on('data', () => {}).once('end', () => s.end());
    });
    const tcp = net.createServer((sock) => server.emit('connection', sock));
    await new Promise<void>((r) => tcp.listen(0, '127.0.0.1', r));
    const port = (tcp.address() as net.AddressInfo).port;
    const sock = net.connect(port, '127.0.0.1');
    await new Promise<void>((r, j) => {
      sock.once('connect', r);
      sock.once('error', j);
    });
    const session = http2.connect(`http://127.0.0.1:${port}`, { createConnection: () => decoupleWrites(sock) });
    return {
      session,
      close: () => {
        session.destroy();
        sock.destroy();
        tcp.close();
        server.close();
      },
    };
  }

  async function exchange(
    session: http2.ClientHttp2Session,
    method: 'GET' | 'POST',
    body: Buffer | null,
  ): Promise<number> {
    const stream = session.request({ ':method': method, ':path': '/' }, { endStream: body === null });
    let got = 0;
    stream.on('data', (c: Buffer) => (got += c.length));
    const ended = new Promise((r) => stream.once('end', r));
    if (body) stream.end(body);
    await ended;
    await tick();
    return got;
  }

  it('the decoupled view counts what HTTP/2 reads through it', async () => {
    const size = 3 * RECLAIM_EVERY;
    const { session, close } = await h2Pair(size);
    try {
      const before = reclaimsRequested();
      expect(await exchange(session, 'GET', null)).toBe(size);
      // Only headers and window updates went out: the scavenges come from the bytes read.
      expect(reclaimsRequested() - before).toBeGreaterThanOrEqual(2);
    } finally {
      close();
    }
  });

  it('the decoupled view counts what HTTP/2 writes through it', async () => {
    const { session, close } = await h2Pair(0);
    try {
      const before = reclaimsRequested();
      expect(await exchange(session, 'POST', Buffer.alloc(3 * RECLAIM_EVERY, 7))).toBe(0);
      expect(reclaimsRequested() - before).toBeGreaterThanOrEqual(2);
    } finally {
      close();
    }
  });
});
