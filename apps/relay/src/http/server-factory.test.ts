/**
 * One port, three kinds of client: HTTP/2 and HTTP/1.1 API clients reach the handler, a socket that
 * negotiates ALPN mssh-agent/1 goes to the agent acceptor and never reaches the handler.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import http2 from 'node:http2';
import https from 'node:https';
import tls, { type TLSSocket } from 'node:tls';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { AddressInfo } from 'node:net';
import { AGENT_ALPN } from '@mssh/protocol';
import { createRelayHttpServer, type RelayHttpServer } from './server-factory.js';
import { loadOrCreateTls } from '../tls/certificate.js';

describe('relay HTTP server factory', () => {
  const dir = mkdtempSync(join(tmpdir(), 'mssh-sf-'));
  let rs: RelayHttpServer;
  let port: number;
  const agentSockets: TLSSocket[] = [];
  const seen: string[] = [];

  beforeAll(async () => {
    const cert = await loadOrCreateTls({ dataDir: dir });
    rs = createRelayHttpServer(
      (req, res) => {
        seen.push(`${req.httpVersion} ${req.url}`);
        res.writeHead(200, { 'content-type': 'text/plain' });
        res.end(`hello ${req.httpVersion}`);
      },
      {
        key: cert.key,
        cert: cert.cert,
        acceptAgentSocket: (s) => {
          agentSockets.push(s);
          s.end('agent side\n');
        },
      },
    );
    await new Promise<void>((res) => rs.server.listen(0, '127.0.0.1', res));
    port = (rs.server.address() as AddressInfo).port;
  });
  afterAll(async () => {
    await rs.closeConnections(100);
    await new Promise<void>((res) => rs.server.close(() => res()));
    rmSync(dir, { recursive: true, force: true });
  });

  it('serves HTTP/2', async () => {
    const s = http2.connect(`https://127.0.0.1:${port}`, { rejectUnauthorized: false });
    try {
      const body = await new Promise<string>((resolve, reject) => {
        const req = s.request({ ':path': '/h2' });
        let b = '';
        req.setEncoding('utf8');
        req.on('data', (d) => (b += d));
        req.on('end', () => resolve(b));
        req.on('error', reject);
        req.end();
      });
      expect(body).toBe('hello 2.0');
    } finally {
      s.close();
    }
  });

  it('serves HTTP/1.1 on the same port', async () => {
    const body = await new Promise<string>((resolve, reject) => {
      https
        .get({ host: '127.0.0.1', port, path: '/h1', rejectUnauthorized: false, agent: false }, (res) => {
          let b = '';
          res.setEncoding('utf8');
          res.on('data', (d) => (b += d));
          res.on('end', () => resolve(b));
        })
        .on('error', reject);
    });
    expect(body).toBe('hello 1.1');
  });

  it('hands agent sockets to the acceptor, not to the HTTP handler', async () => {
    const before = seen.length;
    const got = await new Promise<{ alpn: string | false; data: string }>((resolve, reject) => {
      const s = tls.connect({ host: '127.0.0.1', port, ALPNProtocols: [AGENT_ALPN, 'h2'], rejectUnauthorized: false });
      let data = '';
      s.setEncoding('utf8');
      s.on('data', (d) => (data += d));
      s.on('end', () => resolve({ alpn: s.alpnProtocol ?? false, data }));
      s.on('error', reject);
    });
    expect(got).toEqual({ alpn: AGENT_ALPN, data: 'agent side\n' });
    expect(agentSockets).toHaveLength(1);
    expect(seen.length).toBe(before);
  });

  it('refuses a client that offers only unknown protocols', async () => {
    const err = await new Promise<Error | null>((resolve) => {
      const s = tls.connect({ host: '127.0.0.1', port, ALPNProtocols: ['gopher'], rejectUnauthorized: false });
      s.on('secureConnect', () => {
        s.destroy();
        resolve(null);
      });
      s.on('error', resolve);
    });
    expect(err).not.toBeNull();
  });
});

describe('HTTP/2 control-frame floods (issue 22)', () => {
  const dir = mkdtempSync(join(tmpdir(), 'mssh-sf-flood-'));
  let rs: RelayHttpServer;
  let port: number;
  const floods: Array<{ kind: string; peer: string }> = [];

  beforeAll(async () => {
    const cert = await loadOrCreateTls({ dataDir: dir });
    rs = createRelayHttpServer(
      (_req, res) => {
        res.writeHead(200);
        res.end('ok');
      },
      {
        key: cert.key,
        cert: cert.cert,
        acceptAgentSocket: (s) => s.destroy(),
        // The relay's own limit off: what is left is nghttp2's flood protection, which must be reported too.
        limits: { maxControlFramesPerSecond: 0 },
        onFlood: (r) => floods.push({ kind: r.kind, peer: r.peer }),
      },
    );
    await new Promise<void>((res) => rs.server.listen(0, '127.0.0.1', res));
    port = (rs.server.address() as AddressInfo).port;
  });
  afterAll(async () => {
    await rs.closeConnections(100);
    await new Promise<void>((res) => rs.server.close(() => res()));
    rmSync(dir, { recursive: true, force: true });
  });

  it('a peer that sends PINGs and never reads the answers is closed by nghttp2 and reported as a flood with its address; another connection is served', async () => {
    const ping = Buffer.concat(
      Array.from({ length: 1000 }, (_, i) => {
        const f = Buffer.alloc(17);
        f.writeUIntBE(8, 0, 3);
        f[3] = 0x6; // PING
        f[16] = i & 0xff;
        return f;
      }),
    );
    const closed = await new Promise<boolean>((resolve) => {
      const s = tls.connect({ host: '127.0.0.1', port, ALPNProtocols: ['h2'], rejectUnauthorized: false });
      const timer = setTimeout(() => {
        s.destroy();
        resolve(false);
      }, 20_000);
      s.on('error', () => {});
      s.once('close', () => {
        clearTimeout(timer);
        resolve(true);
      });
      s.once('secureConnect', () => {
        s.pause(); // never reads a byte of the answers
        s.write('PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n');
        s.write(Buffer.from([0, 0, 0, 0x4, 0, 0, 0, 0, 0])); // empty SETTINGS
        let batches = 0;
        const more = (): void => {
          if (s.destroyed || ++batches > 5_000) return;
          if (s.write(ping)) setImmediate(more);
          else s.once('drain', more);
        };
        more();
      });
    });
    expect(closed).toBe(true);
    expect(floods).toEqual([{ kind: 'ack-flood', peer: '127.0.0.1' }]);
    const c = http2.connect(`https://127.0.0.1:${port}`, { rejectUnauthorized: false });
    try {
      const status = await new Promise<number>((resolve, reject) => {
        const req = c.request({ ':path': '/' });
        req.on('response', (h) => resolve(Number(h[':status'])));
        req.on('error', reject);
        req.end();
      });
      expect(status).toBe(200);
    } finally {
      c.close();
    }
  });
});
