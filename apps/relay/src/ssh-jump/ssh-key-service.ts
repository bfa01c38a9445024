/**
 * Users' SSH public keys for the jump listener: register, list, remove (each audited), and the lookup the
 * listener does on every authentication attempt (so a removed key, or a disabled user, stops at once).
 */
import {
  fingerprintBlob,
  parseSshPublicKeyLine,
  SshPublicKey,
  type AddSshKeyResponse,
  type SshJumpInfo,
  type SshKeyInfo,
  type SshKeysResponse,
} from '@mssh/protocol';
import type { SshKeyRecord, SshKeyRepository, UserRepository } from '../db/index.js';
import type { RelayAuditSink } from '../audit/audit-sink.js';
import { AUDIT } from '../audit/codes.js';
import { relayError } from '../errors.js';
import type { UserChanges } from '../auth/user-changes.js';

/** Why a jump connection's login no longer holds (judged again at every channel it opens). */
export type JumpLoginLapse = 'user_gone' | 'user_disabled' | 'key_removed';

/** Key types the listener accepts (ssh2 verifies these; security keys are not supported by ssh2's server). */
const ACCEPTED_TYPES = ['ssh-ed25519', 'ecdsa-sha2-nistp256', 'ecdsa-sha2-nistp384', 'ecdsa-sha2-nistp521', 'ssh-rsa'];

function info(k: SshKeyRecord): SshKeyInfo {
  return {
    fingerprint: k.fingerprint,
    type: k.publicKey.split(' ')[0] ?? '',
    publicKey: k.publicKey,
    comment: k.comment,
    createdAt: k.createdAt.toISOString(),
  };
}

export class SshKeyService {
  constructor(
    private readonly deps: {
      keys: SshKeyRepository;
      users: UserRepository;
      audit: RelayAuditSink;
      /** Where the jump listener is bound (public host name, actual port), or null when it is off. */
      jump?: () => SshJumpInfo | null;
      changes?: UserChanges;
    },
  ) {}

  /** The jump listener's address as clients should dial it; null when it is off. */
  jumpAddress(): SshJumpInfo | null {
    return this.deps.jump?.() ?? null;
  }

  /**
   * Register an OpenSSH public key line for `user`. RLY_ERR_BAD_REQUEST if not a key; RLY_ERR_NAME_TAKEN if
   * this user already registered it. Whether another user has the same key is never looked at: keys are
   * bound per user, so the answer tells nothing about other users and nobody can squat someone's key.
   */
  async add(user: string, line: string, source: string): Promise<AddSshKeyResponse> {
    const parts = line.trim().split(/\s+/);
    const core = parts.slice(0, 2).join(' ');
    const comment =
      parts
        .slice(2)
        .join(' ')
        .replace(/[^\x20-\x7e]/g, '')
        .slice(0, 200) || null;
    const parsed = SshPublicKey.safeParse(core).success ? parseSshPublicKeyLine(core) : null;
    if (!parsed)
      throw relayError(
        'RLY_ERR_BAD_REQUEST',
        'publicKey: not an OpenSSH public key line ("ssh-ed25519 AAAA... [comment]")',
      );
    if (!ACCEPTED_TYPES.includes(parsed.type)) {
      throw relayError(
        'RLY_ERR_BAD_REQUEST',
        `publicKey: ${parsed.type} keys are not supported by the jump listener; use ${ACCEPTED_TYPES.join(', ')}`,
      );
    }
    const fingerprint = fingerprintBlob(parsed.blob);
    const rec = await this.deps.keys.add({ userName: user, publicKey: core, fingerprint, comment });
    if (!rec)
      throw relayError('RLY_ERR_NAME_TAKEN', `you already registered the key ${fingerprint}; see mssh keys list`);
    this.deps.audit.emit({
      ...AUDIT.sshKeyAdded,
      actor: user,
      source,
      details: { fingerprint, type: parsed.type, comment },
    });
    return { ...info(rec), jump: this.jumpAddress() };
  }

  async list(user: string): Promise<SshKeyInfo[]> {
    return (await this.deps.keys.listForUser(user)).map(info);
  }

  /** GET /v1/ssh-keys: the user's keys and where the jump listener is. */
  async listResponse(user: string): Promise<SshKeysResponse> {
    return { keys: await this.list(user), jump: this.jumpAddress() };
  }

  /** RLY_ERR_NOT_FOUND unless the user has a key with this fingerprint. */
  async remove(user: string, fingerprint: string, source: string): Promise<void> {
    if (!(await this.deps.keys.remove(user, fingerprint)))
      throw relayError('RLY_ERR_NOT_FOUND', `you have no SSH key ${fingerprint}; see mssh keys list`);
    this.deps.audit.emit({ ...AUDIT.sshKeyRemoved, actor: user, source, details: { fingerprint } });
    // Live jump connections this key authenticated are closed now (ssh-jump/jump-server.ts).
    this.deps.changes?.emit({ kind: 'key_removed', user, fingerprint });
  }

  /**
   * Who may log in to the jump listener as `userName` with this key blob: the user, when it exists, is not
   * disabled and registered this very key; else null. Asked on every attempt.
   */
  async userForKey(
    userName: string,
    blob: Buffer,
  ): Promise<{ id: string; name: string; admin: boolean; role: string | null; publicKey: string } | null> {
    const r = await this.currentLogin(userName, blob);
    return r.ok ? { ...r.user, publicKey: r.publicKey } : null;
  }

  /**
   * The user and key of a jump login as they are NOW: the user (by name, and when `userId` is given,
   * the same row: a user deleted and created again under the name is another user), enabled, with this
   * very key still registered. The jump listener asks at every channel a connection opens, and uses the
   * admin flag and role returned (not the ones of the login).
   */
  async currentLogin(
    userName: string,
    blob: Buffer,
    userId?: string,
  ): Promise<
    | { ok: true; user: { id: string; name: string; admin: boolean; role: string | null }; publicKey: string }
    | { ok: false; lapse: JumpLoginLapse }
  > {
    const user = await this.deps.users.findByName(userName);
    if (!user || (userId !== undefined && user.id !== userId)) return { ok: false, lapse: 'user_gone' };
    if (user.disabledAt) return { ok: false, lapse: 'user_disabled' };
    const key = await this.deps.keys.findForUser(user.name, fingerprintBlob(blob));
    const parsed = key ? parseSshPublicKeyLine(key.publicKey) : null;
    if (!key || !parsed || !parsed.blob.equals(blob)) return { ok: false, lapse: 'key_removed' };
    return {
      ok: true,
      user: { id: user.id, name: user.name, admin: user.isAdmin, role: user.role },
      publicKey: key.publicKey,
    };
  }
}
