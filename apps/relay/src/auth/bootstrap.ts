import { randomBytes } from 'node:crypto';
import { hashPassword } from '@mssh/auth';
import type { UserRepository } from '../db/index.js';
import type { RelayAuditSink } from '../audit/audit-sink.js';

export const BOOTSTRAP_ADMIN = 'admin';

/**
 * First start: when there are no users at all, create `admin` (an admin) with the given password or a
 * random one. Returns the password only when it created the user (the caller shows it once).
 */
export async function bootstrapAdmin(
  deps: { users: UserRepository; audit: RelayAuditSink },
  password?: string,
): Promise<{ created: false } | { created: true; password: string; generated: boolean }> {
  if ((await deps.users.count()) > 0) return { created: false };
  const generated = !password;
  const pw = password || randomBytes(18).toString('base64url');
  const user = await deps.users.create({ name: BOOTSTRAP_ADMIN, passwordHash: await hashPassword(pw), isAdmin: true });
  // Another relay on the same database may have bootstrapped at the same moment.
  if (!user) return { created: false };
  deps.audit.userCreated({ user: user.name, admin: true, actor: 'bootstrap', source: 'local' });
  return { created: true, password: pw, generated };
}
