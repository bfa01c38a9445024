import { describe, expect, it } from 'vitest';
import {
  LabelSyntaxError,
  MAX_LABELS,
  applyLabelEdits,
  formatLabels,
  formatSelector,
  matchesHostFilter,
  matchesSelector,
  parseHostFilter,
  parseLabel,
  parseLabelEdits,
  parseLabels,
  parseSelector,
} from './labels.js';

function ruleOf(fn: () => unknown): string {
  try {
    fn();
  } catch (e) {
    expect(e).toBeInstanceOf(LabelSyntaxError);
    expect((e as Error).message).toContain(`(rule ${(e as LabelSyntaxError).rule})`);
    return (e as LabelSyntaxError).rule;
  }
  throw new Error('expected a LabelSyntaxError');
}

describe('label syntax', () => {
  it('accepts keys of a-z 0-9 . _ / - (starting with a letter or digit) and printable values', () => {
    expect(parseLabel('env=prod')).toEqual(['env', 'prod']);
    expect(parseLabel('k8s.io/zone-a_1=eu-west=1')).toEqual(['k8s.io/zone-a_1', 'eu-west=1']);
    expect(parseLabel(`${'k'.repeat(63)}=${'v'.repeat(63)}`)[0]).toHaveLength(63);
  });

  it('each rule fails with its own name', () => {
    expect(ruleOf(() => parseLabel('envprod'))).toBe('missing_equals');
    expect(ruleOf(() => parseLabel('=prod'))).toBe('key_syntax');
    expect(ruleOf(() => parseLabel('Env=prod'))).toBe('key_syntax');
    expect(ruleOf(() => parseLabel('-env=prod'))).toBe('key_syntax');
    expect(ruleOf(() => parseLabel(`${'k'.repeat(64)}=v`))).toBe('key_syntax');
    expect(ruleOf(() => parseLabel('env='))).toBe('value_syntax');
    expect(ruleOf(() => parseLabel('env=pr od'))).toBe('value_syntax');
    expect(ruleOf(() => parseLabel('env=a,b'))).toBe('value_syntax');
    expect(ruleOf(() => parseLabel('env=\x1b[31m'))).toBe('value_syntax');
    expect(ruleOf(() => parseLabel('env=prod\u00e9'))).toBe('value_syntax');
    expect(ruleOf(() => parseLabel(`env=${'v'.repeat(64)}`))).toBe('value_syntax');
    expect(ruleOf(() => parseLabels(['env=a', 'env=b']))).toBe('duplicate_key');
    const many = Array.from({ length: MAX_LABELS + 1 }, (_, i) => `k${i}=v`);
    expect(ruleOf(() => parseLabels(many))).toBe('too_many');
    expect(parseLabels(many.slice(0, MAX_LABELS))).toHaveProperty('k31', 'v');
  });

  it('edits set and remove (key-), keep the limit, and come out sorted', () => {
    const edits = parseLabelEdits(['env=staging', 'role-']);
    expect(edits).toEqual({ set: { env: 'staging' }, remove: ['role'] });
    expect(applyLabelEdits({ role: 'db', env: 'prod', site: 'berlin' }, edits)).toEqual({
      env: 'staging',
      site: 'berlin',
    });
    expect(Object.keys(applyLabelEdits({ z: '1' }, parseLabelEdits(['a=1'])))).toEqual(['a', 'z']);
    expect(ruleOf(() => parseLabelEdits(['Bad-']))).toBe('key_syntax');
    expect(ruleOf(() => parseLabelEdits(['env=a', 'env-']))).toBe('duplicate_key');
    const full = Object.fromEntries(Array.from({ length: MAX_LABELS }, (_, i) => [`k${i}`, 'v']));
    expect(ruleOf(() => applyLabelEdits(full, parseLabelEdits(['one=more'])))).toBe('too_many');
  });

  it('selectors: canonical text, and every pair must match', () => {
    expect(formatSelector(parseSelector('role=web,env=staging'))).toBe('env=staging,role=web');
    expect(ruleOf(() => parseSelector('env=staging,,role=web'))).toBe('missing_equals');
    const sel = parseSelector('env=staging,role=web');
    expect(matchesSelector({ env: 'staging', role: 'web', os: 'x' }, sel)).toBe(true);
    expect(matchesSelector({ env: 'staging' }, sel)).toBe(false);
    expect(matchesSelector({ env: 'prod', role: 'web' }, sel)).toBe(false);
    expect(matchesSelector({ env: 'prod' }, {})).toBe(false);
    expect(formatLabels({})).toBe('-');
    expect(formatLabels({ role: 'db', env: 'prod' })).toBe('env=prod,role=db');
  });
});

describe('host filters (mssh ls, the TUI filter box)', () => {
  const hosts = [
    { name: 'web-1', labels: { env: 'prod', role: 'web' } },
    { name: 'web-2', labels: { env: 'staging', role: 'web' } },
    { name: 'db-1', labels: { env: 'prod', role: 'db' } },
    { name: 'old' },
  ];
  const names = (args: string[]) => hosts.filter((h) => matchesHostFilter(h, parseHostFilter(args))).map((h) => h.name);

  it('globs OR, label pairs AND, both together', () => {
    expect(parseHostFilter(['web-*', 'env=prod'])).toEqual({ globs: ['web-*'], labels: { env: 'prod' } });
    expect(names([])).toEqual(['web-1', 'web-2', 'db-1', 'old']);
    expect(names(['env=prod'])).toEqual(['web-1', 'db-1']);
    expect(names(['env=prod', 'role=db'])).toEqual(['db-1']);
    expect(names(['web-*', 'env=prod'])).toEqual(['web-1']);
    expect(names(['web-?', 'db-*'])).toEqual(['web-1', 'web-2', 'db-1']);
    expect(names(['nothing*'])).toEqual([]);
  });

  it('a bad label in a filter names its rule', () => {
    expect(ruleOf(() => parseHostFilter(['Env=prod']))).toBe('key_syntax');
    expect(ruleOf(() => parseHostFilter(['env=']))).toBe('value_syntax');
  });
});
