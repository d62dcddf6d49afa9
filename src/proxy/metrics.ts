// The proxy's metrics, defined once on the registry it is given.
import type { Counter, CounterChild, Gauge, Histogram, HistogramChild, MetricsRegistry } from '../telemetry/metrics.ts';
import type { Direction } from './exchange.ts';

export interface ProxyMetrics {
  readonly registry: MetricsRegistry;
  readonly requests: Counter;
  readonly proxyResponses: Counter;
  readonly duration: Histogram;
  readonly snapshotApplies: Counter;
  readonly controlPlaneConnected: Gauge;
  readonly activeConnections: Gauge;
  /** Counts one finished request; children are cached per (direction, service, code). */
  recordRequest(direction: Direction, service: string, status: number, seconds: number): void;
}

export function createProxyMetrics(registry: MetricsRegistry): ProxyMetrics {
  const requests = registry.counter('weft_requests_total', 'HTTP requests the proxy answered, by direction, destination service and status code.', [
    'direction',
    'service',
    'code',
  ]);
  const duration = registry.histogram('weft_request_duration_seconds', 'Time from receiving a request to the end of its response.', ['direction', 'service']);
  // Caching the children by one string key keeps the hot path to a map lookup and two additions.
  const requestChildren = new Map<string, CounterChild>();
  const durationChildren = new Map<string, HistogramChild>();
  return {
    registry,
    requests,
    proxyResponses: registry.counter('weft_proxy_responses_total', 'Responses the proxy made itself (not the upstream), by weft-reason.', ['reason']),
    duration,
    snapshotApplies: registry.counter('weft_snapshot_applies_total', 'Snapshots applied (ok) or rejected (error).', ['result']),
    controlPlaneConnected: registry.gauge('weft_control_plane_connected', '1 while the config stream to the control plane is open.'),
    activeConnections: registry.gauge('weft_active_connections', 'Client connections open now, by listener.', ['listener']),
    recordRequest(direction, service, status, seconds) {
      const key = `${direction} ${service} ${status}`;
      let counter = requestChildren.get(key);
      if (!counter) {
        counter = requests.labels(direction, service, String(status));
        requestChildren.set(key, counter);
      }
      counter.inc();
      const durationKey = `${direction} ${service}`;
      let histogram = durationChildren.get(durationKey);
      if (!histogram) {
        histogram = duration.labels(direction, service);
        durationChildren.set(durationKey, histogram);
      }
      histogram.observe(seconds);
    },
  };
}
