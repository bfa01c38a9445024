/**
 * Where the agent may dial: the relays of its fleet (the enrolled one, then `--relay` / MSSH_RELAYS),
 * each expanded into one candidate per address its host name resolves to, resolved again every round.
 *
 *   sources  [enrolled relay (its agentEndpoint), --relay URL, ...]            (relaySources)
 *      |  dns.lookup(host, { all: true }) each round; IP literals as they are
 *      v
 *   candidates  [relay1:8443 (10.0.0.1), relay1:8443 (10.0.0.2), relay2:8443 (10.0.1.1)]
 *      |  orderRound: after a loss, start at a random survivor (no herd), the lost one and the ones to avoid last
 *      v
 *   one round: tried in turn until one welcomes the agent
 *
 * All relays of a fleet share one TLS certificate, so one pinned fingerprint serves every candidate; the
 * TLS server name (SNI) stays the host name whatever address is dialled.
 */
import { lookup as dnsLookup } from 'node:dns/promises';
import { isIP } from 'node:net';
import { AgentError, errnoOf } from '../errors.js';
import { agentDialTarget, formatHostPort, urlHostPort, type HostPort } from './endpoint.js';
import { describeDial } from './pinned-tls.js';

/** One relay as configured. */
export interface RelaySource {
  /** How it was given (the relay URL), for logs. */
  label: string;
  /** Where its agents dial: host name (or IP literal) and port. */
  endpoint: HostPort;
}

/** One address of one relay: what a single dial goes to. */
export interface Candidate {
  source: RelaySource;
  /** The IP address dialled (the endpoint host itself when that is an IP literal). */
  address: string;
  /** "address:port" ("[v6]:port"): tells candidates apart. */
  key: string;
  /** For logs: "host:port", plus " (address)" when the host is a name. */
  where: string;
}

/** Resolve a host name to all its addresses (the system resolver, as every other program on the host). */
export type LookupAll = (host: string) => Promise<string[]>;

export const systemLookup: LookupAll = async (host) =>
  (await dnsLookup(host, { all: true, verbatim: true })).map((a) => a.address);

/**
 * The relays to dial: the enrolled one first (the agent endpoint it announced at enrolment applies to
 * it), then the extra relay URLs in the order given, each once (by host and port; an extra URL that is
 * the enrolled relay's own is left out, its enrolled endpoint standing). Extra relays are dialled on
 * their URL's host and port (agents share the API port through ALPN). Null when agent.json's relay
 * address is malformed.
 */
export function relaySources(
  enrolled: { relayUrl: string; agentEndpoint: string | null },
  extra: readonly URL[],
): RelaySource[] | null {
  const endpoint = agentDialTarget(enrolled.relayUrl, enrolled.agentEndpoint);
  if (!endpoint) return null;
  const sources: RelaySource[] = [{ label: enrolled.relayUrl, endpoint }];
  const enrolledOrigin = new URL(enrolled.relayUrl).origin;
  const seen = new Set([hostPortKey(endpoint), enrolledOrigin]);
  for (const url of extra) {
    const ep = urlHostPort(url);
    if (seen.has(url.origin) || seen.has(hostPortKey(ep))) continue;
    seen.add(url.origin);
    seen.add(hostPortKey(ep));
    sources.push({ label: url.origin, endpoint: ep });
  }
  return sources;
}

function hostPortKey(hp: HostPort): string {
  return formatHostPort({ host: hp.host.toLowerCase(), port: hp.port });
}

export interface ResolvedCandidates {
  candidates: Candidate[];
  /** Sources whose host name did not resolve (each one a failed dial of the round). */
  failures: Array<{ source: RelaySource; error: AgentError }>;
}

/** One candidate per address of each source, in source order then resolver order, each address:port once. */
export async function resolveCandidates(
  sources: readonly RelaySource[],
  lookup: LookupAll = systemLookup,
): Promise<ResolvedCandidates> {
  const resolved = await Promise.all(
    sources.map(async (source) => {
      const { host } = source.endpoint;
      if (isIP(host) !== 0) return { source, addresses: [host] };
      try {
        const addresses = await lookup(host);
        if (addresses.length === 0) throw Object.assign(new Error('no address'), { code: 'ENODATA' });
        return { source, addresses };
      } catch (err) {
        const why = errnoOf(err) ?? (err as Error).message;
        return {
          source,
          error: new AgentError(
            'AGT_ERR_RELAY_UNREACHABLE',
            `cannot resolve the relay host ${host} (${why}); check the relay URL and this machine's DNS`,
            { cause: err },
          ),
        };
      }
    }),
  );
  const candidates: Candidate[] = [];
  const failures: ResolvedCandidates['failures'] = [];
  const keys = new Set<string>();
  for (const r of resolved) {
    if ('error' in r) {
      failures.push({ source: r.source, error: r.error! });
      continue;
    }
    for (const address of r.addresses) {
      const key = formatHostPort({ host: address, port: r.source.endpoint.port });
      if (keys.has(key)) continue;
      keys.add(key);
      candidates.push({ source: r.source, address, key, where: describeDial({ ...r.source.endpoint, address }) });
    }
  }
  return { candidates, failures };
}

export interface RoundOrder {
  /** Start right after the candidate with this key (the one just lost), when it is in the list. */
  after?: string | null;
  /** Else start at this index (modulo the length): link i of K starts at candidate i. */
  startAt?: number;
  /** Candidates to try only after all the others (a relay held by another link, the relay that asked to move). */
  avoid?: (c: Candidate) => boolean;
  /**
   * In [0, 1): after a loss (`after` found), where among the OTHER candidates to start, so that the agents
   * of a relay that died or drained spread over the survivors instead of all landing on the next one
   * (a random number per round; 0 keeps the plain rotation).
   */
  spread?: number;
}

/**
 * The order of one round: the candidates rotated to start after `after` (at a `spread` offset among the
 * others, `after` itself last), else at `startAt`; then the avoided ones moved to the end, the relative
 * order kept on both sides. Every candidate appears once.
 */
export function orderRound(candidates: readonly Candidate[], o: RoundOrder = {}): Candidate[] {
  const n = candidates.length;
  if (n === 0) return [];
  const lost = o.after ? candidates.findIndex((c) => c.key === o.after) : -1;
  let rotated: Candidate[];
  if (lost >= 0) {
    // The others in turn from the one after the lost candidate, started at a spread offset; the lost one last.
    const others = [...candidates.slice(lost + 1), ...candidates.slice(0, lost)];
    const offset = Math.min(others.length - 1, Math.max(0, Math.floor((o.spread ?? 0) * others.length)));
    rotated = others.length === 0 ? [] : [...others.slice(offset), ...others.slice(0, offset)];
    rotated.push(candidates[lost]!);
  } else {
    const start = (((o.startAt ?? 0) % n) + n) % n;
    rotated = [...candidates.slice(start), ...candidates.slice(0, start)];
  }
  if (!o.avoid) return rotated;
  const avoid = o.avoid;
  return [...rotated.filter((c) => !avoid(c)), ...rotated.filter((c) => avoid(c))];
}
