/**
 * `mssh-agent run`: builds the pieces of a running agent (target, relay links, metrics) and maps signals.
 * Loaded by main.ts only for `run`, so that the other commands do not load ssh2, pino or the link code.
 */
import { listenErrorReason } from '@mssh/cli-kit';
import { SOFTWARE_VERSION } from '@mssh/protocol';
import { installBufferReclaim } from '@mssh/protocol/transport';
import { formatTargetChoice, parseTargetChoice, type RunFlags } from './config.js';
import { resolveRunSettings } from './config-file.js';
import { AgentError } from './errors.js';
import { createLogger } from './log.js';
import { relaySources } from './dial/candidates.js';
import { formatHostPort } from './dial/endpoint.js';
import { normalizeFingerprint } from './dial/pinned-tls.js';
import { refusalError } from './dial/refusal.js';
import { AgentSupervisor } from './dial/supervisor.js';
import { loadIdentity } from './enroll/identity.js';
import { readState, storeHostKeys, storeHostKeysIfChanged } from './state/state-dir.js';
import { lockStateDir } from './state/state-lock.js';
import { describeResolution, openTarget, resolveTargetChoice } from './target/choose-target.js';
import { HostKeyRescanner } from './target/host-key-rescan.js';
import type { MetricsServer } from '@mssh/metrics';

const SHUTDOWN_GRACE_MS = 5_000;

export async function runCommand(flags: RunFlags): Promise<void> {
  installBufferReclaim(); // sessions move bulk data through this process (libs/protocol buffer-reclaim.ts)
  const { cfg } = resolveRunSettings(flags); // flags > env > --config file (MSSH_CONFIG) > defaults
  const state = readState(cfg.stateDir);
  // One agent per state directory (an OS lock held until this process ends; see state/state-lock.ts).
  const lock = lockStateDir(cfg.stateDir);
  const identity = loadIdentity(cfg.stateDir);
  const choice = cfg.target ?? parseTargetChoice(state.target);
  if (!choice)
    throw new AgentError(
      'AGT_ERR_STATE_DIR',
      `agent.json in ${cfg.stateDir} has a malformed target "${state.target}"; pass --target auto|embedded|HOST:PORT`,
    );
  const relays = relaySources(state, cfg.relays);
  if (!relays)
    throw new AgentError(
      'AGT_ERR_STATE_DIR',
      `agent.json in ${cfg.stateDir} has a malformed relay address; enrol again into an empty --state-dir`,
    );
  const fingerprint = normalizeFingerprint(state.relayFingerprint);
  if (!fingerprint)
    throw new AgentError(
      'AGT_ERR_STATE_DIR',
      `agent.json in ${cfg.stateDir} has a malformed relay fingerprint; enrol again into an empty --state-dir`,
    );

  const logger = createLogger(cfg.logLevel, cfg.logFormat);
  if (!lock.locked)
    logger.warn(
      { lock: lock.path },
      'flock(1) (util-linux) is not installed, so the state directory is not locked: make sure only one mssh-agent runs on it',
    );
  const { resolved, why } = await resolveTargetChoice(choice);
  logger.info(
    { target: formatTargetChoice(choice), resolved: resolved.kind },
    describeResolution(choice, resolved, why),
  );
  if (cfg.allowForwarding && resolved.kind !== 'embedded') {
    logger.warn(
      '--allow-forwarding applies to the embedded SSH server only; the SSH server at the target decides for itself',
    );
  }
  const opened = await openTarget(resolved, {
    stateDir: cfg.stateDir,
    allowForwarding: cfg.allowForwarding,
    logger: logger.child({ component: 'agent.target' }),
    knownHostKeys: state.hostKeys,
    onHostKeysChanged: (keys) => storeHostKeys(cfg.stateDir, keys),
  });
  const target = opened.target;
  if (opened.sshd) storeHostKeysIfChanged(cfg.stateDir, state.hostKeys, opened.sshd.hostPublicKeys(), logger);
  // Rescans the relay asks for (a client saw a key it does not attest) scan the target at most every 10 s.
  const rescanner = new HostKeyRescanner(() => target.hostKeys());
  // prom-client and the metrics server load only with --metrics-listen.
  const metricsLib = cfg.metricsListen
    ? await Promise.all([import('@mssh/metrics'), import('./metrics/agent-metrics.js')])
    : null;
  const metrics = metricsLib ? metricsLib[1].createAgentMetrics(metricsLib[0].createProcessRegistry()) : null;
  const supervisor = new AgentSupervisor({
    relays,
    links: cfg.links,
    relayFingerprint: fingerprint,
    name: state.name,
    identity,
    target,
    logger: logger.child({ component: 'agent.link' }),
    rescanHostKeys: () => rescanner.keys(),
    sessionMetrics: metrics?.sessions,
    onOutcome: metrics ? (o) => metrics.outcome(o) : undefined,
    onLinkUp: metrics ? (e) => metrics.linkUp(e) : undefined,
  });
  let metricsServer: MetricsServer | null = null;
  if (metrics && metricsLib && cfg.metricsListen) {
    const { startMetricsServer } = metricsLib[0];
    metrics.readFrom(() => supervisor.status());
    const at = formatHostPort(cfg.metricsListen);
    try {
      metricsServer = await startMetricsServer({
        ...cfg.metricsListen,
        registry: metrics.registry,
        onScrapeError: (err) => logger.error({ err }, 'collecting the metrics failed'),
      });
    } catch (e) {
      await opened.close().catch(() => undefined);
      throw new AgentError(
        'AGT_ERR_METRICS_LISTEN',
        `cannot listen for metrics on ${at}: ${listenErrorReason(e)}\n` +
          'Pick another address with --metrics-listen HOST:PORT (or MSSH_METRICS_LISTEN), or stop the program using it.',
        { cause: e },
      );
    }
    logger.info(
      { metrics: `http://${formatHostPort({ host: cfg.metricsListen.host, port: metricsServer.port })}/metrics` },
      `metrics on http://${formatHostPort({ host: cfg.metricsListen.host, port: metricsServer.port })}/metrics`,
    );
  }
  let signalled = false;
  const onSignal = (sig: NodeJS.Signals): void => {
    if (signalled) {
      logger.warn(`second ${sig}: exiting now`);
      process.exit(1);
    }
    signalled = true;
    logger.info(`${sig}: closing the relay link(s) (running sessions get ${SHUTDOWN_GRACE_MS} ms)`);
    supervisor.stop(SHUTDOWN_GRACE_MS).catch((err: unknown) => logger.error({ err }, 'shutdown failed'));
  };
  process.on('SIGTERM', onSignal);
  process.on('SIGINT', onSignal);
  const enrolledRelay = formatHostPort(relays[0]!.endpoint);
  const more =
    relays.length > 1
      ? ` (and ${relays
          .slice(1)
          .map((r) => formatHostPort(r.endpoint))
          .join(', ')})`
      : '';
  const links = cfg.links > 1 ? `, ${cfg.links} links to different relays` : '';
  logger.info(
    {
      name: state.name,
      relay: enrolledRelay,
      relays: relays.map((r) => formatHostPort(r.endpoint)),
      links: cfg.links,
      target: target.description,
      version: SOFTWARE_VERSION,
    },
    `mssh-agent ${SOFTWARE_VERSION} starting: ${state.name} via relay ${enrolledRelay}${more}${links}, target ${target.description}`,
  );
  const result = await supervisor.run();
  await metricsServer?.close();
  try {
    await opened.close();
  } catch (err) {
    logger.warn({ err: (err as Error).message }, 'could not stop the embedded SSH server cleanly');
  }
  if (result.refusal) throw refusalError(result.refusal, cfg.stateDir, state.name);
  logger.info('stopped');
  process.exit(result.exitCode);
}

/** `install-service [--print] -- RUN-OPTIONS`: the systemd unit on stdout, or written and started. */
