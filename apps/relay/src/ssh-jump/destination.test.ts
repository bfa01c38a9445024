import { describe, expect, it } from 'vitest';
import { decideDestination, destinationName } from './destination.js';
import type { AccessService, JumpUser } from './seams.js';
import { REACH_EVERY_ENROLLED_HOST } from './seams.js';

const alice: JumpUser = { name: 'alice', admin: false, role: null };
const enrolled = new Set(['laptop', 'db-1', 'secret']);
const hostExists = async (n: string) => enrolled.has(n);

/** A grant rule as the access service will have it: alice may not reach `secret`. */
const denySecret: AccessService = {
  canReach: async (u, h) => !(u.name === 'alice' && h === 'secret'),
  filterReachable: async (u, hosts) => hosts.filter((h) => !(u.name === 'alice' && h.name === 'secret')),
};

describe('jump destination rule', () => {
  it('forwards to an enrolled machine by name on port 22 (NAME.mssh too)', async () => {
    expect(await decideDestination({ hostExists, access: REACH_EVERY_ENROLLED_HOST }, alice, 'laptop', 22)).toEqual({ ok: true, host: 'laptop' });
    expect(await decideDestination({ hostExists, access: REACH_EVERY_ENROLLED_HOST }, alice, 'DB-1.mssh', 22)).toEqual({ ok: true, host: 'db-1' });
    expect(destinationName('Laptop.MSSH')).toBe('laptop');
  });

  it('refuses addresses, localhost, the relay, unenrolled names, other ports and malformed requests', async () => {
    const deps = { hostExists, access: REACH_EVERY_ENROLLED_HOST };
    for (const [h, p] of [['127.0.0.1', 22], ['::1', 22], ['localhost', 22], ['localhost', 80], ['relay', 22], ['not-enrolled', 22], ['laptop', 80], ['laptop', 2222], ['', 22], ['laptop.example.org', 22]] as const) {
      const d = await decideDestination(deps, alice, h, p);
      expect(d.ok, `${h}:${p}`).toBe(false);
    }
    expect((await decideDestination(deps, alice, undefined, 22)).ok).toBe(false);
    expect((await decideDestination(deps, alice, 'laptop', '22')).ok).toBe(false);
  });

  it('refuses an enrolled machine the user may not reach, with the same answer as an unknown name', async () => {
    const deps = { hostExists, access: denySecret };
    const denied = await decideDestination(deps, alice, 'secret', 22);
    const unknown = await decideDestination(deps, alice, 'nope', 22);
    expect(denied.ok).toBe(false);
    expect(denied).toEqual(unknown);
    expect(await decideDestination(deps, { ...alice, name: 'bob' }, 'secret', 22)).toEqual({ ok: true, host: 'secret' });
  });
});
