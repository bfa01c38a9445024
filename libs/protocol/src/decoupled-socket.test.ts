/**
 * The write-decoupled view HTTP/2 gets on Node-to-Node links: writes count as done at once, corked
 * frames leave as one write, and a peer that stops reading is cut off at the cap with a clear error.
 */
import { afterEach, describe, expect, it } from 'vitest';
import http2 from 'node:http2';
import net from 'node:net';
import { createHash, randomBytes } from 'node:crypto';
import { decoupleWrites } from './decoupled-socket.js';

const cleanups: (() => void)[] = [];
afterEach(() => {
  for (const f of cleanups.splice(0)) f();
});

async function socketPair(onServerSocket: (s: net.Socket) => void): Promise<net.Socket> {
  const server = net.createServer(onServerSocket);
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  cleanups.push(() => server.close());
  const port = (server.address() as net.AddressInfo).port;
  const client = net.connect(port, '127.0.0.1');
  await new Promise<void>((resolve, reject) => {
    client.once('connect', resolve);
    client.once('error', reject);
  });
  cleanups.push(() => client.destroy());
  return client;
}

describe('decoupleWrites', () => {
  it('carries an HTTP/2 session both ways byte-exact, with the server side decoupled too', async () => {
    const h2server = http2.createServer();
    h2server.on('stream', (stream) => {
      stream.respond({ ':status': 200 });
      stream.pipe(stream);
    });
    cleanups.push(() => h2server.close());
    const raw = await socketPair((s) => h2server.emit('connection', decoupleWrites(s)));
    const session = http2.connect('http://127.0.0.1', { createConnection: () => decoupleWrites(raw) });
    cleanups.push(() => session.destroy());
    const payload = randomBytes(3 * 1024 * 1024 + 17);
    const req = session.request({ ':method': 'POST', ':path': '/' });
    const back = createHash('sha256');
    let got = 0;
    const done = new Promise<void>((resolve, reject) => {
      req.on('data', (d: Buffer) => {
        back.update(d);
        got += d.length;
      });
      req.once('end', resolve);
      req.once('error', reject);
    });
    req.end(payload);
    await done;
    expect(got).toBe(payload.length);
    expect(back.digest('hex')).toBe(createHash('sha256').update(payload).digest('hex'));
  });

  it('reports writes done at once and turns Nagle off on the socket', async () => {
    const raw = await socketPair(() => {});
    let noDelay: boolean | undefined;
    const orig = raw.setNoDelay.bind(raw);
    raw.setNoDelay = (v?: boolean) => {
      noDelay = v;
      return orig(v);
    };
    const view = decoupleWrites(raw);
    expect(noDelay).toBe(true);
    let called = false;
    view.write(Buffer.from('x'), () => {
      called = true;
    });
    expect(called).toBe(true);
  });

  it('destroys the socket with "peer is not reading" once more than the cap waits to be sent', async () => {
    // A peer that accepts and never reads: the kernel buffers fill, then the socket's own queue grows.
    const raw = await socketPair((s) => s.pause());
    const view = decoupleWrites(raw, 256 * 1024);
    const closed = new Promise<Error | undefined>((resolve) => {
      raw.once('error', (e) => resolve(e));
      raw.once('close', () => resolve(undefined));
    });
    let firstError: Error | null | undefined;
    const chunk = Buffer.alloc(1024 * 1024);
    // Bounded: the kernel buffers on loopback hold at most a few tens of MiB.
    for (let i = 0; i < 200 && !firstError; i++) {
      view.write(chunk, (err) => {
        if (err && !firstError) firstError = err;
      });
      await new Promise((r) => setImmediate(r));
    }
    expect(firstError?.message).toMatch(/peer is not reading \(\d+ bytes waiting to be sent\)/);
    const err = await closed;
    expect(err?.message).toMatch(/peer is not reading/);
    expect(raw.destroyed).toBe(true);
  });
});
