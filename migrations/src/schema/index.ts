export * from './users.js';
export * from './agents.js';
export * from './enroll-tokens.js';
export * from './tokens.js';
export * from './audit.js';
export * from './grants.js';
export * from './sessions.js';
export * from './ssh-keys.js';
