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
import { MIN_PROTOCOL_VERSION, SOFTWARE_VERSION, sanitizeForTerminal } from '@mssh/protocol';
import {
  AgentEnrollConfigSchema, AuditPruneConfigSchema, InfoConfigSchema, ServeConfigSchema, UserAddConfigSchema,
  defaultPublicUrl, formatHostPort, parseConfig, type StoreConfig,
} from './config.js';
import { CliError, RelayError } from './errors.js';
import { createLogger } from './logger.js';
import { pgliteDir, prepareDataDir, relayId } from './data-dir.js';
import { createRepositories, openDatabase, redactDatabaseUrl, rootMessage } from './db/index.js';
import { DbAuditSink } from './audit/audit-sink.js';
import { SessionRecorder } from './audit/session-recorder.js';
import { AUDIT } from './audit/codes.js';
import { loadOrCreateTls, readFingerprint, tlsPaths } from './tls/certificate.js';
import { loadTokenService } from './auth/token-keys.js';
import { bootstrapAdmin, BOOTSTRAP_ADMIN } from './auth/bootstrap.js';
import { createServices } from './services.js';
import { buildServer } from './http/server.js';
import { createTunnelRouter } from './tunnel/router.js';
import { adminSocketPath, claimAdminSocketPath, socketAnswers, startAdminSocket, LOCAL_ADMIN_ACTOR } from './admin/admin-socket.js';
import { AdminSocketClient, type AdminOps } from './admin/admin-client.js';
import { AdminService } from './admin/admin-service.js';
import { AuditLog } from './audit/audit-log.js';
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
    const thisRelay = relayId(cfg.dataDir);
    const auditLogger = logger.child({ component: 'relay.audit' });
    const audit = new DbAuditSink({ db: database.db, relayId: thisRelay, logger: auditLogger });
    cleanups.push(() => audit.flush());
    const recorder = new SessionRecorder({ db: database.db, writer: audit.writer, relayId: thisRelay, logger: auditLogger, progressIntervalMs: cfg.auditProgressMs });
    cleanups.push(() => recorder.close());
    // Sessions a previous run left open (kill -9, power loss) are closed before anything else starts.
    let recovered: number;
    try {
      recovered = await recorder.recoverCrashed();
    } catch (e) {
      throw new CliError(`cannot close the sessions a previous run left open: ${rootMessage(e)}`, 'Check that the database is reachable and writable, then start again.', e);
    }
    if (recovered > 0) logger.warn({ sessions: recovered }, `closed ${recovered} session(s) left open by a previous run (end reason relay_crashed)`);
    const { tokens, createdKey } = await loadTokenService(repos.signingKeys);
    if (createdKey) logger.info({ kid: tokens.signingKid }, 'created the token signing key');
    await prepareDummyHash();
    const boot = await bootstrapAdmin({ users: repos.users, audit }, cfg.bootstrapPassword);

    const router = createTunnelRouter({ directory: repos.agents, audit, logger, minProtocolVersion: MIN_PROTOCOL_VERSION });
    cleanups.push(() => router.close());
    const relay = { url: cfg.publicUrl ?? defaultPublicUrl(cfg.listen), fingerprint: tls.fingerprint };
    const services = createServices({ repos, tokens, audit, router, relay: () => relay, relayId: thisRelay, liveSessions: () => recorder.active() });
    const app = buildServer({ tls, logger, router, tokens, ...services, sessions: recorder, audit });
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

    const adminSock = await startAdminSocket({ admin: services.admin, logger, path: sockPath, auditLog: services.auditLog });
    cleanups.push(() => adminSock.close());

    recorder.startProgress();
    audit.emit({
      ...AUDIT.relayStarted, source: formatHostPort(cfg.listen.host, bound.port),
      details: { version: SOFTWARE_VERSION, url: relay.url, pid: process.pid, database: database.kind, recoveredSessions: recovered },
    });

    const purge = setInterval(() => {
      repos.revokedTokens.purgeExpired().catch((err) => logger.warn({ err }, 'purging expired revocations failed'));
    }, 3600_000);
    purge.unref();

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
      void (async () => {
        // Stop accepting and ask API connections to finish, close agent links (ending their sessions),
        // then the admin socket, pending audit writes and the database.
        const closingHttp = app.close();
        await router.close().catch((err) => logger.error({ err }, 'closing agent links failed'));
        await closingHttp.catch((err) => logger.error({ err }, 'closing the HTTP server failed'));
        await adminSock.close().catch((err) => logger.error({ err }, 'closing the admin socket failed'));
        await recorder.close();
        audit.emit({ ...AUDIT.relayStopped, details: { signal, pid: process.pid } });
        await audit.flush();
        audit.writer.close();
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
  const auditLog = new AuditLog({ db: database.db, relayId: relayId(cfg.dataDir) });
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
    pruneAudit: (olderThanMs) => auditLog.prune(new Date(Date.now() - olderThanMs), by),
    async close() {
      await audit.flush();
      audit.writer.close();
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

async function auditPrune(flags: Record<string, unknown>): Promise<void> {
  const cfg = parseConfig(AuditPruneConfigSchema, flags);
  const ops = await adminOps(cfg, async () => ({ url: '', fingerprint: '' }));
  const r = await withOps(ops, (o) => o.pruneAudit(cfg.olderThan));
  out(`Deleted ${r.deleted} audit event(s) older than ${r.cutoff}; the prune itself is recorded as audit.pruned.`);
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
    .action((opts: Record<string, unknown>) => run(() => serve(opts))());

  storeOptions(program.command('info').description('show the data dir, database and certificate fingerprint'))
    .option('--tls-cert <file>', 'the certificate the relay uses, when not the self-signed one')
    .action((opts: Record<string, unknown>) => run(() => info(opts))());

  const user = program.command('user').description('manage users');
  storeOptions(user.command('add').argument('<name>', 'user name').description('create a user (through the running relay, else on the database)'))
    .option('--admin', 'make the user an admin')
    .option('--password-stdin', 'read the password from the first line of stdin')
    .action((name: string, opts: Record<string, unknown>) => run(() => userAdd(name, opts))());

  const agent = program.command('agent').description('manage machines');
  storeOptions(agent.command('enroll').argument('<name>', 'machine name').description('issue a one-time enrolment token for a machine'))
    .option('--public-url <url>', 'relay URL to print when the relay is not running (env MSSH_PUBLIC_URL)')
    .option('--listen <host:port>', 'the relay\'s listen address, to derive the URL when the relay is not running (env MSSH_LISTEN)')
    .option('--tls-cert <file>', 'the relay\'s certificate, when not the self-signed one')
    .option('--tls-san <name>', 'extra name for the self-signed certificate if it does not exist yet (repeatable)', collect, [])
    .action((name: string, opts: Record<string, unknown>) => run(() => agentEnroll(name, opts))());

  const auditCmd = program.command('audit').description('the audit trail');
  storeOptions(auditCmd.command('prune').description('delete audit events older than an age (the only way rows leave the append-only trail); records audit.pruned'))
    .requiredOption('--older-than <age>', 'age like 365d, 52w or 90d (at least 1d)')
    .action((opts: Record<string, unknown>) => run(() => auditPrune(opts))());

  return program;
}

await buildProgram().parseAsync(process.argv);
