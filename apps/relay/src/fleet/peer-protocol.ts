/**
 * The peer link between two relays of a fleet: ONE TLS 1.3 connection per pair (mutual TLS, each side's
 * certificate pinned by the fingerprint its `relays` row publishes), HTTP/2 on it, opened on demand by the
 * relay a client entered (the entry relay) towards the relay holding the agent's link (the holding relay).
 *
 *   entry relay --POST /mssh/peer/session (h2 stream)--> holding relay --POST /mssh/session--> agent --> sshd
 *      headers: x-mssh-session, x-mssh-user, x-mssh-peer-host, x-mssh-peer-entry
 *      answer:  200 and then the SSH bytes both ways; or an error status with x-mssh-error CODE and a JSON
 *               body { code, message } (the holding relay's RelayError, e.g. RLY_ERR_AGENT_OFFLINE)
 *
 * The entry relay has already admitted the session (grant, user and relay caps, the committed
 * session.start): the holding relay only opens the agent stream, under its per-agent cap. It never dials
 * anything a request names: only its own agent links.
 */
export const PEER_ALPN = 'mssh-peer/1';
export const PEER_SESSION_PATH = '/mssh/peer/session';
export const PEER_HEADERS = {
  host: 'x-mssh-peer-host',
  entry: 'x-mssh-peer-entry',
} as const;
/** Largest error body a peer may send back. */
export const PEER_ERROR_BODY_MAX = 4096;
