/**
 * Users' SSH public keys for the jump listener: register, list, remove (each audited), and the lookup the
 * listener does on every authentication attempt (so a removed key, or a disabled user, stops at once).
 */
import { fingerprintBlob, parseSshPublicKeyLine, SshPublicKey, type AddSshKeyResponse, type SshJumpInfo, type SshKeyInfo, type SshKeysResponse } from '@mssh/protocol';
import type { SshKeyRecord, SshKeyRepository, UserRepository } from '../db/index.js';
import type { RelayAuditSink } from '../audit/audit-sink.js';
import { AUDIT } from '../audit/codes.js';
import { relayError } from '../errors.js';

/** Key types the listener accepts (ssh2 verifies these; security keys are not supported by ssh2's server). */
const ACCEPTED_TYPES = ['ssh-ed25519', 'ecdsa-sha2-nistp256', 'ecdsa-sha2-nistp384', 'ecdsa-sha2-nistp521', 'ssh-rsa'];

function info(k: SshKeyRecord): SshKeyInfo {
  return { fingerprint: k.fingerprint, type: k.publicKey.split(' ')[0] ?? '', publicKey: k.publicKey, comment: k.comment, createdAt: k.createdAt.toISOString() };
}

export class SshKeyService {
  constructor(private readonly deps: {
    keys: SshKeyRepository;
    users: UserRepository;
    audit: RelayAuditSink;
    /** Where the jump listener is bound (public host name, actual port), or null when it is off. */
    jump?: () => SshJumpInfo | null;
  }) {}

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
    const comment = parts.slice(2).join(' ').replace(/[^\x20-\x7e]/g, '').slice(0, 200) || null;
    const parsed = SshPublicKey.safeParse(core).success ? parseSshPublicKeyLine(core) : null;
    if (!parsed) throw relayError('RLY_ERR_BAD_REQUEST', 'publicKey: not an OpenSSH public key line ("ssh-ed25519 AAAA... [comment]")');
    if (!ACCEPTED_TYPES.includes(parsed.type)) {
      throw relayError('RLY_ERR_BAD_REQUEST', `publicKey: ${parsed.type} keys are not supported by the jump listener; use ${ACCEPTED_TYPES.join(', ')}`);
    }
    const fingerprint = fingerprintBlob(parsed.blob);
    const rec = await this.deps.keys.add({ userName: user, publicKey: core, fingerprint, comment });
    if (!rec) throw relayError('RLY_ERR_NAME_TAKEN', `you already registered the key ${fingerprint}; see mssh keys list`);
    this.deps.audit.emit({ ...AUDIT.sshKeyAdded, actor: user, source, details: { fingerprint, type: parsed.type, comment } });
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
    if (!(await this.deps.keys.remove(user, fingerprint))) throw relayError('RLY_ERR_NOT_FOUND', `you have no SSH key ${fingerprint}; see mssh keys list`);
    this.deps.audit.emit({ ...AUDIT.sshKeyRemoved, actor: user, source, details: { fingerprint } });
  }

  /**
   * Who may log in to the jump listener as `userName` with this key blob: the user, when it exists, is not
   * disabled and registered this very key; else null. Asked on every attempt.
   */
  async userForKey(userName: string, blob: Buffer): Promise<{ name: string; admin: boolean; role: string | null; publicKey: string } | null> {
    const user = await this.deps.users.findByName(userName);
    if (!user || user.disabledAt) return null;
    const key = await this.deps.keys.findForUser(user.name, fingerprintBlob(blob));
    if (!key) return null;
    const parsed = parseSshPublicKeyLine(key.publicKey);
    if (!parsed || !parsed.blob.equals(blob)) return null;
    return { name: user.name, admin: user.isAdmin, role: (user as { role?: string | null }).role ?? null, publicKey: key.publicKey };
  }

  /** Is the user still there and enabled (checked again before each forwarded session). */
  async isActive(userName: string): Promise<boolean> {
    const user = await this.deps.users.findByName(userName);
    return !!user && !user.disabledAt;
  }
}
