/**
 * The admin commands on the database itself, for a relay that is not running (offline-ops.ts adminOps
 * decides; this module, and the database code with it, is loaded only then).
 */
import type { StoreConfig } from '../config.js';
import { createLogger } from '../logger.js';
import { loadOrCreateRelayId, pgliteDir, prepareDataDir } from '../data-dir.js';
import { createRepositories, openDatabase } from '../db/index.js';
import { DbAuditSink } from '../audit/audit-sink.js';
import { AuditLog } from '../audit/audit-log.js';
import { rotateSigningKey } from '../auth/token-keys.js';
import { LOCAL_ADMIN_ACTOR } from './admin-socket-paths.js';
import type { AdminOps } from './admin-client.js';
import { AdminService } from './admin-service.js';
import { FleetStore, toFleetRelayInfo } from '../fleet/store.js';
import type { RelayInfo } from './offline-ops.js';

/** AdminOps straight on the database, for a relay that is not running. */
export async function openOfflineOps(cfg: StoreConfig, relayInfo: () => Promise<RelayInfo>): Promise<AdminOps> {
  prepareDataDir(cfg.dataDir);
  const logger = createLogger('warn');
  const database = await openDatabase({ databaseUrl: cfg.databaseUrl, pgliteDir: pgliteDir(cfg.dataDir) });
  const repos = createRepositories(database.db);
  const audit = new DbAuditSink({ db: database.db, relayId: loadOrCreateRelayId(cfg.dataDir), logger });
  const auditLog = new AuditLog({ db: database.db, relayId: loadOrCreateRelayId(cfg.dataDir) });
  let relay: RelayInfo = { url: '', fingerprint: '' };
  // No router: the relay is not running, so there are no live sessions or agent links to end.
  const admin = new AdminService({
    users: repos.users,
    agents: repos.agents,
    grants: repos.grants,
    enrollTokens: repos.enrollTokens,
    audit,
    relay: () => relay,
  });
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
    // The relays table as the fleet left it (no relay of this data dir is running: none is `self`).
    listRelays: async () => (await new FleetStore(database.db, 0).list()).map((r) => toFleetRelayInfo(r, null)),
    async createEnrollToken(name, labels) {
      relay = await relayInfo();
      return admin.createEnrollToken(name, by, labels ?? {});
    },
    labelAgent: (name, req) => admin.labelAgent(name, req, by),
    pruneAudit: (olderThanMs) => auditLog.prune(new Date(Date.now() - olderThanMs), by),
    rotateKeys: () => rotateSigningKey({ keys: repos.signingKeys, audit, by }),
    async close() {
      await audit.flush();
      audit.writer.close();
      await database.close();
    },
  };
}
