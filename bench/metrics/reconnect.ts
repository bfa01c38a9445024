/**
 * Metric 6, reconnect: take the middle down, start it again, and time until the target is reachable
 * through it again (its SSH identification line arrives through the path; polled every 20 ms).
 *   mssh:     `mssh-relay serve` stopped with SIGTERM and started again (same data dir, database, port);
 *             the agent notices and redials with its back-off.
 *   baseline: the bastion sshd and every process under it killed (a restart that drops connections,
 *             like the relay's), then started again; the supervised `ssh -R` redials with the same back-off.
 * Reported: from "back" (listening again) to reachable, the figure; and from "down" to reachable.
 */
import type { Duplex } from 'node:stream';
import type http2 from 'node:http2';
import { openTunnel } from '@mssh/test-fixtures/tunnel-client';
import { relaySession } from '../lib/relay-session.js';
import { TARGET_HOST, type BenchEnv } from '../lib/env.js';
import { bastionClient, jumpChannel, firstBytes, closeStream, type SshClient } from '../lib/inproc.js';
import { sleep, withTimeout } from '../lib/pool.js';
import type { Recorder } from '../lib/report.js';
import { median, round } from '../lib/stats.js';
import { watch } from '../lib/watchdog.js';

/** Poll `probe` every 20 ms until it yields a stream carrying the SSH banner; bounded by timeoutMs. */
async function untilReachable(probe: () => Promise<Duplex>, timeoutMs: number): Promise<number> {
  const t0 = Date.now();
  let last = '';
  for (let i = 0; i < 100_000 && Date.now() - t0 < timeoutMs; i++) {
    try {
      const sock = await withTimeout(probe(), 2_000, 'probe');
      try {
        const b = await firstBytes(sock, 2_000);
        if (b.toString('latin1').startsWith('SSH-')) return Date.now() - t0;
        last = 'no SSH banner';
      } finally {
        void closeStream(sock, 1_000);
      }
    } catch (e) {
      last = (e as Error).message;
    }
    await sleep(20);
  }
  throw new Error(`not reachable within ${timeoutMs} ms (last: ${last})`);
}

interface Side {
  path: 'jump' | 'mssh';
  /** Take the middle down and bring it back; resolves at "back" with the time it went down. */
  bounce(): Promise<number>;
  probe(): Promise<Duplex>;
  reset(): void;
}

/**
 * Rounds interleave the two sides. Before each round both links have been up for `healthyMs`, so the
 * back-off of the agent and of the tunnel supervisor starts from its base value every time.
 */
export async function runReconnect(
  env: BenchEnv,
  rec: Recorder,
  opts: { rounds: number; timeoutMs: number; healthyMs: number },
): Promise<void> {
  let client: SshClient | undefined;
  let h2: http2.ClientHttp2Session | undefined;
  const sides: Side[] = [
    {
      path: 'jump',
      async bounce() {
        const tDown = Date.now();
        await env.bastion.kill();
        await sleep(500);
        await env.bastion.start();
        return tDown;
      },
      async probe() {
        client ??= await bastionClient(env, 2_000).catch((e) => {
          client = undefined;
          throw e;
        });
        try {
          return await jumpChannel(client, env.rport);
        } catch (e) {
          if (/not connected|No response/i.test((e as Error).message)) {
            client.end();
            client = undefined;
          }
          throw e;
        }
      },
      reset() {
        client?.end();
        client = undefined;
      },
    },
  ];
  const m = env.mssh;
  if (m) {
    sides.push({
      path: 'mssh',
      async bounce() {
        const tDown = Date.now();
        await m.relay.proc.stop('SIGTERM', 10_000);
        await sleep(500);
        try {
          await m.relay.restart();
        } catch (e) {
          const tail = (m.relay.proc.out + m.relay.proc.err).trim().split('\n').slice(-3).join(' | ');
          throw new Error(`${(e as Error).message}; relay output: ${tail}`, { cause: e });
        }
        watch(m.relay.proc.child);
        return tDown;
      },
      async probe() {
        if (!h2 || h2.closed || h2.destroyed) h2 = await relaySession(m.relay);
        return openTunnel(h2, m.token, TARGET_HOST);
      },
      reset() {
        h2?.close();
        h2 = undefined;
      },
    });
  }
  const back = new Map<string, number[]>(sides.map((s) => [s.path, []]));
  const fromDown = new Map<string, number[]>(sides.map((s) => [s.path, []]));
  const errors = new Map<string, string>();
  let lastUp = env.linksUpAt;
  for (let r = 0; r < opts.rounds; r++) {
    const wait = lastUp + opts.healthyMs - Date.now();
    if (wait > 0) {
      process.stderr.write(
        `bench:     waiting ${Math.ceil(wait / 1000)} s so both back-offs reset (links healthy for ${opts.healthyMs / 1000} s)\n`,
      );
      await sleep(wait);
    }
    for (const side of sides) {
      if (errors.has(side.path)) continue;
      try {
        const tDown = await side.bounce();
        const tBack = Date.now();
        const ms = await untilReachable(() => side.probe(), opts.timeoutMs);
        back.get(side.path)!.push(ms);
        fromDown.get(side.path)!.push(tBack + ms - tDown);
        process.stderr.write(
          `bench:     reconnect ${side.path} round ${r + 1}: ${ms} ms after back, ${tBack + ms - tDown} ms after down\n`,
        );
      } catch (e) {
        errors.set(side.path, (e as Error).message);
      } finally {
        side.reset();
      }
    }
    lastUp = env.linksUpAt = Date.now();
  }
  if (m) {
    // The long-lived in-process session died with the relay: make a new one for anything after this.
    try {
      m.h2.close();
      m.h2 = await relaySession(m.relay);
    } catch {
      /* the relay did not come back; reported below */
    }
  }
  for (const side of sides) {
    const s = back.get(side.path)!;
    rec.add({
      metric: 'reconnect_ms',
      path: side.path,
      value: round(median(s), 0),
      unit: 'ms',
      better: 'lower',
      ok: !errors.has(side.path) && s.length === opts.rounds,
      error: errors.get(side.path),
      samples: s,
      extra: {
        fromDownMs: fromDown.get(side.path),
        healthyWaitMs: opts.healthyMs,
        ...(side.path === 'jump' ? { sshStarts: env.tunnel.starts() } : {}),
      },
    });
  }
}
