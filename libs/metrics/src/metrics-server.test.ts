import { afterEach, describe, expect, it } from 'vitest';
import { Counter } from 'prom-client';
import { createProcessRegistry, startMetricsServer, type MetricsServer } from './metrics-server.js';

const servers: MetricsServer[] = [];
afterEach(async () => {
  for (const s of servers.splice(0)) await s.close();
});

async function get(port: number, path: string, method = 'GET') {
  const res = await fetch(`http://127.0.0.1:${port}${path}`, { method });
  return { status: res.status, type: res.headers.get('content-type'), body: await res.text() };
}

describe('startMetricsServer', () => {
  it('answers GET /metrics with the registry (its own, plus the process metrics) and 404 otherwise', async () => {
    const registry = createProcessRegistry();
    const c = new Counter({ name: 'test_things_total', help: 'things', registers: [registry] });
    c.inc(3);
    const s = await startMetricsServer({ host: '127.0.0.1', port: 0, registry });
    servers.push(s);
    expect(s.port).toBeGreaterThan(0);
    const ok = await get(s.port, '/metrics');
    expect(ok.status).toBe(200);
    expect(ok.type).toContain('text/plain');
    expect(ok.body).toContain('test_things_total 3');
    expect(ok.body).toContain('process_cpu_user_seconds_total');
    expect(ok.body).toContain('nodejs_eventloop_lag_seconds');
    // promtool's lint refuses prom-client's three *_total gauges; their by-type gauges stay.
    expect(ok.body).not.toContain('nodejs_active_handles_total');
    expect(ok.body).toContain('nodejs_active_handles');
    expect((await get(s.port, '/metrics?x=1')).status).toBe(200);
    expect((await get(s.port, '/')).status).toBe(404);
    expect((await get(s.port, '/metrics/extra')).status).toBe(404);
    expect((await get(s.port, '/metrics', 'POST')).status).toBe(404);
  });

  it('two registries in one process do not collide', async () => {
    const a = createProcessRegistry();
    const b = createProcessRegistry();
    new Counter({ name: 'test_same_total', help: 'a', registers: [a] }).inc(1);
    new Counter({ name: 'test_same_total', help: 'b', registers: [b] }).inc(2);
    expect(await a.metrics()).toContain('test_same_total 1');
    expect(await b.metrics()).toContain('test_same_total 2');
  });

  it('answers 500 when collecting fails, and tells onScrapeError', async () => {
    const errors: unknown[] = [];
    const s = await startMetricsServer({
      host: '127.0.0.1',
      port: 0,
      registry: { contentType: 'text/plain', metrics: () => Promise.reject(new Error('boom')) },
      onScrapeError: (e) => errors.push(e),
    });
    servers.push(s);
    expect((await get(s.port, '/metrics')).status).toBe(500);
    expect(errors).toHaveLength(1);
  });

  it('rejects with EADDRINUSE when the port is taken', async () => {
    const registry = createProcessRegistry();
    const first = await startMetricsServer({ host: '127.0.0.1', port: 0, registry });
    servers.push(first);
    await expect(startMetricsServer({ host: '127.0.0.1', port: first.port, registry })).rejects.toMatchObject({
      code: 'EADDRINUSE',
    });
  });
});
