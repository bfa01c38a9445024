import type { Db } from './database.js';
import { UserRepository } from './users.js';
import { AgentRepository } from './agents.js';
import { EnrollTokenRepository } from './enroll-tokens.js';
import { RevokedTokenRepository } from './revoked-tokens.js';
import { SigningKeyRepository } from './signing-keys.js';
import { SshKeyRepository } from './ssh-keys.js';
import { GrantRepository } from './grants.js';

export {
  openDatabase,
  redactDatabaseUrl,
  rootMessage,
  isDatabaseUnavailable,
  type Db,
  type Database,
  type OpenDatabaseOptions,
} from './database.js';
export { UserRepository, type UserRecord } from './users.js';
export { AgentRepository, type AgentRecord, type NewAgent, type CreateAgentResult } from './agents.js';
export { EnrollTokenRepository, hashEnrollToken, type ClaimedEnrollToken } from './enroll-tokens.js';
export { RevokedTokenRepository } from './revoked-tokens.js';
export { SigningKeyRepository } from './signing-keys.js';
export { SshKeyRepository, type SshKeyRecord } from './ssh-keys.js';
export { GrantRepository, type GrantRecord, type GrantSubjectKind } from './grants.js';

export interface Repositories {
  db: Db;
  users: UserRepository;
  agents: AgentRepository;
  enrollTokens: EnrollTokenRepository;
  revokedTokens: RevokedTokenRepository;
  signingKeys: SigningKeyRepository;
  sshKeys: SshKeyRepository;
  grants: GrantRepository;
}

export function createRepositories(db: Db): Repositories {
  return {
    db,
    users: new UserRepository(db),
    agents: new AgentRepository(db),
    enrollTokens: new EnrollTokenRepository(db),
    revokedTokens: new RevokedTokenRepository(db),
    signingKeys: new SigningKeyRepository(db),
    sshKeys: new SshKeyRepository(db),
    grants: new GrantRepository(db),
  };
}
