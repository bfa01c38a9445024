import { describe, expect, it } from 'vitest';
import { formatTargetChoice, parseEnrollConfig, parseRunConfig, parseTargetChoice } from './config.js';
import { AgentError } from './errors.js';
import { defaultStateDir } from './state/state-dir.js';

const FP = 'SHA256:' + Buffer.alloc(32, 1).toString('base64').replace(/=+$/, '');

describe('agent config', () => {
  it('takes flags first, then the environment, then defaults', () => {
    const c = parseEnrollConfig(
      { relay: 'https://relay.example:8443', token: 't'.repeat(20), name: 'laptop' },
      { MSSH_AGENT_STATE_DIR: '/srv/agent', MSSH_RELAY_FINGERPRINT: FP },
    );
    expect(c.relayUrl.origin).toBe('https://relay.example:8443');
    expect(c.stateDir).toBe('/srv/agent');
    expect(c.relayFingerprint).toBe(FP);
    expect(c.target).toEqual({ kind: 'auto' });
    const r = parseRunConfig({ target: '10.0.0.5:2222' }, { MSSH_LOG_LEVEL: 'debug', MSSH_AGENT_STATE_DIR: '/srv/a' });
    expect(r).toEqual({
      stateDir: '/srv/a',
      target: { kind: 'tcp', address: { host: '10.0.0.5', port: 2222 } },
      allowForwarding: false,
      logLevel: 'debug',
    });
    expect(parseRunConfig({ allowForwarding: true }, { MSSH_AGENT_TARGET: 'embedded' })).toMatchObject({
      target: { kind: 'embedded' },
      allowForwarding: true,
    });
    expect(parseRunConfig({}, { MSSH_AGENT_STATE_DIR: '/srv/a' }).target).toBeNull();
  });

  it('lists every problem at once, as one coded error', () => {
    let err: unknown;
    try {
      parseEnrollConfig({ relay: 'http://relay', name: 'Bad_Name', relayFingerprint: 'nope', target: 'host' }, {});
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(AgentError);
    expect((err as AgentError).code).toBe('AGT_ERR_CONFIG');
    const lines = (err as AgentError).message.split('\n');
    expect(lines).toHaveLength(5);
    expect(lines.join('\n')).toMatch(/--relay must be an https URL/);
    expect(lines.join('\n')).toMatch(/--token is required/);
    expect(lines.join('\n')).toMatch(/--name must be/);
    expect(lines.join('\n')).toMatch(/--relay-fingerprint must look like/);
    expect(lines.join('\n')).toMatch(/--target must be auto, embedded or HOST:PORT/);
    expect(() => parseRunConfig({ logLevel: 'loud' }, {})).toThrow(/--log-level must be one of/);
  });

  it('parses and formats the target choice as it is stored in agent.json', () => {
    for (const t of ['auto', 'embedded', '127.0.0.1:22', 'sshd.internal:2222'])
      expect(formatTargetChoice(parseTargetChoice(t)!)).toBe(t);
    expect(parseTargetChoice('Embedded')).toEqual({ kind: 'embedded' });
    expect(parseTargetChoice('nonsense')).toBeNull();
    expect(parseTargetChoice('')).toBeNull();
  });

  it('defaults the state dir to /var/lib/mssh-agent for root and ~/.local/share/mssh-agent otherwise', () => {
    expect(defaultStateDir({}, 0, '/root')).toBe('/var/lib/mssh-agent');
    expect(defaultStateDir({}, 1000, '/home/bob')).toBe('/home/bob/.local/share/mssh-agent');
    expect(defaultStateDir({ MSSH_AGENT_STATE_DIR: '/x' }, 0, '/root')).toBe('/x');
  });
});
