/**
 * Issue 3 connection deadlines (own file: it takes over 2 minutes, so it runs next to the others):
 * connections that never start anything are dropped within the 10 s handshake deadline (silent TCP,
 * TLS up but no HTTP/2 stream, TLS up on HTTP/1.1 but no request), while an idle SSH session that has
 * started survives 2 minutes and still works.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import net from 'node:net';
import tls from 'node:tls';
import http2 from 'node:http2';
import type { Duplex } from 'node:stream';
import { fixtures } from './fixtures/inject.js';
import { startRelay, startAgent, stopAll, type Relay } from './fixtures/stack.js';
import { adminSession, openTunnel, sshExec, readKey } from './fixtures/tunnel-client.js';
import { waitFor } from './fixtures/net.js';

afterAll(stopAll);

/** Resolves with how long the peer took to close `sock` (or rejects after timeoutMs). */
function closedWithin(sock: Duplex, timeoutMs: number): Promise<number> {
  const t0 = Date.now();
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      sock.destroy();
      reject(new Error(`still open after ${timeoutMs} ms`));
    }, timeoutMs);
    sock.on('error', () => {});
    // Read whatever comes (e.g. the server's SETTINGS), so that its FIN is seen.
    sock.resume();
    sock.once('close', () => {
      clearTimeout(timer);
      resolve(Date.now() - t0);
    });
  });
}

function tlsUp(relay: Relay, alpn: string[]): Promise<tls.TLSSocket> {
  return new Promise((resolve, reject) => {
    const s = tls.connect({ host: '127.0.0.1', port: relay.port, ALPNProtocols: alpn, rejectUnauthorized: false });
    s.once('secureConnect', () => resolve(s));
    s.once('error', reject);
  });
}

describe('connection deadlines', () => {
  let relay: Relay;
  beforeAll(async () => {
    relay = await startRelay('pglite');
    await startAgent(relay, 'idle');
  });
  afterAll(async () => {
    await relay?.proc.stop();
  });

  it(
    'silent connections are dropped within 10 s while an idle SSH session survives 2 minutes',
    { timeout: 240_000 },
    async () => {
      const f = fixtures();
      // The long-lived session first, so the two minutes overlap the silent connections' checks.
      const { h2, token } = await adminSession(relay);
      const sock = await openTunnel(h2, token, 'idle');
      const { client, channel } = await sshExec(sock, {
        user: f.sshd.user,
        privateKey: readKey(f.sshd.clientKey),
        command: 'cat',
      });
      let closed = false;
      const received: Buffer[] = [];
      channel.on('data', (d: Buffer) => received.push(d));
      channel.on('close', () => (closed = true));
      client.on('close', () => (closed = true));
      const openedAt = Date.now();

      // 1. TCP connected, not a byte sent (no TLS ClientHello).
      const tcp = net.connect(relay.port, '127.0.0.1');
      await new Promise((r) => tcp.once('connect', r));
      // 2. TLS up with h2, then no HTTP/2 preface or stream.
      const h2Silent = await tlsUp(relay, ['h2']);
      // 3. TLS up with HTTP/1.1, then no request.
      const h1Silent = await tlsUp(relay, ['http/1.1']);
      // 4. An HTTP/2 session with a proper preface that never opens a stream.
      const idleSession = http2.connect(relay.url, { rejectUnauthorized: false });
      idleSession.on('error', () => {});
      const idleClosed = new Promise<number>((resolve) => {
        const t0 = Date.now();
        idleSession.once('close', () => resolve(Date.now() - t0));
      });

      const [a, b, c] = await Promise.all([
        closedWithin(tcp, 15_000),
        closedWithin(h2Silent, 15_000),
        closedWithin(h1Silent, 15_000),
      ]);
      const d = await Promise.race([
        idleClosed,
        new Promise<number>((_, rej) =>
          setTimeout(() => rej(new Error('idle h2 session still open after 15 s')), 15_000),
        ),
      ]);
      for (const ms of [a, b, c, d]) expect(ms).toBeLessThanOrEqual(12_000);

      // The SSH session, silent all along, is still there after 2 minutes and still works.
      await waitFor(() => Date.now() - openedAt >= 125_000 || closed, 130_000, 'two minutes to pass', 1_000);
      expect(closed).toBe(false);
      channel.write('still-alive\n');
      await waitFor(
        () => Buffer.concat(received).toString().includes('still-alive') || closed,
        10_000,
        'echo after 2 minutes idle',
      );
      expect(Buffer.concat(received).toString()).toContain('still-alive');
      client.end();
      h2.close();
    },
  );
});
