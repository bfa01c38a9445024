/**
 * The ssh2 private parts this library reaches into, checked on a real ssh2 server and client over
 * loopback: if an ssh2 upgrade renames or moves one, this test fails (the servers would otherwise refuse
 * every connection, or lose the text of their refusals, without a word).
 */
import { afterEach, describe, expect, it } from 'vitest';
import { createServer, Socket, type AddressInfo, type Server as NetServer } from 'node:net';
import ssh2 from 'ssh2';
import type { Connection, SFTPWrapper } from 'ssh2';
import { generateEd25519KeyPair } from '@mssh/protocol/ssh2-keys';
import { packetSender, protocolOf, sendExitStatus, socketOf } from './ssh2-internals.js';

const hostKey = generateEd25519KeyPair('test-host').private;

let net: NetServer | undefined;
let client: InstanceType<typeof ssh2.Client> | undefined;
afterEach(async () => {
  client?.end();
  await new Promise<void>((r) => (net ? net.close(() => r()) : r()));
  net = undefined;
  client = undefined;
});

/** An ssh2 server fed sockets by injectSocket (as server-core does); resolves with the injected socket and ssh2's connection. */
async function connectPair(
  onClient: (c: Connection) => void = () => undefined,
): Promise<{ injected: Socket; conn: Connection }> {
  const server = new ssh2.Server({ hostKeys: [hostKey] });
  let injected: Socket | undefined;
  const got = new Promise<Connection>((resolve) => {
    server.on('connection', (c: Connection) => {
      c.on('authentication', (ctx) => ctx.accept());
      onClient(c);
      resolve(c);
    });
  });
  net = createServer((sock) => {
    injected = sock;
    server.injectSocket(sock);
  });
  await new Promise<void>((r) => net!.listen(0, '127.0.0.1', () => r()));
  client = new ssh2.Client();
  client.on('error', () => undefined);
  const ready = new Promise<void>((resolve) => client!.once('ready', () => resolve()));
  client.connect({
    host: '127.0.0.1',
    port: (net.address() as AddressInfo).port,
    username: 'u',
    hostVerifier: () => true,
  });
  const conn = await got;
  await ready;
  return { injected: injected!, conn };
}

describe('ssh2 internals (ssh2 1.x)', () => {
  it('Connection._sock is the very net.Socket given to injectSocket', async () => {
    const { injected, conn } = await connectPair();
    expect(Object.prototype.hasOwnProperty.call(conn, '_sock')).toBe(true);
    const sock = socketOf(conn);
    expect(sock).toBeInstanceOf(Socket);
    expect(sock).toBe(injected);
  });

  it('Connection._protocol has channelOpenFail and the packet writer; utils.sendPacket loads', async () => {
    const { conn } = await connectPair();
    const proto = protocolOf(conn);
    expect(proto).not.toBeNull();
    expect(typeof proto!._packetRW?.write.allocStartKEX).toBe('number');
    expect(typeof proto!._packetRW?.write.alloc).toBe('function');
    expect(typeof proto!._packetRW?.write.finalize).toBe('function');
    expect(typeof packetSender()).toBe('function');
  });

  it('an SFTP channel takes an exit-status through its _protocol', async () => {
    let served: SFTPWrapper | undefined;
    const sent = new Promise<boolean>((resolve) => {
      void connectPair((c) => {
        c.on('session', (accept) => {
          accept().on('sftp', (acceptSftp) => {
            served = acceptSftp();
            resolve(sendExitStatus(served, 0));
          });
        });
      }).then(() => client!.sftp(() => undefined));
    });
    expect(await sent).toBe(true);
    served?.end();
  });
});
