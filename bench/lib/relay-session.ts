/**
 * The benchmark's in-process HTTP/2 session to the relay: e2e/fixtures/tunnel-client.ts `relaySession`
 * plus TCP_NODELAY on the TLS socket. With the socket wrapped by `decoupleWrites`, Node's http2 can no
 * longer switch Nagle off itself, and every small frame (a stream's HEADERS, a 1-byte keystroke, an
 * SSH handshake message) then waits ~40 ms for the peer's delayed ACK. The benchmark measures the relay
 * and the agent, not that client-side delay. (The fixture and mssh's own relay connection had the same
 * problem when this was written; see bench/README.md.)
 */
import http2 from 'node:http2';
import tls from 'node:tls';
import { certFingerprint, H2_SETTINGS } from '@mssh/protocol';
import { decoupleWrites, sizeWindowsToPath } from '@mssh/protocol/transport';
import type { Relay } from '@mssh/test-fixtures/stack';

export async function relaySession(relay: Relay): Promise<http2.ClientHttp2Session> {
  const socket = await new Promise<tls.TLSSocket>((resolve, reject) => {
    const s = tls.connect({ host: '127.0.0.1', port: relay.port, ALPNProtocols: ['h2'], rejectUnauthorized: false });
    s.once('secureConnect', () => {
      const fp = certFingerprint(s.getPeerCertificate().raw);
      if (fp !== relay.fingerprint) {
        s.destroy();
        reject(new Error(`relay fingerprint ${fp} != ${relay.fingerprint}`));
      } else resolve(s);
    });
    s.once('error', reject);
  });
  socket.setNoDelay(true);
  const session = http2.connect(relay.url, { createConnection: () => decoupleWrites(socket), settings: H2_SETTINGS });
  session.on('error', () => {});
  sizeWindowsToPath(session);
  return session;
}
