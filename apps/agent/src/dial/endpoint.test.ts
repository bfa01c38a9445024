import { describe, expect, it } from 'vitest';
import { agentDialTarget, formatHostPort, parseHostPort } from './endpoint.js';
import { normalizeFingerprint } from './pinned-tls.js';

describe('addresses', () => {
  it('parses HOST:PORT, [v6]:PORT and refuses anything else', () => {
    expect(parseHostPort('127.0.0.1:22')).toEqual({ host: '127.0.0.1', port: 22 });
    expect(parseHostPort('db-1.example:2222')).toEqual({ host: 'db-1.example', port: 2222 });
    expect(parseHostPort('[::1]:22')).toEqual({ host: '::1', port: 22 });
    expect(parseHostPort('host', 22)).toEqual({ host: 'host', port: 22 });
    for (const bad of ['host', '::1:22', 'host:0', 'host:65536', 'host:x', ':22', 'a b:22', 'h/x:22'])
      expect(parseHostPort(bad)).toBeNull();
    expect(formatHostPort({ host: '::1', port: 22 })).toBe('[::1]:22');
  });

  it('dials the announced agent endpoint, else the relay URL host and port', () => {
    expect(agentDialTarget('https://relay.example:8443', null)).toEqual({ host: 'relay.example', port: 8443 });
    expect(agentDialTarget('https://relay.example', null)).toEqual({ host: 'relay.example', port: 443 });
    expect(agentDialTarget('https://relay.example:8443', 'agents.example:9443')).toEqual({
      host: 'agents.example',
      port: 9443,
    });
    expect(agentDialTarget('https://relay.example:8443', '0.0.0.0:9443')).toEqual({
      host: 'relay.example',
      port: 9443,
    });
    expect(agentDialTarget('https://relay.example:8443', 'https://agents.example:7443')).toEqual({
      host: 'agents.example',
      port: 7443,
    });
    expect(agentDialTarget('http://relay.example:8443', null)).toBeNull();
  });

  it('normalises certificate fingerprints given as SHA256:base64 or hex', () => {
    const b64 = 'SHA256:' + Buffer.alloc(32, 7).toString('base64').replace(/=+$/, '');
    expect(normalizeFingerprint(b64)).toBe(b64);
    expect(normalizeFingerprint(b64.replace('SHA256', 'sha256') + '=')).toBe(b64);
    expect(
      normalizeFingerprint(
        Buffer.alloc(32, 7)
          .toString('hex')
          .replace(/(..)(?!$)/g, '$1:'),
      ),
    ).toBe(b64);
    expect(normalizeFingerprint('SHA256:short')).toBeNull();
  });
});
