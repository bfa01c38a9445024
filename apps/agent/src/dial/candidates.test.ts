import { describe, expect, it } from 'vitest';
import { orderRound, relaySources, resolveCandidates, systemLookup, type Candidate } from './candidates.js';

const urls = (...u: string[]): URL[] => u.map((s) => new URL(s));

describe('relaySources', () => {
  it('puts the enrolled relay first with its enrolment endpoint, then each extra relay once, in order', () => {
    const s = relaySources(
      { relayUrl: 'https://relay1.example:8443', agentEndpoint: 'agents.relay1.example:9443' },
      urls(
        'https://relay2.example:8443',
        'https://relay1.example:8443', // the enrolled relay again: its enrolled endpoint stands
        'https://RELAY2.example:8443/', // the same as the first extra one
        'https://relay3.example',
      ),
    );
    expect(s).toEqual([
      { label: 'https://relay1.example:8443', endpoint: { host: 'agents.relay1.example', port: 9443 } },
      { label: 'https://relay2.example:8443', endpoint: { host: 'relay2.example', port: 8443 } },
      { label: 'https://relay3.example', endpoint: { host: 'relay3.example', port: 443 } },
    ]);
  });

  it('is null when agent.json holds a malformed relay address', () => {
    expect(relaySources({ relayUrl: 'not a url', agentEndpoint: null }, [])).toBeNull();
  });
});

describe('resolveCandidates', () => {
  it('gives one candidate per address of a name (SNI stays the name), IP literals as they are, each address:port once', async () => {
    const asked: string[] = [];
    const lookup = async (host: string): Promise<string[]> => {
      asked.push(host);
      if (host === 'fleet.test') return ['127.0.0.1', '127.0.0.2', '127.0.0.3'];
      throw Object.assign(new Error(`getaddrinfo ENOTFOUND ${host}`), { code: 'ENOTFOUND' });
    };
    const r = await resolveCandidates(
      [
        { label: 'https://fleet.test:8443', endpoint: { host: 'fleet.test', port: 8443 } },
        { label: 'https://127.0.0.2:8443', endpoint: { host: '127.0.0.2', port: 8443 } }, // already a candidate
        { label: 'https://[::1]:9443', endpoint: { host: '::1', port: 9443 } },
        { label: 'https://gone.test', endpoint: { host: 'gone.test', port: 443 } },
      ],
      lookup,
    );
    expect(asked.sort()).toEqual(['fleet.test', 'gone.test']);
    expect(r.candidates.map((c) => [c.source.endpoint.host, c.address, c.key, c.where])).toEqual([
      ['fleet.test', '127.0.0.1', '127.0.0.1:8443', 'fleet.test:8443 (127.0.0.1)'],
      ['fleet.test', '127.0.0.2', '127.0.0.2:8443', 'fleet.test:8443 (127.0.0.2)'],
      ['fleet.test', '127.0.0.3', '127.0.0.3:8443', 'fleet.test:8443 (127.0.0.3)'],
      ['::1', '::1', '[::1]:9443', '[::1]:9443'],
    ]);
    expect(r.failures).toHaveLength(1);
    expect(r.failures[0]!.source.label).toBe('https://gone.test');
    expect(r.failures[0]!.error.code).toBe('AGT_ERR_RELAY_UNREACHABLE');
    expect(r.failures[0]!.error.message).toBe(
      "cannot resolve the relay host gone.test (ENOTFOUND); check the relay URL and this machine's DNS",
    );
  });

  it('resolves again on every call (a round sees the addresses of now)', async () => {
    let answer = ['127.0.0.1'];
    const lookup = async (): Promise<string[]> => answer;
    const src = [{ label: 'x', endpoint: { host: 'fleet.test', port: 1 } }];
    expect((await resolveCandidates(src, lookup)).candidates.map((c) => c.address)).toEqual(['127.0.0.1']);
    answer = ['127.0.0.2', '127.0.0.3'];
    expect((await resolveCandidates(src, lookup)).candidates.map((c) => c.address)).toEqual(['127.0.0.2', '127.0.0.3']);
  });

  it('the system resolver gives every address of a name (localhost is loopback)', async () => {
    const addresses = await systemLookup('localhost');
    expect(addresses.length).toBeGreaterThanOrEqual(1);
    expect(addresses.every((a) => a === '::1' || a.startsWith('127.'))).toBe(true);
  });
});

describe('orderRound', () => {
  const cands: Candidate[] = ['a', 'b', 'c', 'd'].map((k) => ({
    source: { label: k, endpoint: { host: k, port: 1 } },
    address: k,
    key: k,
    where: k,
  }));
  const keys = (cs: Candidate[]): string => cs.map((c) => c.key).join('');

  it('starts at startAt (link i of K starts at candidate i) and wraps around', () => {
    expect(keys(orderRound(cands))).toBe('abcd');
    expect(keys(orderRound(cands, { startAt: 1 }))).toBe('bcda');
    expect(keys(orderRound(cands, { startAt: 5 }))).toBe('bcda');
  });

  it('starts right after the candidate just lost, which comes last', () => {
    expect(keys(orderRound(cands, { after: 'b', startAt: 3 }))).toBe('cdab');
    expect(keys(orderRound(cands, { after: 'd' }))).toBe('abcd');
    expect(keys(orderRound(cands, { after: 'gone', startAt: 2 }))).toBe('cdab');
  });

  it('spreads the agents of a lost relay over the survivors: spread picks the start, the lost one stays last', () => {
    expect(keys(orderRound(cands, { after: 'b', spread: 0 }))).toBe('cdab');
    expect(keys(orderRound(cands, { after: 'b', spread: 0.34 }))).toBe('dacb');
    expect(keys(orderRound(cands, { after: 'b', spread: 0.99 }))).toBe('acdb');
    expect(keys(orderRound(cands, { after: 'b', spread: 1 }))).toBe('acdb');
    expect(keys(orderRound(cands.slice(0, 1), { after: 'a', spread: 0.5 }))).toBe('a');
    // No loss: spread does not apply.
    expect(keys(orderRound(cands, { startAt: 1, spread: 0.7 }))).toBe('bcda');
    // 1,000 agents of a dead relay 'a' with a uniform spread: each survivor is the first choice of about a third.
    const first = new Map<string, number>();
    for (let i = 0; i < 1000; i++) {
      const k = orderRound(cands.slice(0, 4), { after: 'a', spread: i / 1000 })[0]!.key;
      first.set(k, (first.get(k) ?? 0) + 1);
    }
    expect([...first.keys()].sort().join('')).toBe('bcd');
    for (const n of first.values()) expect(n).toBeGreaterThan(300);
  });

  it('tries the avoided ones (held by another link, the relay that asked to move) after all others, in order', () => {
    expect(keys(orderRound(cands, { avoid: (c) => c.key === 'a' || c.key === 'c' }))).toBe('bdac');
    expect(keys(orderRound(cands, { after: 'a', avoid: (c) => c.key === 'b' }))).toBe('cdab');
    expect(keys(orderRound(cands, { avoid: () => true }))).toBe('abcd');
    expect(orderRound([], { after: 'a', startAt: 3 })).toEqual([]);
  });
});
