import { describe, expect, it } from 'vitest';
import { parseDuration } from './duration.js';

describe('parseDuration', () => {
  it('reads a whole number and a unit, s m h d w', () => {
    expect(parseDuration('45s')).toBe(45_000);
    expect(parseDuration('90m')).toBe(90 * 60_000);
    expect(parseDuration('12h')).toBe(12 * 3_600_000);
    expect(parseDuration(' 30d ')).toBe(30 * 86_400_000);
    expect(parseDuration('2w')).toBe(14 * 86_400_000);
    expect(parseDuration('0s')).toBe(0);
  });
  it('refuses a bare number unless it is meant as seconds', () => {
    expect(parseDuration('24')).toBeNull();
    expect(parseDuration('24', { bareSeconds: true })).toBe(24_000);
  });
  it('refuses fractions, signs, words, other units and absurd lengths', () => {
    for (const bad of ['', '1.5h', '-1d', '+1d', '2 days', '3y', 'd', '1dd', '1234567890s', 'yesterday'])
      expect(parseDuration(bad), bad).toBeNull();
  });
});
