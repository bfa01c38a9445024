import { describe, expect, it } from 'vitest';
import { matchesPickerLabels, splitPickerFilter } from './label-filter.js';

describe('mssh-tui filter box: label pairs beside the fuzzy name query', () => {
  it('splits words with = from the name query', () => {
    expect(splitPickerFilter('env=prod web')).toEqual({ query: 'web', labels: [['env', 'prod']] });
    expect(splitPickerFilter('web')).toEqual({ query: 'web', labels: [] });
    expect(splitPickerFilter('  env=prod  role=db ')).toEqual({
      query: '',
      labels: [
        ['env', 'prod'],
        ['role', 'db'],
      ],
    });
    expect(splitPickerFilter('=x')).toEqual({ query: '=x', labels: [] });
  });

  it('every pair must match; a value being typed matches by prefix', () => {
    const prod = { labels: { env: 'prod', role: 'db' } };
    expect(matchesPickerLabels(prod, splitPickerFilter('env=prod'))).toBe(true);
    expect(matchesPickerLabels(prod, splitPickerFilter('env=pr'))).toBe(true);
    expect(matchesPickerLabels(prod, splitPickerFilter('env='))).toBe(true);
    expect(matchesPickerLabels(prod, splitPickerFilter('env=prod role=web'))).toBe(false);
    expect(matchesPickerLabels(prod, splitPickerFilter('site='))).toBe(false);
    expect(matchesPickerLabels({}, splitPickerFilter('env=prod'))).toBe(false);
    expect(matchesPickerLabels({}, splitPickerFilter('web'))).toBe(true);
  });
});
