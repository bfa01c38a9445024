/**
 * Addresses: HOST:PORT strings (targets, the agent endpoint a relay announces) and relay URLs.
 */
import { isIP } from 'node:net';

export interface HostPort {
  host: string;
  port: number;
}

const HOST_RE = /^[A-Za-z0-9]([A-Za-z0-9.-]{0,252})$/;

/** Parse "host:port", "[v6]:port" (or a bare host when defaultPort is given). Null when malformed. */
export function parseHostPort(input: string, defaultPort?: number): HostPort | null {
  const s = input.trim();
  let host: string;
  let portText: string | undefined;
  const v6 = s.match(/^\[([0-9A-Fa-f:.]+)\](?::(\d+))?$/);
  if (v6) {
    host = v6[1]!;
    portText = v6[2];
    if (isIP(host) !== 6) return null;
  } else {
    const i = s.lastIndexOf(':');
    if (i >= 0 && s.indexOf(':') !== i) return null; // bare IPv6 needs brackets
    host = i >= 0 ? s.slice(0, i) : s;
    portText = i >= 0 ? s.slice(i + 1) : undefined;
    if (!HOST_RE.test(host)) return null;
  }
  let port: number;
  if (portText === undefined) {
    if (defaultPort === undefined) return null;
    port = defaultPort;
  } else {
    if (!/^\d{1,5}$/.test(portText)) return null;
    port = Number(portText);
  }
  if (port < 1 || port > 65535) return null;
  return { host, port };
}

export function formatHostPort(hp: HostPort): string {
  return isIP(hp.host) === 6 ? `[${hp.host}]:${hp.port}` : `${hp.host}:${hp.port}`;
}

/** Parse an https relay URL; null when it is not one. */
export function parseRelayUrl(input: string): URL | null {
  let url: URL;
  try {
    url = new URL(input);
  } catch {
    return null;
  }
  if (url.protocol !== 'https:' || !url.hostname || url.username || url.password) return null;
  return url;
}

/** host:port of an https URL (443 when the URL names no port, as for any https URL). */
export function urlHostPort(url: URL): HostPort {
  const host = url.hostname.replace(/^\[(.*)\]$/, '$1');
  return { host, port: url.port ? Number(url.port) : 443 };
}

/** TLS SNI name for a host: only DNS names (never IP literals, which SNI does not allow). */
export function serverNameFor(host: string): string | undefined {
  return isIP(host) === 0 ? host : undefined;
}

/**
 * Where the agent dials its link: the endpoint the relay announced at enrolment ("host:port" or an
 * https URL), else the relay URL's own host and port (agents share the API port through ALPN).
 */
export function agentDialTarget(relayUrl: string, agentEndpoint: string | null): HostPort | null {
  const url = parseRelayUrl(relayUrl);
  if (!url) return null;
  const base = urlHostPort(url);
  if (!agentEndpoint) return base;
  if (agentEndpoint.includes('://')) {
    const ep = parseRelayUrl(agentEndpoint);
    return ep ? urlHostPort(ep) : null;
  }
  const hp = parseHostPort(agentEndpoint, base.port);
  if (!hp) return null;
  // A relay listening on 0.0.0.0 / :: announces a wildcard: dial the relay URL's host on that port.
  if (hp.host === '0.0.0.0' || hp.host === '::') return { host: base.host, port: hp.port };
  return hp;
}
