/**
 * The session gate: the ONE place a session is admitted, whatever door the client came through. Every
 * door (the HTTPS tunnel route, the SSH jump listener; a peer relay's forward later) authenticates its
 * client its own way, then calls `admit()`; the limits and the audit trail are therefore the same for
 * every door, and a door only translates a refusal (a RelayError with a stable code) into its own wire
 * form (HTTP status + code; SSH channel-open failure `CODE: message`).
 *
 *   door --admit(principal, host, door, source)-->
 *     0 relay draining?      yes -> session.denied draining      RLY_ERR_DRAINING       (issue 19: connect again)
 *     1 grant?               no  -> session.denied no_grant      RLY_ERR_NO_GRANT
 *     2 agent online here?   no  -> held by a fleet peer? (fleet/fleet.ts) yes -> forwarded (4')
 *                                   held only by draining peers (moving)? wait up to 3 s for its new link
 *                                   session.denied unknown_host  RLY_ERR_UNKNOWN_HOST   (not enrolled)
 *                                   session.denied host_offline  RLY_ERR_AGENT_OFFLINE  (enrolled)
 *     3 session caps?        no  -> session.denied cap           RLY_ERR_{USER,AGENT,RELAY}_SESSION_LIMIT
 *     4 open agent stream ‖ record session.start (COMMIT)
 *          start not committed -> agent stream cancelled         RLY_ERR_DATABASE_UNAVAILABLE (fail closed)
 *          open failed         -> start (if any) ended 'error'   RLY_ERR_AGENT_FAILED / _OFFLINE / caps
 *     4' forwarded: open the stream through the holding relay's peer link, THEN commit session.start
 *        naming that relay (holding_relay_id): the holder is only known once one took the session
 *   <-- AdmittedSession: splice(client) | cancel(reason)   (exactly one of them ends it)
 *
 * Step 4 runs the agent's open and the audit commit side by side: neither moves a byte (the agent
 * stream is only read once spliced), so a start that cannot be committed still refuses the session with
 * nothing forwarded, and the set-up costs one round trip instead of two. An open that fails after its
 * start was committed leaves session.start + session.end (reason error) in the trail: every attempt
 * that reached the agent is on record.
 */
import { randomUUID } from 'node:crypto';
import { constants as h2c, type ClientHttp2Stream } from 'node:http2';
import type { Duplex } from 'node:stream';
import type { Logger } from 'pino';
import { isValidHostName } from '@mssh/protocol';
import { RelayError, relayError } from '../errors.js';
import type { FleetRoute } from '../fleet/fleet.js';
import type {
  RecordedSession,
  SessionLedger,
  SessionVia,
  TunnelRouter,
  TunnelSessionSummary,
} from '../tunnel/types.js';

/** Which door a session came through (the audit rows' `via`). */
export type SessionDoor = SessionVia;

/** The authenticated client, as its door established it just now. */
export interface SessionPrincipal {
  /** mssh user name. */
  name: string;
  admin: boolean;
  role: string | null;
  /**
   * When the user was last found active (performance.now(), taken before that lookup): a session set up
   * while an admin ended the user's sessions ends as soon as it is spliced (router closeSessionsOfUser).
   */
  authAt: number;
}

export interface AdmitRequest {
  principal: SessionPrincipal;
  /** The machine (agent name) asked for. */
  host: string;
  door: SessionDoor;
  /** The client's address as the door saw it (audit rows). */
  source: string | null;
  /**
   * The many-machine run (`mssh exec`) the session is part of, already validated by the door (RUN_ID_RE):
   * stored with the session and its start, end and denial rows. Only the HTTPS door has one.
   */
  runId?: string | null;
}

/** Why a session was refused before it started, as audited (session.denied details.reason). */
export type DenialReason = 'draining' | 'no_grant' | 'unknown_host' | 'host_offline' | 'cap';

/** An admitted session: its start is committed and its agent stream is open, not yet spliced. */
export interface AdmittedSession {
  readonly sessionId: string;
  readonly host: string;
  /** Forward the client's bytes both ways until either side ends; records the end. Resolves, never rejects. */
  splice(client: Duplex): Promise<TunnelSessionSummary>;
  /** The door could not use the session (client gone): cancel the agent stream and record the end, no bytes. */
  cancel(reason: 'client_closed' | 'error'): void;
}

/**
 * What the gate tells the relay's metrics (metrics/relay-metrics.ts implements it). Must not throw.
 */
export interface SessionGateMetrics {
  /** admit() succeeded after `seconds` (checks, the agent's open and the committed start). */
  admitted(door: SessionDoor, seconds: number): void;
  /** admit() refused: the RelayError code it threw (a fixed set, libs/protocol errors.ts). */
  refused(code: string): void;
}

export interface SessionGate {
  /** Admit a session or throw the RelayError of the check that refused it (audited as session.denied where it is one). */
  admit(req: AdmitRequest): Promise<AdmittedSession>;
}

export interface SessionGateOptions {
  router: Pick<
    TunnelRouter,
    'isOnline' | 'openSession' | 'spliceSession' | 'checkSessionSlot' | 'takeSessionSlot' | 'agentIdOf'
  >;
  /** The fleet (several relays on one Postgres): agents held by another relay are reached through it. */
  fleet?: FleetRoute | null;
  /** Is a machine with this name enrolled (whether or not its agent is connected)? */
  hosts: { exists(name: string): Promise<boolean> };
  /** May this user reach this host (grants; admins reach everything)? */
  access: { canReach(user: { name: string; admin: boolean; role: string | null }, host: string): Promise<boolean> };
  /** The session-start commit (audit/session-recorder.ts). Required: no session without its session.start. */
  ledger: SessionLedger;
  /** session.denied rows. Must not throw (the sink logs its own failures). */
  audit: {
    sessionDenied(e: {
      user: string;
      host: string;
      source: string | null;
      reason: string;
      code: string;
      via: SessionDoor;
      runId?: string | null;
    }): void;
  };
  logger: Logger;
  /**
   * Is the relay draining (SIGTERM, `mssh-relay drain`)? Then every new session is refused with
   * RLY_ERR_DRAINING before anything is looked up, whatever the door; running sessions are not affected.
   */
  draining?: () => boolean;
  /**
   * The longest a new session waits for an agent that a draining relay asked to move (default
   * DEFAULT_MOVE_WAIT_MS): its new link is usually up within a few hundred milliseconds.
   */
  moveWaitMs?: number;
  /** Admissions and refusals for the metrics endpoint. Absent: not counted. */
  metrics?: SessionGateMetrics;
}

export const DEFAULT_MOVE_WAIT_MS = 3_000;
const MOVE_POLL_MS = 100;

/** The cap refusals of tunnel/session-caps.ts: audited as session.denied, reason cap. */
const CAP_CODES = new Set<string>([
  'RLY_ERR_USER_SESSION_LIMIT',
  'RLY_ERR_AGENT_SESSION_LIMIT',
  'RLY_ERR_RELAY_SESSION_LIMIT',
]);

export function createSessionGate(opts: SessionGateOptions): SessionGate {
  const { router, ledger } = opts;
  const log = opts.logger.child({ component: 'relay.session-gate' });
  const metrics = opts.metrics;

  return {
    async admit(req: AdmitRequest): Promise<AdmittedSession> {
      if (!metrics) return admit(req);
      const t0 = performance.now();
      try {
        const s = await admit(req);
        metrics.admitted(req.door, (performance.now() - t0) / 1000);
        return s;
      } catch (err) {
        metrics.refused(err instanceof RelayError ? err.code : 'RLY_ERR_INTERNAL');
        throw err;
      }
    },
  };

  async function admit({ principal, host, door, source, runId = null }: AdmitRequest): Promise<AdmittedSession> {
    const user = principal.name;
    const deny = (reason: DenialReason, err: RelayError): RelayError => {
      try {
        opts.audit.sessionDenied({
          user,
          host,
          source,
          reason,
          code: err.code,
          via: door,
          ...(runId ? { runId } : {}),
        });
      } catch (e) {
        log.warn({ err: e }, 'recording a session.denied failed');
      }
      return err;
    };
    // The doors check names first; a name the gate would not accept is never looked up.
    if (!isValidHostName(host))
      throw relayError(
        'RLY_ERR_BAD_REQUEST',
        'host names are 1-63 chars of a-z, 0-9 and -, starting with a letter or digit',
      );
    // 0. A draining relay starts nothing more: the client connects again and reaches another relay (or this
    //    one once it is back). No lookup: the answer is the same for every user and host.
    if (opts.draining?.()) throw deny('draining', relayError('RLY_ERR_DRAINING'));
    // 1. Access first, and the same answer for unknown and ungranted machines (no hint that one exists).
    if (!(await opts.access.canReach(principal, host))) {
      throw deny(
        'no_grant',
        relayError(
          'RLY_ERR_NO_GRANT',
          `you have no grant for a machine named ${host}; ask an admin (mssh admin grant ${user} ${host})`,
        ),
      );
    }
    // 2. A connected agent is an enrolled one: only look the name up when it is not online here. In a
    //    fleet, an agent held by another relay is reached through that relay (4').
    let holders: Awaited<ReturnType<FleetRoute['holders']>> = [];
    if (!router.isOnline(host)) {
      if (opts.fleet) holders = await opts.fleet.holders(host);
      // Held only by draining relays: they asked the agent to move (a rolling restart), so it is on its
      // way to another relay. Wait for its new link, briefly, rather than answer "offline".
      if (opts.fleet && holders.length > 0 && holders.every((h) => h.draining))
        holders = await waitForMovedAgent(opts.fleet, host, holders);
      if (router.isOnline(host)) holders = [];
      else if (holders.length === 0) {
        if (!(await opts.hosts.exists(host)))
          throw deny('unknown_host', relayError('RLY_ERR_UNKNOWN_HOST', `no machine named ${host} is enrolled`));
        throw deny(
          'host_offline',
          relayError('RLY_ERR_AGENT_OFFLINE', `${host} is enrolled but its agent is not connected`),
        );
      }
    }
    const forwarded = holders.length > 0;
    // 3. A cap reached is a refusal, not a session: refused and audited before anything is recorded.
    //    openSession takes the slot itself (and refuses too when a concurrent session took the last one).
    //    A forwarded session counts the user and relay caps here, the agent cap on its holding relay.
    try {
      router.checkSessionSlot?.(user, host, forwarded ? 'entry' : 'local');
    } catch (err) {
      if (err instanceof RelayError && CAP_CODES.has(err.code)) throw deny('cap', err);
      throw err;
    }
    if (forwarded) return admitForwarded(principal, host, door, source, runId, holders, deny);

    // 4. Open the agent stream and commit the start side by side; nothing is forwarded before both.
    const sessionId = randomUUID();
    const opening = router.openSession(host, { sessionId, user });
    const recording = ledger.start({
      sessionId,
      user,
      host,
      source,
      via: door,
      agentId: router.agentIdOf?.(host) || undefined,
      ...(runId ? { runId } : {}),
    });
    const [opened, recorded] = await Promise.allSettled([opening, recording]);
    const record: RecordedSession | undefined = recorded.status === 'fulfilled' ? recorded.value : undefined;
    if (opened.status === 'rejected') {
      const err: unknown = opened.reason;
      record?.end({ reason: 'error', bytesFromClient: 0, bytesToClient: 0 });
      if (!(err instanceof RelayError)) {
        log.error({ err, sessionId, host, user }, 'opening a session failed');
        throw relayError('RLY_ERR_INTERNAL', undefined, err);
      }
      if (err.code === 'RLY_ERR_AGENT_OFFLINE') throw deny('host_offline', err);
      if (CAP_CODES.has(err.code)) throw deny('cap', err);
      throw err;
    }
    const agentStream = opened.value;
    if (!record) {
      const err: unknown = recorded.status === 'rejected' ? recorded.reason : undefined;
      log.error(
        { err: (err as Error | undefined)?.cause ?? err, sessionId, host, user, via: door },
        'session refused: its start could not be recorded',
      );
      agentStream.close(h2c.NGHTTP2_CANCEL);
      throw err instanceof RelayError ? err : relayError('RLY_ERR_DATABASE_UNAVAILABLE', undefined, err);
    }
    return admitted({ sessionId, host, principal, door, source, agentStream, record });
  }

  /**
   * Poll (every MOVE_POLL_MS, for at most opts.moveWaitMs) until the agent is linked here or held by a
   * serving relay; then (or at the deadline) the holders to try, the draining ones included as a last resort.
   */
  async function waitForMovedAgent(
    fleet: FleetRoute,
    host: string,
    holders: Awaited<ReturnType<FleetRoute['holders']>>,
  ): Promise<Awaited<ReturnType<FleetRoute['holders']>>> {
    const t0 = performance.now();
    const deadline = t0 + (opts.moveWaitMs ?? DEFAULT_MOVE_WAIT_MS);
    let current = holders;
    while (performance.now() < deadline) {
      await new Promise((r) => setTimeout(r, MOVE_POLL_MS));
      if (router.isOnline(host)) break;
      current = await fleet.holders(host);
      if (current.length === 0 || current.some((h) => !h.draining)) break;
    }
    log.debug(
      { host, waitedMs: Math.round(performance.now() - t0), online: router.isOnline(host), holders: current.length },
      'waited for a moving agent',
    );
    return current;
  }

  /** 4'. Through the holding relay's peer link, then the committed start naming it. */
  async function admitForwarded(
    principal: SessionPrincipal,
    host: string,
    door: SessionDoor,
    source: string | null,
    runId: string | null,
    holders: Awaited<ReturnType<FleetRoute['holders']>>,
    deny: (reason: DenialReason, err: RelayError) => RelayError,
  ): Promise<AdmittedSession> {
    const user = principal.name;
    const fleet = opts.fleet!;
    let release: () => void;
    try {
      release = router.takeSessionSlot(user, host, 'entry');
    } catch (err) {
      if (err instanceof RelayError && CAP_CODES.has(err.code)) throw deny('cap', err);
      throw err;
    }
    const sessionId = randomUUID();
    let opened: { stream: ClientHttp2Stream; relayId: string };
    try {
      opened = await fleet.open(host, holders, { sessionId, user });
    } catch (err) {
      release();
      if (!(err instanceof RelayError)) {
        log.error({ err, sessionId, host, user }, 'opening a forwarded session failed');
        throw relayError('RLY_ERR_INTERNAL', undefined, err);
      }
      if (err.code === 'RLY_ERR_AGENT_OFFLINE') throw deny('host_offline', err);
      if (CAP_CODES.has(err.code)) throw deny('cap', err);
      throw err;
    }
    const stream = opened.stream;
    if (stream.closed || stream.destroyed) release();
    else stream.once('close', release);
    let record: RecordedSession;
    try {
      record = await ledger.start({
        sessionId,
        user,
        host,
        source,
        via: door,
        holdingRelayId: opened.relayId,
        ...(runId ? { runId } : {}),
      });
    } catch (err) {
      log.error(
        { err: (err as Error | undefined)?.cause ?? err, sessionId, host, user, via: door },
        'session refused: its start could not be recorded',
      );
      stream.close(h2c.NGHTTP2_CANCEL);
      throw err instanceof RelayError ? err : relayError('RLY_ERR_DATABASE_UNAVAILABLE', undefined, err);
    }
    return admitted({ sessionId, host, principal, door, source, agentStream: stream, record });
  }

  function admitted(s: {
    sessionId: string;
    host: string;
    principal: SessionPrincipal;
    door: SessionDoor;
    source: string | null;
    agentStream: ClientHttp2Stream;
    record: RecordedSession;
  }): AdmittedSession {
    let used = false;
    const once = (what: string): void => {
      if (used) throw new Error(`admitted session ${s.sessionId}: ${what} after it was already spliced or cancelled`);
      used = true;
    };
    return {
      sessionId: s.sessionId,
      host: s.host,
      splice(client: Duplex): Promise<TunnelSessionSummary> {
        once('splice');
        return router.spliceSession(client, s.agentStream, {
          sessionId: s.sessionId,
          user: s.principal.name,
          host: s.host,
          source: s.source,
          via: s.door,
          record: s.record,
          authAt: s.principal.authAt,
        });
      },
      cancel(reason: 'client_closed' | 'error'): void {
        if (used) return;
        used = true;
        s.agentStream.close(h2c.NGHTTP2_CANCEL);
        s.record.end({ reason, bytesFromClient: 0, bytesToClient: 0 });
      },
    };
  }
}
