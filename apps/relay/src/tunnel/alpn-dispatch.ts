/**
 * One port for API clients and agents (see shared DESIGN.md): the HTTP/2 secure server picks ALPN
 * `mssh-agent/1` when an agent offers it (else h2, else http/1.1), and sockets that negotiated it are
 * taken out of the server's hands before its own 'secureConnection' listeners see them.
 *
 *   TLS accept --alpn mssh-agent/1--> router.acceptAgentSocket(socket)
 *              --alpn h2 / http/1.1--> the server's original listeners (fastify)
 *
 * Usage: create the server with `ALPNCallback: agentAlpnCallback` (and no ALPNProtocols), then call
 * `routeAgentSockets(server, (s) => router.acceptAgentSocket(s))` once, before it accepts connections.
 */
import type { Server as TlsServer, TLSSocket } from 'node:tls';
import { AGENT_ALPN } from '@mssh/protocol';

/** ALPN selection for the shared port: agent protocol first, then h2, then HTTP/1.1. */
export function agentAlpnCallback({ protocols }: { servername: string; protocols: string[] }): string | undefined {
  if (protocols.includes(AGENT_ALPN)) return AGENT_ALPN;
  if (protocols.includes('h2')) return 'h2';
  if (protocols.includes('http/1.1')) return 'http/1.1';
  return undefined;
}

/**
 * Put a dispatcher in front of the server's 'secureConnection' listeners: agent sockets go to
 * acceptAgent, every other socket to the listeners that were registered before this call.
 * Returns a function that restores the original listeners.
 */
export function routeAgentSockets(server: TlsServer, acceptAgent: (socket: TLSSocket) => void): () => void {
  const original = server.listeners('secureConnection') as Array<(socket: TLSSocket) => void>;
  server.removeAllListeners('secureConnection');
  const dispatch = (socket: TLSSocket): void => {
    if (socket.alpnProtocol === AGENT_ALPN) {
      acceptAgent(socket);
      return;
    }
    for (const l of original) l.call(server, socket);
  };
  server.on('secureConnection', dispatch);
  return () => {
    server.off('secureConnection', dispatch);
    for (const l of original) server.on('secureConnection', l);
  };
}
