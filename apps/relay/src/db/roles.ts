/**
 * The Postgres roles an operator gives the relay (docs/audit.md, "Database roles"):
 *
 *   owner  (runs `mssh-relay migrate`)  owns every table, the triggers and mssh_audit_prune
 *   relay  (runs `mssh-relay serve`)    reads and writes what it needs; audit_events INSERT only, sessions
 *                                       INSERT/UPDATE (the trigger allows closing and growing counters only)
 *   pruner (runs `mssh-relay audit prune --database-url ...`)  EXECUTE on mssh_audit_prune, nothing else
 *
 * `mssh-relay migrate --relay-role R --prune-role P` runs these grants as the owner after migrating, so
 * tables added by later migrations are covered by running it again.
 */
import { sql } from 'drizzle-orm';
import type { Db } from './database.js';

/** A quoted SQL identifier. */
export function ident(name: string): string {
  return `"${name.replace(/"/g, '""')}"`;
}

export const PRUNE_FUNCTION = 'mssh_audit_prune(timestamptz, text, text, text)';

/** The statements that give `role` what `mssh-relay serve` needs, and not the power to rewrite the audit trail. */
export function relayRoleGrants(role: string): string[] {
  const r = ident(role);
  return [
    `GRANT USAGE ON SCHEMA public TO ${r}`,
    `GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA public TO ${r}`,
    `REVOKE UPDATE, DELETE, TRUNCATE ON audit_events FROM ${r}`,
    `REVOKE DELETE, TRUNCATE ON sessions FROM ${r}`,
    `REVOKE INSERT, UPDATE, DELETE, TRUNCATE ON audit_retention FROM ${r}`,
    `GRANT USAGE, SELECT ON ALL SEQUENCES IN SCHEMA public TO ${r}`,
    `REVOKE EXECUTE ON FUNCTION ${PRUNE_FUNCTION} FROM ${r}`,
    // serve checks that the owner applied every migration (it cannot apply them itself).
    `GRANT USAGE ON SCHEMA drizzle TO ${r}`,
    `GRANT SELECT ON drizzle.__drizzle_migrations TO ${r}`,
  ];
}

/** The statements that let `role` prune (through mssh_audit_prune only). */
export function pruneRoleGrants(role: string): string[] {
  const r = ident(role);
  return [
    `GRANT USAGE ON SCHEMA public TO ${r}`,
    `GRANT EXECUTE ON FUNCTION ${PRUNE_FUNCTION} TO ${r}`,
    `GRANT USAGE ON SCHEMA drizzle TO ${r}`,
    `GRANT SELECT ON drizzle.__drizzle_migrations TO ${r}`,
  ];
}

/** Run the grants for the given roles in one transaction (as the owner). */
export async function grantRoles(db: Db, roles: { relayRole?: string; pruneRole?: string }): Promise<string[]> {
  const stmts = [
    ...(roles.relayRole ? relayRoleGrants(roles.relayRole) : []),
    ...(roles.pruneRole ? pruneRoleGrants(roles.pruneRole) : []),
  ];
  await db.transaction(async (tx) => {
    for (const s of stmts) await tx.execute(sql.raw(s));
  });
  return stmts;
}
