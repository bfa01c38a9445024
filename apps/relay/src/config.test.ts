import { describe, expect, it } from 'vitest';
import { homedir } from 'node:os';
import { join } from 'node:path';
import {
  AuditPruneConfigSchema,
  DRAIN_DEFAULTS,
  HARDENING_DEFAULTS,
  ServeConfigSchema,
  UserAddConfigSchema,
  isCidr,
  parseConfig,
  parseListen,
  defaultPublicUrl,
  sshJumpListen,
} from './config.js';
import { CliError } from './errors.js';

describe('relay config', () => {
  it('parses listen addresses', () => {
    expect(parseListen('0.0.0.0:8443')).toEqual({ host: '0.0.0.0', port: 8443 });
    expect(parseListen('[::1]:0')).toEqual({ host: '::1', port: 0 });
    expect(parseListen(':9000')).toEqual({ host: '0.0.0.0', port: 9000 });
    expect(parseListen('relay.local:443')).toEqual({ host: 'relay.local', port: 443 });
    for (const bad of ['8443', 'host:', 'host:99999', '[zz]:1', 'a b:1', '::1:80'])
      expect(parseListen(bad), bad).toBeNull();
    expect(defaultPublicUrl({ host: '127.0.0.1', port: 5 })).toBe('https://127.0.0.1:5');
    expect(defaultPublicUrl({ host: '::1', port: 5 })).toBe('https://[::1]:5');
  });

  it('applies defaults, and flags win over the environment', () => {
    const c = parseConfig(ServeConfigSchema, {}, {});
    expect(c.listen).toEqual({ host: '0.0.0.0', port: 8443 });
    expect(c.dataDir).toBe(join(homedir(), '.local/share/mssh-relay'));
    expect(c.databaseUrl).toBeUndefined();
    expect(c.logLevel).toBe('info');
    expect(c.tlsSan).toEqual([]);
    const env = {
      MSSH_LISTEN: '127.0.0.1:1',
      MSSH_DATA_DIR: '/tmp/x',
      DATABASE_URL: 'postgres://u@h/db',
      MSSH_BOOTSTRAP_PASSWORD: 'long-enough',
    };
    const e = parseConfig(ServeConfigSchema, {}, env);
    expect(e).toMatchObject({
      listen: { host: '127.0.0.1', port: 1 },
      dataDir: '/tmp/x',
      databaseUrl: 'postgres://u@h/db',
      bootstrapPassword: 'long-enough',
    });
    const f = parseConfig(ServeConfigSchema, { listen: '127.0.0.1:2', dataDir: '/tmp/y', databaseUrl: '' }, env);
    expect(f.listen.port).toBe(2);
    expect(f.dataDir).toBe('/tmp/y');
    expect(f.databaseUrl).toBeUndefined(); // an empty flag means "not set"
  });

  it('--drain-delay and --drain-timeout: whole seconds, 0 allowed, defaults 2 and 20, flags over MSSH_DRAIN_*', () => {
    const d = parseConfig(ServeConfigSchema, {}, {});
    expect([d.drainDelay, d.drainTimeout]).toEqual([DRAIN_DEFAULTS.drainDelay, DRAIN_DEFAULTS.drainTimeout]);
    expect([d.drainDelay, d.drainTimeout]).toEqual([2, 20]);
    const env = { MSSH_DRAIN_DELAY: '0', MSSH_DRAIN_TIMEOUT: '45' };
    expect(parseConfig(ServeConfigSchema, {}, env)).toMatchObject({ drainDelay: 0, drainTimeout: 45 });
    expect(parseConfig(ServeConfigSchema, { drainTimeout: '2' }, env)).toMatchObject({
      drainDelay: 0,
      drainTimeout: 2,
    });
    const e = (() => {
      try {
        parseConfig(ServeConfigSchema, { drainDelay: '1.5', drainTimeout: '-1' }, {});
      } catch (err) {
        return err as CliError;
      }
      return null;
    })();
    expect(e?.code).toBe('CLI_ERR_USAGE');
    expect(e?.message).toContain('--drain-delay (MSSH_DRAIN_DELAY): must be whole seconds (0 or more)');
    expect(e?.message).toContain('--drain-timeout (MSSH_DRAIN_TIMEOUT): must be whole seconds (0 or more)');
  });

  it('--ssh-listen: default port 2222 on the --listen host, HOST:PORT, off; a bad value is reported', () => {
    const d = parseConfig(ServeConfigSchema, { listen: '127.0.0.1:8443' }, {});
    expect(sshJumpListen(d)).toEqual({ host: '127.0.0.1', port: 2222 });
    expect(sshJumpListen(parseConfig(ServeConfigSchema, { sshListen: '127.0.0.1:0' }, {}))).toEqual({
      host: '127.0.0.1',
      port: 0,
    });
    expect(sshJumpListen(parseConfig(ServeConfigSchema, {}, { MSSH_SSH_LISTEN: 'off' }))).toBeNull();
    expect(
      sshJumpListen(parseConfig(ServeConfigSchema, { sshListen: 'OFF' }, { MSSH_SSH_LISTEN: '0.0.0.0:22' })),
    ).toBeNull();
    expect(() => parseConfig(ServeConfigSchema, { sshListen: 'nope' }, {})).toThrow(/--ssh-listen \(MSSH_SSH_LISTEN\)/);
  });

  it('--metrics-listen: off by default, HOST:PORT from the flag or MSSH_METRICS_LISTEN, never a port of another listener', () => {
    expect(parseConfig(ServeConfigSchema, {}, {}).metricsListen).toBeUndefined();
    expect(parseConfig(ServeConfigSchema, { metricsListen: '127.0.0.1:9464' }, {}).metricsListen).toEqual({
      host: '127.0.0.1',
      port: 9464,
    });
    expect(
      parseConfig(ServeConfigSchema, { metricsListen: '127.0.0.1:0' }, { MSSH_METRICS_LISTEN: '127.0.0.1:1' })
        .metricsListen,
    ).toEqual({ host: '127.0.0.1', port: 0 });
    expect(parseConfig(ServeConfigSchema, {}, { MSSH_METRICS_LISTEN: '[::1]:9464' }).metricsListen).toEqual({
      host: '::1',
      port: 9464,
    });
    const refused = (flags: Record<string, unknown>, pattern: RegExp) => {
      let err: unknown;
      try {
        parseConfig(ServeConfigSchema, flags, {});
      } catch (e) {
        err = e;
      }
      expect(err).toBeInstanceOf(CliError);
      expect((err as CliError).code).toBe('CLI_ERR_USAGE');
      expect((err as CliError).message).toMatch(pattern);
    };
    refused({ metricsListen: 'nope' }, /--metrics-listen \(MSSH_METRICS_LISTEN\): "nope" is not HOST:PORT/);
    // The public port (the default --listen is 0.0.0.0:8443: any host on 8443 collides), the SSH jump and peer ports.
    refused({ metricsListen: '127.0.0.1:8443' }, /never shares a port with --listen/);
    refused({ listen: '127.0.0.1:9000', metricsListen: '0.0.0.0:9000' }, /never shares a port/);
    refused({ metricsListen: '127.0.0.1:2222' }, /never shares a port/);
    // Another host, or port 0 (a free port): fine.
    expect(
      parseConfig(ServeConfigSchema, { listen: '127.0.0.1:9000', metricsListen: '127.0.0.2:9000' }, {}).metricsListen,
    ).toEqual({ host: '127.0.0.2', port: 9000 });
  });

  it('--stale-after and --older-than share one duration grammar: both accept 2w (issue 18: --stale-after 2w failed)', () => {
    expect(parseConfig(ServeConfigSchema, { staleAfter: '2w' }, {}).staleAfter).toBe(14 * 86_400_000);
    expect(parseConfig(AuditPruneConfigSchema, { olderThan: '2w' }, {}).olderThan).toBe(14 * 86_400_000);
  });

  it('--stale-after: 30 days by default, durations with a unit, refused otherwise', () => {
    expect(parseConfig(ServeConfigSchema, {}, {}).staleAfter).toBe(30 * 86_400_000);
    expect(parseConfig(ServeConfigSchema, { staleAfter: '12h' }, {}).staleAfter).toBe(12 * 3_600_000);
    expect(parseConfig(ServeConfigSchema, {}, { MSSH_STALE_AFTER: '90m' }).staleAfter).toBe(90 * 60_000);
    expect(parseConfig(ServeConfigSchema, { staleAfter: '45' }, {}).staleAfter).toBe(45_000);
    for (const bad of ['0d', '-1d', '3y', 'soon', '1.5d']) {
      expect(() => parseConfig(ServeConfigSchema, { staleAfter: bad }, {}), bad).toThrow(/--stale-after.*duration/);
    }
  });

  it('lists every problem at once', () => {
    let err: unknown;
    try {
      parseConfig(
        ServeConfigSchema,
        { listen: 'nope', databaseUrl: 'mysql://x', tlsCert: '/c.pem', logLevel: 'loud', publicUrl: 'http://x' },
        {},
      );
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(CliError);
    const msg = (err as CliError).message;
    for (const f of ['--listen', '--database-url', '--tls-key', '--log-level', '--public-url'])
      expect(msg).toContain(f);
    expect((err as CliError).hint).toBeTruthy();
  });

  it('validates user names', () => {
    expect(() => parseConfig(UserAddConfigSchema, { name: 'Bad Name' }, {})).toThrow(/NAME/);
    expect(parseConfig(UserAddConfigSchema, { name: 'alice', admin: true }, {}).admin).toBe(true);
  });

  it('hardening flags: defaults, numbers from strings, CIDRs checked, every problem listed', () => {
    const d = parseConfig(ServeConfigSchema, {}, {});
    expect(d).toMatchObject({ ...HARDENING_DEFAULTS, trustedProxy: [], minProtocolVersion: 1 });
    const c = parseConfig(
      ServeConfigSchema,
      {
        trustedProxy: ['10.0.0.0/8', '127.0.0.1', '::1/128'],
        maxSessionsPerUser: '3',
        maxAgents: '7',
        minProtocolVersion: '2',
        handshakeTimeout: '5',
      },
      {},
    );
    expect(c).toMatchObject({
      trustedProxy: ['10.0.0.0/8', '127.0.0.1', '::1/128'],
      maxSessionsPerUser: 3,
      maxAgents: 7,
      minProtocolVersion: 2,
      handshakeTimeout: 5,
    });
    expect(isCidr('10.0.0.0/33')).toBe(false);
    expect(isCidr('fe80::/129')).toBe(false);
    expect(isCidr('example.org')).toBe(false);
    let err: CliError | undefined;
    try {
      parseConfig(
        ServeConfigSchema,
        { trustedProxy: ['nope'], maxSessions: '0', maxHeaderBytes: '12', loginAttempts: 'many' },
        {},
      );
    } catch (e) {
      err = e as CliError;
    }
    expect(err).toBeInstanceOf(CliError);
    for (const flag of ['--trusted-proxy', '--max-sessions', '--max-header-bytes', '--login-attempts'])
      expect(err!.message).toContain(flag);
  });
});
