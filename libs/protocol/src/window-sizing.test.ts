/**
 * Window sizing follows the bandwidth-delay product: over a slow path the windows grow (per stream
 * through SETTINGS, also for a stream already running; per connection), never past the caps, and not at
 * all where one window per round trip is more than arrives.
 */
import { afterEach, describe, expect, it } from 'vitest';
import http2 from 'node:http2';
import net from 'node:net';
import { createHash, randomBytes } from 'node:crypto';
import { decoupleWrites } from './decoupled-socket.js';
import { H2_SETTINGS } from './constants.js';
import {
  INITIAL_CONNECTION_WINDOW,
  INITIAL_STREAM_WINDOW,
  MAX_CONNECTION_WINDOW,
  MAX_STREAM_WINDOW,
  sizeWindowsToPath,
  windowMode,
  type WindowSizer,
} from './window-sizing.js';

const cleanups: (() => void)[] = [];
afterEach(() => {
  for (const f of cleanups.splice(0)) f();
});

/** A TCP relay that holds every chunk `delayMs` in each direction, in order (a long link on loopback). */
async function delayLink(targetPort: number, delayMs: number): Promise<number> {
  const server = net.createServer((inbound) => {
    inbound.setNoDelay(true);
    const outbound = net.connect(targetPort, '127.0.0.1');
    outbound.setNoDelay(true);
    const pipeDelayed = (from: net.Socket, to: net.Socket) => {
      from.on('data', (chunk: Buffer) => {
        setTimeout(() => {
          if (!to.destroyed) to.write(chunk);
        }, delayMs);
      });
      from.once('close', () => setTimeout(() => to.destroy(), delayMs));
      from.on('error', () => {});
    };
    pipeDelayed(inbound, outbound);
    pipeDelayed(outbound, inbound);
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  cleanups.push(() => server.close());
  return (server.address() as net.AddressInfo).port;
}

/** An HTTP/2 sink: `sizer` sizes the server's (the receiver's) windows; every stream's bytes are hashed. */
async function sinkServer(
  maxStreamWindow?: number,
  maxConnectionWindow?: number,
): Promise<{ port: number; sizer: () => WindowSizer | undefined; streamWindows: number[] }> {
  let sizer: WindowSizer | undefined;
  const streamWindows: number[] = [];
  const h2 = http2.createServer({ settings: { ...H2_SETTINGS }, maxSessionMemory: 64 });
  h2.on('session', (s) => {
    sizer = sizeWindowsToPath(s, {
      mode: 'auto',
      maxStreamWindow,
      maxConnectionWindow,
      onGrow: (w) => process.env.BDP_DEBUG && console.log(Math.round(performance.now()), w),
    });
  });
  h2.on('stream', (stream) => {
    const hash = createHash('sha256');
    stream.on('data', (d: Buffer) => hash.update(d));
    stream.on('end', () => {
      streamWindows.push(stream.state.localWindowSize ?? -1);
      stream.respond({ ':status': 200 });
      stream.end(hash.digest('hex'));
    });
  });
  const server = net.createServer((sock) => h2.emit('connection', sock));
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  cleanups.push(() => server.close());
  return { port: (server.address() as net.AddressInfo).port, sizer: () => sizer, streamWindows };
}

async function upload(port: number, payload: Buffer): Promise<string> {
  const sock = net.connect(port, '127.0.0.1');
  await new Promise<void>((resolve, reject) => {
    sock.once('connect', resolve);
    sock.once('error', reject);
  });
  const session = http2.connect('http://127.0.0.1', {
    createConnection: () => decoupleWrites(sock),
    settings: H2_SETTINGS,
  });
  cleanups.push(() => session.destroy());
  session.on('error', () => {});
  const req = session.request({ ':method': 'POST', ':path': '/' });
  let body = '';
  req.setEncoding('utf8');
  req.on('data', (d: string) => (body += d));
  const done = new Promise<void>((resolve, reject) => {
    req.once('end', resolve);
    req.once('error', reject);
  });
  req.end(payload);
  await done;
  return body;
}

const sha = (b: Buffer) => createHash('sha256').update(b).digest('hex');

describe('sizeWindowsToPath', () => {
  it('grows the stream window of a running transfer over a long link, byte-exact, up to the caps', async () => {
    const sink = await sinkServer();
    const port = await delayLink(sink.port, 20);
    const grown: number[] = [];
    const payload = randomBytes(24 * 1024 * 1024);
    const hash = await upload(port, payload);
    expect(hash).toBe(sha(payload));
    const sizer = sink.sizer()!;
    grown.push(sizer.streamWindow);
    expect(sizer.streamWindow).toBeGreaterThan(INITIAL_STREAM_WINDOW);
    expect(sizer.streamWindow).toBeLessThanOrEqual(MAX_STREAM_WINDOW);
    expect(sizer.connectionWindow).toBeLessThanOrEqual(MAX_CONNECTION_WINDOW);
    expect(sizer.rttMs).toBeGreaterThanOrEqual(40);
    // The stream that was already running got the larger window (SETTINGS applies to open streams).
    expect(sink.streamWindows[0]).toBeGreaterThan(INITIAL_STREAM_WINDOW);
  }, 30_000);

  it('grows the windows of a write-decoupled end receiving a download (client and agent links)', async () => {
    const payload = randomBytes(24 * 1024 * 1024);
    const h2 = http2.createServer({ settings: { ...H2_SETTINGS }, maxSessionMemory: 64 });
    h2.on('stream', (stream) => {
      stream.respond({ ':status': 200 });
      stream.end(payload);
    });
    const server = net.createServer((sock) => h2.emit('connection', sock));
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    cleanups.push(() => server.close());
    const port = await delayLink((server.address() as net.AddressInfo).port, 20);
    const sock = net.connect(port, '127.0.0.1');
    await new Promise<void>((resolve, reject) => {
      sock.once('connect', resolve);
      sock.once('error', reject);
    });
    const session = http2.connect('http://127.0.0.1', {
      createConnection: () => decoupleWrites(sock),
      settings: H2_SETTINGS,
      maxSessionMemory: 64,
    });
    cleanups.push(() => session.destroy());
    session.on('error', () => {});
    const sizer = sizeWindowsToPath(session, { mode: 'auto' });
    const req = session.request({ ':path': '/' });
    const hash = createHash('sha256');
    req.on('data', (d: Buffer) => hash.update(d));
    await new Promise<void>((resolve, reject) => {
      req.once('end', resolve);
      req.once('error', reject);
    });
    expect(hash.digest('hex')).toBe(sha(payload));
    expect(sizer.streamWindow).toBeGreaterThan(INITIAL_STREAM_WINDOW);
    expect(sizer.connectionWindow).toBeGreaterThan(INITIAL_CONNECTION_WINDOW);
  }, 30_000);

  it('MSSH_H2_WINDOWS: auto sizes, max starts at the caps, anything else is fixed (the default)', () => {
    expect(windowMode({ MSSH_H2_WINDOWS: 'auto' })).toBe('auto');
    expect(windowMode({ MSSH_H2_WINDOWS: ' MAX ' })).toBe('max');
    expect(windowMode({ MSSH_H2_WINDOWS: 'bogus' })).toBe('fixed');
    expect(windowMode({})).toBe('fixed');
  });
});
