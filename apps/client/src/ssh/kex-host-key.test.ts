import { describe, expect, it } from 'vitest';
import { randomBytes } from 'node:crypto';
import {
  HostKeyWatch,
  PlainSshReader,
  SSH_MSG_KEX_DH_GEX_REPLY,
  SSH_MSG_KEX_REPLY,
  hostKeyMessageFor,
} from './kex-host-key.js';

function str(b: Buffer | string): Buffer {
  const v = typeof b === 'string' ? Buffer.from(b, 'latin1') : b;
  const n = Buffer.alloc(4);
  n.writeUInt32BE(v.length);
  return Buffer.concat([n, v]);
}

/** A plaintext packet (RFC 4253 6), padded to a multiple of 8. */
function packet(payload: Buffer): Buffer {
  let padding = 8 - ((5 + payload.length) % 8);
  if (padding < 4) padding += 8;
  const head = Buffer.alloc(5);
  head.writeUInt32BE(1 + payload.length + padding);
  head[4] = padding;
  return Buffer.concat([head, payload, Buffer.alloc(padding)]);
}

function kexinit(kex: string): Buffer {
  const lists = [
    kex,
    'ssh-ed25519',
    'aes128-ctr',
    'aes128-ctr',
    'hmac-sha2-256',
    'hmac-sha2-256',
    'none',
    'none',
    '',
    '',
  ];
  return packet(Buffer.concat([Buffer.from([20]), randomBytes(16), ...lists.map(str), Buffer.from([0, 0, 0, 0, 0])]));
}

const hostKey = Buffer.concat([str('ssh-ed25519'), str(randomBytes(32))]);
const reply = (type: number) =>
  packet(Buffer.concat([Buffer.from([type]), str(hostKey), str(randomBytes(32)), str(randomBytes(83))]));

/** Feeds `bytes` in chunks of `size`; returns what the watch let pass and the key it found. */
function feed(w: HostKeyWatch, client: Buffer, server: Buffer, size: number): { passed: number } {
  for (let i = 0; i < client.length; i += size) w.client(client.subarray(i, i + size));
  let passed = 0;
  for (let i = 0; i < server.length && !w.done; i += size) passed = w.server(server.subarray(i, i + size));
  return { passed };
}

describe('the host key in the plaintext start of an SSH connection', () => {
  const clientStart = Buffer.concat([
    Buffer.from('SSH-2.0-OpenSSH_9.2p1\r\n'),
    kexinit('curve25519-sha256,diffie-hellman-group-exchange-sha256,ext-info-c,kex-strict-c-v00@openssh.com'),
  ]);

  it('finds K_S in the KEX reply whatever the chunking, and passes exactly the bytes before it', () => {
    const before = Buffer.concat([
      Buffer.from('a banner line\r\nSSH-2.0-OpenSSH_9.2p1 Debian\r\n'),
      kexinit('sntrup761x25519-sha512@openssh.com,curve25519-sha256,ext-info-s'),
      packet(Buffer.from([2, 0, 0, 0, 0])), // SSH_MSG_IGNORE
    ]);
    const server = Buffer.concat([before, reply(SSH_MSG_KEX_REPLY), packet(Buffer.from([21]))]);
    for (const size of [1, 7, 64, 100_000]) {
      const w = new HostKeyWatch();
      const { passed } = feed(w, clientStart, server, size);
      expect(w.unknown).toBeNull();
      expect(w.found?.equals(hostKey)).toBe(true);
      expect(passed).toBe(before.length);
    }
  });

  it('in a group exchange, the key is in GEX_REPLY (33), not in the group message (31)', () => {
    const client = Buffer.concat([Buffer.from('SSH-2.0-x\r\n'), kexinit('diffie-hellman-group-exchange-sha256')]);
    const group = packet(
      Buffer.concat([
        Buffer.from([31]),
        str(Buffer.concat([Buffer.from([0]), randomBytes(256)])),
        str(Buffer.from([2])),
      ]),
    );
    const before = Buffer.concat([
      Buffer.from('SSH-2.0-y\r\n'),
      kexinit('curve25519-sha256,diffie-hellman-group-exchange-sha256'),
      group,
    ]);
    const w = new HostKeyWatch();
    const { passed } = feed(w, client, Buffer.concat([before, reply(SSH_MSG_KEX_DH_GEX_REPLY)]), 13);
    expect(w.found?.equals(hostKey)).toBe(true);
    expect(passed).toBe(before.length);
    expect(hostKeyMessageFor(['curve25519-sha256'], ['diffie-hellman-group14-sha256'])).toBeNull();
  });

  it('gives up (unknown) on GSS-API key exchange, garbage and an endless preamble, never finding a key', () => {
    const gss = new HostKeyWatch();
    feed(
      gss,
      Buffer.concat([Buffer.from('SSH-2.0-x\r\n'), kexinit('gss-curve25519-sha256-toWM5Slw5Ew8Mqkay+al2g==')]),
      Buffer.concat([
        Buffer.from('SSH-2.0-y\r\n'),
        kexinit('gss-curve25519-sha256-toWM5Slw5Ew8Mqkay+al2g=='),
        reply(31),
      ]),
      50,
    );
    expect(gss.found).toBeNull();
    expect(gss.unknown).toMatch(/does not read/);

    const junk = new HostKeyWatch();
    feed(
      junk,
      clientStart,
      Buffer.concat([Buffer.from('SSH-2.0-y\r\n'), Buffer.from([0xff, 0xff, 0xff, 0xff, 0])]),
      50,
    );
    expect(junk.unknown).toMatch(/packet length/);

    const endless = new HostKeyWatch();
    for (let i = 0; i < 200 && !endless.done; i++) endless.server(Buffer.alloc(8192, 0x41));
    expect(endless.unknown).toMatch(/over-long line/);
  });

  it('reads lines, then packets', () => {
    const r = new PlainSshReader();
    r.push(Buffer.from('SSH-2.0-a\r\n'));
    expect(r.next()).toMatchObject({ kind: 'line', text: 'SSH-2.0-a\r\n' });
    expect(r.next()).toBeNull();
    r.push(packet(Buffer.from([5, 1])));
    expect(r.next()).toMatchObject({ kind: 'packet', payload: Buffer.from([5, 1]) });
  });
});
