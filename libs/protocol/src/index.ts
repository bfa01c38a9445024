/**
 * @mssh/protocol: the wire contract shared by relay, agent and client (constants, names, schemas, error
 * and audit codes, key formats). Transport code lives in '@mssh/protocol/transport'.
 */
export * from './constants.js';
export * from './names.js';
export * from './errors.js';
export * from './schemas.js';
export * from './ssh-keys.js';
export * from './admin-format.js';
export * from './audit.js';
export * from './tunnel-end.js';
export * from './duration.js';
export * from './labels.js';
