/**
 * The `mssh-relay` commands other than `serve` (main.ts). What only some commands need (the database code,
 * ssh2, the relay itself) is imported where it is used: a command through the admin socket loads none of it.
 *
 * The `mssh-relay` commands other than `serve` (main.ts): `info`, `drain`, the admin commands (defined once in
 * @mssh/cli-kit, shared with `mssh admin`), `agent enroll`, `keys rotate`, `audit prune` and `migrate`.
 * Each validates its flags with its config schema, works through the running relay's admin socket or on
 * the database (admin/offline-ops.ts), and prints its result on stdout.
 */
import { existsSync } from 'node:fs';
import { createAdminCommands, CliError, TtyPrompter, installOneLiner, labelFlags } from '@mssh/cli-kit';
import { formatLabels, jsonForTerminal } from '@mssh/protocol';
import {
  AgentEnrollConfigSchema,
  AuditPruneConfigSchema,
  InfoConfigSchema,
  StoreConfigSchema,
  defaultPublicUrl,
  parseConfig,
  type StoreConfig,
} from '../config.js';
import { cliFailure, codedCliError, RelayError } from '../errors.js';
import { loadOrCreateRelayId, pgliteDir, prepareDataDir } from '../data-dir.js';
import { adminBusy, tryLockDataDir } from '../data-dir-lock.js';
import { loadOrCreateTls, readCertificateIds, readFingerprint, tlsPaths } from '../tls/certificate.js';
import { agentBundleUnavailable } from '../agent-bundle/agent-bundle.js';
import { LOCAL_ADMIN_ACTOR } from '../admin/admin-socket-paths.js';
import { AdminSocketClient, type AdminOps } from '../admin/admin-client.js';
import { describeDataDir, infoDatabase, infoDatabaseOf, runningRelay } from '../admin/admin-target.js';
import { adminOps, withOps } from '../admin/offline-ops.js';
import { installRelayService, relayUnit, type RelayServiceFlags } from '../service/relay-unit.js';
import { formatSettings, resolveServeConfig, settingsJson } from '../config-file.js';
import type { Flags, RelayHandlers } from './program.js';

const out = (line: string) => process.stdout.write(`${line}\n`);

/** --json: a listing is one JSON array, a single thing (info) one object (the convention of apps/client/README.md, "JSON output"). */
const printJson = (v: unknown) => out(jsonForTerminal(v, 2));

async function storeOps(flags: Flags): Promise<AdminOps> {
  return adminOps(parseConfig(StoreConfigSchema, flags));
}

/** The admin commands of @mssh/cli-kit on this relay's ops, for the store flags of one command. */
function admin(flags: Flags) {
  return createAdminCommands<AdminOps>({
    withOps: async (fn) => withOps(await storeOps(flags), fn),
    stdout: process.stdout,
    password: { stdin: process.stdin, prompter: new TtyPrompter() },
    spell: {
      grant: 'mssh-relay grant',
      enroll: 'mssh-relay agent enroll',
      usersAdd: 'mssh-relay user add',
      usersPasswd: 'mssh-relay user passwd',
    },
  });
}

// ---------------------------------------------------------------- info

async function info(flags: Record<string, unknown>): Promise<void> {
  const cfg = parseConfig(InfoConfigSchema, flags);
  const running = await runningRelay(cfg.dataDir);
  const fp = readFingerprint({ dataDir: cfg.dataDir, certFile: cfg.tlsCert });
  const { readJumpHostKeyFingerprint, jumpHostKeyPath } = await import('../ssh-jump/host-key.js'); // ssh2
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
      relay: running
        ? { running: true, pid: running.info.pid, url: running.info.relayUrl }
        : { running: false, pid: null, url: null },
    });
    return;
  }
  out(`Data directory: ${describeDataDir(cfg.dataDir)}${existsSync(cfg.dataDir) ? '' : ' (does not exist yet)'}`);
  out(`Database: ${infoDatabase(cfg, running)}`);
  out(`TLS certificate: ${tlsCert}`);
  out(`TLS certificate fingerprint: ${fp ?? '(none yet: created on the first `mssh-relay serve`)'}`);
  out(`SSH jump host key: ${jumpHostKeyPath(cfg.dataDir)}`);
  out(
    `SSH jump host key fingerprint: ${sshFp ?? '(none yet: created on the first `mssh-relay serve` with the SSH listener on)'}`,
  );
  if (running) {
    out(`Relay: running (pid ${running.info.pid}), ${running.info.relayUrl}`);
  } else {
    out('Relay: not running');
  }
}

// ---------------------------------------------------------------- drain

/** How often `drain --wait` looks at the relay, and the margin it allows beyond the relay's own budget. */
const DRAIN_WAIT_POLL_MS = 250;
const DRAIN_WAIT_MARGIN_MS = 15_000 + 10_000; // the relay's stop budget (main.ts) + slack

function processRuns(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/**
 * `mssh-relay drain [--wait]`: the SIGTERM drain of the relay running on the data dir, through its admin
 * socket (relay.ts shutdown()). Prints what happens; returns once the drain has begun, or with --wait once
 * the relay process has exited.
 */
async function drainCmd(flags: Flags): Promise<void> {
  const cfg = parseConfig(StoreConfigSchema, { dataDir: flags.dataDir });
  const running = await runningRelay(cfg.dataDir);
  if (!running)
    throw codedCliError(
      'RLY_CLI_ERR_NOT_RUNNING',
      `no relay is running on ${describeDataDir(cfg.dataDir)} (its admin socket does not answer)`,
      'Pass the data directory the relay runs with: --data-dir DIR (or MSSH_DATA_DIR); a relay that is not running needs no drain.',
    );
  const client = new AdminSocketClient(running.socket);
  const r = await client.drain();
  const secs = (ms: number) => `${Math.round(ms / 1000)} s`;
  out(
    r.alreadyDraining
      ? `Relay pid ${r.pid} was already draining (since ${r.since}): /readyz answers 503 and new sessions are refused (RLY_ERR_DRAINING).`
      : `Relay pid ${r.pid} is draining (since ${r.since}): /readyz answers 503 and new sessions are refused (RLY_ERR_DRAINING).`,
  );
  out(
    r.agentsMoved === null
      ? `Agents: ${r.agents} connected; this relay cannot move them, they reconnect when it stops.`
      : `Agents: ${r.agentsMoved} of ${r.agents} told to move to another relay.`,
  );
  out(
    `Running sessions: ${r.sessions}; they go on until they end, for at most ${secs(r.timeoutMs)} (--drain-timeout), then the relay stops and exits.`,
  );
  out(`The listeners close ${secs(r.delayMs)} after the drain began (--drain-delay).`);
  if (flags.wait !== true) return;

  // --wait: follow the sessions while the admin socket answers, then wait for the process to exit.
  const deadline = Date.parse(r.since) + Math.max(r.delayMs, r.timeoutMs) + DRAIN_WAIT_MARGIN_MS;
  let lastSessions = r.sessions;
  let listeners = false;
  let socketUp = true;
  for (let i = 0; i < 100_000 && processRuns(r.pid); i++) {
    if (Date.now() > deadline)
      throw cliFailure(
        `relay pid ${r.pid} is still running ${secs(Date.now() - Date.parse(r.since))} after its drain began`,
        'See the relay log; a second SIGTERM (kill PID) stops it at once.',
      );
    if (socketUp) {
      const st = await client.drainStatus().catch(() => null);
      if (!st) socketUp = false;
      else {
        if (st.listenersClosed && !listeners) out('The listeners are closed: new connections are refused.');
        listeners = st.listenersClosed;
        if (st.sessions !== lastSessions) out(`Running sessions: ${st.sessions}`);
        lastSessions = st.sessions;
      }
    }
    await new Promise((res) => setTimeout(res, DRAIN_WAIT_POLL_MS));
  }
  out(`Relay pid ${r.pid} has exited (${secs(Date.now() - Date.parse(r.since))} after the drain began).`);
}

// ---------------------------------------------------------------- enrolment, keys, audit, migrations

async function agentEnroll(name: string, flags: Record<string, unknown>): Promise<void> {
  const { label, ...rest } = flags;
  const labels = labelFlags(Array.isArray(label) ? (label as string[]) : []);
  const cfg = parseConfig(AgentEnrollConfigSchema, { ...rest, name });
  const offlineRelay = async () => {
    // The relay is not running: the URL comes from the flags, the fingerprint from its certificate.
    const ids = cfg.tlsCert
      ? readCertificateIds({ dataDir: cfg.dataDir, certFile: cfg.tlsCert })
      : await loadOrCreateTls({ dataDir: cfg.dataDir, sans: cfg.tlsSan });
    if (!ids) throw cliFailure(`cannot read the certificate ${cfg.tlsCert}`, 'Check the path given to --tls-cert.');
    return {
      url: cfg.publicUrl ?? defaultPublicUrl(cfg.listen),
      fingerprint: ids.fingerprint,
      publicKeyPin: ids.publicKeyPin,
    };
  };
  const ops = await adminOps(cfg, offlineRelay);
  const t = await withOps(ops, (o) => o.createEnrollToken(cfg.name, labels));
  out(`Enrolment token for "${t.name}" (one use, expires ${t.expiresAt}):`);
  if (Object.keys(labels).length > 0) out(`  the machine is labelled ${formatLabels(labels)} when it enrols`);
  out(`  ${t.token}`);
  out('On the machine to enrol, run:');
  out(
    `  mssh-agent enroll --relay ${t.relayUrl} --token ${t.token} --name ${t.name} --relay-fingerprint ${t.relayFingerprint}`,
  );
  out('  mssh-agent run');
  // The one-liner where this relay (the same installation as this command) can serve the agent.
  const unavailable = agentBundleUnavailable();
  if (t.relayPublicKeyPin && !unavailable) {
    out('Or, on a Debian/Ubuntu machine without Node.js, this one line downloads the agent pinned to this');
    out("relay's key, checks it, installs it in /opt/mssh-agent (--prefix DIR), enrols it and starts it:");
    const pin = t.relayPublicKeyPin;
    out(`  ${installOneLiner({ relayUrl: t.relayUrl, publicKeyPin: pin, token: t.token, name: t.name })}`);
  } else if (unavailable) {
    out(`(No one-line install from this relay: ${unavailable}; see RLY_ERR_AGENT_BUNDLE_UNAVAILABLE.)`);
  }
}

async function auditPrune(flags: Record<string, unknown>): Promise<void> {
  const cfg = parseConfig(AuditPruneConfigSchema, flags);
  // On Postgres the prune runs on the database given, never through the running relay: its role is not
  // meant to be able to prune (docs/audit.md, "Database roles"). PGlite: through the relay if it runs.
  const r = cfg.databaseUrl
    ? await pruneOnDatabase(cfg, cfg.olderThan)
    : await withOps(await adminOps(cfg, async () => ({ url: '', fingerprint: '' })), (o) =>
        o.pruneAudit(cfg.olderThan),
      );
  out(`Deleted ${r.deleted} audit event(s) older than ${r.cutoff}; the prune itself is recorded as audit.pruned.`);
}

async function pruneOnDatabase(cfg: StoreConfig, olderThanMs: number): Promise<{ deleted: number; cutoff: string }> {
  const { openDatabase } = await import('../db/index.js');
  const { AuditLog } = await import('../audit/audit-log.js');
  const database = await openDatabase({ databaseUrl: cfg.databaseUrl, pgliteDir: pgliteDir(cfg.dataDir) });
  try {
    return await new AuditLog({ db: database.db, relayId: loadOrCreateRelayId(cfg.dataDir) }).prune(
      new Date(Date.now() - olderThanMs),
      { actor: LOCAL_ADMIN_ACTOR, source: 'cli' },
    );
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
    throw cliFailure(
      '--relay-role and --prune-role need Postgres (--database-url)',
      'The embedded PGlite database has a single user and no roles.',
    );
  }
  let release = () => {};
  if (!cfg.databaseUrl) {
    prepareDataDir(cfg.dataDir);
    // PGlite allows one process only: never next to a relay (it applies the migrations itself when it starts).
    const lock = tryLockDataDir(cfg.dataDir, 'migrate');
    if (lock.held) throw adminBusy(cfg.dataDir, lock, null);
    release = lock.release;
  }
  const { openDatabase, redactDatabaseUrl, rootMessage } = await import('../db/index.js');
  const { grantRoles } = await import('../db/roles.js');
  let database;
  try {
    database = await openDatabase({ databaseUrl: cfg.databaseUrl, pgliteDir: pgliteDir(cfg.dataDir) });
  } catch (e) {
    release();
    throw e;
  }
  try {
    out(
      `Database schema is up to date (${cfg.databaseUrl ? redactDatabaseUrl(cfg.databaseUrl) : pgliteDir(cfg.dataDir)}).`,
    );
    if (roles.relayRole || roles.pruneRole) {
      try {
        await grantRoles(database.db, roles);
      } catch (e) {
        throw cliFailure(
          `cannot grant the roles: ${rootMessage(e)}`,
          'Run migrate as the owner of the mssh tables, and create the roles first (docs/audit.md, "Database roles").',
          e,
        );
      }
      if (roles.relayRole)
        out(
          `Granted role "${roles.relayRole}" what mssh-relay serve needs (audit_events: insert only; sessions: no delete).`,
        );
      if (roles.pruneRole)
        out(`Granted role "${roles.pruneRole}" EXECUTE on mssh_audit_prune (mssh-relay audit prune).`);
    }
  } finally {
    await database.close();
    release();
  }
}

/** `keys rotate`: through the running relay (it signs with the new key at once), else on the database. */
async function keysRotate(flags: Record<string, unknown>): Promise<void> {
  const r = await withOps(await storeOps(flags), (o) => o.rotateKeys());
  out(`New signing key ${r.kid}: new tokens are signed with it.`);
  if (r.retired.length > 0)
    out(`Retired ${r.retired.join(', ')}: still verifying the tokens it issued until they expire (12 h at most).`);
  out('Other relays on the same database pick the new key up within a minute.');
}

// ---------------------------------------------------------------- errors

const RELAY_ERROR_HINTS: Partial<Record<string, string>> = {
  RLY_ERR_NAME_TAKEN: 'Pick another name.',
  RLY_ERR_BAD_REQUEST: 'Check the arguments; see --help.',
  RLY_ERR_UNKNOWN_USER: 'Check the name: mssh-relay user list.',
  RLY_ERR_UNKNOWN_GRANT: 'See the existing grants: mssh-relay grants.',
  RLY_ERR_UNKNOWN_HOST: 'Check the name: mssh-relay agent list.',
};

/** A RelayError the admin socket or the database answered, as the CliError to print (other errors: null). */
export function relayCliError(e: unknown): CliError | null {
  if (!(e instanceof RelayError)) return null;
  return new CliError(e.code, e.message, RELAY_ERROR_HINTS[e.code] ?? 'See the relay log for details.', { cause: e });
}

/** Every command but serve. */
// ---------------------------------------------------------------- install-service

/** `install-service [--print] -- SERVE-OPTIONS`: the systemd unit on stdout, or written and started. */
async function installServiceCmd(serveArgs: string[], flags: Flags): Promise<void> {
  const f = flags as RelayServiceFlags;
  if (f.print) {
    process.stdout.write(relayUnit(serveArgs, f).unit);
    return;
  }
  for (const line of installRelayService(serveArgs, f).lines) out(line);
}

// ---------------------------------------------------------------- config show

/** `config show [--config FILE] [serve options] [--json]`: what `serve` would use, and from where. */
async function configShow(flags: Flags): Promise<void> {
  const r = resolveServeConfig(flags);
  if (flags.json === true) printJson(settingsJson(r));
  else out(formatSettings(r));
}

export function commandHandlers(): Omit<RelayHandlers, 'serve'> {
  const flag = (flags: Flags, name: string) => flags[name] === true;
  const str = (flags: Flags, name: string) => (typeof flags[name] === 'string' ? flags[name] : undefined);
  return {
    info,
    configShow,
    drain: drainCmd,
    userAdd: (name, flags) =>
      admin(flags).usersAdd({ name, admin: flag(flags, 'admin'), passwordStdin: flag(flags, 'passwordStdin') }),
    userList: (flags) => admin(flags).usersList({ json: flag(flags, 'json') }),
    userDisable: (name, flags) => admin(flags).usersDisable({ name, killSessions: flag(flags, 'killSessions') }),
    userEnable: (name, flags) => admin(flags).usersEnable({ name }),
    userPasswd: (name, flags) => admin(flags).usersPasswd({ name, passwordStdin: flag(flags, 'passwordStdin') }),
    userSetRole: (name, role, flags) => admin(flags).usersSetRole({ name, role }),
    grant: (subject, pattern, flags) =>
      admin(flags).grant({ subject, pattern, labels: str(flags, 'labels'), role: flag(flags, 'role') }),
    revokeGrant: (subject, pattern, flags) =>
      admin(flags).revokeGrant({ subject, pattern, labels: str(flags, 'labels'), role: flag(flags, 'role') }),
    grants: (flags) => admin(flags).grants({ json: flag(flags, 'json') }),
    keysRotate,
    agentEnroll,
    agentList: (flags) => admin(flags).agentsList({ json: flag(flags, 'json') }),
    fleet: (flags) => admin(flags).relays({ json: flag(flags, 'json') }),
    agentRevoke: (name, flags) => admin(flags).agentsRevoke({ name }),
    agentLabel: (name, edits, flags) => admin(flags).agentsLabel({ name, edits, json: flag(flags, 'json') }),
    agentForget: (name, flags) => admin(flags).agentsForget({ name }),
    migrate: migrateCmd,
    auditPrune,
    installService: installServiceCmd,
  };
}
