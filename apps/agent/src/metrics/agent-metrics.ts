/**
 * The agent's Prometheus metrics (issue 20 item 4; the list and its meaning: docs/operations.md). The
 * only file of the agent that knows prom-client: the relay link declares LinkSessionMetrics and the
 * supervisor its onOutcome / onLinkUp observers; main.ts wires this implementation to them.
 *
 *   link outcomes, welcomes, sessions opened/closed --> counters
 *   links by state, running sessions, bytes           --> read when scraped (supervisor.status(), the splices' counters)
 *
 * Label values come from fixed sets only (link states, outcome kinds, error codes): never a host name.
 */
import { Counter, Gauge, type Registry } from 'prom-client';
import { AGENT_ERRORS } from '../errors.js';
import type { LinkOutcome, LinkSessionMetrics } from '../dial/relay-link.js';
import type { LinkStatus } from '../dial/supervisor.js';

type Counters = { bytesAtoB: number; bytesBtoA: number };

const LINK_STATES = ['up', 'connecting', 'down'] as const;
const OUTCOMES: ReadonlyArray<LinkOutcome['kind']> = ['failed', 'refused', 'closed', 'duplicate'];

export interface AgentMetrics {
  readonly registry: Registry;
  readonly sessions: LinkSessionMetrics;
  /** The supervisor's onOutcome: every link attempt's end. */
  outcome(o: LinkOutcome): void;
  /** The supervisor's onLinkUp. */
  linkUp(e: { reconnect: boolean; moved: boolean }): void;
  /** Where the links' state is read when scraped (main.ts, once the supervisor exists). */
  readFrom(status: () => LinkStatus[]): void;
}

export function createAgentMetrics(registry: Registry): AgentMetrics {
  const registers = [registry];
  let status: (() => LinkStatus[]) | null = null;
  /** Splices running now (their counters move as bytes flow); bytes of the ended ones are summed. */
  const live = new Set<Counters>();
  const endedBytes = { fromRelay: 0, toRelay: 0 };

  new Gauge({
    name: 'mssh_agent_links',
    help: 'Links to relays (one per --links loop) by state: up (welcomed), connecting (dialling or handshaking), down (waiting to redial)',
    labelNames: ['state'],
    registers,
    collect() {
      const n = { up: 0, connecting: 0, down: 0 };
      for (const l of status?.() ?? []) {
        if (l.welcomed) n.up++;
        else if (l.relay !== null) n.connecting++;
        else n.down++;
      }
      for (const state of LINK_STATES) this.set({ state }, n[state]);
    },
  });
  new Gauge({
    name: 'mssh_agent_links_moving',
    help: 'Links a relay asked to move (drain) that still serve their running sessions',
    registers,
    collect() {
      this.set((status?.() ?? []).reduce((sum, l) => sum + l.moving, 0));
    },
  });
  const ups = new Counter({
    name: 'mssh_agent_link_ups_total',
    help: 'Links a relay welcomed (the first of each loop included)',
    registers,
  });
  const reconnects = new Counter({
    name: 'mssh_agent_reconnects_total',
    help: 'Links welcomed again after a link was lost (cause lost) or moved away by a draining relay (cause moved)',
    labelNames: ['cause'],
    registers,
  });
  const outcomes = new Counter({
    name: 'mssh_agent_link_ends_total',
    help: 'Link attempts ended, by outcome: failed (no link: TCP, TLS, pin), refused (by the relay), closed (after it was up or during its handshake), duplicate',
    labelNames: ['outcome'],
    registers,
  });
  new Gauge({
    name: 'mssh_agent_sessions_active',
    help: 'Sessions spliced to the target right now',
    registers,
    collect() {
      this.set(live.size);
    },
  });
  const opened = new Counter({
    name: 'mssh_agent_sessions_total',
    help: 'Sessions the relay opened here, by result: ok (spliced to the target) or the error code (AGT_ERR_TARGET_UNREACHABLE)',
    labelNames: ['result'],
    registers,
  });
  new Counter({
    name: 'mssh_agent_session_bytes_total',
    help: 'Session bytes: from_relay (relay to target) and to_relay (target to relay), running sessions included',
    labelNames: ['direction'],
    registers,
    collect() {
      let fromRelay = endedBytes.fromRelay;
      let toRelay = endedBytes.toRelay;
      for (const c of live) {
        fromRelay += c.bytesAtoB;
        toRelay += c.bytesBtoA;
      }
      this.reset();
      this.inc({ direction: 'from_relay' }, fromRelay);
      this.inc({ direction: 'to_relay' }, toRelay);
    },
  });

  for (const cause of ['lost', 'moved']) reconnects.inc({ cause }, 0);
  for (const outcome of OUTCOMES) outcomes.inc({ outcome }, 0);
  for (const result of ['ok', 'AGT_ERR_TARGET_UNREACHABLE']) opened.inc({ result }, 0);

  return {
    registry,
    sessions: {
      sessionOpened() {
        const c = { bytesAtoB: 0, bytesBtoA: 0 };
        live.add(c);
        opened.inc({ result: 'ok' });
        return c;
      },
      sessionClosed(c) {
        if (!live.delete(c)) return;
        endedBytes.fromRelay += c.bytesAtoB;
        endedBytes.toRelay += c.bytesBtoA;
      },
      sessionFailed(code) {
        opened.inc({ result: Object.hasOwn(AGENT_ERRORS, code) ? code : 'AGT_ERR_TARGET_UNREACHABLE' });
      },
    },
    outcome(o) {
      outcomes.inc({ outcome: o.kind });
    },
    linkUp(e) {
      ups.inc();
      if (e.reconnect) reconnects.inc({ cause: e.moved ? 'moved' : 'lost' });
    },
    readFrom(s) {
      status = s;
    },
  };
}
