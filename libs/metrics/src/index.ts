export {
  createProcessRegistry,
  startMetricsServer,
  type MetricsServer,
  type MetricsServerOptions,
  type MetricsSource,
} from './metrics-server.js';
