/**
 * The relay's HTTP/2 chain alone, in one process, to see flow control without SSH, TLS or other
 * processes: client (write-decoupled, as mssh) -> delay -> "relay" (HTTP/2 server, splice into an
 * HTTP/2 client stream, as the router) -> delay -> "agent" (HTTP/2 server behind the write-decoupled
 * view, a sink). Every end sizes its windows with sizeWindowsToPath, so MSSH_H2_WINDOWS=fixed|auto|max
 * compares the fixed windows with the BDP sizing (docs/architecture.md, "Flow control").
 *
 *   node --import tsx bench/h2-chain.ts [--delay MS] [--mib N] [--trace]
 *
 * The delay is one-way per leg, per chunk, in order (no rate cap); prints MB/s of one upload.
 */
import http2 from 'node:http2';
import net from 'node:net';
import { parseArgs } from 'node:util';
import { H2_SETTINGS } from '@mssh/protocol';
import {
  decoupleWrites,
  sizeWindowsToPath,
  splice,
  windowMode,
  type WindowSizingOptions,
} from '@mssh/protocol/transport';

const { values } = parseArgs({
  options: {
    delay: { type: 'string', default: '40' },
    mib: { type: 'string', default: '48' },
    trace: { type: 'boolean' },
  },
});
const delayMs = Math.max(0, Math.min(Number(values.delay), 1_000));
const mib = Math.max(1, Math.min(Number(values.mib), 4_096));
const servers: net.Server[] = [];

function delayLink(targetPort: number): Promise<number> {
  const server = net.createServer((inbound) => {
    inbound.setNoDelay(true);
    const outbound = net.connect(targetPort, '127.0.0.1');
    outbound.setNoDelay(true);
    const delayed = (from: net.Socket, to: net.Socket) => {
      from.on('data', (c: Buffer) => setTimeout(() => to.destroyed || to.write(c), delayMs));
      from.on('error', () => {});
      from.once('close', () => setTimeout(() => to.destroy(), delayMs));
    };
    delayed(inbound, outbound);
    delayed(outbound, inbound);
  });
  servers.push(server);
  return new Promise((r) => server.listen(0, '127.0.0.1', () => r((server.address() as net.AddressInfo).port)));
}

const t0 = performance.now();
const trace = (who: string): WindowSizingOptions => ({
  onGrow: (w) =>
    values.trace &&
    console.error(
      `${((performance.now() - t0) / 1000).toFixed(2)} s ${who}: stream window ${(w.streamWindow / 2 ** 20).toFixed(2)} MiB` +
        ` (sample ${(w.sample / 2 ** 20).toFixed(2)} MiB in ${w.rttMs.toFixed(0)} ms)`,
    ),
});

let received = 0;
const agent = http2.createServer({ settings: { ...H2_SETTINGS }, maxSessionMemory: 64 });
agent.on('session', (s) => sizeWindowsToPath(s, trace('agent')));
agent.on('stream', (st) => {
  st.respond({ ':status': 200 });
  st.on('data', (d: Buffer) => (received += d.length));
  st.on('end', () => st.end());
});
const agentRaw = net.createServer((s) => agent.emit('connection', decoupleWrites(s)));
servers.push(agentRaw);
await new Promise<void>((r) => agentRaw.listen(0, '127.0.0.1', r));
const agentPort = await delayLink((agentRaw.address() as net.AddressInfo).port);

const toAgent = http2.connect(`http://127.0.0.1:${agentPort}`, { settings: { ...H2_SETTINGS }, maxSessionMemory: 64 });
sizeWindowsToPath(toAgent, trace('relay, agent hop'));
const relay = http2.createServer({ settings: { ...H2_SETTINGS }, maxSessionMemory: 64 });
relay.on('session', (s) => sizeWindowsToPath(s, trace('relay, client hop')));
relay.on('stream', (st) => {
  st.respond({ ':status': 200 });
  void splice(st, toAgent.request({ ':method': 'POST', ':path': '/' }));
});
await new Promise<void>((r) => relay.listen(0, '127.0.0.1', r));
const relayPort = await delayLink((relay.address() as net.AddressInfo).port);

const sock = net.connect(relayPort, '127.0.0.1');
await new Promise((r) => sock.once('connect', r));
const client = http2.connect('http://127.0.0.1', {
  createConnection: () => decoupleWrites(sock),
  settings: { ...H2_SETTINGS },
});
sizeWindowsToPath(client);
const req = client.request({ ':method': 'POST', ':path': '/' });
req.resume();
const start = performance.now();
const chunk = Buffer.alloc(64 * 1024, 7);
const total = mib * 2 ** 20;
for (let sent = 0; sent < total; sent += chunk.length)
  if (!req.write(chunk)) await new Promise((r) => req.once('drain', r));
req.end();
for (let i = 0; i < 600_000 && received < total; i++) await new Promise((r) => setTimeout(r, 5));
const s = (performance.now() - start) / 1000;
console.log(
  `windows ${windowMode()}, ${delayMs} ms per leg: ${mib} MiB in ${s.toFixed(2)} s = ${(total / s / 1e6).toFixed(1)} MB/s`,
);
client.destroy();
toAgent.destroy();
for (const srv of servers) srv.close();
relay.close();
process.exit(received >= total ? 0 : 1);
