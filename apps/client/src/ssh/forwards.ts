/**
 * Port forwarding for `mssh ssh`, with OpenSSH's spellings: -L (local), -R (remote) and -D (dynamic,
 * a SOCKS5/SOCKS4/4a server), all through the one end-to-end SSH connection.
 *
 *   -L  app ──▶ 127.0.0.1:PORT (here) ──▶ direct-tcpip channel ──▶ sshd ──▶ HOST:HOSTPORT (from the machine)
 *   -D  app ──▶ SOCKS 127.0.0.1:PORT ──▶ direct-tcpip channel to the host:port the app asked for
 *   -R  client ──▶ the machine's localhost:PORT (sshd) ──▶ forwarded-tcpip channel ──▶ HOST:HOSTPORT (from here)
 *
 * Local listeners are bound before the relay is even contacted, so a taken port fails at once; like
 * OpenSSH with ExitOnForwardFailure=yes (not its default, which only warns), any forward that cannot be
 * set up ends the command with a coded error before the session starts. A single connection through a
 * working forward that fails (refused, prohibited) is reported on stderr and the session goes on, as
 * OpenSSH's "channel N: open failed: ..." does.
 */
import { createServer, connect as netConnect, isIP, type Server, type Socket } from 'node:net';
import type { Writable } from 'node:stream';
import type { ClientChannel } from 'ssh2';
import { sanitizeForTerminal } from '@mssh/protocol';
import { cliError, type CliError } from '../errors.js';
import type { SshConnection } from './run-ssh.js';

export type ForwardKind = 'L' | 'R' | 'D';

export interface ForwardSpec {
  kind: ForwardKind;
  /** The specification as typed, for messages (`-L 8080:db:5432`). */
  text: string;
  /** Listen address as given; null when none was given (loopback), '' for all interfaces (`*` or empty). */
  bindHost: string | null;
  bindPort: number;
  /** Where connections go (-L: as seen from the machine, -R: from here); absent for -D. */
  host?: string;
  port?: number;
}

/** The -L/-R/-D values of one command line, in order. */
export interface ForwardFlags {
  local?: string[];
  remote?: string[];
  dynamic?: string[];
}

/** Split on ':' outside [brackets]; bracketed parts lose their brackets (IPv6 addresses). */
export function splitForward(spec: string): string[] | null {
  const parts: string[] = [];
  let i = 0;
  for (;;) {
    if (spec[i] === '[') {
      const close = spec.indexOf(']', i);
      if (close < 0) return null;
      parts.push(spec.slice(i + 1, close));
      i = close + 1;
      if (i === spec.length) return parts;
      if (spec[i] !== ':') return null;
      i++;
      continue;
    }
    const colon = spec.indexOf(':', i);
    if (colon < 0) {
      parts.push(spec.slice(i));
      return parts;
    }
    parts.push(spec.slice(i, colon));
    i = colon + 1;
  }
}

function parsePort(s: string, allowZero: boolean): number | null {
  if (!/^\d{1,5}$/.test(s)) return null;
  const n = Number(s);
  return n <= 65535 && (n > 0 || allowZero) ? n : null;
}

const USAGE: Record<ForwardKind, string> = {
  L: '-L [bind_address:]port:host:hostport, e.g. -L 8080:localhost:80',
  R: '-R [bind_address:]port:host:hostport, e.g. -R 9000:localhost:3000',
  D: '-D [bind_address:]port, e.g. -D 1080',
};

/** One -L, -R or -D value, in OpenSSH's syntax; CLI_ERR_USAGE with the accepted forms otherwise. */
export function parseForward(kind: ForwardKind, spec: string): ForwardSpec {
  const text = `-${kind} ${spec}`;
  const bad = (why: string, hint = `Use ${USAGE[kind]} (IPv6 addresses in [brackets]).`): CliError =>
    cliError('CLI_ERR_USAGE', `bad forwarding specification ${JSON.stringify(text.slice(0, 120))}: ${why}`, hint);
  const parts = splitForward(spec);
  if (!parts) throw bad('unbalanced [brackets]');
  if (parts.some((p) => p.includes('/'))) {
    throw bad(
      'Unix-domain socket forwarding is not supported by mssh ssh',
      "Forward TCP ports, or use OpenSSH for sockets: `ssh -o ProxyCommand='mssh proxy %n' ...`.",
    );
  }
  if (kind === 'D' || ((parts.length === 1 || parts.length === 2) && kind === 'R')) {
    if (parts.length > 2) throw bad(`${parts.length} fields, -D takes 1 or 2 ([bind_address:]port)`);
    if (kind === 'R') {
      throw bad(
        'remote dynamic forwarding (a SOCKS proxy on the machine) is not supported by mssh ssh',
        `Name the target: ${USAGE.R}.`,
      );
    }
    const bindPort = parsePort(parts[parts.length - 1]!, false);
    if (bindPort === null) throw bad(`${JSON.stringify(parts[parts.length - 1])} is not a port (1-65535)`);
    return { kind, text, bindHost: parts.length === 2 ? bindOf(parts[0]!) : null, bindPort };
  }
  if (parts.length !== 3 && parts.length !== 4)
    throw bad(`${parts.length} field${parts.length === 1 ? '' : 's'}, needs 3 or 4`);
  const [bind, listen, host, hostPort] = parts.length === 4 ? parts : [null, ...parts];
  const bindPort = parsePort(listen!, kind === 'R');
  if (bindPort === null)
    throw bad(
      `${JSON.stringify(listen)} is not a port (${kind === 'R' ? '0 lets the server choose, else 1' : '1'}-65535)`,
    );
  if (!host) throw bad('no host to connect to');
  const port = parsePort(hostPort!, false);
  if (port === null) throw bad(`${JSON.stringify(hostPort)} is not a port (1-65535)`);
  return { kind, text, bindHost: bind === null ? null : bindOf(bind), bindPort, host, port };
}

function bindOf(s: string): string {
  return s === '*' ? '' : s;
}

export function parseForwards(flags: ForwardFlags): ForwardSpec[] {
  return [
    ...(flags.local ?? []).map((s) => parseForward('L', s)),
    ...(flags.remote ?? []).map((s) => parseForward('R', s)),
    ...(flags.dynamic ?? []).map((s) => parseForward('D', s)),
  ];
}

/**
 * The local addresses a -L/-D listener binds: loopback by default or for `localhost` (as OpenSSH with
 * GatewayPorts=no; ::1 only where IPv6 is available), every interface for `*` or an empty address,
 * else the address given.
 */
export function listenAddresses(bindHost: string | null): Array<{ host: string | undefined; required: boolean }> {
  if (bindHost === null || bindHost.toLowerCase() === 'localhost') {
    return [
      { host: '127.0.0.1', required: true },
      { host: '::1', required: false },
    ];
  }
  if (bindHost === '') return [{ host: undefined, required: true }];
  return [{ host: bindHost, required: true }];
}

/** The address OpenSSH asks the server to listen on for -R: `localhost` unless one was given. */
export function remoteBindAddress(bindHost: string | null): string {
  return bindHost === null ? 'localhost' : bindHost;
}

function hostPort(host: string | undefined, port: number): string {
  const h = host === undefined ? '*' : host;
  return `${isIP(h) === 6 ? `[${h}]` : h}:${port}`;
}

// ---------------------------------------------------------------------------------------------------
// SOCKS (for -D). Hand-written, CONNECT only and no authentication: what OpenSSH's -D does. The npm
// servers looked at either wrap their own listener and connect out themselves (@pondwader/socks5-server:
// malformed 2-byte replies to BIND/UDP, no handshake limits, no SOCKS4) or are unmaintained since 2015
// (socksv5 and its forks); this is the ~100 lines of RFC 1928 and SOCKS4/4a that -D needs.

/** Most bytes a SOCKS handshake may take (SOCKS5: 257 + 262; SOCKS4a: user id and host name). */
export const SOCKS_MAX_HANDSHAKE = 1024;
/** Longest a client may take for its whole handshake. */
export const SOCKS_HANDSHAKE_MS = 10_000;

export type SocksStep =
  /** Not enough bytes yet. */
  | { type: 'more' }
  /** Refuse: send `reply` (if any) and close. */
  | { type: 'fail'; reply: Buffer | null; why: string }
  /** SOCKS5 method selection done: send `reply`, drop `consumed` bytes, read the request. */
  | { type: 'method'; reply: Buffer; consumed: number }
  /** A CONNECT request: open the channel, then answer with socksReply(); bytes after `consumed` are data. */
  | { type: 'connect'; version: 4 | 5; host: string; port: number; consumed: number };

/** SOCKS5 reply codes (RFC 1928 6). */
export const SOCKS5 = {
  OK: 0x00,
  FAILURE: 0x01,
  NOT_ALLOWED: 0x02,
  HOST_UNREACHABLE: 0x04,
  REFUSED: 0x05,
  COMMAND_NOT_SUPPORTED: 0x07,
  ADDRESS_NOT_SUPPORTED: 0x08,
} as const;

/** The reply to a request: SOCKS5 with a zero IPv4 bound address, or SOCKS4's 8 bytes (0x5A granted, 0x5B refused). */
export function socksReply(version: 4 | 5, code: number): Buffer {
  if (version === 4) return Buffer.from([0x00, code === SOCKS5.OK ? 0x5a : 0x5b, 0, 0, 0, 0, 0, 0]);
  return Buffer.from([0x05, code, 0x00, 0x01, 0, 0, 0, 0, 0, 0]);
}

/** One step of the server side of a SOCKS handshake over the bytes received so far. */
export function socksStep(buf: Buffer, greeted: boolean): SocksStep {
  if (buf.length === 0) return { type: 'more' };
  const version = buf[0];
  if (version === 4 && !greeted) return socks4Step(buf);
  if (version !== 5) return { type: 'fail', reply: null, why: `not a SOCKS4 or SOCKS5 client (first byte ${version})` };
  if (!greeted) {
    if (buf.length < 2) return { type: 'more' };
    const n = buf[1]!;
    if (buf.length < 2 + n) return { type: 'more' };
    const methods = buf.subarray(2, 2 + n);
    if (!methods.includes(0x00)) {
      return {
        type: 'fail',
        reply: Buffer.from([0x05, 0xff]),
        why: 'the client offers no method without authentication',
      };
    }
    return { type: 'method', reply: Buffer.from([0x05, 0x00]), consumed: 2 + n };
  }
  if (buf.length < 5) return { type: 'more' };
  const cmd = buf[1]!;
  const atyp = buf[3]!;
  let host: string;
  let at: number;
  if (atyp === 0x01) {
    if (buf.length < 10) return { type: 'more' };
    host = [...buf.subarray(4, 8)].join('.');
    at = 8;
  } else if (atyp === 0x03) {
    const len = buf[4]!;
    if (buf.length < 5 + len + 2) return { type: 'more' };
    host = buf.subarray(5, 5 + len).toString('latin1');
    at = 5 + len;
    if (len === 0) return { type: 'fail', reply: socksReply(5, SOCKS5.HOST_UNREACHABLE), why: 'an empty host name' };
  } else if (atyp === 0x04) {
    if (buf.length < 22) return { type: 'more' };
    const words: string[] = [];
    for (let i = 0; i < 8; i++) words.push(buf.readUInt16BE(4 + 2 * i).toString(16));
    host = words.join(':');
    at = 20;
  } else {
    return { type: 'fail', reply: socksReply(5, SOCKS5.ADDRESS_NOT_SUPPORTED), why: `address type ${atyp}` };
  }
  if (cmd !== 0x01) {
    const name = cmd === 0x02 ? 'BIND' : cmd === 0x03 ? 'UDP ASSOCIATE' : `command ${cmd}`;
    return {
      type: 'fail',
      reply: socksReply(5, SOCKS5.COMMAND_NOT_SUPPORTED),
      why: `${name} is not supported (CONNECT only)`,
    };
  }
  return { type: 'connect', version: 5, host, port: buf.readUInt16BE(at), consumed: at + 2 };
}

function socks4Step(buf: Buffer): SocksStep {
  if (buf.length < 9) return { type: 'more' };
  const userEnd = buf.indexOf(0, 8);
  if (userEnd < 0) return { type: 'more' };
  const port = buf.readUInt16BE(2);
  let host = [...buf.subarray(4, 8)].join('.');
  let consumed = userEnd + 1;
  // SOCKS4a: 0.0.0.x (x != 0) means a host name follows the user id.
  if (buf[4] === 0 && buf[5] === 0 && buf[6] === 0 && buf[7] !== 0) {
    const hostEnd = buf.indexOf(0, consumed);
    if (hostEnd < 0) return { type: 'more' };
    host = buf.subarray(consumed, hostEnd).toString('latin1');
    consumed = hostEnd + 1;
    if (!host) return { type: 'fail', reply: socksReply(4, SOCKS5.FAILURE), why: 'an empty host name' };
  }
  if (buf[1] !== 0x01) {
    return {
      type: 'fail',
      reply: socksReply(4, SOCKS5.FAILURE),
      why: `SOCKS4 command ${buf[1]} is not supported (CONNECT only)`,
    };
  }
  return { type: 'connect', version: 4, host, port, consumed };
}

/** An SSH channel-open failure (reason 1 prohibited, 2 connect failed, ...) as a SOCKS5 reply code. */
function socksCodeFor(err: Error & { reason?: unknown }): number {
  if (err.reason === 1) return SOCKS5.NOT_ALLOWED;
  if (err.reason === 2) return /refused/i.test(err.message) ? SOCKS5.REFUSED : SOCKS5.HOST_UNREACHABLE;
  return SOCKS5.FAILURE;
}

const OPEN_FAILURE_REASON: Record<number, string> = {
  1: 'administratively prohibited',
  2: 'connect failed',
  3: 'unknown channel type',
  4: 'resource shortage',
};

/** "connect failed: Connection refused", as OpenSSH prints a channel-open failure. */
export function openFailureText(err: Error & { reason?: unknown }): string {
  const said = sanitizeForTerminal(err.message.replace(/^\(SSH\) Channel open failure: /, '')).slice(0, 200);
  const reason = typeof err.reason === 'number' ? OPEN_FAILURE_REASON[err.reason] : undefined;
  return reason ? `${reason}: ${said}` : said;
}

// ---------------------------------------------------------------------------------------------------

export interface ForwardsOptions {
  specs: ForwardSpec[];
  /** Machine name, for messages. */
  host: string;
  /** Where per-connection failures and notices go (`mssh: ...` lines). */
  stderr: Writable;
  /** -v lines. */
  verbose?: (line: string) => void;
}

export interface Forwards {
  readonly specs: readonly ForwardSpec[];
  /** Bind the -L and -D listeners (before connecting). CLI_ERR_FORWARD_BIND when one cannot listen. */
  listen(): Promise<void>;
  /**
   * On the authenticated connection: ask the server for the -R listeners (CLI_ERR_FORWARD_REFUSED when
   * it says no), and serve every forward through it. Connections accepted before this wait for it.
   */
  attach(conn: SshConnection): Promise<void>;
  /** Stop listening and cut every forwarded connection. */
  close(): void;
}

export function createForwards(opts: ForwardsOptions): Forwards {
  const servers: Server[] = [];
  const live = new Set<{ destroy(): void }>();
  let closed = false;
  let attached: (c: SshConnection) => void = () => {};
  let cancelled: () => void = () => {};
  const connection = new Promise<SshConnection>((res, rej) => {
    attached = res;
    cancelled = () => rej(new Error('closed'));
  });
  connection.catch(() => {});
  const warn = (line: string) => opts.stderr.write(`mssh: ${line}\n`);

  const track = (s: { destroy(): void; once(e: 'close', f: () => void): unknown }) => {
    live.add(s);
    s.once('close', () => live.delete(s));
  };

  /** Join a local socket and an SSH channel both ways, half-close included; either one closing ends the other. */
  const join = (sock: Socket, ch: ClientChannel, leftover?: Buffer) => {
    track(ch);
    ch.on('error', () => sock.destroy());
    ch.once('close', () => sock.end());
    sock.once('close', () => ch.close());
    if (leftover && leftover.length > 0) ch.write(leftover);
    sock.pipe(ch);
    ch.pipe(sock);
    sock.resume();
  };

  const openOut = (
    sock: Socket,
    dstHost: string,
    dstPort: number,
    done: (err: (Error & { reason?: unknown }) | null, ch?: ClientChannel) => void,
  ) => {
    connection.then(
      (conn) => {
        if (sock.destroyed) return;
        try {
          conn.forwardOut(sock.remoteAddress ?? '127.0.0.1', sock.remotePort ?? 0, dstHost, dstPort, (err, ch) =>
            err ? done(err) : done(null, ch),
          );
        } catch (e) {
          done(e as Error);
        }
      },
      () => sock.destroy(),
    );
  };

  const onLocal = (spec: ForwardSpec) => (sock: Socket) => {
    track(sock);
    sock.on('error', () => {});
    sock.pause();
    openOut(sock, spec.host!, spec.port!, (err, ch) => {
      if (err) {
        warn(`${spec.text}: connection to ${hostPort(spec.host, spec.port!)} failed: ${openFailureText(err)}`);
        sock.destroy();
        return;
      }
      join(sock, ch!);
    });
  };

  const onSocks = (spec: ForwardSpec) => (sock: Socket) => {
    track(sock);
    sock.on('error', () => {});
    let buf = Buffer.alloc(0);
    let greeted = false;
    const timer = setTimeout(() => sock.destroy(), SOCKS_HANDSHAKE_MS);
    const refuse = (reply: Buffer | null, why: string) => {
      clearTimeout(timer);
      sock.removeListener('data', onData);
      opts.verbose?.(`${spec.text}: SOCKS request refused: ${why}`);
      if (reply) sock.end(reply);
      else sock.destroy();
    };
    const onData = (chunk: Buffer) => {
      buf = Buffer.concat([buf, chunk]);
      for (;;) {
        const step = socksStep(buf, greeted);
        if (step.type === 'more') {
          if (buf.length > SOCKS_MAX_HANDSHAKE) refuse(null, 'handshake too long');
          return;
        }
        if (step.type === 'fail') return refuse(step.reply, step.why);
        if (step.type === 'method') {
          sock.write(step.reply);
          buf = buf.subarray(step.consumed);
          greeted = true;
          continue;
        }
        clearTimeout(timer);
        sock.removeListener('data', onData);
        sock.pause();
        const leftover = buf.subarray(step.consumed);
        const target = hostPort(step.host, step.port);
        openOut(sock, step.host, step.port, (err, ch) => {
          if (err) {
            warn(`${spec.text}: connection to ${sanitizeForTerminal(target)} failed: ${openFailureText(err)}`);
            sock.end(socksReply(step.version, socksCodeFor(err)));
            return;
          }
          sock.write(socksReply(step.version, SOCKS5.OK));
          join(sock, ch!, leftover);
        });
        return;
      }
    };
    sock.on('data', onData);
    sock.once('close', () => clearTimeout(timer));
  };

  const bindOne = (spec: ForwardSpec, host: string | undefined, onConn: (s: Socket) => void) =>
    new Promise<Server>((resolve, reject) => {
      const server = createServer(onConn);
      server.once('error', reject);
      server.listen({ port: spec.bindPort, host }, () => {
        server.removeListener('error', reject);
        server.on('error', () => {});
        resolve(server);
      });
    });

  const listen = async () => {
    for (const spec of opts.specs) {
      if (spec.kind === 'R') continue;
      const onConn = spec.kind === 'L' ? onLocal(spec) : onSocks(spec);
      for (const { host, required } of listenAddresses(spec.bindHost)) {
        try {
          servers.push(await bindOne(spec, host, onConn));
          opts.verbose?.(`${spec.text}: listening on ${hostPort(host, spec.bindPort)}`);
        } catch (e) {
          const code = (e as NodeJS.ErrnoException).code;
          if (!required && (code === 'EADDRNOTAVAIL' || code === 'EAFNOSUPPORT')) continue;
          const why =
            code === 'EADDRINUSE'
              ? 'address in use'
              : code === 'EACCES'
                ? 'permission denied (ports below 1024 need root)'
                : code === 'EADDRNOTAVAIL'
                  ? 'no such address on this computer'
                  : ((e as Error).message ?? String(e));
          throw cliError(
            'CLI_ERR_FORWARD_BIND',
            `cannot listen on ${hostPort(host, spec.bindPort)} for ${spec.text}: ${why}`,
            code === 'EADDRINUSE'
              ? `Another program (or another mssh ssh) has that port; choose another local port, or find it with \`ss -ltnp 'sport = :${spec.bindPort}'\`.`
              : 'Choose another local port or bind address.',
            e,
          );
        }
      }
    }
  };

  const attach = async (conn: SshConnection) => {
    /** "bindAddr:port" as the server reports it in forwarded-tcpip → the -R it belongs to. */
    const remote = new Map<string, ForwardSpec>();
    conn.on('tcp connection', (info, accept, reject) => {
      const spec = remote.get(`${info.destIP}:${info.destPort}`);
      if (!spec || closed) return reject();
      const local = netConnect({ host: spec.host!, port: spec.port! });
      track(local);
      local.on('error', () => {});
      local.pause();
      let connected = false;
      local.once('connect', () => {
        connected = true;
        join(local, accept());
      });
      local.once('close', () => {
        if (connected) return;
        // OpenSSH's words for the same failure.
        warn(`${spec.text}: connect_to ${hostPort(spec.host, spec.port!)} failed (from ${info.srcIP}:${info.srcPort})`);
        reject();
      });
    });
    for (const spec of opts.specs) {
      if (spec.kind !== 'R') continue;
      const bind = remoteBindAddress(spec.bindHost);
      const port = await new Promise<number>((resolve, reject) => {
        try {
          conn.forwardIn(bind, spec.bindPort, (err, real) => (err ? reject(err) : resolve(real)));
        } catch (e) {
          reject(e);
        }
      }).catch((e: unknown) => {
        throw cliError(
          'CLI_ERR_FORWARD_REFUSED',
          `the SSH server on ${opts.host} refused ${spec.text} (listening on ${hostPort(bind || '*', spec.bindPort)} there)`,
          "Its sshd may not allow it (AllowTcpForwarding, PermitListen, DisableForwarding in sshd_config), or the port is in use on the machine; choose another port or ask the machine's admin.",
          e,
        );
      });
      remote.set(`${bind}:${port}`, spec);
      if (spec.bindPort === 0) {
        // OpenSSH prints the same line: the user needs the port to use the forward.
        opts.stderr.write(`Allocated port ${port} for remote forward to ${hostPort(spec.host, spec.port!)}\n`);
      }
      opts.verbose?.(`${spec.text}: the machine listens on ${hostPort(bind || '*', port)}`);
    }
    attached(conn);
  };

  const close = () => {
    if (closed) return;
    closed = true;
    cancelled();
    for (const s of servers) s.close();
    for (const s of live) s.destroy();
    live.clear();
  };

  return { specs: opts.specs, listen, attach, close };
}
