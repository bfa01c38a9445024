import { describe, expect, it } from 'vitest';
import { clientSource, limitKey, normaliseForwardedFor, normaliseIp, trustedProxyMatcher } from './source-address.js';

describe('normaliseIp', () => {
  it('strips ports, brackets, zone ids and IPv4 mapping; canonical IPv6', () => {
    expect(normaliseIp('9.9.9.9')).toBe('9.9.9.9');
    expect(normaliseIp(' 9.9.9.9:40001 ')).toBe('9.9.9.9');
    expect(normaliseIp('[2001:db8::9]:40001')).toBe('2001:db8::9');
    expect(normaliseIp('[2001:DB8:0:0:0:0:0:9]')).toBe('2001:db8::9');
    expect(normaliseIp('2001:db8::9')).toBe('2001:db8::9');
    expect(normaliseIp('::ffff:10.1.2.3')).toBe('10.1.2.3');
    expect(normaliseIp('[::ffff:10.1.2.3]:8443')).toBe('10.1.2.3');
    expect(normaliseIp('fe80::1%eth0')).toBe('fe80::1');
  });

  it('is null for anything that is not an IP address', () => {
    for (const bad of [
      '',
      'garbage',
      'x'.repeat(301),
      'unknown',
      '1',
      '127.1',
      '0x7f.0.0.1',
      '9.9.9.9:99999',
      '[9.9.9.9',
      '1.2.3.4.5',
      'a\u0000b',
      'localhost',
    ]) {
      expect(normaliseIp(bad), bad).toBeNull();
    }
  });
});

describe('limitKey', () => {
  it('IPv4 by address, IPv6 by /64, mapped IPv4 as IPv4', () => {
    expect(limitKey('9.9.9.9')).toBe('9.9.9.9');
    expect(limitKey('::ffff:9.9.9.9')).toBe('9.9.9.9');
    expect(limitKey('2001:db8:1:2:aaaa::1')).toBe('2001:db8:1:2::/64');
    expect(limitKey('2001:db8:1:2:bbbb::2')).toBe('2001:db8:1:2::/64');
    expect(limitKey('2001:db8:1:3::1')).toBe('2001:db8:1:3::/64');
  });
});

describe('normaliseForwardedFor', () => {
  it('normalises every hop', () => {
    expect(normaliseForwardedFor('9.9.9.9:40001')).toBe('9.9.9.9');
    expect(normaliseForwardedFor('192.0.2.1, [2001:db8::9]:40001 ,10.0.0.1')).toBe('192.0.2.1, 2001:db8::9, 10.0.0.1');
    expect(normaliseForwardedFor(['192.0.2.1', '10.0.0.1'])).toBe('192.0.2.1, 10.0.0.1');
  });

  it('ends the list at the rightmost hop that is not an address (nothing left: the peer counts)', () => {
    expect(normaliseForwardedFor('garbage')).toBe('');
    expect(normaliseForwardedFor('x'.repeat(301))).toBe('');
    expect(normaliseForwardedFor('garbage, 203.0.113.7')).toBe('203.0.113.7');
    // A client-written address to the left of junk is not believed.
    expect(normaliseForwardedFor('198.51.100.1, garbage')).toBe('');
    expect(normaliseForwardedFor(undefined)).toBe('');
  });

  it('reads only the right end of a huge header', () => {
    const huge = `${'1.1.1.1, '.repeat(5000)}203.0.113.7`;
    const out = normaliseForwardedFor(huge).split(', ');
    expect(out.length).toBeLessThanOrEqual(32);
    expect(out.at(-1)).toBe('203.0.113.7');
  });
});

describe('trustedProxyMatcher / clientSource', () => {
  const trusted = trustedProxyMatcher(['10.0.0.0/8', '127.0.0.1', '2001:db8:ffff::/48']);
  it('matches CIDRs and single addresses, IPv4-mapped peers included', () => {
    expect(trusted('10.1.2.3')).toBe(true);
    expect(trusted('::ffff:10.1.2.3')).toBe(true);
    expect(trusted('127.0.0.1')).toBe(true);
    expect(trusted('127.0.0.2')).toBe(false);
    expect(trusted('2001:db8:ffff:1::1')).toBe(true);
    expect(trusted('2001:db8:fffe::1')).toBe(false);
    expect(trusted('garbage')).toBe(false);
    expect(trustedProxyMatcher([])('10.0.0.1')).toBe(false);
  });
  it('the rightmost untrusted hop, only behind a trusted peer', () => {
    expect(clientSource('127.0.0.1', '198.51.100.1, 203.0.113.7', trusted)).toBe('203.0.113.7');
    expect(clientSource('127.0.0.1', '198.51.100.1, 203.0.113.7, 10.0.0.5', trusted)).toBe('203.0.113.7');
    expect(clientSource('127.0.0.1', '', trusted)).toBe('127.0.0.1');
    expect(clientSource('127.0.0.2', '203.0.113.7', trusted)).toBe('127.0.0.2');
    expect(clientSource('127.0.0.1', '10.0.0.9, 10.0.0.5', trusted)).toBe('10.0.0.9');
  });
});
