export * from './constants.js';
export * from './names.js';
export * from './errors.js';
export * from './schemas.js';
export * from './ssh-keys.js';
export * from './decoupled-socket.js';
export * from './stream-bridge.js';
export * from './read-body.js';
