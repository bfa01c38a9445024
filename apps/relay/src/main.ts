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
import {
  GrantRequest, HostName, RoleName, SOFTWARE_VERSION, UserName,
  formatAgentsTable, formatGrantsTable, formatUsersTable, jsonForTerminal, sanitizeForTerminal,
} from '@mssh/protocol';
import {
  AgentEnrollConfigSchema, AuditPruneConfigSchema, HARDENING_DEFAULTS, InfoConfigSchema, ServeConfigSchema, StoreConfigSchema, UserAddConfigSchema,
  defaultPublicUrl, formatHostPort, parseConfig, sshJumpListen, type StoreConfig,
} from './config.js';
import { CliError, RelayError } from './errors.js';
import { createLogger } from './logger.js';
import { installBufferReclaim } from '@mssh/protocol/transport';
import { loadOrCreateRelayId, pgliteDir, prepareDataDir } from './data-dir.js';
import { createRepositories, openDatabase, redactDatabaseUrl, rootMessage } from './db/index.js';
import { grantRoles } from './db/roles.js';
import { DbAuditSink } from './audit/audit-sink.js';
import { SessionRecorder } from './audit/session-recorder.js';
import { AUDIT } from './audit/codes.js';
import { loadOrCreateTls, readFingerprint, tlsPaths } from './tls/certificate.js';
import { loadTokenService, reloadTokenKeys, rotateSigningKey } from './auth/token-keys.js';
import { HashSlots } from './limits/hash-slots.js';
import { LoginGuard } from './limits/login-guard.js';
import { bootstrapAdmin, BOOTSTRAP_ADMIN } from './auth/bootstrap.js';
import { createServices } from './services.js';
import { buildServer } from './http/server.js';
import { createTunnelRouter } from './tunnel/router.js';
import { adminSocketPath, claimAdminSocketPath, startAdminSocket, LOCAL_ADMIN_ACTOR } from './admin/admin-socket.js';
import { AdminSocketClient, type AdminOps } from './admin/admin-client.js';
import { checkServeDatabase, describeDataDir, infoDatabase, infoDatabaseOf, resolveAdminTarget, runningRelay, targetLine } from './admin/admin-target.js';
import { requestedDatabase, writeDatabaseRecord } from './admin/database-record.js';
import { AdminService } from './admin/admin-service.js';
import { AuditLog } from './audit/audit-log.js';
import { readNewPassword } from './cli/password.js';
import { loadOrCreateJumpHostKey, readJumpHostKeyFingerprint, jumpHostKeyPath } from './ssh-jump/host-key.js';
import { createJumpServer, type JumpServer } from './ssh-jump/jump-server.js';
import { createSessionGate } from './session/gate.js';

const out = (line: string) => process.stdout.write(`${line}\n`);

// ---------------------------------------------------------------- serve

async function serve(flags: Record<string, unknown>): Promise<void> {
  const cfg = parseConfig(ServeConfigSchema, flags);
  installBufferReclaim(); // sessions move bulk data through this process (libs/protocol buffer-reclaim.ts)
  const logger = createLogger(cfg.logLevel);
  const cleanups: Array<() => Promise<void>> = [];
  const cleanup = async () => {
    for (const fn of cleanups.reverse()) await fn().catch((err) => logger.error({ err }, 'cleanup failed'));
  };
  try {
    prepareDataDir(cfg.dataDir);
    const thisRelay = loadOrCreateRelayId(cfg.dataDir); // before anything else: a damaged id refuses the start
    const sockPath = adminSocketPath(cfg.dataDir);
    await claimAdminSocketPath(sockPath);
    checkServeDatabase(cfg);

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
    writeDatabaseRecord(cfg.dataDir, requestedDatabase(cfg.databaseUrl));
    logger.info({ kind: database.kind, where: cfg.databaseUrl ? redactDatabaseUrl(cfg.databaseUrl) : pgliteDir(cfg.dataDir) }, 'database ready');

    const repos = createRepositories(database.db);
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

    const router = createTunnelRouter({
      directory: repos.agents, audit, logger, minProtocolVersion: cfg.minProtocolVersion, maxAgents: cfg.maxAgents,
      sessionCaps: { maxSessionsPerUser: cfg.maxSessionsPerUser, maxSessionsPerAgent: cfg.maxSessionsPerAgent, maxSessions: cfg.maxSessions },
    });
    cleanups.push(() => router.close());
    const relay = { url: cfg.publicUrl ?? defaultPublicUrl(cfg.listen), fingerprint: tls.fingerprint };
    let jumpBound: { host: string; port: number } | null = null;
    const services = createServices({
      repos, tokens, audit, router, relay: () => relay, sshJump: () => (jumpBound ? { host: new URL(relay.url).hostname, port: jumpBound.port } : null), staleAfterMs: cfg.staleAfter, relayId: thisRelay, liveSessions: () => recorder.active(),
      minProtocolVersion: cfg.minProtocolVersion, hashSlots: new HashSlots({ max: cfg.maxPasswordChecks }),
    });
    // One login limiter for both doors (POST /v1/auth/login and the SSH jump listener), per --login-attempts.
    const loginGuard = new LoginGuard({ perSource: cfg.loginAttempts, perUser: cfg.loginAttempts * 2 });
    // The one place a session is admitted, whatever door it came through (session/gate.ts).
    const gate = createSessionGate({ router, hosts: services.hosts, access: services.access, ledger: recorder, audit, logger });
    const app = buildServer({
      tls, logger, router, tokens, ...services, gate, audit,
      hardening: {
        trustedProxies: cfg.trustedProxy,
        maxBodyBytes: cfg.maxBodyBytes,
        connection: {
          handshakeTimeoutMs: cfg.handshakeTimeout * 1000, maxHeaderBytes: cfg.maxHeaderBytes, maxStreamsPerConnection: cfg.maxStreamsPerConnection,
          maxConnectionsPerAddress: cfg.maxConnectionsPerAddress, maxPendingPerAddress: cfg.maxPendingPerAddress,
        },
        bodyTimeoutMs: cfg.bodyTimeout * 1000,
        loginGuard,
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

    // The SSH jump listener (ssh -J user@relay:2222 login@machine): the same grants as the HTTPS path.
    let jump: JumpServer | null = null;
    const sshLines: string[] = [];
    const sshAt = sshJumpListen(cfg);
    if (sshAt) {
      const { key: hostKey, created } = loadOrCreateJumpHostKey(cfg.dataDir);
      if (created) logger.info({ path: hostKey.path, fingerprint: hostKey.fingerprint }, 'created the SSH jump host key');
      const jumpServer = createJumpServer({
        hostKey,
        keys: services.sshKeys,
        changes: services.userChanges, // a removed key or changed role closes the connections it authenticated
        gate, // the same admission as the HTTPS tunnel: grants, host, caps, committed session.start, audit
        hosts: services.hosts, // the shell's list of machines
        access: services.access,
        onAuthFailure: (e) => audit.sshAuthFailed(e), // user.login USR001W, via jump (sampled)
        loginGuard, // the HTTPS login's limiter: one budget of failed logins per address and user name
        logger,
        publicAddress: () => `${new URL(relay.url).hostname}:${jumpBound?.port ?? sshAt.port}`,
      });
      try {
        jumpBound = await jumpServer.listen(sshAt.host, sshAt.port);
      } catch (e) {
        const code = (e as NodeJS.ErrnoException).code;
        const why = code === 'EADDRINUSE' ? 'the address is already in use' : code === 'EACCES' ? 'permission denied' : (e as Error).message;
        const hint = 'Pick another address with --ssh-listen HOST:PORT (or MSSH_SSH_LISTEN), or turn the SSH jump listener off with --ssh-listen off.';
        // Asked for explicitly: a failure stops the relay. The default port being taken only turns the listener off.
        if (cfg.sshListen !== undefined) throw new CliError(`cannot listen for SSH on ${formatHostPort(sshAt.host, sshAt.port)}: ${why}`, hint, e);
        logger.warn({ listen: formatHostPort(sshAt.host, sshAt.port), err: why }, `SSH jump listener not started: ${why}. ${hint}`);
        sshLines.push(`SSH jump listener: off (${formatHostPort(sshAt.host, sshAt.port)}: ${why}; see --ssh-listen)`);
      }
      if (jumpBound) {
        jump = jumpServer;
        cleanups.push(() => jumpServer.close());
        sshLines.push(`SSH jump listener on ${formatHostPort(sshAt.host, jumpBound.port)}`, `SSH host key fingerprint: ${hostKey.fingerprint}`);
      }
    }

    const adminSock = await startAdminSocket({
      admin: services.admin, logger, path: sockPath, auditLog: services.auditLog,
      database: requestedDatabase(cfg.databaseUrl), dataDir: cfg.dataDir,
      keys: { rotate: (by) => rotateSigningKey({ keys: repos.signingKeys, audit, tokens, by }) },
    });
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
    // Relays sharing a database pick up a key rotated on another one.
    const keyReload = setInterval(() => {
      reloadTokenKeys(repos.signingKeys, tokens).catch((err) => logger.warn({ err }, 'reloading the signing keys failed'));
    }, 60_000);
    keyReload.unref();

    out(`mssh-relay listening on https://${formatHostPort(cfg.listen.host, bound.port)}`);
    out(`TLS certificate fingerprint: ${tls.fingerprint}`);
    if (boot.created) out(`Created user "${BOOTSTRAP_ADMIN}" with password: ${boot.password} (shown once)`);
    for (const l of sshLines) out(l);
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
        await jump?.close().catch((err) => logger.error({ err }, 'closing the SSH jump listener failed'));
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
  const running = await runningRelay(cfg.dataDir);
  const fp = readFingerprint({ dataDir: cfg.dataDir, certFile: cfg.tlsCert });
  const sshFp = readJumpHostKeyFingerprint(cfg.dataDir);
  const tlsCert = cfg.tlsCert ?? tlsPaths(cfg.dataDir).cert;
  if (flags.json) {
    printJson({
      dataDir: cfg.dataDir,
      dataDirExists: existsSync(cfg.dataDir),
      database: infoDatabaseOf(cfg, running),
      tlsCertificate: tlsCert,
      tlsFingerprint: fp ?? null,
      sshJumpHostKey: jumpHostKeyPath(cfg.dataDir),
      sshJumpHostKeyFingerprint: sshFp ?? null,
      relay: running ? { running: true, pid: running.info.pid, url: running.info.relayUrl } : { running: false, pid: null, url: null },
    });
    return;
  }
  out(`Data directory: ${describeDataDir(cfg.dataDir)}${existsSync(cfg.dataDir) ? '' : ' (does not exist yet)'}`);
  out(`Database: ${infoDatabase(cfg, running)}`);
  out(`TLS certificate: ${tlsCert}`);
  out(`TLS certificate fingerprint: ${fp ?? '(none yet: created on the first `mssh-relay serve`)'}`);
  out(`SSH jump host key: ${jumpHostKeyPath(cfg.dataDir)}`);
  out(`SSH jump host key fingerprint: ${sshFp ?? '(none yet: created on the first `mssh-relay serve` with the SSH listener on)'}`);
  if (running) {
    out(`Relay: running (pid ${running.info.pid}), ${running.info.relayUrl}`);
  } else {
    out('Relay: not running');
  }
}

// ---------------------------------------------------------------- admin commands

/**
 * Through the running relay's admin socket, or (relay stopped) straight on the database the data dir's
 * relay uses (admin/admin-target.ts refuses anything else); says which on stderr.
 */
async function adminOps(cfg: StoreConfig, relayInfo: () => Promise<{ url: string; fingerprint: string }>): Promise<AdminOps> {
  const target = await resolveAdminTarget(cfg);
  process.stderr.write(`${sanitizeForTerminal(targetLine(target))}\n`);
  if (target.via === 'admin-socket') return new AdminSocketClient(target.socket);
  prepareDataDir(cfg.dataDir);
  const logger = createLogger('warn');
  const database = await openDatabase({ databaseUrl: cfg.databaseUrl, pgliteDir: pgliteDir(cfg.dataDir) });
  const repos = createRepositories(database.db);
  const audit = new DbAuditSink({ db: database.db, relayId: loadOrCreateRelayId(cfg.dataDir), logger });
  const auditLog = new AuditLog({ db: database.db, relayId: loadOrCreateRelayId(cfg.dataDir) });
  let relay: { url: string; fingerprint: string } = { url: '', fingerprint: '' };
  // No router: the relay is not running, so there are no live sessions or agent links to end.
  const admin = new AdminService({ users: repos.users, agents: repos.agents, grants: repos.grants, enrollTokens: repos.enrollTokens, audit, relay: () => relay });
  const by = { actor: LOCAL_ADMIN_ACTOR, source: 'cli' };
  return {
    via: 'database',
    createUser: (req) => admin.createUser(req, by),
    listUsers: () => admin.listUsers(),
    disableUser: (name, killSessions) => admin.disableUser(name, { killSessions }, by),
    enableUser: (name) => admin.enableUser(name, by),
    setPassword: (name, password) => admin.setPassword(name, password, by),
    setRole: (name, role) => admin.setRole(name, role, by),
    addGrant: (req) => admin.addGrant(req, by),
    removeGrant: (req) => admin.removeGrant(req, by),
    listGrants: () => admin.listGrants(),
    listAgents: () => admin.listAgents(),
    revokeAgent: (name) => admin.revokeAgent(name, by),
    forgetAgent: (name) => admin.forgetAgent(name, by),
    async createEnrollToken(name) {
      relay = await relayInfo();
      return admin.createEnrollToken(name, by);
    },
    pruneAudit: (olderThanMs) => auditLog.prune(new Date(Date.now() - olderThanMs), by),
    rotateKeys: () => rotateSigningKey({ keys: repos.signingKeys, audit, by }),
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
  if (!u.admin) out(`They reach no machine until granted: mssh-relay grant ${u.name} 'PATTERN'`);
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

/** Validate a name argument with its zod schema (UserName, HostName or RoleName: one type), or a CliError naming the rule. */
function checkName(schema: typeof UserName, value: string, what: string): string {
  const r = schema.safeParse(value);
  if (!r.success) throw new CliError(`${JSON.stringify(sanitizeForTerminal(value))} is not a valid ${what}`, r.error.issues[0]?.message ?? '');
  return r.data;
}

async function storeOps(flags: Record<string, unknown>): Promise<AdminOps> {
  const cfg = parseConfig(StoreConfigSchema, flags);
  return adminOps(cfg, async () => ({ url: '', fingerprint: '' }));
}

/** --json: a listing is one JSON array, a single thing (info) one object (the convention of apps/tui/README.md, "JSON output"). */
const printJson = (v: unknown) => out(jsonForTerminal(v, 2));

async function userList(flags: Record<string, unknown>): Promise<void> {
  const users = await withOps(await storeOps(flags), (o) => o.listUsers());
  if (flags.json) printJson(users);
  else process.stdout.write(formatUsersTable(users));
}

async function userDisable(name: string, flags: Record<string, unknown>): Promise<void> {
  checkName(UserName, name, 'user name');
  const ops = await storeOps(flags);
  const via = ops.via;
  const u = await withOps(ops, (o) => o.disableUser(name, flags.killSessions === true));
  out(`Disabled user "${u.name}": their tokens stop working now.${flags.killSessions ? ` Ended ${u.sessionsEnded} live session(s).` : ''}`);
  if (flags.killSessions && via === 'database') out('(The relay is not running, so there were no live sessions to end.)');
}

async function userEnable(name: string, flags: Record<string, unknown>): Promise<void> {
  checkName(UserName, name, 'user name');
  const u = await withOps(await storeOps(flags), (o) => o.enableUser(name));
  out(`Enabled user "${u.name}".`);
}

async function userPasswd(name: string, flags: Record<string, unknown>): Promise<void> {
  checkName(UserName, name, 'user name');
  const password = await readNewPassword({ fromStdin: flags.passwordStdin === true });
  if (password.length < 8) throw new CliError('the password is too short', 'Use at least 8 characters.');
  const u = await withOps(await storeOps(flags), (o) => o.setPassword(name, password));
  out(`Changed the password of "${u.name}".`);
}

async function userSetRole(name: string, role: string | undefined, flags: Record<string, unknown>): Promise<void> {
  checkName(UserName, name, 'user name');
  if (role !== undefined) checkName(RoleName, role, 'role name');
  const u = await withOps(await storeOps(flags), (o) => o.setRole(name, role ?? null));
  out(u.role ? `User "${u.name}" now has the role "${u.role}".` : `User "${u.name}" now has no role.`);
}

function grantRequest(subject: string, pattern: string, flags: Record<string, unknown>): GrantRequest {
  const r = GrantRequest.safeParse({ subjectKind: flags.role ? 'role' : 'user', subject, pattern });
  if (!r.success) {
    throw new CliError(`invalid grant: ${r.error.issues.map((i) => `${String(i.path[0])}: ${i.message}`).join('; ')}`,
      'Example: mssh-relay grant alice \'web-*\' (or --role ops \'db-?\'); patterns use a-z, 0-9, - and the wildcards * and ?.');
  }
  return r.data;
}

async function grantAdd(subject: string, pattern: string, flags: Record<string, unknown>): Promise<void> {
  const req = grantRequest(subject, pattern, flags);
  const r = await withOps(await storeOps(flags), (o) => o.addGrant(req));
  out(r.changed ? `Granted ${req.subjectKind} "${req.subject}" access to ${req.pattern}.` : `${req.subjectKind} "${req.subject}" already had access to ${req.pattern}.`);
}

async function grantRemove(subject: string, pattern: string, flags: Record<string, unknown>): Promise<void> {
  const req = grantRequest(subject, pattern, flags);
  await withOps(await storeOps(flags), (o) => o.removeGrant(req));
  out(`Removed the grant of ${req.pattern} to ${req.subjectKind} "${req.subject}" (new sessions are refused at once).`);
}

async function grantList(flags: Record<string, unknown>): Promise<void> {
  const grants = await withOps(await storeOps(flags), (o) => o.listGrants());
  if (flags.json) printJson(grants);
  else process.stdout.write(grants.length ? formatGrantsTable(grants) : 'No grants: only admins reach machines. Add one with `mssh-relay grant USER PATTERN`.\n');
}

async function agentList(flags: Record<string, unknown>): Promise<void> {
  const agents = await withOps(await storeOps(flags), (o) => o.listAgents());
  if (flags.json) printJson(agents);
  else process.stdout.write(formatAgentsTable(agents));
}

async function agentRevoke(name: string, flags: Record<string, unknown>): Promise<void> {
  checkName(HostName, name, 'machine name');
  const a = await withOps(await storeOps(flags), (o) => o.revokeAgent(name));
  out(`Revoked "${a.name}"${a.wasOnline ? ' and dropped its connection and sessions' : ''}; it is refused from now on. To enrol it again: mssh-relay agent enroll ${a.name}`);
}

async function agentForget(name: string, flags: Record<string, unknown>): Promise<void> {
  checkName(HostName, name, 'machine name');
  const a = await withOps(await storeOps(flags), (o) => o.forgetAgent(name));
  out(`Forgot "${a.name}"${a.wasOnline ? ' and dropped its connection' : ''}; the name is free again.`);
}

async function auditPrune(flags: Record<string, unknown>): Promise<void> {
  const cfg = parseConfig(AuditPruneConfigSchema, flags);
  // On Postgres the prune runs on the database given, never through the running relay: its role is not
  // meant to be able to prune (docs/audit.md, "Database roles"). PGlite: through the relay if it runs.
  const r = cfg.databaseUrl ? await pruneOnDatabase(cfg, cfg.olderThan) : await withOps(await adminOps(cfg, async () => ({ url: '', fingerprint: '' })), (o) => o.pruneAudit(cfg.olderThan));
  out(`Deleted ${r.deleted} audit event(s) older than ${r.cutoff}; the prune itself is recorded as audit.pruned.`);
}

async function pruneOnDatabase(cfg: StoreConfig, olderThanMs: number): Promise<{ deleted: number; cutoff: string }> {
  const database = await openDatabase({ databaseUrl: cfg.databaseUrl, pgliteDir: pgliteDir(cfg.dataDir) });
  try {
    return await new AuditLog({ db: database.db, relayId: loadOrCreateRelayId(cfg.dataDir) }).prune(new Date(Date.now() - olderThanMs), { actor: LOCAL_ADMIN_ACTOR, source: 'cli' });
  } finally {
    await database.close();
  }
}

/**
 * `migrate`: apply the schema migrations as the database owner (serve applies them too when its role may,
 * and otherwise only checks that none is missing), then optionally grant the relay's and the pruner's roles.
 */
async function migrateCmd(flags: Record<string, unknown>): Promise<void> {
  const cfg = parseConfig(StoreConfigSchema, flags);
  const roles = { relayRole: flags.relayRole as string | undefined, pruneRole: flags.pruneRole as string | undefined };
  if (!cfg.databaseUrl && (roles.relayRole || roles.pruneRole)) {
    throw new CliError('--relay-role and --prune-role need Postgres (--database-url)', 'The embedded PGlite database has a single user and no roles.');
  }
  if (!cfg.databaseUrl) prepareDataDir(cfg.dataDir);
  const database = await openDatabase({ databaseUrl: cfg.databaseUrl, pgliteDir: pgliteDir(cfg.dataDir) });
  try {
    out(`Database schema is up to date (${cfg.databaseUrl ? redactDatabaseUrl(cfg.databaseUrl) : pgliteDir(cfg.dataDir)}).`);
    if (roles.relayRole || roles.pruneRole) {
      try {
        await grantRoles(database.db, roles);
      } catch (e) {
        throw new CliError(`cannot grant the roles: ${rootMessage(e)}`, 'Run migrate as the owner of the mssh tables, and create the roles first (docs/audit.md, "Database roles").', e);
      }
      if (roles.relayRole) out(`Granted role "${roles.relayRole}" what mssh-relay serve needs (audit_events: insert only; sessions: no delete).`);
      if (roles.pruneRole) out(`Granted role "${roles.pruneRole}" EXECUTE on mssh_audit_prune (mssh-relay audit prune).`);
    }
  } finally {
    await database.close();
  }
}

/** `keys rotate`: through the running relay (it signs with the new key at once), else on the database. */
async function keysRotate(flags: Record<string, unknown>): Promise<void> {
  const r = await withOps(await storeOps(flags), (o) => o.rotateKeys());
  out(`New signing key ${r.kid}: new tokens are signed with it.`);
  if (r.retired.length > 0) out(`Retired ${r.retired.join(', ')}: still verifying the tokens it issued until they expire (12 h at most).`);
  out('Other relays on the same database pick the new key up within a minute.');
}

// ---------------------------------------------------------------- errors and commands

const RELAY_ERROR_HINTS: Partial<Record<string, string>> = {
  RLY_ERR_NAME_TAKEN: 'Pick another name.',
  RLY_ERR_BAD_REQUEST: 'Check the arguments; see --help.',
  RLY_ERR_UNKNOWN_USER: 'Check the name: mssh-relay user list.',
  RLY_ERR_UNKNOWN_GRANT: 'See the existing grants: mssh-relay grants.',
  RLY_ERR_UNKNOWN_HOST: 'Check the name: mssh-relay agent list.',
};

function report(e: unknown): number {
  const line = (s: string) => process.stderr.write(`${sanitizeForTerminal(s)}\n`);
  if (e instanceof CliError) {
    const [first, ...rest] = e.message.split('\n');
    line(`mssh-relay: ${first}${e.code ? ` (${e.code})` : ''}`);
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
    .option('--ssh-listen <host:port|off>', 'SSH jump listener for stock OpenSSH `ssh -J` (env MSSH_SSH_LISTEN, default port 2222 on the --listen host; off disables it)')
    .option('--tls-cert <file>', 'PEM certificate (chain); default: a self-signed one in the data dir')
    .option('--tls-key <file>', 'PEM private key of --tls-cert')
    .option('--tls-san <name>', 'extra name for the self-signed certificate (repeatable)', collect, [])
    .option('--public-url <url>', 'URL clients and agents use, e.g. https://relay.example.org:8443 (env MSSH_PUBLIC_URL)')
    .addOption(new Option('--log-level <level>', 'log level (env MSSH_LOG_LEVEL, default info)'))
    .option('--stale-after <duration>', 'mark machines not seen for this long as stale, e.g. 30d, 12h (env MSSH_STALE_AFTER, default 30d)')
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
    .option('--max-streams-per-connection <n>', `concurrent HTTP/2 streams (API calls and tunnels) per client connection (default ${HARDENING_DEFAULTS.maxStreamsPerConnection})`)
    .option('--max-connections-per-address <n>', `API connections per client address, IPv6 per /64; trusted proxies exempt; 0: no limit (default ${HARDENING_DEFAULTS.maxConnectionsPerAddress})`)
    .option('--max-pending-per-address <n>', `requests not yet answered per client address (forwarded address behind a trusted proxy); 0: no limit (default ${HARDENING_DEFAULTS.maxPendingPerAddress})`)
    .option('--body-timeout <seconds>', `a JSON request body must arrive within this time, else 408 (default ${HARDENING_DEFAULTS.bodyTimeout})`)
    .action((opts: Record<string, unknown>) => run(() => serve(opts))());

  storeOptions(program.command('info').description('show the data dir, database and certificate fingerprint'))
    .option('--tls-cert <file>', 'the certificate the relay uses, when not the self-signed one')
    .option('--json', 'print one JSON object')
    .action((opts: Record<string, unknown>) => run(() => info(opts))());

  const user = program.command('user').description('manage users');
  storeOptions(user.command('add').argument('<name>', 'user name').description('create a user (through the running relay, else on the database)'))
    .option('--admin', 'make the user an admin')
    .option('--password-stdin', 'read the password from the first line of stdin')
    .action((name: string, opts: Record<string, unknown>) => run(() => userAdd(name, opts))());
  storeOptions(user.command('list').description('list users'))
    .option('--json', 'print a JSON array')
    .action((opts: Record<string, unknown>) => run(() => userList(opts))());
  storeOptions(user.command('disable').argument('<name>', 'user name').description('disable a user: their tokens stop working at once'))
    .option('--kill-sessions', 'also end their live sessions now')
    .action((name: string, opts: Record<string, unknown>) => run(() => userDisable(name, opts))());
  storeOptions(user.command('enable').argument('<name>', 'user name').description('enable a disabled user'))
    .action((name: string, opts: Record<string, unknown>) => run(() => userEnable(name, opts))());
  storeOptions(user.command('passwd').argument('<name>', 'user name').description('set a user\'s password'))
    .option('--password-stdin', 'read the password from the first line of stdin')
    .action((name: string, opts: Record<string, unknown>) => run(() => userPasswd(name, opts))());
  storeOptions(user.command('set-role').argument('<name>', 'user name').argument('[role]', 'role name (omit to clear the role)').description('set or clear a user\'s role'))
    .action((name: string, role: string | undefined, opts: Record<string, unknown>) => run(() => userSetRole(name, role, opts))());

  storeOptions(program.command('grant').argument('<subject>', 'user (or role, with --role)').argument('<pattern>', "host glob, e.g. 'web-*' or 'db-?'").description('let a user (or a role) reach the machines matching a pattern'))
    .option('--role', 'the subject is a role')
    .action((subject: string, pattern: string, opts: Record<string, unknown>) => run(() => grantAdd(subject, pattern, opts))());
  storeOptions(program.command('revoke-grant').argument('<subject>', 'user (or role, with --role)').argument('<pattern>', 'the pattern as granted').description('remove a grant'))
    .option('--role', 'the subject is a role')
    .action((subject: string, pattern: string, opts: Record<string, unknown>) => run(() => grantRemove(subject, pattern, opts))());
  storeOptions(program.command('grants').description('list grants'))
    .option('--json', 'print a JSON array')
    .action((opts: Record<string, unknown>) => run(() => grantList(opts))());

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
  storeOptions(agent.command('list').description('list machines: online, last seen, versions, key fingerprints'))
    .option('--json', 'print a JSON array')
    .action((opts: Record<string, unknown>) => run(() => agentList(opts))());
  storeOptions(agent.command('revoke').argument('<name>', 'machine name').description('refuse a machine from now on and drop its connection and sessions'))
    .action((name: string, opts: Record<string, unknown>) => run(() => agentRevoke(name, opts))());
  storeOptions(agent.command('forget').argument('<name>', 'machine name').description('delete a machine (revoked or not); its name is free again'))
    .action((name: string, opts: Record<string, unknown>) => run(() => agentForget(name, opts))());

  storeOptions(program.command('migrate').description('apply the database migrations (as the owner role), and grant the relay\'s and the pruner\'s roles'))
    .option('--relay-role <role>', 'Postgres role that runs `serve`: grant it what it needs, but no UPDATE/DELETE of the audit trail')
    .option('--prune-role <role>', 'Postgres role that may run `audit prune` (EXECUTE on mssh_audit_prune)')
    .action((opts: Record<string, unknown>) => run(() => migrateCmd(opts))());

  const auditCmd = program.command('audit').description('the audit trail');
  storeOptions(auditCmd.command('prune').description('delete audit events older than an age (the only way rows leave the append-only trail); records audit.pruned'))
    .requiredOption('--older-than <age>', 'age like 365d, 52w or 90d (at least 1d)')
    .action((opts: Record<string, unknown>) => run(() => auditPrune(opts))());

  return program;
}

await buildProgram().parseAsync(process.argv);
