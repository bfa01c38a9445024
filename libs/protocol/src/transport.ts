/**
 * @mssh/protocol/transport: how bytes move, shared by relay, agent and client. Not the wire contract
 * (paths, headers, schemas, codes: '@mssh/protocol'), which a program can use without any of this.
 *
 *   socket --decoupleWrites--> http2 session      stream <--splice--> stream      readBody(stream)
 *
 * Buffer reclaim (a process-wide GC request) is off until a program's main calls installBufferReclaim().
 */
export * from './decoupled-socket.js';
export * from './stream-bridge.js';
export * from './read-body.js';
export * from './buffer-reclaim.js';
export * from './window-sizing.js';
