/**
 * The WAN mode's proxy process (forked by `forkWanProxy()` in wan-proxy.ts): hosts every leg's proxy in
 * an event loop of its own, away from the benchmark's clients and clocks, and takes its orders over IPC.
 * It exits when the benchmark goes (IPC channel closed) or on SIGTERM.
 */
import { startLegProxy, type LegProxy, type LinkCondition, type WanReply, type WanRequest } from './wan-proxy.js';

let condition: LinkCondition = { delayMs: 0, rateBytesPerSec: 0 };
const legs: LegProxy[] = [];

function reply(r: WanReply): void {
  process.send?.(r);
}

process.on('message', (m: WanRequest) => {
  void (async () => {
    try {
      switch (m.op) {
        case 'listen': {
          const leg = await startLegProxy({ upstreamPort: m.upstreamPort, condition: () => condition });
          legs.push(leg);
          reply({ id: m.id, ok: true, port: leg.port });
          break;
        }
        case 'condition':
          condition = { ...m.condition };
          reply({ id: m.id, ok: true });
          break;
        case 'stats':
          reply({ id: m.id, ok: true, stats: legs.map((l) => l.stats()) });
          break;
      }
    } catch (e) {
      reply({ id: m.id, ok: false, error: (e as Error).message });
    }
  })();
});

const quit = () => {
  void Promise.all(legs.map((l) => l.close())).finally(() => process.exit(0));
  setTimeout(() => process.exit(0), 2_000).unref();
};
process.on('disconnect', quit);
process.on('SIGTERM', quit);
