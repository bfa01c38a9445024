import { describe, expect, it } from 'vitest';
import type { HostInfo } from '@mssh/protocol';
import { filterHosts, formatHostsTable, parseLsFilter } from './ls.js';

const host = (name: string, online: boolean, labels?: Record<string, string>): HostInfo => ({
  name,
  online,
  lastSeen: null,
  hostKeys: [],
  hostKeyFingerprints: [],
  agentVersion: null,
  protocolVersion: null,
  ...(labels ? { labels } : {}),
});

describe('mssh ls filters', () => {
  const hosts = [
    host('web-1', true, { env: 'prod', role: 'web' }),
    host('web-2', false, { env: 'staging', role: 'web' }),
    host('db-1', true, { env: 'prod', role: 'db' }),
    host('legacy', true), // a relay before labels sends none
  ];
  const names = (args: string[], online = false) => filterHosts(hosts, parseLsFilter(args, online)).map((h) => h.name);

  it('label pairs all match, globs any, --online only the connected', () => {
    expect(parseLsFilter(['web-*', 'env=prod'], true)).toEqual({
      globs: ['web-*'],
      labels: { env: 'prod' },
      online: true,
    });
    expect(names([])).toEqual(['web-1', 'web-2', 'db-1', 'legacy']);
    expect(names(['env=prod', 'role=db'])).toEqual(['db-1']);
    expect(names(['web-*', 'env=prod'])).toEqual(['web-1']);
    expect(names(['web-*'], true)).toEqual(['web-1']);
    expect(names([], true)).toEqual(['web-1', 'db-1', 'legacy']);
  });

  it('a bad label pair is CLI_ERR_BAD_LABEL naming the rule', () => {
    expect(() => parseLsFilter(['Env=prod'], false)).toThrow(
      expect.objectContaining({ code: 'CLI_ERR_BAD_LABEL', message: expect.stringContaining('(rule key_syntax)') }),
    );
    expect(() => parseLsFilter(['env=a b'], false)).toThrow(
      expect.objectContaining({ code: 'CLI_ERR_BAD_LABEL', message: expect.stringContaining('(rule value_syntax)') }),
    );
  });

  it('the table has a LABELS column (sorted pairs, - for none), control characters escaped', () => {
    const t = formatHostsTable([host('b', true, { role: 'db', env: 'prod' }), host('a', false)], new Date());
    const lines = t.trimEnd().split('\n');
    expect(lines[0]).toMatch(/^NAME\s+STATUS\s+LAST SEEN\s+LABELS\s+HOST KEY$/);
    expect(lines[1]).toMatch(/^a\s+offline\s+never\s+-\s+-$/);
    expect(lines[2]).toMatch(/^b\s+online\s+now\s+env=prod,role=db\s+-$/);
    expect(formatHostsTable([host('c', true, { x: 'a\x1b[31m' })], new Date())).not.toContain('\x1b');
  });
});
