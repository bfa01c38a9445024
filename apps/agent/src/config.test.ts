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
      relays: [],
      links: 1,
      metricsListen: null,
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

  it('run takes more relays of the fleet (--relay, repeatable, else MSSH_RELAYS) and --links (else MSSH_LINKS)', () => {
    const r = parseRunConfig(
      { relay: ['https://relay2.example:8443', ' https://relay3.example/ '], links: '2' },
      { MSSH_RELAYS: 'https://ignored.example', MSSH_LINKS: '5' },
    );
    expect(r.relays.map((u) => u.origin)).toEqual(['https://relay2.example:8443', 'https://relay3.example']);
    expect(r.links).toBe(2);
    const e = parseRunConfig({}, { MSSH_RELAYS: 'https://a.example:8443, https://b.example,', MSSH_LINKS: '8' });
    expect(e.relays.map((u) => u.host)).toEqual(['a.example:8443', 'b.example']);
    expect(e.links).toBe(8);
    expect(parseRunConfig({}, {}).relays).toEqual([]);
  });

  it('refuses bad relays and link counts with AGT_ERR_CONFIG, naming the value, where it came from and the fix', () => {
    const problems = (flags: Parameters<typeof parseRunConfig>[0], env: NodeJS.ProcessEnv = {}): string[] => {
      try {
        parseRunConfig(flags, env);
      } catch (e) {
        expect(e).toBeInstanceOf(AgentError);
        expect((e as AgentError).code).toBe('AGT_ERR_CONFIG');
        return (e as AgentError).message.split('\n');
      }
      throw new Error('no error');
    };
    expect(problems({ relay: ['http://relay2.example:8443'] })).toEqual([
      '--relay must be an https URL of a relay of the same fleet, such as https://relay2.example:8443, not "http://relay2.example:8443"',
    ]);
    expect(problems({ relay: ['relay2.example'] })[0]).toMatch(/not "relay2\.example"$/);
    expect(problems({ relay: ['https://user:pw@relay2.example'] })[0]).toMatch(/^--relay must be an https URL/);
    expect(problems({ relay: [''] })).toEqual([
      '--relay must not be empty; give a relay URL such as https://relay2.example:8443',
    ]);
    expect(problems({ relay: ['https://relay2.example:8443/api'] })).toEqual([
      '--relay: "https://relay2.example:8443/api" has a path, query or fragment; give the relay\'s base URL, https://relay2.example:8443 (agents dial its host and port)',
    ]);
    expect(problems({}, { MSSH_RELAYS: 'https://ok.example,ftp://bad.example' })).toEqual([
      'MSSH_RELAYS must list https URLs of relays of the same fleet, comma-separated (e.g. https://relay1.example:8443,https://relay2.example:8443); "ftp://bad.example" is not one',
    ]);
    const many = Array.from({ length: 17 }, (_, i) => `https://r${i}.example`);
    expect(problems({ relay: many })).toEqual([
      '--relay names 17 relays; at most 16 (a name that resolves to several addresses counts once)',
    ]);
    for (const bad of ['0', '9', 'two', '1.5', '-1', ''])
      expect(problems({ links: bad })).toEqual([
        `--links must be a whole number from 1 to 8 (links held at once, each to a different relay), not "${bad}"`,
      ]);
    expect(problems({}, { MSSH_LINKS: '12' })[0]).toMatch(
      /^MSSH_LINKS must be a whole number from 1 to 8 .* not "12"$/,
    );
    // Every problem at once.
    expect(problems({ relay: ['http://a', 'https://b.example/x'], links: '0', logLevel: 'loud' })).toHaveLength(4);
  });

  it('--metrics-listen (else MSSH_METRICS_LISTEN): off by default, HOST:PORT, port 0 for any; refused with AGT_ERR_CONFIG', () => {
    expect(parseRunConfig({}, {}).metricsListen).toBeNull();
    expect(parseRunConfig({ metricsListen: '127.0.0.1:9465' }, {}).metricsListen).toEqual({
      host: '127.0.0.1',
      port: 9465,
    });
    expect(parseRunConfig({}, { MSSH_METRICS_LISTEN: '[::1]:0' }).metricsListen).toEqual({ host: '::1', port: 0 });
    expect(
      parseRunConfig({ metricsListen: '127.0.0.1:0' }, { MSSH_METRICS_LISTEN: '127.0.0.1:1' }).metricsListen,
    ).toEqual({ host: '127.0.0.1', port: 0 });
    for (const [flags, env, from] of [
      [{ metricsListen: '127.0.0.1' }, {}, '--metrics-listen'],
      [{ metricsListen: '127.0.0.1:70000' }, {}, '--metrics-listen'],
      [{}, { MSSH_METRICS_LISTEN: 'nope:x' }, 'MSSH_METRICS_LISTEN'],
    ] as const) {
      let err: unknown;
      try {
        parseRunConfig(flags, env);
      } catch (e) {
        err = e;
      }
      expect(err).toBeInstanceOf(AgentError);
      expect((err as AgentError).code).toBe('AGT_ERR_CONFIG');
      expect((err as AgentError).message).toMatch(new RegExp(`^${from} must be HOST:PORT`));
    }
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
