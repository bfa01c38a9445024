import { and, asc, eq } from 'drizzle-orm';
import { sshKeys } from '@mssh/migrations';
import type { Db } from './database.js';

export interface SshKeyRecord {
  id: string;
  userName: string;
  /** "type base64" (no comment). */
  publicKey: string;
  fingerprint: string;
  comment: string | null;
  createdAt: Date;
}

/** Users' SSH public keys for the jump listener. A fingerprint belongs to at most one user. */
export class SshKeyRepository {
  constructor(private readonly db: Db) {}

  /** Insert; null when the fingerprint is already registered (by anyone). */
  async add(k: { userName: string; publicKey: string; fingerprint: string; comment: string | null }): Promise<SshKeyRecord | null> {
    const rows = await this.db.insert(sshKeys).values(k).onConflictDoNothing({ target: sshKeys.fingerprint }).returning();
    return rows[0] ?? null;
  }

  async listForUser(userName: string): Promise<SshKeyRecord[]> {
    return this.db.select().from(sshKeys).where(eq(sshKeys.userName, userName)).orderBy(asc(sshKeys.createdAt));
  }

  /** The key with this fingerprint if it belongs to `userName`. */
  async findForUser(userName: string, fingerprint: string): Promise<SshKeyRecord | null> {
    const rows = await this.db.select().from(sshKeys)
      .where(and(eq(sshKeys.userName, userName), eq(sshKeys.fingerprint, fingerprint))).limit(1);
    return rows[0] ?? null;
  }

  /** Remove the user's key; false when they have none with this fingerprint. */
  async remove(userName: string, fingerprint: string): Promise<boolean> {
    const rows = await this.db.delete(sshKeys)
      .where(and(eq(sshKeys.userName, userName), eq(sshKeys.fingerprint, fingerprint))).returning({ id: sshKeys.id });
    return rows.length > 0;
  }
}
