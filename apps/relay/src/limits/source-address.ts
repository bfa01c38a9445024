/**
 * Source addresses, as the limits and the audit trail see them: always a bare IP address, never a port,
 * never whatever text a client wrote into a header.
 *
 *   X-Forwarded-For: " 198.51.100.7:40001, [2001:db8::9]:40001 "  --normaliseForwardedFor-->
 *                    "198.51.100.7, 2001:db8::9"
 *   limit key:       198.51.100.7 -> "198.51.100.7";   2001:db8::9 -> "2001:db8:0:0::/64"
 *
 * An IPv6 client typically holds a whole /64, so the limits count an IPv6 source by its /64 (one
 * attacker cannot become 2^64 sources); the audit trail keeps the full address.
 */
import ipaddr from 'ipaddr.js';

/**
 * One address as written by a peer or a proxy ("1.2.3.4", "1.2.3.4:80", "[::1]:80", "::ffff:1.2.3.4",
 * "fe80::1%eth0") in canonical form ("1.2.3.4", "::1", "fe80::1"), or null when it is not an IP address.
 * IPv4-mapped IPv6 addresses become the IPv4 address.
 */
export function normaliseIp(value: string): string | null {
  let s = value.trim();
  if (s.length === 0 || s.length > 64) return null;
  const withPort = /^\[([^\]]+)\](?::(\d{1,5}))?$/.exec(s) ?? /^([\d.]+):(\d{1,5})$/.exec(s);
  if (withPort) {
    if (withPort[2] !== undefined && Number(withPort[2]) > 65535) return null;
    s = withPort[1]!;
  }
  // A zone index names an interface of the proxy's host, not a distinct source.
  const zone = s.indexOf('%');
  if (zone >= 0) s = s.slice(0, zone);
  if (!ipaddr.isValid(s)) return null;
  // ipaddr.isValid also takes the classful IPv4 forms ("1", "0x7f.1", "127.1"): a proxy never writes those.
  if (!ipaddr.IPv6.isValid(s) && !ipaddr.IPv4.isValidFourPartDecimal(s)) return null;
  const ip = ipaddr.parse(s);
  if (ip.kind() === 'ipv6') {
    const v6 = ip as ipaddr.IPv6;
    return v6.isIPv4MappedAddress() ? v6.toIPv4Address().toString() : v6.toString();
  }
  return ip.toString();
}

/** The key a limit counts a source under: the IPv4 address, or the /64 of an IPv6 address. */
export function limitKey(address: string): string {
  const ip = normaliseIp(address);
  if (ip === null) return address;
  if (!ip.includes(':')) return ip;
  const parts = (ipaddr.parse(ip) as ipaddr.IPv6).parts;
  return `${parts
    .slice(0, 4)
    .map((p) => p.toString(16))
    .join(':')}::/64`;
}

/**
 * The X-Forwarded-For header in canonical form: each hop normalised (ports, brackets and IPv4 mapping
 * removed). Hops are read from the right (the hop the trusted proxy appended itself is last); the first
 * one that is not an IP address ends the list, together with everything to its left. Whatever is left
 * of such a hop was written by someone no trusted proxy vouches for, so skipping only the bad hop would
 * let the client pick its own address; with nothing valid left, the source is the peer (the proxy).
 */
export function normaliseForwardedFor(header: string | string[] | undefined): string {
  let raw = Array.isArray(header) ? header.join(',') : (header ?? '');
  // Bounded: a proxy chain is a few hops, and only the right end of it can be vouched for. A hop cut in
  // two by the slice is not an address, so the list ends there.
  if (raw.length > 2048) raw = raw.slice(-2048);
  const hops = raw.split(',').slice(-32);
  const kept: string[] = [];
  for (let i = hops.length - 1; i >= 0; i--) {
    const ip = normaliseIp(hops[i]!);
    if (ip === null) break;
    kept.push(ip);
  }
  return kept.reverse().join(', ');
}

/** Is this peer address one of these CIDRs (or addresses)? IPv4-mapped peers match IPv4 blocks. */
export function trustedProxyMatcher(cidrs: readonly string[]): (address: string) => boolean {
  if (cidrs.length === 0) return () => false;
  const ranges = cidrs.map((c) => {
    const s = c.trim();
    if (s.includes('/')) return ipaddr.parseCIDR(s);
    const ip = ipaddr.parse(s);
    return [ip, ip.kind() === 'ipv4' ? 32 : 128] as [ipaddr.IPv4 | ipaddr.IPv6, number];
  });
  return (address: string) => {
    const ip = normaliseIp(address);
    if (ip === null) return false;
    const parsed = ipaddr.parse(ip);
    return ranges.some(([range, bits]) => parsed.kind() === range.kind() && parsed.match(range, bits));
  };
}

/**
 * The client's address as fastify's trustProxy computes request.ip, from an already normalised
 * X-Forwarded-For: the peer unless it is a trusted proxy, else the rightmost hop that is not one (or
 * the leftmost hop when every hop is trusted).
 */
export function clientSource(peer: string, forwardedFor: string, isTrusted: (address: string) => boolean): string {
  if (!forwardedFor || !isTrusted(peer)) return peer;
  const hops = forwardedFor.split(', ');
  for (let i = hops.length - 1; i > 0; i--) if (!isTrusted(hops[i]!)) return hops[i]!;
  return hops[0]!;
}
