// Applies snapshots atomically: validate, compile (registries staged), open upstream ports, swap and commit the registries, then release what the old config held and save to disk.
import { ErrorCodes, WeftError, isWeftError } from '../../api/errors.ts';
import type { ProxySnapshot } from '../../api/snapshot.ts';
import type { Clock } from '../../telemetry/clock.ts';
import type { Logger } from '../../telemetry/logger.ts';
import type { BalancerRegistry } from '../layers/balancer/balancers.ts';
import type { ProxyMetrics } from '../metrics.ts';
import type { UpstreamListeners } from '../outbound/upstreams.ts';
import type { Pools } from '../transport/pools.ts';
import { jwksCache, rateLimiterRegistry } from '../outbound/stack.ts';
import { compileConfig, type ActiveConfig, type CompileContext, type ConfigSource } from './compile.ts';
import { writeSnapshotFile } from './disk.ts';
import { validateSnapshot } from './validate.ts';

export interface ConfigManagerOptions {
  compile: CompileContext;
  upstreams: UpstreamListeners;
  peerPools: Pools;
  balancers: BalancerRegistry;
  dataDir: string | undefined;
  metrics: ProxyMetrics;
  logger: Logger;
  clock: Clock;
}

/**
 * Holds the config the request path reads (`current`). Listeners read
 * `current` once per request or connection, so a swap never touches what is
 * in flight: old exchanges finish on the closures they started with.
 */
export class ConfigManager {
  current: ActiveConfig;
  private readonly options: ConfigManagerOptions;
  private queue: Promise<unknown> = Promise.resolve();

  constructor(options: ConfigManagerOptions) {
    this.options = options;
    this.current = compileConfig(undefined, 'none', options.clock.now(), options.compile);
  }

  get hasSnapshot(): boolean {
    return this.current.snapshot !== undefined;
  }

  /** Applies one snapshot after any apply already running. Throws WEFT_ERR_SNAPSHOT_INVALID and keeps the current config on failure. */
  apply(input: unknown, source: Exclude<ConfigSource, 'none'>): Promise<ActiveConfig> {
    const run = this.queue.then(() => this.applyNow(input, source));
    this.queue = run.catch(() => {});
    return run;
  }

  private async applyNow(input: unknown, source: Exclude<ConfigSource, 'none'>): Promise<ActiveConfig> {
    const { metrics, logger } = this.options;
    let next: ActiveConfig;
    // Layer factories reach these registries while compiling: what they would change waits for the swap.
    const registries = [this.options.compile.outbound.balancers, rateLimiterRegistry(this.options.compile.outbound), jwksCache(this.options.compile.outbound)];
    try {
      const snapshot = validateSnapshot(input);
      for (const registry of registries) registry.stage();
      next = compileConfig(snapshot, source, this.options.clock.now(), this.options.compile);
      await this.options.upstreams.open(next.upstreams.keys());
    } catch (error) {
      for (const registry of registries) registry.rollback();
      metrics.snapshotApplies.labels('error').inc();
      const failure = isWeftError(error)
        ? error
        : new WeftError(ErrorCodes.SNAPSHOT_INVALID, `cannot apply the snapshot: ${error instanceof Error ? error.message : String(error)}`);
      logger.warn({ source, code: failure.code, message: failure.message }, 'snapshot rejected; keeping the last good config');
      throw failure.code === ErrorCodes.SNAPSHOT_INVALID ? failure : new WeftError(ErrorCodes.SNAPSHOT_INVALID, failure.message);
    }
    const previous = this.current;
    this.current = next;
    for (const registry of registries) registry.commit();
    this.options.upstreams.closeExcept(new Set(next.upstreams.keys()));
    this.options.balancers.retain(next.backendKeys);
    this.options.balancers.locality = next.snapshot?.node.locality;
    this.options.peerPools.retain(next.peers);
    metrics.snapshotApplies.labels('ok').inc();
    logger.info({ version: next.version, previous: previous.version || undefined, source }, 'snapshot applied');
    if (this.options.dataDir !== undefined && source === 'control-plane') {
      try {
        await writeSnapshotFile(this.options.dataDir, next.snapshot as ProxySnapshot);
      } catch (error) {
        logger.warn({ err: error, dataDir: this.options.dataDir }, 'cannot save the snapshot to disk');
      }
    }
    return next;
  }
}
