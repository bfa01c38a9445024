/**
 * The tunnel router: owns the verified agent links (one per agent name) and opens session streams on
 * them. It never dials anything: a session can only go to an enrolled agent that dialled in and proved
 * its key.
 *
 *   client --h2 stream--> relay route --openSession(name)--> AgentLink --h2 stream--> agent --> sshd
 */
import { constants as h2c, type ClientHttp2Stream } from 'node:http2';
import type { Duplex } from 'node:stream';
import type { TLSSocket } from 'node:tls';
import type pino from 'pino';
import { AGENT_PING_INTERVAL_MS, AGENT_PING_TIMEOUT_MS } from '@mssh/protocol';
import { relayError } from '../errors.js';
import { DEFAULT_MAX_CONTROL_FRAMES_PER_SECOND, floodLogger } from '../http/h2-flood-guard.js';
import { AgentLink, safeAudit } from './agent-link.js';
import { SessionCaps, type CapScope, type SessionCapLimits } from './session-caps.js';
import { resetStream, tunnelEndCode } from '@mssh/protocol';
import { noteBytesMoved, splice } from '@mssh/protocol/transport';
import type {
  AgentDirectory,
  PresenceChange,
  SessionEndReason,
  SessionMeta,
  SpliceMeta,
  TunnelAuditSink,
  TunnelMetrics,
  TunnelRouter,
  TunnelSessionSummary,
} from './types.js';

export interface TunnelRouterOptions {
  directory: AgentDirectory;
  audit: TunnelAuditSink;
  logger: pino.Logger;
  /** Oldest agent protocol version accepted (MIN_PROTOCOL_VERSION unless configured). */
  minProtocolVersion: number;
  /** Wall clock for "connected/seen at" (tests inject one). */
  clock?: () => Date;
  /** HTTP/2 PING interval on each agent link (default AGENT_PING_INTERVAL_MS). */
  pingIntervalMs?: number;
  /** Evict a link whose PING is not answered within this (default AGENT_PING_TIMEOUT_MS). */
  pingTimeoutMs?: number;
  /** Deadline for each agent handshake step (default 10 s). */
  handshakeTimeoutMs?: number;
  /** Deadline for the agent's answer to a session open (default 10 s). */
  openTimeoutMs?: number;
  /** Session caps (tunnel/session-caps.ts defaults). */
  sessionCaps?: Partial<SessionCapLimits>;
  /** Most agents connected at once (default 1024); more are refused RLY_ERR_AGENT_LIMIT. */
  maxAgents?: number;
  /** PING/SETTINGS frames an agent may send per second on its link (default 1000; 0: no limit). */
  maxControlFramesPerSecond?: number;
  /** After one side of a session sent EOF, the most the other may stay quiet (default 5 s; 0: for ever). */
  halfCloseLingerMs?: number;
  /**
   * Told when a link becomes the registered (session-taking) link of its agent (up) and when the agent has
   * none any more (down): the fleet's presence rows (fleet/fleet.ts). Must not throw.
   */
  onPresence?: (e: PresenceChange) => void;
  /**
   * This relay's stable id (loadOrCreateRelayId), sent to agents in their welcome: an agent holding
   * links to several relays of a fleet tells them apart by it. Absent: the welcome carries none.
   */
  relayId?: string;
  /** Sessions started and ended, for the metrics endpoint (metrics/relay-metrics.ts). Absent: not counted. */
  metrics?: TunnelMetrics;
}

/** What the router holds right now, for the metrics endpoint (read when scraped, not on the data path). */
export interface TunnelStats {
  /** Agent links (TLS sockets taken over) by state: handshaking, online, draining. */
  links: { handshaking: number; online: number; draining: number };
  /** Bytes forwarded since start, ended sessions and running ones (the bridge's own counters). */
  bytesFromClient: number;
  bytesToClient: number;
}

export const DEFAULT_MAX_AGENTS = 1024;
/** Agent sockets still in their handshake, beyond maxAgents, before new ones are dropped unanswered. */
const MAX_PENDING_AGENT_SOCKETS = 256;

export const DEFAULT_HANDSHAKE_TIMEOUT_MS = 10_000;
export const DEFAULT_OPEN_TIMEOUT_MS = 10_000;
/**
 * A session half-closed by one side ends when the other side has been quiet this long (stream-bridge.ts):
 * a real sshd closes at once on its client's EOF, and an SSH client at once on its server's.
 */
export const DEFAULT_HALF_CLOSE_LINGER_MS = 5_000;
const CLOSE_WAIT_MS = 5_000;
/** A host key rescan of one agent is asked for at most this often; callers in between share the last one. */
const HOST_KEY_REFRESH_MIN_INTERVAL_MS = 2_000;
/**
 * How long "end this user's sessions" still reaches sessions that were being set up when it ran. Setting
 * one up (token and grant lookups, the agent's open, the audit commit) is bounded by the open timeout and
 * the database's; a mark older than this can no longer match a session and is dropped.
 */
const KILL_MARK_TTL_MS = 5 * 60_000;

type LiveSession = {
  user: string;
  host: string;
  client: Duplex;
  agentStream: ClientHttp2Stream;
  killed: SessionEndReason | null;
  /** The splice's live byte counters (the same object the audit's progress writes read). */
  counters: { bytesAtoB: number; bytesBtoA: number };
};

/** The real router: every optional part of TunnelRouter that it implements is there. */
export type RelayTunnelRouter = TunnelRouter & Required<Pick<TunnelRouter, 'moveAgents'>> & { stats(): TunnelStats };

export function createTunnelRouter(opts: TunnelRouterOptions): RelayTunnelRouter {
  const logger = opts.logger.child({ component: 'relay.tunnel' });
  const clock = opts.clock ?? (() => new Date());
  const byName = new Map<string, AgentLink>();
  const links = new Set<AgentLink>();
  const linkOfStream = new WeakMap<ClientHttp2Stream, AgentLink>();
  /** Spliced sessions, for ending them by user (an admin disabled the account). */
  const live = new Map<string, LiveSession>();
  /** user -> when closeSessionsOfUser last ran for them (performance.now()) and why; pruned there. */
  const killMarks = new Map<string, { at: number; reason: SessionEndReason }>();
  /** When who may reach what last changed (noteAccessChange), performance.now(). */
  let accessChangedAt = -Infinity;
  const killMarkFor = (user: string, authAt: number): SessionEndReason | null => {
    const m = killMarks.get(user);
    return m !== undefined && m.at >= authAt ? m.reason : null;
  };
  const kill = (sessionId: string, e: LiveSession, reason: SessionEndReason): void => {
    e.killed = reason;
    logger.info({ sessionId, user: e.user, reason }, 'ending session');
    const c = e.client as Duplex & { close?: (code?: number) => void };
    try {
      // The client first, so that its reset carries why (libs/protocol tunnel-end.ts: mssh prints the
      // reason) before the agent side's end can reach it through the splice.
      const code = tunnelEndCode(reason);
      if (typeof c.close === 'function') {
        if (code !== undefined) resetStream(c as Duplex & { close(code?: number): void }, code);
        else c.close(h2c.NGHTTP2_CANCEL);
      } else c.destroy();
    } catch {
      /* gone */
    }
    try {
      e.agentStream.close(h2c.NGHTTP2_CANCEL);
    } catch {
      /* gone */
    }
  };
  let sessions = 0;
  /** Bytes of the sessions that have ended (running ones are summed from `live` when asked). */
  const endedBytes = { fromClient: 0, toClient: 0 };
  const metrics = opts.metrics;
  let closing = false;
  /** Agents revoked or forgotten while this relay runs (bounded): a handshake that raced the revocation is dropped. */
  const refusedIds = new Map<string, SessionEndReason>();
  const REFUSED_MAX = 10_000;
  const caps = new SessionCaps(opts.sessionCaps);
  /** name -> the last host key rescan asked of that agent (shared while in flight and shortly after). */
  const refreshes = new Map<string, { link: AgentLink; at: number; keys: Promise<string[]> }>();
  const maxAgents = opts.maxAgents ?? DEFAULT_MAX_AGENTS;

  const deps = {
    directory: opts.directory,
    audit: opts.audit,
    logger,
    minProtocolVersion: opts.minProtocolVersion,
    clock,
    pingIntervalMs: opts.pingIntervalMs ?? AGENT_PING_INTERVAL_MS,
    pingTimeoutMs: opts.pingTimeoutMs ?? AGENT_PING_TIMEOUT_MS,
    handshakeTimeoutMs: opts.handshakeTimeoutMs ?? DEFAULT_HANDSHAKE_TIMEOUT_MS,
    openTimeoutMs: opts.openTimeoutMs ?? DEFAULT_OPEN_TIMEOUT_MS,
    admitAgent: (name: string) => byName.has(name) || byName.size < maxAgents,
    relayId: opts.relayId,
    maxControlFramesPerSecond: opts.maxControlFramesPerSecond ?? DEFAULT_MAX_CONTROL_FRAMES_PER_SECOND,
    logFlood: floodLogger((fields, msg) => logger.warn(fields, msg)),
  };
  /** Links that were still in their handshake when moveAgents() ran: moved as soon as they are verified. */
  const moveOnceVerified = new WeakSet<AgentLink>();

  const presence = (link: AgentLink, up: boolean): void => {
    const agent = link.agent;
    if (!agent || !opts.onPresence) return;
    try {
      opts.onPresence({ agentId: agent.id, name: agent.name, up, moved: !up && link.wasMoved });
    } catch (err) {
      logger.error({ err }, 'presence observer failed');
    }
  };

  const unregister = (link: AgentLink): void => {
    const name = link.name;
    if (name !== null && byName.get(name) === link) {
      byName.delete(name);
      presence(link, false);
    }
  };

  const events = {
    verified(link: AgentLink): void {
      const name = link.name!;
      if (closing) {
        link.close('relay is shutting down', 'relay_shutdown');
        return;
      }
      const refused = refusedIds.get(link.agent!.id);
      if (refused) {
        link.close('revoked by an admin', refused);
        return;
      }
      if (moveOnceVerified.has(link)) {
        // Never registered: it must not replace a link of the same agent, nor get a session.
        moveOnceVerified.delete(link);
        link.move();
        return;
      }
      const old = byName.get(name);
      byName.set(name, link);
      presence(link, true);
      if (old && old !== link) {
        logger.info({ name, old: old.id, new: link.id }, `agent ${name} reconnected; closing its previous connection`);
        old.close('replaced by a newer connection of the same agent', 'agent_closed');
      }
    },
    draining(link: AgentLink): void {
      unregister(link);
    },
    closed(link: AgentLink): void {
      links.delete(link);
      unregister(link);
      const agent = link.agent;
      if (!agent) return;
      const reason = link.endReason ?? 'closed';
      logger.info({ name: agent.name, reason }, `agent ${agent.name} disconnected: ${reason}`);
      safeAudit(logger, () => opts.audit.agentDisconnected({ agentId: agent.id, name: agent.name, reason }));
      opts.directory
        .markSeen(agent.id, clock())
        .catch((err: unknown) => logger.error({ err, name: agent.name }, 'could not record last-seen time'));
    },
    streamCount(delta: number): void {
      sessions += delta;
    },
  };

  const router: RelayTunnelRouter = {
    acceptAgentSocket(socket: TLSSocket): void {
      try {
        if (closing || links.size >= maxAgents + MAX_PENDING_AGENT_SOCKETS) {
          if (!closing) logger.warn({ links: links.size }, 'too many agent connections; dropping a new one');
          socket.on('error', () => {});
          socket.destroy();
          return;
        }
        const link = new AgentLink(socket, deps, events);
        links.add(link);
        link.start();
      } catch (err) {
        logger.error({ err }, 'could not take over an agent socket');
        socket.on('error', () => {});
        socket.destroy();
      }
    },

    isOnline(name: string): boolean {
      return byName.get(name)?.state === 'online';
    },

    onlineNames(): string[] {
      return [...byName.values()]
        .filter((l) => l.state === 'online')
        .map((l) => l.name!)
        .sort();
    },

    activeSessions(): number {
      return sessions;
    },

    stats(): TunnelStats {
      const byState = { handshaking: 0, online: 0, draining: 0 };
      for (const l of links) if (l.state !== 'closed') byState[l.state]++;
      let fromClient = endedBytes.fromClient;
      let toClient = endedBytes.toClient;
      for (const e of live.values()) {
        fromClient += e.counters.bytesAtoB;
        toClient += e.counters.bytesBtoA;
      }
      return { links: byState, bytesFromClient: fromClient, bytesToClient: toClient };
    },

    sessionCount(q?: { user?: string; agent?: string }): number {
      return caps.count(q);
    },

    takeSessionSlot(user: string, agent: string, scope?: CapScope): () => void {
      return caps.take(user, agent, scope);
    },

    checkSessionSlot(user: string, agent: string, scope?: CapScope): void {
      caps.check(user, agent, scope);
    },

    async openSession(name: string, meta: SessionMeta): Promise<ClientHttp2Stream> {
      const link = byName.get(name);
      if (!link || link.state !== 'online')
        throw relayError('RLY_ERR_AGENT_OFFLINE', `${name} is enrolled but its agent is not connected`);
      const release = caps.take(meta.user, name, meta.caps);
      let stream: ClientHttp2Stream;
      try {
        stream = await link.openStream(name, meta);
      } catch (err) {
        release();
        throw err;
      }
      if (stream.closed || stream.destroyed) release();
      else stream.once('close', release);
      linkOfStream.set(stream, link);
      return stream;
    },

    refreshHostKeys(name: string): Promise<string[]> {
      const link = byName.get(name);
      if (!link || link.state !== 'online')
        return Promise.reject(
          relayError('RLY_ERR_AGENT_OFFLINE', `${name} is enrolled but its agent is not connected`),
        );
      const now = performance.now();
      const last = refreshes.get(name);
      if (last && last.link === link && now - last.at < HOST_KEY_REFRESH_MIN_INTERVAL_MS) return last.keys;
      if (refreshes.size > 10_000) refreshes.clear();
      const keys = link.refreshHostKeys();
      const entry = { link, at: now, keys };
      refreshes.set(name, entry);
      // Held while in flight; afterwards for the min interval only.
      keys.then(
        () => {
          entry.at = performance.now();
        },
        () => {
          if (refreshes.get(name) === entry) refreshes.delete(name);
        },
      );
      return keys;
    },

    agentIdOf(name: string): string {
      return byName.get(name)?.agent?.id ?? '';
    },

    async spliceSession(
      client: Duplex,
      agentStream: ClientHttp2Stream,
      meta: SpliceMeta,
    ): Promise<TunnelSessionSummary> {
      const link = linkOfStream.get(agentStream);
      const agentId = link?.agent?.id ?? '';
      const source = meta.source ?? null;
      const via = meta.via ?? 'https';
      const startedAt = clock();
      logger.debug({ sessionId: meta.sessionId, user: meta.user, host: meta.host }, 'session started');
      const counters = { bytesAtoB: 0, bytesBtoA: 0 };
      const entry: LiveSession = { user: meta.user, host: meta.host, client, agentStream, killed: null, counters };
      live.set(meta.sessionId, entry);
      safeAudit(logger, () => metrics?.sessionStarted(via));
      meta.record?.attachCounters(() => ({ bytesFromClient: counters.bytesAtoB, bytesToClient: counters.bytesBtoA }));
      let r: Awaited<ReturnType<typeof splice>>;
      try {
        const record = meta.record;
        const onBytes = record?.noteBytes
          ? (n: number) => {
              noteBytesMoved(n);
              record.noteBytes!(n);
            }
          : noteBytesMoved;
        const splicing = splice(client, agentStream, counters, onBytes, {
          halfCloseLingerMs: opts.halfCloseLingerMs ?? DEFAULT_HALF_CLOSE_LINGER_MS,
        });
        // The user's sessions were ended while this one was being set up: it ends now, before a byte.
        const late = killMarkFor(meta.user, meta.authAt);
        if (late) kill(meta.sessionId, entry, late);
        // Access changed while this session was being set up: the recheck of the live sessions may have
        // run before it was live, so ask again now (it ends if no grant matches any more).
        const recheck = meta.recheckAccess;
        if (!late && recheck && meta.accessCheckedAt !== undefined && accessChangedAt >= meta.accessCheckedAt) {
          recheck().then(
            (ok) => {
              if (!ok && !entry.killed && live.get(meta.sessionId) === entry)
                kill(meta.sessionId, entry, 'grant_revoked');
            },
            (err: unknown) =>
              logger.warn({ err, sessionId: meta.sessionId }, 'rechecking access for a new session failed'),
          );
        }
        r = await splicing;
      } finally {
        live.delete(meta.sessionId);
        endedBytes.fromClient += counters.bytesAtoB;
        endedBytes.toClient += counters.bytesBtoA;
      }
      let reason: SessionEndReason;
      if (entry.killed) reason = entry.killed;
      else if (link && link.endReason !== null && (r.first === 'b' || !r.clean)) reason = link.sessionEndReason;
      else reason = r.first === 'a' ? 'client_closed' : 'agent_closed';
      const summary: TunnelSessionSummary = {
        sessionId: meta.sessionId,
        user: meta.user,
        host: meta.host,
        agentId,
        source,
        via,
        startedAt,
        endedAt: clock(),
        bytesFromClient: r.bytesAtoB,
        bytesToClient: r.bytesBtoA,
        reason,
      };
      logger.debug({ ...summary, clean: r.clean, linkReason: link?.endReason ?? null }, 'session ended');
      safeAudit(logger, () => meta.record?.end({ reason, bytesFromClient: r.bytesAtoB, bytesToClient: r.bytesBtoA }));
      safeAudit(logger, () => opts.audit.sessionEnded?.(summary));
      safeAudit(logger, () => metrics?.sessionEnded(reason));
      return summary;
    },

    closeSessionsOfUser(user: string, reason: SessionEndReason): number {
      const now = performance.now();
      for (const [u, m] of killMarks) if (now - m.at > KILL_MARK_TTL_MS) killMarks.delete(u);
      killMarks.set(user, { at: now, reason });
      let n = 0;
      for (const [sessionId, e] of live) {
        if (e.user !== user || e.killed) continue;
        n++;
        kill(sessionId, e, reason);
      }
      return n;
    },

    hostsWithSessions(): string[] {
      const hosts = new Set<string>();
      for (const e of live.values()) if (!e.killed) hosts.add(e.host);
      return [...hosts];
    },

    noteAccessChange(): void {
      accessChangedAt = performance.now();
    },

    sessionsOn(host: string): Array<{ sessionId: string; user: string }> {
      const out: Array<{ sessionId: string; user: string }> = [];
      for (const [sessionId, e] of live) if (e.host === host && !e.killed) out.push({ sessionId, user: e.user });
      return out;
    },

    closeSessionsOfUserOn(user: string, host: string, reason: SessionEndReason): number {
      let n = 0;
      for (const [sessionId, e] of live) {
        if (e.user !== user || e.host !== host || e.killed) continue;
        n++;
        kill(sessionId, e, reason);
      }
      return n;
    },

    closeAllSessions(reason: SessionEndReason): number {
      let n = 0;
      for (const [sessionId, e] of live) {
        if (e.killed) continue;
        n++;
        kill(sessionId, e, reason);
      }
      return n;
    },

    closeAgent(name: string, reason: SessionEndReason, agentId?: string): boolean {
      if (agentId) {
        if (refusedIds.size >= REFUSED_MAX) refusedIds.delete(refusedIds.keys().next().value!);
        refusedIds.set(agentId, reason);
      }
      let found = false;
      for (const link of links) {
        if (link.name === name && link.state !== 'closed') {
          found = true;
          link.close(reason === 'agent_revoked' ? 'revoked by an admin' : `closed: ${reason}`, reason);
        }
      }
      return found;
    },

    moveAgents(): number {
      let told = 0;
      for (const link of links) {
        if (link.state === 'online') {
          if (link.move()) told++;
        } else if (link.state === 'handshaking') moveOnceVerified.add(link);
      }
      logger.info({ agents: told }, `asked ${told} agent(s) to move to another relay`);
      return told;
    },

    async close(): Promise<void> {
      closing = true;
      const all = [...links];
      for (const link of all) link.close('relay is shutting down', 'relay_shutdown');
      await Promise.race([
        Promise.all(all.map((l) => l.whenClosed())),
        new Promise<void>((resolve) => setTimeout(resolve, CLOSE_WAIT_MS).unref()),
      ]);
    },
  };
  return router;
}
