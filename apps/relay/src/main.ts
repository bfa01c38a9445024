/**
 * mssh-relay: the only place that wires things. Reads the configuration once, builds the components and
 * starts them; maps SIGTERM/SIGINT to a graceful stop.
 *
 *   mssh (client) --HTTPS/h2, JWT--> relay --one TLS+h2 link per agent--> mssh-agent --> sshd
 */
import { existsSync } from 'node:fs';
import type { AddressInfo } from 'node:net';
import { Command, Option } from 'commander';
import { prepareDummyHash } from '@mssh/auth';
import { SOFTWARE_VERSION, sanitizeForTerminal } from '@mssh/protocol';
import {
  AgentEnrollConfigSchema, HARDENING_DEFAULTS, InfoConfigSchema, ServeConfigSchema, StoreConfigSchema, UserAddConfigSchema,
  defaultPublicUrl, formatHostPort, parseConfig, type StoreConfig,
} from './config.js';
import { CliError, RelayError } from './errors.js';
import { createLogger } from './logger.js';
import { pgliteDir, prepareDataDir, relayId } from './data-dir.js';
import { createRepositories, openDatabase, redactDatabaseUrl, rootMessage } from './db/index.js';
import { DbAuditSink } from './audit/audit-sink.js';
import { loadOrCreateTls, readFingerprint, tlsPaths } from './tls/certificate.js';
import { loadTokenService, reloadTokenKeys, rotateSigningKey, type RotatedKey } from './auth/token-keys.js';
import { HashSlots } from './limits/hash-slots.js';
import { LoginGuard } from './limits/login-guard.js';
import { bootstrapAdmin, BOOTSTRAP_ADMIN } from './auth/bootstrap.js';
import { createServices } from './services.js';
import { buildServer } from './http/server.js';
import { createTunnelRouter } from './tunnel/router.js';
import { adminSocketPath, claimAdminSocketPath, socketAnswers, startAdminSocket, LOCAL_ADMIN_ACTOR } from './admin/admin-socket.js';
import { AdminSocketClient, type AdminOps } from './admin/admin-client.js';
import { AdminService } from './admin/admin-service.js';
import { readNewPassword } from './cli/password.js';

const out = (line: string) => process.stdout.write(`${line}\n`);

// ---------------------------------------------------------------- serve

async function serve(flags: Record<string, unknown>): Promise<void> {
  const cfg = parseConfig(ServeConfigSchema, flags);
  const logger = createLogger(cfg.logLevel);
  const cleanups: Array<() => Promise<void>> = [];
  const cleanup = async () => {
    for (const fn of cleanups.reverse()) await fn().catch((err) => logger.error({ err }, 'cleanup failed'));
  };
  try {
    prepareDataDir(cfg.dataDir);
    const sockPath = adminSocketPath(cfg.dataDir);
    await claimAdminSocketPath(sockPath);

    const tls = await loadOrCreateTls({ dataDir: cfg.dataDir, certFile: cfg.tlsCert, keyFile: cfg.tlsKey, sans: cfg.tlsSan });
    if (tls.created) logger.info({ cert: tls.certPath, names: tls.names }, 'created a self-signed TLS certificate');
    if (tls.missingSans.length > 0) {
      logger.warn({ missing: tls.missingSans, cert: tls.certPath },
        `the existing certificate does not name ${tls.missingSans.join(', ')}; to include them, move ${tlsPaths(cfg.dataDir).dir} away and restart (the fingerprint changes: re-pin clients and agents)`);
    }

    const database = await openDatabase({
      databaseUrl: cfg.databaseUrl,
      pgliteDir: pgliteDir(cfg.dataDir),
      onPoolError: (err) => logger.warn({ err: err.message }, 'idle database connection failed'),
    });
    cleanups.push(() => database.close());
    logger.info({ kind: database.kind, where: cfg.databaseUrl ? redactDatabaseUrl(cfg.databaseUrl) : pgliteDir(cfg.dataDir) }, 'database ready');

    const repos = createRepositories(database.db);
    const audit = new DbAuditSink({ db: database.db, relayId: relayId(cfg.dataDir), logger: logger.child({ component: 'relay.audit' }) });
    cleanups.push(() => audit.flush());
    const { tokens, createdKey } = await loadTokenService(repos.signingKeys);
    if (createdKey) logger.info({ kid: tokens.signingKid }, 'created the token signing key');
    await prepareDummyHash();
    const boot = await bootstrapAdmin({ users: repos.users, audit }, cfg.bootstrapPassword);

    const router = createTunnelRouter({
      directory: repos.agents, audit, logger, minProtocolVersion: cfg.minProtocolVersion, maxAgents: cfg.maxAgents,
      sessionCaps: { maxSessionsPerUser: cfg.maxSessionsPerUser, maxSessionsPerAgent: cfg.maxSessionsPerAgent, maxSessions: cfg.maxSessions },
    });
    cleanups.push(() => router.close());
    const relay = { url: cfg.publicUrl ?? defaultPublicUrl(cfg.listen), fingerprint: tls.fingerprint };
    const services = createServices({
      repos, tokens, audit, router, relay: () => relay, minProtocolVersion: cfg.minProtocolVersion,
      hashSlots: new HashSlots({ max: cfg.maxPasswordChecks }),
    });
    const app = buildServer({
      tls, logger, router, tokens, ...services,
      hardening: {
        trustedProxies: cfg.trustedProxy,
        maxBodyBytes: cfg.maxBodyBytes,
        connection: { handshakeTimeoutMs: cfg.handshakeTimeout * 1000, maxHeaderBytes: cfg.maxHeaderBytes },
        loginGuard: new LoginGuard({ perSource: cfg.loginAttempts, perUser: cfg.loginAttempts * 2 }),
        minProtocolVersion: cfg.minProtocolVersion,
      },
    });
    try {
      await app.listen({ host: cfg.listen.host, port: cfg.listen.port });
    } catch (e) {
      const code = (e as NodeJS.ErrnoException).code;
      throw new CliError(
        `cannot listen on ${formatHostPort(cfg.listen.host, cfg.listen.port)}: ${code === 'EADDRINUSE' ? 'the address is already in use' : code === 'EACCES' ? 'permission denied' : (e as Error).message}`,
        'Pick another address with --listen HOST:PORT (or MSSH_LISTEN), or stop the program using it.',
        e,
      );
    }
    cleanups.push(() => app.close());
    const bound = app.server.address() as AddressInfo;
    relay.url = cfg.publicUrl ?? defaultPublicUrl({ host: cfg.listen.host, port: bound.port });

    const adminSock = await startAdminSocket({
      admin: services.admin, logger, path: sockPath,
      keys: { rotate: (by) => rotateSigningKey({ keys: repos.signingKeys, audit, tokens, by }) },
    });
    cleanups.push(() => adminSock.close());

    const purge = setInterval(() => {
      repos.revokedTokens.purgeExpired().catch((err) => logger.warn({ err }, 'purging expired revocations failed'));
    }, 3600_000);
    purge.unref();
    // Relays sharing a database pick up a key rotated on another one.
    const keyReload = setInterval(() => {
      reloadTokenKeys(repos.signingKeys, tokens).catch((err) => logger.warn({ err }, 'reloading the signing keys failed'));
    }, 60_000);
    keyReload.unref();

    out(`mssh-relay listening on https://${formatHostPort(cfg.listen.host, bound.port)}`);
    out(`TLS certificate fingerprint: ${tls.fingerprint}`);
    if (boot.created) out(`Created user "${BOOTSTRAP_ADMIN}" with password: ${boot.password} (shown once)`);
    logger.info({ url: relay.url, listen: formatHostPort(cfg.listen.host, bound.port), adminSocket: sockPath, version: SOFTWARE_VERSION }, 'relay started');

    let stopping = false;
    const stop = (signal: NodeJS.Signals) => {
      if (stopping) {
        logger.warn({ signal }, 'second signal: exiting now');
        process.exit(1);
      }
      stopping = true;
      logger.info({ signal }, 'shutting down');
      const force = setTimeout(() => {
        logger.error('shutdown took longer than 15 s; exiting');
        process.exit(1);
      }, 15_000);
      force.unref();
      clearInterval(purge);
      clearInterval(keyReload);
      void (async () => {
        // Stop accepting and ask API connections to finish, close agent links (ending their sessions),
        // then the admin socket, pending audit writes and the database.
        const closingHttp = app.close();
        await router.close().catch((err) => logger.error({ err }, 'closing agent links failed'));
        await closingHttp.catch((err) => logger.error({ err }, 'closing the HTTP server failed'));
        await adminSock.close().catch((err) => logger.error({ err }, 'closing the admin socket failed'));
        await audit.flush();
        await database.close().catch((err) => logger.error({ err }, 'closing the database failed'));
        logger.info('stopped');
        process.exit(0);
      })();
    };
    process.on('SIGTERM', stop);
    process.on('SIGINT', stop);
    process.on('unhandledRejection', (err) => logger.error({ err }, 'unhandled rejection'));
  } catch (e) {
    await cleanup();
    throw e;
  }
}

// ---------------------------------------------------------------- info

async function info(flags: Record<string, unknown>): Promise<void> {
  const cfg = parseConfig(InfoConfigSchema, flags);
  const sock = adminSocketPath(cfg.dataDir);
  const running = existsSync(sock) && (await socketAnswers(sock));
  const fp = readFingerprint({ dataDir: cfg.dataDir, certFile: cfg.tlsCert });
  out(`Data directory: ${cfg.dataDir}${existsSync(cfg.dataDir) ? '' : ' (does not exist yet)'}`);
  out(`Database: ${cfg.databaseUrl ? `postgres ${redactDatabaseUrl(cfg.databaseUrl)}` : `pglite ${pgliteDir(cfg.dataDir)}`}`);
  out(`TLS certificate: ${cfg.tlsCert ?? tlsPaths(cfg.dataDir).cert}`);
  out(`TLS certificate fingerprint: ${fp ?? '(none yet: created on the first `mssh-relay serve`)'}`);
  if (running) {
    const i = await new AdminSocketClient(sock).info();
    out(`Relay: running (pid ${i.pid}), ${i.relayUrl}`);
  } else {
    out('Relay: not running');
  }
}

// ---------------------------------------------------------------- admin commands

/** Through the running relay's admin socket, or (relay stopped) straight on the database. */
async function adminOps(cfg: StoreConfig, relayInfo: () => Promise<{ url: string; fingerprint: string }>): Promise<AdminOps> {
  const sock = adminSocketPath(cfg.dataDir);
  if (existsSync(sock) && (await socketAnswers(sock))) return new AdminSocketClient(sock);
  prepareDataDir(cfg.dataDir);
  const logger = createLogger('warn');
  const database = await openDatabase({ databaseUrl: cfg.databaseUrl, pgliteDir: pgliteDir(cfg.dataDir) });
  const repos = createRepositories(database.db);
  const audit = new DbAuditSink({ db: database.db, relayId: relayId(cfg.dataDir), logger });
  let relay: { url: string; fingerprint: string } = { url: '', fingerprint: '' };
  const admin = new AdminService({ users: repos.users, agents: repos.agents, enrollTokens: repos.enrollTokens, audit, relay: () => relay });
  const by = { actor: LOCAL_ADMIN_ACTOR, source: 'cli' };
  return {
    via: 'database',
    createUser: (req) => admin.createUser(req, by),
    async createEnrollToken(name) {
      relay = await relayInfo();
      return admin.createEnrollToken(name, by);
    },
    async close() {
      await audit.flush();
      await database.close();
    },
  };
}

async function withOps<T>(ops: AdminOps, fn: (ops: AdminOps) => Promise<T>): Promise<T> {
  try {
    return await fn(ops);
  } finally {
    await ops.close();
  }
}

async function userAdd(name: string, flags: Record<string, unknown>): Promise<void> {
  const cfg = parseConfig(UserAddConfigSchema, { ...flags, name });
  const password = await readNewPassword({ fromStdin: cfg.passwordStdin });
  if (password.length < 8) throw new CliError('the password is too short', 'Use at least 8 characters.');
  const ops = await adminOps(cfg, async () => ({ url: '', fingerprint: '' }));
  const u = await withOps(ops, (o) => o.createUser({ name: cfg.name, password, admin: cfg.admin }));
  out(`Created user "${u.name}"${u.admin ? ' (admin)' : ''}.`);
}

async function agentEnroll(name: string, flags: Record<string, unknown>): Promise<void> {
  const cfg = parseConfig(AgentEnrollConfigSchema, { ...flags, name });
  const offlineRelay = async () => {
    // The relay is not running: the URL comes from the flags, the fingerprint from its certificate.
    const fingerprint = cfg.tlsCert
      ? readFingerprint({ dataDir: cfg.dataDir, certFile: cfg.tlsCert })
      : (await loadOrCreateTls({ dataDir: cfg.dataDir, sans: cfg.tlsSan })).fingerprint;
    if (!fingerprint) throw new CliError(`cannot read the certificate ${cfg.tlsCert}`, 'Check the path given to --tls-cert.');
    return { url: cfg.publicUrl ?? defaultPublicUrl(cfg.listen), fingerprint };
  };
  const ops = await adminOps(cfg, offlineRelay);
  const t = await withOps(ops, (o) => o.createEnrollToken(cfg.name));
  out(`Enrolment token for "${t.name}" (one use, expires ${t.expiresAt}):`);
  out(`  ${t.token}`);
  out('On the machine to enrol, run:');
  out(`  mssh-agent enroll --relay ${t.relayUrl} --token ${t.token} --name ${t.name} --relay-fingerprint ${t.relayFingerprint}`);
}

/** `keys rotate`: through the running relay (it signs with the new key at once), else on the database. */
async function keysRotate(flags: Record<string, unknown>): Promise<void> {
  const cfg = parseConfig(StoreConfigSchema, flags);
  const sock = adminSocketPath(cfg.dataDir);
  let r: RotatedKey;
  if (existsSync(sock) && (await socketAnswers(sock))) {
    r = await new AdminSocketClient(sock).rotateKeys();
  } else {
    prepareDataDir(cfg.dataDir);
    const database = await openDatabase({ databaseUrl: cfg.databaseUrl, pgliteDir: pgliteDir(cfg.dataDir) });
    const audit = new DbAuditSink({ db: database.db, relayId: relayId(cfg.dataDir), logger: createLogger('warn') });
    try {
      r = await rotateSigningKey({ keys: createRepositories(database.db).signingKeys, audit, by: { actor: LOCAL_ADMIN_ACTOR, source: 'cli' } });
    } finally {
      await audit.flush();
      await database.close();
    }
  }
  out(`New signing key ${r.kid}: new tokens are signed with it.`);
  if (r.retired.length > 0) out(`Retired ${r.retired.join(', ')}: still verifying the tokens it issued until they expire (12 h at most).`);
  out('Other relays on the same database pick the new key up within a minute.');
}

// ---------------------------------------------------------------- errors and commands

const RELAY_ERROR_HINTS: Partial<Record<string, string>> = {
  RLY_ERR_NAME_TAKEN: 'Pick another name.',
  RLY_ERR_BAD_REQUEST: 'Check the arguments; see --help.',
};

function report(e: unknown): number {
  const line = (s: string) => process.stderr.write(`${sanitizeForTerminal(s)}\n`);
  if (e instanceof CliError) {
    const [first, ...rest] = e.message.split('\n');
    line(`mssh-relay: ${first}`);
    for (const l of rest) line(l);
    if (e.hint) line(e.hint);
    return e.exitCode;
  }
  if (e instanceof RelayError) {
    line(`mssh-relay: ${e.message} (${e.code})`);
    line(RELAY_ERROR_HINTS[e.code] ?? 'See the relay log for details.');
    return 1;
  }
  line(`mssh-relay: unexpected error: ${rootMessage(e)}`);
  line('This is a bug in mssh-relay; please report it together with the relay log.');
  return 70;
}

function run(fn: () => Promise<void>): () => Promise<void> {
  return async () => {
    try {
      await fn();
    } catch (e) {
      process.exitCode = report(e);
      if (process.exitCode !== 0) process.exit(process.exitCode);
    }
  };
}

const storeOptions = (c: Command) =>
  c.option('--data-dir <dir>', 'data directory (env MSSH_DATA_DIR, default ~/.local/share/mssh-relay)')
    .option('--database-url <url>', 'Postgres URL instead of the embedded PGlite (env DATABASE_URL)');

const collect = (v: string, prev: string[]) => [...prev, v];

export function buildProgram(): Command {
  const program = new Command('mssh-relay')
    .description('The mssh relay: reach machines behind NAT over SSH, end to end encrypted.')
    .version(SOFTWARE_VERSION)
    .showHelpAfterError(false)
    .configureOutput({
      outputError: (str, write) => write(`mssh-relay: ${str.replace(/^error: /, '').trim()}\nRun \`mssh-relay --help\` for usage.\n`),
    });

  storeOptions(program.command('serve').description('run the relay'))
    .option('--listen <host:port>', `address to listen on (env MSSH_LISTEN, default 0.0.0.0:8443)`)
    .option('--tls-cert <file>', 'PEM certificate (chain); default: a self-signed one in the data dir')
    .option('--tls-key <file>', 'PEM private key of --tls-cert')
    .option('--tls-san <name>', 'extra name for the self-signed certificate (repeatable)', collect, [])
    .option('--public-url <url>', 'URL clients and agents use, e.g. https://relay.example.org:8443 (env MSSH_PUBLIC_URL)')
    .addOption(new Option('--log-level <level>', 'log level (env MSSH_LOG_LEVEL, default info)'))
    .option('--trusted-proxy <cidr>', 'believe X-Forwarded-For from this proxy address or CIDR (repeatable; default: none, the socket address counts)', collect, [])
    .option('--min-protocol-version <n>', 'refuse agents and clients speaking an older protocol (default: the oldest this build speaks)')
    .option('--max-sessions-per-user <n>', `open sessions per mssh user (default ${HARDENING_DEFAULTS.maxSessionsPerUser})`)
    .option('--max-sessions-per-agent <n>', `open sessions per machine (default ${HARDENING_DEFAULTS.maxSessionsPerAgent})`)
    .option('--max-sessions <n>', `open sessions on this relay (default ${HARDENING_DEFAULTS.maxSessions})`)
    .option('--max-agents <n>', `agents connected at once (default ${HARDENING_DEFAULTS.maxAgents})`)
    .option('--max-header-bytes <n>', `largest request header block (default ${HARDENING_DEFAULTS.maxHeaderBytes})`)
    .option('--max-body-bytes <n>', `largest JSON request body (default ${HARDENING_DEFAULTS.maxBodyBytes})`)
    .option('--handshake-timeout <seconds>', `drop connections that finish no TLS handshake / first request in time (default ${HARDENING_DEFAULTS.handshakeTimeout})`)
    .option('--login-attempts <n>', `failed logins per minute and address before back-off (default ${HARDENING_DEFAULTS.loginAttempts}; per user name: twice that)`)
    .option('--max-password-checks <n>', `password hashes at once; more wait briefly, then get 503 (default ${HARDENING_DEFAULTS.maxPasswordChecks})`)
    .action((opts: Record<string, unknown>) => run(() => serve(opts))());

  storeOptions(program.command('info').description('show the data dir, database and certificate fingerprint'))
    .option('--tls-cert <file>', 'the certificate the relay uses, when not the self-signed one')
    .action((opts: Record<string, unknown>) => run(() => info(opts))());

  const user = program.command('user').description('manage users');
  storeOptions(user.command('add').argument('<name>', 'user name').description('create a user (through the running relay, else on the database)'))
    .option('--admin', 'make the user an admin')
    .option('--password-stdin', 'read the password from the first line of stdin')
    .action((name: string, opts: Record<string, unknown>) => run(() => userAdd(name, opts))());

  const keys = program.command('keys').description('manage the token signing keys');
  storeOptions(keys.command('rotate').description('add a new signing key; the old one verifies its tokens until they expire'))
    .action((opts: Record<string, unknown>) => run(() => keysRotate(opts))());

  const agent = program.command('agent').description('manage machines');
  storeOptions(agent.command('enroll').argument('<name>', 'machine name').description('issue a one-time enrolment token for a machine'))
    .option('--public-url <url>', 'relay URL to print when the relay is not running (env MSSH_PUBLIC_URL)')
    .option('--listen <host:port>', 'the relay\'s listen address, to derive the URL when the relay is not running (env MSSH_LISTEN)')
    .option('--tls-cert <file>', 'the relay\'s certificate, when not the self-signed one')
    .option('--tls-san <name>', 'extra name for the self-signed certificate if it does not exist yet (repeatable)', collect, [])
    .action((name: string, opts: Record<string, unknown>) => run(() => agentEnroll(name, opts))());

  return program;
}

await buildProgram().parseAsync(process.argv);
