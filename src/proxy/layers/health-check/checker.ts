// Active health checks (BackendTrafficPolicy healthCheck): each proxy probes the endpoints of a backend on an interval.
//
// Envoy's active health checking, per proxy: every `intervalMs` each
// endpoint is probed (HTTP GET of `path` expecting one of
// `expectedStatuses`, or a TCP connect), a probe that takes longer than
// `timeoutMs` fails; `unhealthyThreshold` failures in a row take the
// endpoint out of the balancer, `healthyThreshold` successes in a row bring
// it back. Endpoints start healthy, so that a new policy or endpoint does
// not black-hole traffic until its first probes answer.
import type { BackendTraffic, SnapshotEndpoint } from '../../../api/snapshot.ts';
import type { Clock, Timer } from '../../../telemetry/clock.ts';

export type HealthCheckConfig = NonNullable<BackendTraffic['healthCheck']>;

/** Probes one endpoint once; resolves true when it is healthy. Never rejects. */
export type HealthProbe = (endpoint: SnapshotEndpoint, config: HealthCheckConfig) => Promise<boolean>;

interface EndpointCheck {
  endpoint: SnapshotEndpoint;
  healthy: boolean;
  successes: number;
  failures: number;
  probing: boolean;
}

export interface HealthCheckerOptions {
  clock: Clock;
  probe: HealthProbe;
  onChange: (endpointId: string, healthy: boolean) => void;
}

export class HealthChecker {
  private readonly options: HealthCheckerOptions;
  private readonly checks = new Map<string, EndpointCheck>();
  private config: HealthCheckConfig | undefined;
  private signature = '';
  private timer: Timer | undefined;
  private stopped = false;

  constructor(options: HealthCheckerOptions) {
    this.options = options;
  }

  /** A new snapshot: the endpoints to check and how. Cheap when nothing changed (it runs for every stack built). */
  update(config: HealthCheckConfig, endpoints: readonly SnapshotEndpoint[]): void {
    const signature = `${JSON.stringify(config)} ${endpoints.map((e) => `${e.id}@${e.address}:${e.port}/${e.tunnelPort ?? ''}`).join(',')}`;
    if (signature === this.signature) return;
    this.signature = signature;
    const intervalChanged = this.config?.intervalMs !== config.intervalMs;
    this.config = config;
    const ids = new Set<string>();
    for (const endpoint of endpoints) {
      ids.add(endpoint.id);
      const existing = this.checks.get(endpoint.id);
      if (existing) existing.endpoint = endpoint;
      else this.checks.set(endpoint.id, { endpoint, healthy: true, successes: 0, failures: 0, probing: false });
    }
    for (const id of this.checks.keys()) if (!ids.has(id)) this.checks.delete(id);
    if (intervalChanged || !this.timer) {
      this.timer?.cancel();
      this.timer = this.options.clock.setInterval(() => this.round(), config.intervalMs).unref();
      this.round();
    }
  }

  stop(): void {
    this.stopped = true;
    this.timer?.cancel();
    this.timer = undefined;
  }

  private round(): void {
    const config = this.config;
    if (!config || this.stopped) return;
    for (const check of this.checks.values()) {
      if (check.probing) continue;
      check.probing = true;
      this.options.probe(check.endpoint, config).then(
        (ok) => this.record(check, ok, config),
        () => this.record(check, false, config),
      );
    }
  }

  private record(check: EndpointCheck, ok: boolean, config: HealthCheckConfig): void {
    check.probing = false;
    if (this.stopped || this.checks.get(check.endpoint.id) !== check) return;
    if (ok) {
      check.failures = 0;
      check.successes++;
      if (!check.healthy && check.successes >= config.healthyThreshold) {
        check.healthy = true;
        this.options.onChange(check.endpoint.id, true);
      }
    } else {
      check.successes = 0;
      check.failures++;
      if (check.healthy && check.failures >= config.unhealthyThreshold) {
        check.healthy = false;
        this.options.onChange(check.endpoint.id, false);
      }
    }
  }
}
