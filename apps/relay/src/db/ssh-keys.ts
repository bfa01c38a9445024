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

/**
 * Users' SSH public keys for the jump listener, bound per user: (user, fingerprint) is unique, the same key
 * may be registered by several users (the SSH user name picks the row at login).
 */
export class SshKeyRepository {
  constructor(private readonly db: Db) {}

  /** Insert; null when this user already registered this fingerprint. */
  async add(k: {
    userName: string;
    publicKey: string;
    fingerprint: string;
    comment: string | null;
  }): Promise<SshKeyRecord | null> {
    const rows = await this.db
      .insert(sshKeys)
      .values(k)
      .onConflictDoNothing({ target: [sshKeys.userName, sshKeys.fingerprint] })
      .returning();
    return rows[0] ?? null;
  }

  async listForUser(userName: string): Promise<SshKeyRecord[]> {
    return this.db.select().from(sshKeys).where(eq(sshKeys.userName, userName)).orderBy(asc(sshKeys.createdAt));
  }

  /** The key with this fingerprint if it belongs to `userName`. */
  async findForUser(userName: string, fingerprint: string): Promise<SshKeyRecord | null> {
    const rows = await this.db
      .select()
      .from(sshKeys)
      .where(and(eq(sshKeys.userName, userName), eq(sshKeys.fingerprint, fingerprint)))
      .limit(1);
    return rows[0] ?? null;
  }

  /** Remove the user's key; false when they have none with this fingerprint. */
  async remove(userName: string, fingerprint: string): Promise<boolean> {
    const rows = await this.db
      .delete(sshKeys)
      .where(and(eq(sshKeys.userName, userName), eq(sshKeys.fingerprint, fingerprint)))
      .returning({ id: sshKeys.id });
    return rows.length > 0;
  }
}
