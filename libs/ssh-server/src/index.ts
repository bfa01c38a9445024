export * from './server-core.js';
export * from './ssh-wire.js';
export { sendExitStatus } from './ssh2-internals.js';
