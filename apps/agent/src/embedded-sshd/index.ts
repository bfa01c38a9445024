export { duplexPair } from './duplex-pair.js';
export {
  createEmbeddedSshd,
  loginBanner,
  SFTP_SERVER_CANDIDATES,
  type EmbeddedSshd,
  type EmbeddedSshdOptions,
} from './server.js';
export {
  addAuthorizedKey,
  listAuthorizedKeys,
  removeAuthorizedKey,
  formatAuthorizedKey,
  parseAuthorizedKeys,
  parseAuthorizedKeysLine,
  authorizedKeysPath,
  AUTHORIZED_KEYS_FILE,
  type AuthorizedKey,
  type KeyOptions,
  type SkippedLine,
} from './authorized-keys.js';
export { loadOrCreateHostKey, HOST_KEY_FILE, type HostKey } from './host-key.js';
export { SshdError, SSHD_ERRORS, type SshdErrorCode } from './errors.js';
export { EmbeddedTarget } from './embedded-target.js';
