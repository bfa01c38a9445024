/**
 * The Prometheus endpoint of mssh-relay and mssh-agent (`--metrics-listen HOST:PORT`, issue 20 item 4): a
 * plain node:http listener of its own, never the relay's public port, that answers `GET /metrics` with the
 * text exposition of one registry and 404 to anything else.
 *
 *   Prometheus --GET /metrics--> metrics server --registry.metrics()--> counters the app's parts moved
 *
 * Each process makes its own Registry (createProcessRegistry) instead of prom-client's global one, so
 * that a relay and an agent started in one test process never share or collide on a metric.
 */
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { collectDefaultMetrics, Registry } from 'prom-client';

/** What the server needs of a registry: prom-client's Registry has both. */
export interface MetricsSource {
  readonly contentType: string;
  metrics(): Promise<string>;
}

export interface MetricsServerOptions {
  host: string;
  port: number;
  registry: MetricsSource;
  /** A scrape failed (a collect callback threw): told once per failed scrape, answered 500. */
  onScrapeError?: (err: unknown) => void;
}

export interface MetricsServer {
  /** The bound address (the real port when 0 was asked for). */
  readonly host: string;
  readonly port: number;
  /** Stop listening and drop open scrape connections. */
  close(): Promise<void>;
}

/** Scrapes are small and quick: a connection that sends nothing for this long is dropped. */
const REQUEST_TIMEOUT_MS = 10_000;
/** More concurrent scrape connections than a few Prometheus servers need are refused. */
const MAX_CONNECTIONS = 32;

/**
 * prom-client's gauges that `promtool check metrics` refuses (exit 3: "non-counter metrics should not have
 * _total suffix"); each is the sum over the `type` label of the gauge of the same name without `_total`
 * (nodejs_active_handles{type=...} ...), which stays.
 */
const LINT_REFUSED_DEFAULTS = [
  'nodejs_active_handles_total',
  'nodejs_active_requests_total',
  'nodejs_active_resources_total',
];

/**
 * A new registry with the standard process metrics (collectDefaultMetrics: CPU, memory, file
 * descriptors, GC, event-loop lag as nodejs_eventloop_lag_seconds and its percentiles), less the three
 * gauges promtool's lint refuses (LINT_REFUSED_DEFAULTS).
 */
export function createProcessRegistry(): Registry {
  const registry = new Registry();
  collectDefaultMetrics({ register: registry });
  for (const name of LINT_REFUSED_DEFAULTS) registry.removeSingleMetric(name);
  return registry;
}

/**
 * Listen on host:port and serve GET /metrics. Rejects with the listener's own error (EADDRINUSE,
 * EACCES, EADDRNOTAVAIL ...) when it cannot bind: the app turns it into its coded listen error.
 */
export async function startMetricsServer(opts: MetricsServerOptions): Promise<MetricsServer> {
  const server = http.createServer({ requestTimeout: REQUEST_TIMEOUT_MS, headersTimeout: REQUEST_TIMEOUT_MS });
  server.maxConnections = MAX_CONNECTIONS;
  server.keepAliveTimeout = 5_000;
  server.on('request', (req, res) => {
    const path = (req.url ?? '').split('?', 1)[0];
    if (req.method !== 'GET' || path !== '/metrics') {
      res.writeHead(404, { 'content-type': 'text/plain; charset=utf-8' }).end('not found: ask GET /metrics\n');
      return;
    }
    opts.registry.metrics().then(
      (body) => {
        res.writeHead(200, { 'content-type': opts.registry.contentType, 'cache-control': 'no-store' }).end(body);
      },
      (err: unknown) => {
        opts.onScrapeError?.(err);
        if (!res.headersSent) res.writeHead(500, { 'content-type': 'text/plain; charset=utf-8' });
        res.end('metrics collection failed\n');
      },
    );
  });
  server.on('clientError', (_err, socket) => socket.destroy());
  await new Promise<void>((resolve, reject) => {
    const onError = (err: Error) => reject(err);
    server.once('error', onError);
    server.listen({ host: opts.host, port: opts.port }, () => {
      server.off('error', onError);
      resolve();
    });
  });
  const bound = server.address() as AddressInfo;
  let closing: Promise<void> | null = null;
  return {
    host: opts.host,
    port: bound.port,
    close(): Promise<void> {
      closing ??= new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      });
      return closing;
    },
  };
}
