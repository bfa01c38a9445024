import { describe, expect, it } from 'vitest';
import {
  listenAddresses,
  openFailureText,
  parseForward,
  parseForwards,
  remoteBindAddress,
  socksReply,
  socksStep,
  splitForward,
  SOCKS5,
} from './forwards.js';

const usage = (message: string) =>
  expect.objectContaining({ code: 'CLI_ERR_USAGE', message: expect.stringContaining(message) });

describe('forward specifications (OpenSSH syntax)', () => {
  it('splits on colons outside [brackets]', () => {
    expect(splitForward('8080:localhost:80')).toEqual(['8080', 'localhost', '80']);
    expect(splitForward('[::1]:8080:[fe80::1]:80')).toEqual(['::1', '8080', 'fe80::1', '80']);
    expect(splitForward(':8080:h:80')).toEqual(['', '8080', 'h', '80']);
    expect(splitForward('[::1:8080')).toBeNull();
    expect(splitForward('[::1]x:8080')).toBeNull();
  });

  it('-L and -R: [bind:]port:host:hostport', () => {
    expect(parseForward('L', '8080:localhost:80')).toEqual({
      kind: 'L',
      text: '-L 8080:localhost:80',
      bindHost: null,
      bindPort: 8080,
      host: 'localhost',
      port: 80,
    });
    expect(parseForward('L', '0.0.0.0:8080:db.internal:5432')).toMatchObject({
      bindHost: '0.0.0.0',
      host: 'db.internal',
      port: 5432,
    });
    expect(parseForward('L', '[::1]:8080:[2001:db8::5]:22')).toMatchObject({
      bindHost: '::1',
      bindPort: 8080,
      host: '2001:db8::5',
      port: 22,
    });
    // '*' and an empty bind address: every interface, as in OpenSSH
    expect(parseForward('L', '*:8080:h:80').bindHost).toBe('');
    expect(parseForward('R', ':9000:h:80').bindHost).toBe('');
    expect(parseForward('R', '9000:localhost:3000')).toMatchObject({ kind: 'R', bindPort: 9000, port: 3000 });
    // -R 0: the server picks the port
    expect(parseForward('R', '0:localhost:3000').bindPort).toBe(0);
  });

  it('-D: [bind:]port', () => {
    expect(parseForward('D', '1080')).toEqual({ kind: 'D', text: '-D 1080', bindHost: null, bindPort: 1080 });
    expect(parseForward('D', '[::1]:1080')).toMatchObject({ bindHost: '::1', bindPort: 1080 });
    expect(parseForward('D', 'localhost:1080')).toMatchObject({ bindHost: 'localhost' });
  });

  it('refuses what it does not take, naming the problem and the accepted form', () => {
    expect(() => parseForward('L', '8080')).toThrow(usage('1 field, needs 3 or 4'));
    expect(() => parseForward('L', '8080:h')).toThrow(usage('2 fields, needs 3 or 4'));
    expect(() => parseForward('L', '0:h:80')).toThrow(usage('"0" is not a port'));
    expect(() => parseForward('L', '65536:h:80')).toThrow(usage('is not a port'));
    expect(() => parseForward('L', '8080:h:http')).toThrow(usage('"http" is not a port'));
    expect(() => parseForward('L', '8080::80')).toThrow(usage('no host'));
    expect(() => parseForward('L', 'a:b:8080:h:80')).toThrow(usage('5 fields, needs 3 or 4'));
    expect(() => parseForward('D', 'a:b:1080')).toThrow(usage('3 fields, -D takes 1 or 2'));
    expect(() => parseForward('D', '0')).toThrow(usage('is not a port'));
    expect(() => parseForward('L', '[::1:8080:h:80')).toThrow(usage('unbalanced'));
    expect(() => parseForward('L', '/tmp/s:/run/x.sock')).toThrow(
      usage('Unix-domain socket forwarding is not supported'),
    );
    expect(() => parseForward('R', '8080:/run/app.sock')).toThrow(usage('Unix-domain'));
    expect(() => parseForward('R', '1080')).toThrow(usage('remote dynamic forwarding'));
    try {
      parseForward('L', '8080');
    } catch (e) {
      expect((e as { hint: string }).hint).toContain('-L [bind_address:]port:host:hostport');
    }
  });

  it('keeps the command line order per kind', () => {
    expect(parseForwards({ local: ['1:h:1', '2:h:2'], remote: ['3:h:3'], dynamic: ['4'] }).map((s) => s.text)).toEqual([
      '-L 1:h:1',
      '-L 2:h:2',
      '-R 3:h:3',
      '-D 4',
    ]);
  });

  it('binds loopback by default (GatewayPorts=no), all interfaces only when asked', () => {
    expect(listenAddresses(null)).toEqual([
      { host: '127.0.0.1', required: true },
      { host: '::1', required: false },
    ]);
    expect(listenAddresses('LOCALHOST')).toEqual(listenAddresses(null));
    expect(listenAddresses('')).toEqual([{ host: undefined, required: true }]);
    expect(listenAddresses('192.0.2.7')).toEqual([{ host: '192.0.2.7', required: true }]);
    expect(remoteBindAddress(null)).toBe('localhost');
    expect(remoteBindAddress('')).toBe('');
    expect(remoteBindAddress('127.0.0.1')).toBe('127.0.0.1');
  });

  it('prints a channel-open failure as OpenSSH does', () => {
    const err = Object.assign(new Error('(SSH) Channel open failure: Connection refused'), { reason: 2 });
    expect(openFailureText(err)).toBe('connect failed: Connection refused');
    const prohibited = Object.assign(new Error('(SSH) Channel open failure: open failed'), { reason: 1 });
    expect(openFailureText(prohibited)).toBe('administratively prohibited: open failed');
  });
});

describe('SOCKS handshake', () => {
  const b = (...bytes: number[]) => Buffer.from(bytes);

  it('SOCKS5: no-auth method selection, then CONNECT by IPv4, name and IPv6', () => {
    expect(socksStep(b(5), false)).toEqual({ type: 'more' });
    expect(socksStep(b(5, 2, 2), false)).toEqual({ type: 'more' });
    expect(socksStep(b(5, 2, 2, 0), false)).toEqual({ type: 'method', reply: b(5, 0), consumed: 4 });
    expect(socksStep(b(5, 1, 0, 1, 127, 0, 0, 1, 0x1f), true)).toEqual({ type: 'more' });
    expect(socksStep(b(5, 1, 0, 1, 127, 0, 0, 1, 0x1f, 0x90, 0xaa), true)).toEqual({
      type: 'connect',
      version: 5,
      host: '127.0.0.1',
      port: 8080,
      consumed: 10,
    });
    const name = Buffer.from('example.org');
    expect(socksStep(Buffer.concat([b(5, 1, 0, 3, name.length), name, b(0, 80)]), true)).toMatchObject({
      host: 'example.org',
      port: 80,
      consumed: 5 + name.length + 2,
    });
    const v6 = b(5, 1, 0, 4, 0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0, 22);
    expect(socksStep(v6, true)).toMatchObject({ host: '2001:db8:0:0:0:0:0:1', port: 22 });
  });

  it('SOCKS5: refuses authentication-only clients, BIND, UDP ASSOCIATE and unknown address types with the proper reply', () => {
    expect(socksStep(b(5, 1, 2), false)).toMatchObject({ type: 'fail', reply: b(5, 0xff) });
    const bind = socksStep(b(5, 2, 0, 1, 127, 0, 0, 1, 0, 80), true);
    expect(bind).toMatchObject({ type: 'fail', why: expect.stringContaining('BIND') });
    expect((bind as { reply: Buffer }).reply).toEqual(socksReply(5, SOCKS5.COMMAND_NOT_SUPPORTED));
    const udp = socksStep(b(5, 3, 0, 1, 0, 0, 0, 0, 0, 0), true);
    expect(udp).toMatchObject({ type: 'fail', why: expect.stringContaining('UDP ASSOCIATE') });
    expect((udp as { reply: Buffer }).reply).toEqual(b(5, 7, 0, 1, 0, 0, 0, 0, 0, 0));
    expect(socksStep(b(5, 1, 0, 9, 0, 0), true)).toMatchObject({
      type: 'fail',
      reply: b(5, 8, 0, 1, 0, 0, 0, 0, 0, 0),
    });
    expect(socksStep(b(0x47, 0x45, 0x54), false)).toMatchObject({ type: 'fail', reply: null }); // "GET"
  });

  it('SOCKS4 and SOCKS4a CONNECT; other SOCKS4 commands refused with 0x5B', () => {
    expect(socksStep(b(4, 1, 0, 80, 10, 0, 0, 1, 0x61), false)).toEqual({ type: 'more' }); // user id not ended
    expect(socksStep(b(4, 1, 0, 80, 10, 0, 0, 1, 0x61, 0), false)).toEqual({
      type: 'connect',
      version: 4,
      host: '10.0.0.1',
      port: 80,
      consumed: 10,
    });
    const host = Buffer.from('db.internal');
    const a = Buffer.concat([b(4, 1, 0x15, 0x38, 0, 0, 0, 1, 0), host, b(0)]);
    expect(socksStep(a, false)).toMatchObject({ version: 4, host: 'db.internal', port: 5432, consumed: a.length });
    expect(socksStep(a.subarray(0, a.length - 1), false)).toEqual({ type: 'more' });
    const bind = socksStep(b(4, 2, 0, 80, 10, 0, 0, 1, 0), false);
    expect(bind).toMatchObject({ type: 'fail', reply: b(0, 0x5b, 0, 0, 0, 0, 0, 0) });
    expect(socksReply(4, SOCKS5.OK)).toEqual(b(0, 0x5a, 0, 0, 0, 0, 0, 0));
  });
});
