import { describe, expect, it } from 'vitest';
import { SessionCaps } from './session-caps.js';

describe('SessionCaps', () => {
  it('refuses over each cap with its own code, counts per user and agent, releases once', () => {
    const caps = new SessionCaps({ maxSessionsPerUser: 2, maxSessionsPerAgent: 3, maxSessions: 4 });
    const r1 = caps.take('alice', 'a');
    caps.take('alice', 'a');
    expect(() => caps.take('alice', 'b')).toThrow(
      expect.objectContaining({ code: 'RLY_ERR_USER_SESSION_LIMIT', statusCode: 429 }),
    );
    caps.take('bob', 'a');
    expect(() => caps.take('carol', 'a')).toThrow(
      expect.objectContaining({ code: 'RLY_ERR_AGENT_SESSION_LIMIT', statusCode: 429 }),
    );
    caps.take('carol', 'b');
    expect(() => caps.take('dave', 'c')).toThrow(
      expect.objectContaining({ code: 'RLY_ERR_RELAY_SESSION_LIMIT', statusCode: 503 }),
    );
    expect(caps.count()).toBe(4);
    expect(caps.count({ user: 'alice' })).toBe(2);
    expect(caps.count({ agent: 'a' })).toBe(3);
    r1();
    r1();
    expect(caps.count()).toBe(3);
    expect(caps.count({ user: 'alice' })).toBe(1);
    expect(() => caps.take('alice', 'c')).not.toThrow();
  });
});
