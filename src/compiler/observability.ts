// MeshConfig tracing and accessLog → the snapshot's mesh part (durations in ms, defaults filled in).
import type { SnapshotAccessLog, SnapshotTracing } from '../api/snapshot.ts';
import type { CompilerInput } from './types.ts';
import { parseGatewayDuration } from './duration.ts';

export function observability(input: CompilerInput): { tracing?: SnapshotTracing; accessLog?: SnapshotAccessLog } {
  const spec = input.meshConfig?.spec;
  const out: { tracing?: SnapshotTracing; accessLog?: SnapshotAccessLog } = {};
  const tracing = spec?.tracing;
  if (tracing) {
    const compiled: SnapshotTracing = { samplingPercent: tracing.samplingPercent ?? 1 };
    if (tracing.collector) {
      const timeoutMs = tracing.collector.timeout === undefined ? undefined : parseGatewayDuration(tracing.collector.timeout);
      compiled.collector = timeoutMs === undefined ? { endpoint: tracing.collector.endpoint } : { endpoint: tracing.collector.endpoint, timeoutMs };
    }
    if (tracing.batchSize !== undefined) compiled.batchSize = tracing.batchSize;
    if (tracing.maxQueueSize !== undefined) compiled.maxQueueSize = tracing.maxQueueSize;
    const intervalMs = tracing.exportInterval === undefined ? undefined : parseGatewayDuration(tracing.exportInterval);
    if (intervalMs !== undefined) compiled.exportIntervalMs = Math.max(10, intervalMs);
    out.tracing = compiled;
  }
  const accessLog = spec?.accessLog;
  if (accessLog && accessLog.enabled !== false) {
    const compiled: SnapshotAccessLog = { enabled: true, samplingPercent: accessLog.samplingPercent ?? 100, path: accessLog.path ?? 'stdout' };
    if (accessLog.fields) compiled.fields = [...accessLog.fields];
    out.accessLog = compiled;
  }
  return out;
}
