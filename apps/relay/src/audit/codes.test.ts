/**
 * The audit catalogue is written twice: here (what the relay emits) and in @mssh/protocol's
 * AUDIT_EVENT_TYPES (what `mssh admin audit --type` accepts). A type added to one must be added to the other.
 */
import { describe, expect, it } from 'vitest';
import { AUDIT_EVENT_TYPES, resolveAuditTypeFilter } from '@mssh/protocol';
import { AUDIT } from './codes.js';

describe('audit event types', () => {
  it('the protocol catalogue lists exactly the types the relay emits', () => {
    const emitted = [...new Set(Object.values(AUDIT).map((k) => k.type))].sort();
    expect([...AUDIT_EVENT_TYPES].sort()).toEqual(emitted);
  });

  it('--type accepts exact types, prefixes and short forms, and names the valid types otherwise', () => {
    expect(resolveAuditTypeFilter('session.start')).toEqual({ ok: true, type: 'session.start' });
    expect(resolveAuditTypeFilter('session.*')).toEqual({ ok: true, type: 'session.*' });
    expect(resolveAuditTypeFilter('session')).toEqual({ ok: true, type: 'session.*' });
    expect(resolveAuditTypeFilter('login')).toEqual({ ok: true, type: 'user.login' });
    expect(resolveAuditTypeFilter('denied')).toEqual({ ok: true, type: 'session.denied' });
    const unknown = resolveAuditTypeFilter('logins');
    expect(unknown).toMatchObject({ ok: false, message: '--type "logins" is not an audit event type' });
    expect(!unknown.ok && unknown.hint).toContain('user.login, user.logout');
    const ambiguous = resolveAuditTypeFilter('rejected');
    expect(ambiguous).toMatchObject({
      ok: false,
      message: '--type "rejected" could mean token.rejected or agent.rejected',
    });
    expect(resolveAuditTypeFilter('nope.*').ok).toBe(false);
  });
});
