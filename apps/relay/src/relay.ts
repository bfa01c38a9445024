/**
 * The running relay as one component: `start()` builds and starts every part, `drain()` stops accepting,
 * `stop()` ends everything in ONE order, the same after a signal and after a failed start:
 *
 *   1. timers          periodic purges and key reloads stop
 *   2. listeners       the HTTPS listener stops accepting (open API calls finish), the SSH jump listener
 *                      closes with its connections (drain() is steps 1-2)
 *   3. agent links     every running session ends (relay_shutdown, told to its client), then the links close
 *   4. http            the HTTPS server has finished closing
 *   5. admin socket
 *   6. sessions        the recorder's last byte counts and session ends
 *   7. audit           relay.stopped, then pending audit writes flushed
 *   8. database        every step above may still write to it
 *   9. metrics         the --metrics-listen endpoint, last: a scrape sees the drain and the stop
 *
 * A step whose part was never started is skipped; a failing step is logged and the next one runs.
 *
 * `shutdown()` is the drain of SIGTERM and `mssh-relay drain` (issue 19, upgrade without downtime), which
 * ends in stop():
 *
 *   at once          /readyz answers 503 RLY_ERR_DRAINING, agents are told to move (router.moveAgents),
 *                    the session gate refuses new sessions on every door (RLY_ERR_DRAINING), every client
 *                    HTTP/2 connection gets a GOAWAY; relay.draining is audited
 *   + --drain-delay  both listeners stop accepting (open connections and their sessions go on)
 *   sessions ended,  stop(); sessions still running when --drain-timeout (counted from the drain's start)
 *   or the timeout   passes are ended first, reason relay_shutdown
 *
 * stop() during a drain (a second SIGTERM) cuts the waits short and stops at once.
 *
 *   mssh (client) --HTTPS/h2, JWT--> relay --one TLS+h2 link per agent--> mssh-agent --> sshd
 */
import type { AddressInfo } from 'node:net';
import type { Logger } from 'pino';
import { prepareDummyHash } from '@mssh/auth';
import { SOFTWARE_VERSION } from '@mssh/protocol';
import { defaultPublicUrl, formatHostPort, sshJumpListen, type ServeConfig } from './config.js';
import { cliFailure, codedCliError } from './errors.js';
import { listenErrorReason } from '@mssh/cli-kit';
import { loadOrCreateRelayId, pgliteDir, prepareDataDir } from './data-dir.js';
import { serveBusy, tryLockDataDir } from './data-dir-lock.js';
import { createSessionGate } from './session/gate.js';
import { createRepositories, openDatabase, redactDatabaseUrl, rootMessage, type Database } from './db/index.js';
import { DbAuditSink } from './audit/audit-sink.js';
import { SessionRecorder } from './audit/session-recorder.js';
import { AUDIT } from './audit/codes.js';
import { loadOrCreateTls, tlsPaths } from './tls/certificate.js';
import { loadTokenService, reloadTokenKeys, rotateSigningKey } from './auth/token-keys.js';
import { HashSlots } from './limits/hash-slots.js';
import { LoginGuard } from './limits/login-guard.js';
import { bootstrapAdmin, BOOTSTRAP_ADMIN } from './auth/bootstrap.js';
import { createServices } from './services.js';
import { buildServer } from './http/server.js';
import { createAgentBundle } from './agent-bundle/agent-bundle.js';
import { createTunnelRouter } from './tunnel/router.js';
import { adminSocketPath, claimAdminSocketPath, startAdminSocket } from './admin/admin-socket.js';
import { checkServeDatabase } from './admin/admin-target.js';
import { requestedDatabase, writeDatabaseRecord } from './admin/database-record.js';
import { loadOrCreateJumpHostKey } from './ssh-jump/host-key.js';
import { createJumpServer, type JumpServer } from './ssh-jump/jump-server.js';
import { Fleet } from './fleet/fleet.js';
import type { FleetNews } from './fleet/bus.js';
import { loadOrCreatePeerIdentity } from './fleet/peer-identity.js';
import { toFleetRelayInfo } from './fleet/store.js';
import type { TunnelRouter } from './tunnel/types.js';
import { DrainState, type DrainReport, type DrainStatus } from './drain-state.js';
import { createProcessRegistry, startMetricsServer, type MetricsServer } from '@mssh/metrics';
import { createRelayMetrics, type RelayMetrics } from './metrics/relay-metrics.js';

/** The steps of stop(), in order (see the comment above). */
export const STOP_STEPS = [
  'timers',
  'listeners',
  'agent links',
  'http',
  'admin socket',
  'sessions',
  'audit',
  'database',
  'metrics',
] as const;
export type StopStep = (typeof STOP_STEPS)[number];

export interface RelayOptions {
  cfg: ServeConfig;
  logger: Logger;
  /** The lines others parse (listening address, fingerprint, bootstrap password). */
  out: (line: string) => void;
  /** Told (and awaited) before each stop step runs (tests; the log says the same at debug level). */
  onStopStep?: (step: StopStep) => void | Promise<void>;
  /**
   * A drain began (shutdown(): SIGTERM or `mssh-relay drain`): told once, with the longest it may take
   * before its stop begins (main.ts bounds the whole with it).
   */
  onDrain?: (d: { reason: string; budgetMs: number }) => void;
}

export type RelayState = 'new' | 'serving' | 'draining' | 'stopping';

export interface Relay {
  start(): Promise<void>;
  /** Stop accepting: timers and both listeners (steps 1-2 of stop). */
  drain(): Promise<void>;
  /** Everything, in STOP_STEPS order; the same promise when called again. */
  stop(reason: string): Promise<void>;
  /**
   * The drain (see the top of this file), then stop(reason); the same promise when called again. Before a
   * successful start: stop(reason).
   */
  shutdown(reason: string): Promise<void>;
  /** serving after start(); draining once shutdown() began; stopping once stop() began. */
  readonly state: RelayState;
  /** Resolves when stop() has finished (whoever called it: a signal, `mssh-relay drain`, a failed start). */
  readonly stopped: Promise<void>;
  /** The bound HTTPS, SSH and metrics ports once started (SSH, metrics null when off). */
  readonly ports: { https: number; ssh: number | null; metrics: number | null } | null;
}

/** How often a drain looks whether the running sessions have ended. */
const DRAIN_POLL_MS = 100;

export function createRelay(opts: RelayOptions): Relay {
  const { cfg, logger, out } = opts;
  let database: Database | null = null;
  /** The data directory's lock (data-dir-lock.ts), held from before the database opens until stopped. */
  let dataDirLock: (() => void) | null = null;
  let audit: DbAuditSink | null = null;
  let recorder: SessionRecorder | null = null;
  let router: ReturnType<typeof createTunnelRouter> | null = null;
  let app: ReturnType<typeof buildServer> | null = null;
  let appClosing: Promise<void> | null = null;
  let jump: JumpServer | null = null;
  let adminSock: { close(): Promise<void> } | null = null;
  let fleet: Fleet | null = null;
  let metricsServer: MetricsServer | null = null;
  /** The Prometheus metrics (--metrics-listen), or null when off: then nothing is counted. */
  const metrics: RelayMetrics | null = cfg.metricsListen ? createRelayMetrics(createProcessRegistry()) : null;
  const timers: NodeJS.Timeout[] = [];
  let ports: Relay['ports'] = null;
  let stopping: Promise<void> | null = null;
  let draining: Promise<void> | null = null;
  let shuttingDown: Promise<void> | null = null;
  const drainState = new DrainState();
  let listenersClosed = false;
  let drainEnd: { drainedMs: number; sessionsEnded: number } | null = null;
  let drainReport: DrainReport | null = null;
  /** A drain's pending waits: stop() beginning (a second signal) cuts them short. */
  const drainWaits = new Set<() => void>();
  const wakeDrain = () => {
    for (const wake of drainWaits) wake();
  };
  let resolveStopped: () => void = () => undefined;
  const stopped = new Promise<void>((resolve) => (resolveStopped = resolve));
  const drainDelayMs = cfg.drainDelay * 1000;
  const drainTimeoutMs = cfg.drainTimeout * 1000;

  const step = async (name: StopStep, fn: () => Promise<void> | void) => {
    await opts.onStopStep?.(name);
    logger.debug({ step: name }, 'stopping');
    try {
      await fn();
    } catch (err) {
      logger.error({ err, step: name }, `stopping: ${name} failed`);
    }
  };

  const drain = (): Promise<void> => {
    draining ??= (async () => {
      await step('timers', () => {
        for (const t of timers) clearInterval(t);
      });
      await step('listeners', async () => {
        await fleet?.drain();
        appClosing = app
          ? app.close().catch((err: unknown) => logger.error({ err }, 'closing the HTTP server failed'))
          : null;
        await jump?.close();
      });
    })();
    return draining;
  };

  const stop = (reason: string): Promise<void> => {
    stopping ??= (async () => {
      wakeDrain();
      await drain();
      await step('agent links', async () => {
        // Sessions still running end now: their clients are told why (libs/protocol tunnel-end.ts).
        router?.closeAllSessions?.('relay_shutdown');
        // Out of the fleet first (no peer routes here any more), then the links and the peer links.
        await fleet?.stop();
        await router?.close();
        await fleet?.closeLinks();
      });
      await step('http', async () => {
        await appClosing;
      });
      await step('admin socket', async () => {
        await adminSock?.close();
      });
      await step('sessions', async () => {
        await recorder?.close();
      });
      await step('audit', async () => {
        if (!audit) return;
        if (ports)
          audit.emit({ ...AUDIT.relayStopped, details: { signal: reason, pid: process.pid, ...(drainEnd ?? {}) } });
        await audit.flush();
        audit.writer.close();
      });
      await step('database', async () => {
        await database?.close();
      });
      await step('metrics', async () => {
        await metricsServer?.close();
      });
      // Last: the database is closed, another process may open it now.
      dataDirLock?.();
      dataDirLock = null;
    })();
    void stopping.then(resolveStopped);
    return stopping;
  };

  /** Wait ms, or less when stop() begins meanwhile. */
  const pause = (ms: number) =>
    new Promise<void>((resolve) => {
      if (stopping) return resolve();
      const wake = () => {
        clearTimeout(t);
        drainWaits.delete(wake);
        resolve();
      };
      const t = setTimeout(wake, ms);
      drainWaits.add(wake);
    });

  /** Sessions with a committed start and no end yet, or an open stream to an agent. */
  const sessionsLeft = () => Math.max(recorder?.active().length ?? 0, router?.activeSessions() ?? 0);
  const liveCounts = () => ({ sessions: sessionsLeft(), agents: router?.onlineNames().length ?? 0 });

  /** The drain's first instant: everything that must change at once. Returns what it found. */
  const beginDrain = (reason: string, by?: { actor: string; source: string }): DrainReport => {
    if (drainReport) return { ...drainReport, alreadyDraining: true };
    const { sessions, agents } = liveCounts(); // before the GOAWAYs: what was running when it began
    drainState.begin(); // /readyz 503, the gate refuses, GOAWAY on client connections
    const report: DrainReport = {
      pid: process.pid,
      alreadyDraining: false,
      since: new Date(drainState.since!).toISOString(),
      sessions,
      agents,
      agentsMoved: null,
      delayMs: drainDelayMs,
      timeoutMs: drainTimeoutMs,
    };
    drainReport = report;
    void fleet?.drain(); // the relays row says draining: peers prefer other holders
    const moved = router?.moveAgents?.();
    report.agentsMoved = moved ?? null;
    audit?.emit({
      ...AUDIT.relayDraining,
      ...(by ?? {}),
      details: {
        reason,
        pid: process.pid,
        sessions,
        agents,
        agentsMoved: report.agentsMoved,
        delayMs: drainDelayMs,
        timeoutMs: drainTimeoutMs,
      },
    });
    logger.info(
      { reason, sessions, agents, agentsMoved: report.agentsMoved, delayMs: drainDelayMs, timeoutMs: drainTimeoutMs },
      `draining (${reason}): /readyz answers 503, new sessions are refused (RLY_ERR_DRAINING), ` +
        (moved === undefined
          ? `${agents} agent(s) stay until the stop (this relay cannot move them); `
          : `${moved} agent(s) told to move; `) +
        `${sessions} running session(s) may go on for up to ${cfg.drainTimeout} s; the listeners close in ${cfg.drainDelay} s`,
    );
    return report;
  };

  const shutdown = (reason: string, by?: { actor: string; source: string }): Promise<void> => {
    if (!ports || stopping) return stop(reason);
    shuttingDown ??= (async () => {
      beginDrain(reason, by);
      const t0 = drainState.since!;
      opts.onDrain?.({ reason, budgetMs: Math.max(drainDelayMs, drainTimeoutMs) });
      await pause(Math.max(0, t0 + drainDelayMs - Date.now()));
      if (stopping) return stopping;
      // Stop accepting: later connection attempts are refused (a balancer sends them elsewhere); open
      // connections, their running sessions and API calls go on.
      listenersClosed = true;
      app?.server.close();
      await jump?.stopListening();
      logger.info({ sessions: sessionsLeft() }, 'draining: the listeners are closed; new connections are refused');
      for (let i = 0; i < 1_000_000 && sessionsLeft() > 0 && Date.now() < t0 + drainTimeoutMs && !stopping; i++)
        await pause(Math.min(DRAIN_POLL_MS, Math.max(1, t0 + drainTimeoutMs - Date.now())));
      if (stopping) return stopping;
      const left = sessionsLeft();
      let ended = 0;
      if (left > 0) {
        ended = router?.closeAllSessions?.('relay_shutdown') ?? 0;
        logger.warn(
          { sessions: left, ended, timeoutMs: drainTimeoutMs },
          `drain timeout (${cfg.drainTimeout} s): ending ${left} running session(s) (relay_shutdown)`,
        );
      } else {
        logger.info(
          { ms: Date.now() - t0 },
          `drained: no session is running (${Date.now() - t0} ms after the drain began)`,
        );
      }
      drainEnd = { drainedMs: Date.now() - t0, sessionsEnded: ended };
      await stop(reason);
    })();
    return shuttingDown;
  };

  const drainStatus = (): DrainStatus => ({
    pid: process.pid,
    draining: drainState.draining,
    since: drainState.since === null ? null : new Date(drainState.since).toISOString(),
    sessions: sessionsLeft(),
    agents: liveCounts().agents,
    listenersClosed,
    delayMs: drainDelayMs,
    timeoutMs: drainTimeoutMs,
  });

  async function start(): Promise<void> {
    const startedAt = new Date();
    prepareDataDir(cfg.dataDir);
    // One process on the data directory (PGlite allows one only): refuse at once if another holds it.
    const lock = tryLockDataDir(cfg.dataDir, 'serve');
    if (lock.held) throw serveBusy(cfg.dataDir, lock);
    if (!lock.locked)
      logger.warn('flock(1) is not installed: the data directory is not locked against a second process');
    dataDirLock = lock.release;
    const thisRelay = loadOrCreateRelayId(cfg.dataDir); // before anything else: a damaged id refuses the start
    const sockPath = adminSocketPath(cfg.dataDir);
    await claimAdminSocketPath(sockPath);
    checkServeDatabase(cfg);

    const tls = await loadOrCreateTls({
      dataDir: cfg.dataDir,
      certFile: cfg.tlsCert,
      keyFile: cfg.tlsKey,
      sans: cfg.tlsSan,
    });
    if (tls.created) logger.info({ cert: tls.certPath, names: tls.names }, 'created a self-signed TLS certificate');
    if (tls.missingSans.length > 0) {
      logger.warn(
        { missing: tls.missingSans, cert: tls.certPath },
        `the existing certificate does not name ${tls.missingSans.join(', ')}; to include them, move ${tlsPaths(cfg.dataDir).dir} away and restart (the fingerprint changes: re-pin clients and agents)`,
      );
    }

    database = await openDatabase({
      databaseUrl: cfg.databaseUrl,
      pgliteDir: pgliteDir(cfg.dataDir),
      onPoolError: (err) => logger.warn({ err: err.message }, 'idle database connection failed'),
    });
    writeDatabaseRecord(cfg.dataDir, requestedDatabase(cfg.databaseUrl));
    logger.info(
      { kind: database.kind, where: cfg.databaseUrl ? redactDatabaseUrl(cfg.databaseUrl) : pgliteDir(cfg.dataDir) },
      'database ready',
    );

    const repos = createRepositories(database.db);
    const auditLogger = logger.child({ component: 'relay.audit' });
    audit = new DbAuditSink({ db: database.db, relayId: thisRelay, logger: auditLogger, metrics: metrics?.audit });
    recorder = new SessionRecorder({
      db: database.db,
      writer: audit.writer,
      relayId: thisRelay,
      logger: auditLogger,
      progressIntervalMs: cfg.auditProgressMs,
    });
    // Sessions a previous run left open (kill -9, power loss) are closed before anything else starts.
    let recovered: number;
    try {
      recovered = await recorder.recoverCrashed();
    } catch (e) {
      throw cliFailure(
        `cannot close the sessions a previous run left open: ${rootMessage(e)}`,
        'Check that the database is reachable and writable, then start again.',
        e,
      );
    }
    if (recovered > 0)
      logger.warn(
        { sessions: recovered },
        `closed ${recovered} session(s) left open by a previous run (end reason relay_crashed)`,
      );
    const { tokens, createdKey } = await loadTokenService(repos.signingKeys);
    if (createdKey) logger.info({ kid: tokens.signingKid }, 'created the token signing key');
    await prepareDummyHash();
    const boot = await bootstrapAdmin({ users: repos.users, audit }, cfg.bootstrapPassword);

    router = createTunnelRouter({
      onPresence: (e) => fleet?.presence(e),
      directory: repos.agents,
      audit,
      logger,
      relayId: thisRelay, // sent in each agent's welcome: agents with several links tell relays apart by it
      minProtocolVersion: cfg.minProtocolVersion,
      maxAgents: cfg.maxAgents,
      maxControlFramesPerSecond: cfg.maxH2ControlFrames,
      metrics: metrics?.tunnel,
      sessionCaps: {
        maxSessionsPerUser: cfg.maxSessionsPerUser,
        maxSessionsPerAgent: cfg.maxSessionsPerAgent,
        maxSessions: cfg.maxSessions,
      },
    });
    const relay = {
      url: cfg.publicUrl ?? defaultPublicUrl(cfg.listen),
      fingerprint: tls.fingerprint,
      publicKeyPin: tls.publicKeyPin,
    };
    if (cfg.peerListen && cfg.databaseUrl) {
      const localRouter = router;
      fleet = new Fleet({
        db: database.db,
        databaseUrl: cfg.databaseUrl,
        relayId: thisRelay,
        identity: await loadOrCreatePeerIdentity(cfg.dataDir, thisRelay),
        peerListen: cfg.peerListen,
        peerUrl: cfg.peerUrl,
        publicUrl: () => relay.url,
        router: localRouter,
        logger,
        leaseMs: cfg.fleetLeaseMs,
        closeSessionsOf: (id) => recorder!.recoverCrashed(id),
        onNews: (news) => actOnFleetNews(news),
        onResync: () =>
          void reloadTokenKeys(repos.signingKeys, tokens).catch((err) =>
            logger.warn({ err }, 'reloading the signing keys failed'),
          ),
        onLost: (e) =>
          audit!.emit({
            ...AUDIT.relayLost,
            details: { relay: e.relayId, sessionsClosed: e.sessionsClosed, presenceDropped: e.presenceDropped },
          }),
      });
    }
    // What an admin does on this relay reaches every relay of the fleet (fleet/bus.ts), within a second.
    const fleetRouter: TunnelRouter = fleet
      ? {
          ...router,
          closeSessionsOfUser: (user, reason) => {
            fleet!.publish({ t: 'end-user-sessions', user, reason });
            return router!.closeSessionsOfUser(user, reason);
          },
          closeAgent: (name, reason, agentId) => {
            fleet!.publish({ t: 'close-agent', name, reason, agentId });
            return router!.closeAgent(name, reason, agentId);
          },
        }
      : router;
    let relayingNews = false;
    let jumpBound: { host: string; port: number } | null = null;
    const services = createServices({
      repos,
      tokens,
      audit,
      router: fleetRouter,
      fleetOnline: fleet ? () => fleet!.onlineNames() : undefined,
      publishHostAccessChanged: fleet
        ? (host) => void fleet!.publish(host === null ? { t: 'grants-changed' } : { t: 'host-access-changed', host })
        : undefined,
      relays: async () =>
        fleet
          ? (await fleet.list()).map((r) => toFleetRelayInfo(r, thisRelay))
          : [
              {
                id: thisRelay,
                peerUrl: null,
                publicUrl: relay.url,
                version: SOFTWARE_VERSION,
                pid: process.pid,
                startedAt: startedAt.toISOString(),
                leaseUntil: null,
                state: draining ? 'draining' : 'serving',
                agents: router!.onlineNames().length,
                sessions: recorder!.active().length,
                self: true,
              },
            ],
      relay: () => relay,
      sshJump: () => (jumpBound ? { host: new URL(relay.url).hostname, port: jumpBound.port } : null),
      staleAfterMs: cfg.staleAfter,
      relayId: thisRelay,
      liveSessions: () => recorder!.active(),
      minProtocolVersion: cfg.minProtocolVersion,
      hashSlots: new HashSlots({ max: cfg.maxPasswordChecks }),
    });
    const actOnFleetNews = (news: FleetNews): void => {
      switch (news.t) {
        case 'end-user-sessions':
          router!.closeSessionsOfUser(news.user, news.reason);
          return;
        case 'close-agent':
          router!.closeAgent(news.name, news.reason, news.agentId);
          return;
        case 'user-change':
          relayingNews = true;
          try {
            services.userChanges.emit(news.change);
          } finally {
            relayingNews = false;
          }
          return;
        case 'host-access-changed':
          services.recheckHost(news.host).catch((err) => logger.warn({ err }, 'rechecking access to a machine failed'));
          return;
        case 'grants-changed':
          services
            .recheckHost(null)
            .catch((err) => logger.warn({ err }, 'rechecking access after a grant removal failed'));
          return;
        case 'keys-rotated':
          reloadTokenKeys(repos.signingKeys, tokens).catch((err) =>
            logger.warn({ err }, 'reloading the signing keys failed'),
          );
          return;
      }
    };
    if (fleet) {
      const f = fleet;
      services.userChanges.subscribe((change) => {
        if (!relayingNews) f.publish({ t: 'user-change', change });
      });
    }
    // One login limiter for both doors (POST /v1/auth/login and the SSH jump listener), per --login-attempts.
    const loginGuard = new LoginGuard({
      perSource: cfg.loginAttempts,
      perUser: cfg.loginAttempts * 2,
      metrics: metrics?.logins,
    });
    // The one place a session is admitted, whatever door it came through (session/gate.ts).
    const gate = createSessionGate({
      router,
      hosts: services.hosts,
      access: services.access,
      ledger: recorder,
      audit,
      logger,
      fleet,
      draining: () => drainState.draining, // a drain refuses new sessions on every door (RLY_ERR_DRAINING)
      metrics: metrics?.gate,
    });
    const http = buildServer({
      tls,
      logger,
      router,
      tokens,
      ...services,
      gate,
      audit,
      drain: drainState, // /readyz, and a GOAWAY on every client connection when the drain begins
      // The one-line agent install: the tarball is built at the first download, never at start.
      agentBundle: createAgentBundle({ dataDir: cfg.dataDir, logger }),
      hardening: {
        trustedProxies: cfg.trustedProxy,
        maxBodyBytes: cfg.maxBodyBytes,
        connection: {
          handshakeTimeoutMs: cfg.handshakeTimeout * 1000,
          maxHeaderBytes: cfg.maxHeaderBytes,
          maxStreamsPerConnection: cfg.maxStreamsPerConnection,
          maxConnectionsPerAddress: cfg.maxConnectionsPerAddress,
          maxPendingPerAddress: cfg.maxPendingPerAddress,
          maxControlFramesPerSecond: cfg.maxH2ControlFrames,
        },
        bodyTimeoutMs: cfg.bodyTimeout * 1000,
        loginGuard,
        minProtocolVersion: cfg.minProtocolVersion,
        onSourceLimited: metrics ? () => metrics.sourceLimited() : undefined,
      },
    });
    try {
      await http.listen({ host: cfg.listen.host, port: cfg.listen.port });
    } catch (e) {
      throw codedCliError(
        'RLY_CLI_ERR_LISTEN',
        `cannot listen on ${formatHostPort(cfg.listen.host, cfg.listen.port)}: ${listenErrorReason(e)}`,
        'Pick another address with --listen HOST:PORT (or MSSH_LISTEN), or stop the program using it.',
        e,
      );
    }
    app = http;
    const bound = http.server.address() as AddressInfo;
    relay.url = cfg.publicUrl ?? defaultPublicUrl({ host: cfg.listen.host, port: bound.port });

    // The SSH jump listener (ssh -J user@relay:2222 login@machine): the same grants as the HTTPS path.
    const sshLines: string[] = [];
    const sshAt = sshJumpListen(cfg);
    if (sshAt) {
      const { key: hostKey, created } = loadOrCreateJumpHostKey(cfg.dataDir);
      if (created)
        logger.info({ path: hostKey.path, fingerprint: hostKey.fingerprint }, 'created the SSH jump host key');
      const jumpServer = createJumpServer({
        hostKey,
        keys: services.sshKeys,
        changes: services.userChanges, // a removed key or changed role closes the connections it authenticated
        gate, // the same admission as the HTTPS tunnel: grants, host, caps, committed session.start, audit
        hosts: services.hosts, // the shell's list of machines
        access: services.access,
        onAuthFailure: (e) => audit!.sshAuthFailed(e), // user.login USR001W, via jump (sampled)
        loginGuard, // the HTTPS login's limiter: one budget of failed logins per address and user name
        logger,
        publicAddress: () => `${new URL(relay.url).hostname}:${jumpBound?.port ?? sshAt.port}`,
      });
      try {
        jumpBound = await jumpServer.listen(sshAt.host, sshAt.port);
      } catch (e) {
        const why = listenErrorReason(e);
        const hint =
          'Pick another address with --ssh-listen HOST:PORT (or MSSH_SSH_LISTEN), or turn the SSH jump listener off with --ssh-listen off.';
        // Asked for explicitly: a failure stops the relay. The default port being taken only turns the listener off.
        if (cfg.sshListen !== undefined)
          throw codedCliError(
            'RLY_CLI_ERR_LISTEN',
            `cannot listen for SSH on ${formatHostPort(sshAt.host, sshAt.port)}: ${why}`,
            hint,
            e,
          );
        logger.warn(
          { listen: formatHostPort(sshAt.host, sshAt.port), err: why },
          `SSH jump listener not started: ${why}. ${hint}`,
        );
        sshLines.push(`SSH jump listener: off (${formatHostPort(sshAt.host, sshAt.port)}: ${why}; see --ssh-listen)`);
      }
      if (jumpBound) {
        jump = jumpServer;
        sshLines.push(
          `SSH jump listener on ${formatHostPort(sshAt.host, jumpBound.port)}`,
          `SSH host key fingerprint: ${hostKey.fingerprint}`,
        );
      }
    }

    adminSock = await startAdminSocket({
      admin: services.admin,
      logger,
      path: sockPath,
      auditLog: services.auditLog,
      database: requestedDatabase(cfg.databaseUrl),
      dataDir: cfg.dataDir,
      keys: {
        rotate: async (by) => {
          const r = await rotateSigningKey({ keys: repos.signingKeys, audit: audit!, tokens, by });
          fleet?.publish({ t: 'keys-rotated' });
          return r;
        },
      },
      drain: {
        // `mssh-relay drain`: the same drain as SIGTERM; answers once it has begun.
        begin: (by) => {
          const already = drainReport !== null;
          void shutdown('mssh-relay drain', by);
          if (drainReport) return { ...drainReport, alreadyDraining: already };
          // Stopping already, without a drain (SIGINT, a second SIGTERM): nothing to begin.
          const st = drainStatus();
          return {
            pid: st.pid,
            alreadyDraining: true,
            since: st.since ?? new Date().toISOString(),
            sessions: st.sessions,
            agents: st.agents,
            agentsMoved: null,
            delayMs: st.delayMs,
            timeoutMs: st.timeoutMs,
          };
        },
        status: drainStatus,
      },
    });

    if (metrics && cfg.metricsListen) {
      const r = router;
      const writer = audit.writer;
      const db = database;
      metrics.readFrom({
        tunnel: () => ({ ...r.stats(), sessions: r.activeSessions() }),
        auditQueue: () => writer.pending,
        dbPool: db.poolStats ? () => db.poolStats!() : undefined,
      });
      const at = cfg.metricsListen;
      try {
        metricsServer = await startMetricsServer({
          host: at.host,
          port: at.port,
          registry: metrics.registry,
          onScrapeError: (err) => logger.error({ err }, 'collecting the metrics failed'),
        });
      } catch (e) {
        throw codedCliError(
          'RLY_CLI_ERR_LISTEN',
          `cannot listen for metrics on ${formatHostPort(at.host, at.port)}: ${listenErrorReason(e)}`,
          'Pick another address with --metrics-listen HOST:PORT (or MSSH_METRICS_LISTEN), or stop the program using it.',
          e,
        );
      }
      sshLines.push(`Metrics on http://${formatHostPort(at.host, metricsServer.port)}/metrics`);
    }

    recorder.startProgress();
    audit.emit({
      ...AUDIT.relayStarted,
      source: formatHostPort(cfg.listen.host, bound.port),
      details: {
        version: SOFTWARE_VERSION,
        url: relay.url,
        pid: process.pid,
        database: database.kind,
        recoveredSessions: recovered,
      },
    });
    ports = { https: bound.port, ssh: jumpBound?.port ?? null, metrics: metricsServer?.port ?? null };
    if (fleet) {
      let joined: { peerUrl: string };
      try {
        joined = await fleet.start();
      } catch (e) {
        throw codedCliError(
          'RLY_CLI_ERR_LISTEN',
          `cannot join the relay fleet on ${formatHostPort(cfg.peerListen!.host, cfg.peerListen!.port)}: ${listenErrorReason(e)}`,
          'Pick another address with --peer-listen HOST:PORT (or MSSH_PEER_LISTEN), and check that the database is reachable.',
          e,
        );
      }
      sshLines.push(`Fleet peer listener on ${joined.peerUrl} (relay id ${thisRelay})`);
    }

    const purge = setInterval(() => {
      repos.revokedTokens.purgeExpired().catch((err) => logger.warn({ err }, 'purging expired revocations failed'));
    }, 3600_000);
    // Relays sharing a database pick up a key rotated on another one.
    const keyReload = setInterval(() => {
      reloadTokenKeys(repos.signingKeys, tokens).catch((err) =>
        logger.warn({ err }, 'reloading the signing keys failed'),
      );
    }, 60_000);
    for (const t of [purge, keyReload]) {
      t.unref();
      timers.push(t);
    }

    out(`mssh-relay listening on https://${formatHostPort(cfg.listen.host, bound.port)}`);
    out(`TLS certificate fingerprint: ${tls.fingerprint}`);
    if (boot.created) out(`Created user "${BOOTSTRAP_ADMIN}" with password: ${boot.password} (shown once)`);
    for (const l of sshLines) out(l);
    logger.info(
      {
        url: relay.url,
        listen: formatHostPort(cfg.listen.host, bound.port),
        adminSocket: sockPath,
        version: SOFTWARE_VERSION,
      },
      'relay started',
    );
  }

  return {
    start,
    drain,
    stop,
    shutdown: (reason) => shutdown(reason),
    get state(): RelayState {
      if (stopping) return 'stopping';
      if (drainState.draining) return 'draining';
      return ports ? 'serving' : 'new';
    },
    stopped,
    get ports() {
      return ports;
    },
  };
}
