// Runs one conformance case against the shared infrastructure: apply its objects, judge its status and traffic checks, clean up.
import { randomBytes, randomUUID } from 'node:crypto';
import { nameOf } from './api.ts';
import { REQUEST_TIMEOUT_MS, type Captured, type Destination } from './client.ts';
import {
  awaitConvergence,
  compareRoundTrip,
  deploymentOfPod,
  judgeDistribution,
  prepare,
  roundTrip,
  runConcurrently,
  type ConvergenceOptions,
  type Mode,
  type Prepared,
  type Verdict,
} from './evaluate.ts';
import { capturedOf, compareGrpc, grpcCall, prepareGrpc } from './grpc.ts';
import type { Infrastructure } from './infra.ts';
import { needsGateway, objectId, withGatewayClass, type Case, type Check, type K8sObject, type Profile, type StatusCheck } from './model.ts';
import { judgeStatus, patched } from './status.ts';
import { websocketCheck } from './websocket.ts';

export interface CaseResult {
  name: string;
  profile: Profile;
  passed: boolean;
  reason: string;
  durationMs: number;
}

/**
 * What the harness needs from a gateway: where a Gateway's listener port
 * answers, and the address a Host-less request names (gateways.ts runs one
 * `weft proxy --mode gateway` per Gateway). Without one, gateway cases fail.
 */
export interface GatewayDriver {
  destination(gateway: string, port: number, scheme: 'http' | 'https', sni?: string): Destination;
  /** "ip" for ports 80/443, else "ip:port", as upstream's requests name the gateway. */
  hostFor(gateway: string, port: number): string;
  /** Once a case's objects are applied: have its Gateways served. */
  prepare?(c: Case): Promise<void>;
  /** After a case: stop serving the Gateways only it had. */
  release?(c: Case): Promise<void>;
}

export interface RunnerOptions {
  /** Wait the full MaxTimeToConsistency on a failing check instead of stopping once the config is settled. */
  fullWait: boolean;
  gateway?: GatewayDriver;
  /** Progress lines (stderr in the CLI). */
  log: (line: string) => void;
}

const MAX_TIME_TO_CONSISTENCY_MS = 30_000;
const THRESHOLD = 3;
const POLL_MS = 100;
const EARLY_FAIL_AFTER = 20;
const MIRROR_WAIT_MS = 10_000;
const MIRROR_WAIT_FULL_MS = 60_000;
const DEFAULT_CONCURRENCY = 10;

function message(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/** Why the harness cannot run a case at all yet, or undefined. */
export function unsupportedReason(c: Case, gateway: GatewayDriver | undefined): string | undefined {
  const reasons: string[] = [];
  if (needsGateway(c) && !gateway) reasons.push('gateway mode not implemented');
  return reasons.length ? reasons.join('; ') : undefined;
}

export class CaseRunner {
  private readonly infra: Infrastructure | undefined;
  private readonly options: RunnerOptions;

  constructor(infra: Infrastructure | undefined, options: RunnerOptions) {
    this.infra = infra;
    this.options = options;
  }

  async run(c: Case): Promise<CaseResult> {
    const started = performance.now();
    const result = (passed: boolean, reason: string): CaseResult => ({
      name: c.name,
      profile: c.profile,
      passed,
      reason,
      durationMs: Math.round(performance.now() - started),
    });
    const unsupported = unsupportedReason(c, this.options.gateway);
    if (unsupported) return result(false, unsupported);
    const infra = this.infra;
    if (!infra) return result(false, 'no infrastructure was started for this case');

    const resources = withEndpointOverrides(withGatewayClass(c.resources), c, infra);
    let settleProblems: string[] = [];
    try {
      try {
        await infra.api.apply(resources);
      } catch (error) {
        return result(false, `the control plane rejected the case's objects: ${message(error)}`);
      }
      try {
        await this.options.gateway?.prepare?.(c);
      } catch (error) {
        return result(false, `the case's gateways could not be started: ${message(error)}`);
      }
      settleProblems = (await infra.settle()).problems;
      const context = new CheckContext(infra, this.options);
      await context.rebase();

      for (const [i, check] of (c.statusChecks ?? []).entries()) {
        const verdict = await context.statusCheck(check);
        if (!verdict.ok) return result(false, await this.explain(`status check ${i + 1}/${c.statusChecks!.length}: ${verdict.reason}`, resources, settleProblems));
      }
      for (const [i, check] of c.checks.entries()) {
        if (check.before?.delete?.length) {
          for (const ref of check.before.delete) await infra.api.delete(ref);
          settleProblems = (await infra.settle()).problems;
          await context.rebase();
        }
        this.options.log(`  ${c.name}: check ${i + 1}/${c.checks.length} ${check.name}`);
        const verdict = await context.check(check);
        if (!verdict.ok) return result(false, await this.explain(`check ${i + 1}/${c.checks.length} "${check.name}": ${verdict.reason}`, resources, settleProblems));
      }
      const parts = [`${c.checks.length} check${c.checks.length === 1 ? '' : 's'}`];
      if (c.statusChecks?.length) parts.push(`${c.statusChecks.length} status check${c.statusChecks.length === 1 ? '' : 's'}`);
      return result(true, `${parts.join(' and ')} passed`);
    } catch (error) {
      return result(false, await this.explain(`harness error: ${message(error)}`, resources, settleProblems));
    } finally {
      await this.cleanUp(infra, resources);
      await this.options.gateway?.release?.(c).catch((error: unknown) => this.options.log(`  could not stop the case's gateways: ${message(error)}`));
    }
  }

  /** Adds what weft says about the case's routes (not accepted, rules dropped) and unsettled proxies to a failure. */
  private async explain(reason: string, resources: K8sObject[], settleProblems: string[]): Promise<string> {
    const hints: string[] = [];
    for (const r of resources) {
      if (r.kind !== 'HTTPRoute' && r.kind !== 'GRPCRoute') continue;
      try {
        const stored = await this.infra?.api.get(nameOf(r));
        const parents = ((stored?.status ?? {}) as { parents?: { conditions?: { type: string; status: string; reason?: string; message?: string }[] }[] }).parents ?? [];
        const seen = new Set<string>();
        for (const parent of parents) {
          for (const condition of parent.conditions ?? []) {
            const bad = condition.type === 'PartiallyInvalid' ? condition.status === 'True' : condition.status !== 'True';
            const text = `${condition.type}=${condition.status} ${condition.reason ?? ''}${condition.message ? `: ${condition.message}` : ''}`;
            if (bad && !seen.has(text)) {
              seen.add(text);
              hints.push(`${r.kind} ${r.metadata.namespace}/${r.metadata.name} ${text}`);
            }
          }
        }
        if (stored && parents.length === 0) hints.push(`${r.kind} ${r.metadata.namespace}/${r.metadata.name} has no parent status`);
      } catch {
        // The hint is a courtesy; the reason stands without it.
      }
    }
    if (settleProblems.length) hints.push(`config not settled: ${settleProblems.join('; ')}`);
    return hints.length ? `${reason} [${hints.join(' | ')}]` : reason;
  }

  /** Deletes the case's own objects and puts back the shared ones it changed, so that cases do not see each other. */
  private async cleanUp(infra: Infrastructure, resources: K8sObject[]): Promise<void> {
    const restore: K8sObject[] = [];
    for (const r of [...resources].reverse()) {
      const base = infra.baseObjects.get(objectId(r));
      if (base) restore.push(base);
      else {
        try {
          await infra.api.delete(nameOf(r));
        } catch (error) {
          this.options.log(`  could not delete ${objectId(r)}: ${message(error)}`);
        }
      }
    }
    try {
      await infra.api.apply(restore);
    } catch (error) {
      this.options.log(`  could not restore the shared objects: ${message(error)}`);
    }
  }
}

/** Judges the checks of one case; knows how to reach clients and gateways, and whether the config moved. */
class CheckContext {
  private readonly infra: Infrastructure;
  private readonly options: RunnerOptions;
  private baseline = '';

  constructor(infra: Infrastructure, options: RunnerOptions) {
    this.infra = infra;
    this.options = options;
  }

  /** Remembers the config as it is now: a failing check may stop early while it stays so. */
  async rebase(): Promise<void> {
    this.baseline = await this.infra.configVersions();
  }

  private convergence(threshold = THRESHOLD): ConvergenceOptions {
    const options: ConvergenceOptions = { threshold, maxMs: MAX_TIME_TO_CONSISTENCY_MS, pollMs: POLL_MS };
    if (!this.options.fullWait) {
      options.earlyFailAfter = EARLY_FAIL_AFTER;
      options.settled = async () => (await this.infra.configVersions()) === this.baseline;
    }
    return options;
  }

  async statusCheck(check: StatusCheck): Promise<Verdict> {
    const ref = { kind: check.kind, namespace: check.namespace, name: check.name };
    let generationBefore: number | undefined;
    if (check.after?.patch) {
      const stored = await this.infra.api.get(ref);
      if (!stored) return { ok: false, attempts: 0, reason: `${check.kind} ${check.namespace}/${check.name} does not exist to be patched` };
      generationBefore = (stored.metadata as { generation?: number }).generation;
      const { status: _status, ...object } = patched(stored, check.after.patch);
      const metadata = { ...object.metadata };
      delete metadata.resourceVersion;
      await this.infra.api.apply([{ ...object, metadata }]);
      await this.infra.settle();
      await this.rebase();
    }
    return awaitConvergence(async () => {
      const stored = await this.infra.api.get(ref);
      const problem = judgeStatus(check, stored);
      if (problem) return problem;
      if (check.generationChanged) {
        const now = (stored?.metadata as { generation?: number } | undefined)?.generation;
        if (now === undefined || generationBefore === undefined || now <= generationBefore) return `generation did not change (${generationBefore} → ${now})`;
      }
      return undefined;
    }, this.convergence(1));
  }

  private mode(check: Check): Mode {
    return check.target.type === 'mesh' ? 'mesh' : 'gateway';
  }

  private destination(check: Check): Destination {
    const target = check.target;
    if (target.type === 'mesh') {
      const client = this.infra.podsOf(target.client).find((p) => p.sidecar);
      if (!client?.sidecar) throw new Error(`no client pod ${target.client} with a sidecar`);
      return { kind: 'proxy', port: client.sidecar.outboundPort };
    }
    if (!this.options.gateway) throw new Error('gateway mode not implemented');
    return this.options.gateway.destination(target.gateway, target.port, target.scheme ?? 'http', target.sni);
  }

  private prepare(check: Check, uuid?: string): Prepared {
    const target = check.target;
    return prepare(
      check,
      {
        mode: this.mode(check),
        podIP: (app) => {
          const pod = this.infra.podsOf(app)[0];
          if (!pod) throw new Error(`no pod of ${app}`);
          return pod.ip;
        },
        ...(target.type === 'gateway' && this.options.gateway ? { gatewayHost: this.options.gateway.hostFor(target.gateway, target.port) } : {}),
        scheme: target.type === 'gateway' ? (target.scheme ?? 'http') : 'http',
      },
      uuid,
    );
  }

  private async once(check: Check, destination: Destination, prepared: Prepared): Promise<{ why: string | undefined; captured?: Captured }> {
    if (check.request.protocol === 'grpc') {
      const target = check.target;
      const gatewayHost = target.type === 'gateway' && this.options.gateway ? this.options.gateway.hostFor(target.gateway, target.port) : undefined;
      const call = prepareGrpc(check, { mode: this.mode(check), ...(gatewayHost !== undefined ? { gatewayHost } : {}) });
      const outcome = await grpcCall(destination, call, REQUEST_TIMEOUT_MS);
      return { why: compareGrpc(this.mode(check), call, prepared.expect, outcome), captured: capturedOf(outcome) };
    }
    if (check.request.protocol === 'websocket') return { why: await websocketCheck(destination, prepared.request, prepared.expect.websocket) };
    const captured = await roundTrip(destination, prepared.request);
    return { why: compareRoundTrip(this.mode(check), prepared.request, prepared.expect, captured), captured };
  }

  async check(check: Check): Promise<Verdict> {
    const destination = this.destination(check);
    const expect = check.expect;
    if (expect.weights && expect.distribution) return this.distribution(check, destination);
    if (expect.mirrorDistribution && expect.mirroredTo) return this.mirrorDistribution(check, destination);
    if (check.repeat !== undefined) return this.repeat(check, destination, check.repeat);

    const mark = this.infra.logMark();
    let lastPassed: Prepared | undefined;
    const verdict = await awaitConvergence(async () => {
      const prepared = this.prepare(check);
      const { why } = await this.once(check, destination, prepared);
      if (why === undefined) lastPassed = prepared;
      return why;
    }, this.convergence());
    if (!verdict.ok || !expect.mirroredTo?.length || !lastPassed) return verdict;
    const path = lastPassed.request.path;
    for (const mirror of expect.mirroredTo) {
      const seen = await this.waitForMirror(mirror.backend, path, mark, this.options.fullWait ? MIRROR_WAIT_FULL_MS : MIRROR_WAIT_MS);
      if (!seen) return { ok: false, attempts: verdict.attempts, reason: `the request to ${path} was not mirrored to ${mirror.backend} (no "Echoing back request made to ${path}" in its pods' logs)` };
    }
    return verdict;
  }

  private mirrorCount(backend: string, path: string, mark: number): number {
    const line = `Echoing back request made to ${path} to client`;
    let count = 0;
    for (const pod of this.infra.podsOfService(backend)) for (const entry of pod.log) if (entry.seq > mark && entry.line.startsWith(line)) count++;
    return count;
  }

  private async waitForMirror(backend: string, path: string, mark: number, timeoutMs: number): Promise<boolean> {
    const deadline = performance.now() + timeoutMs;
    for (;;) {
      if (this.mirrorCount(backend, path, mark) > 0) return true;
      if (performance.now() > deadline) return false;
      await sleep(POLL_MS);
    }
  }

  /** `repeat` requests in a row, every one of which must pass. */
  private async repeat(check: Check, destination: Destination, times: number): Promise<Verdict> {
    for (let i = 0; i < times; i++) {
      let why: string | undefined;
      try {
        why = (await this.once(check, destination, this.prepare(check))).why;
      } catch (error) {
        why = `request failed: ${message(error)}`;
      }
      if (why !== undefined) return { ok: false, attempts: i + 1, reason: `request ${i + 1} of ${times}: ${why}` };
    }
    return { ok: true, attempts: times };
  }

  /** Upstream's weighted distribution test: batches of requests, each backend's share within the tolerance, a few attempts. */
  private async distribution(check: Check, destination: Destination): Promise<Verdict> {
    const weights = check.expect.weights!;
    const { requests, tolerance, attempts } = check.expect.distribution!;
    const concurrency = check.expect.distribution!.concurrency ?? DEFAULT_CONCURRENCY;
    let lastReason = '';
    for (let attempt = 1; attempt <= attempts; attempt++) {
      const counts = new Map<string, number>();
      const errors: string[] = [];
      await runConcurrently(requests, concurrency, async () => {
        const prepared = this.prepare(check);
        // Upstream adds entropy per request, so that hashing balancers cannot pass by luck.
        prepared.request.headers['X-Jitter'] = randomBytes(4).toString('hex');
        try {
          const { why, captured } = await this.once(check, destination, prepared);
          if (why !== undefined || !captured?.echo) errors.push(why ?? 'no echo body');
          else {
            const key = `${captured.echo.namespace}/${deploymentOfPod(captured.echo.pod)}`;
            counts.set(key, (counts.get(key) ?? 0) + 1);
          }
        } catch (error) {
          errors.push(`request failed: ${message(error)}`);
        }
      });
      if (errors.length) {
        lastReason = `${errors.length} of ${requests} requests failed, e.g. ${errors[0]}`;
        if (errors.length === requests && !this.options.fullWait && (await this.infra.configVersions()) === this.baseline) break;
        continue;
      }
      const problem = judgeDistribution(counts, weights, requests, tolerance);
      if (!problem) return { ok: true, attempts: attempt };
      lastReason = `${problem} (${[...counts].map(([b, n]) => `${b}=${n}`).join(', ')})`;
    }
    return { ok: false, attempts, reason: `weighted distribution: ${lastReason}` };
  }

  /** Percentage mirroring: the mirrored share of a batch within ±k standard deviations of a binomial. */
  private async mirrorDistribution(check: Check, destination: Destination): Promise<Verdict> {
    const { requests, toleranceStdDevs, attempts } = check.expect.mirrorDistribution!;
    const concurrency = check.expect.mirrorDistribution!.concurrency ?? DEFAULT_CONCURRENCY;
    let lastReason = '';
    for (let attempt = 1; attempt <= attempts; attempt++) {
      const uuid = randomUUID();
      const mark = this.infra.logMark();
      const errors: string[] = [];
      let path = '';
      await runConcurrently(requests, concurrency, async () => {
        const prepared = this.prepare(check, uuid);
        path = prepared.request.path;
        try {
          const { why } = await this.once(check, destination, prepared);
          if (why !== undefined) errors.push(why);
        } catch (error) {
          errors.push(`request failed: ${message(error)}`);
        }
      });
      if (errors.length) {
        lastReason = `${errors.length} of ${requests} requests failed, e.g. ${errors[0]}`;
        continue;
      }
      // Mirrors are fire-and-forget: wait until their count stops moving.
      const mirrors = check.expect.mirroredTo!;
      const total = () => mirrors.reduce((sum, m) => sum + this.mirrorCount(m.backend, path, mark), 0);
      let last = -1;
      let stableSince = performance.now();
      const deadline = performance.now() + MIRROR_WAIT_MS;
      while (performance.now() < deadline) {
        const now = total();
        if (now !== last) {
          last = now;
          stableSince = performance.now();
        } else if (performance.now() - stableSince >= 1000) break;
        await sleep(200);
      }
      const problems: string[] = [];
      for (const mirror of mirrors) {
        const p = (mirror.percent ?? 100) / 100;
        const count = this.mirrorCount(mirror.backend, path, mark);
        const expected = requests * p;
        const allowed = toleranceStdDevs * Math.sqrt(requests * p * (1 - p));
        if (Math.abs(count - expected) > allowed) problems.push(`${mirror.backend} got ${count} mirrored of ${requests}, expected ${expected.toFixed(0)} ± ${allowed.toFixed(1)}`);
      }
      if (problems.length === 0) return { ok: true, attempts: attempt };
      lastReason = problems.join('; ');
    }
    return { ok: false, attempts, reason: `percentage mirroring: ${lastReason}` };
  }
}

/**
 * Upstream's HTTPRouteServiceTypes patches the EndpointSlices of selector-less
 * Services at run time with the pod IPs of another Deployment
 * (`endpointOverrides`: Service → Deployment). The slices are applied with
 * those addresses already in: the IPv4 ones, as the pods have only IPv4.
 */
export function withEndpointOverrides(resources: K8sObject[], c: Case, infra: Infrastructure): K8sObject[] {
  const overrides = c.endpointOverrides;
  if (!overrides) return resources;
  return resources.map((r) => {
    if (r.kind !== 'EndpointSlice') return r;
    const service = r.metadata.labels?.['kubernetes.io/service-name'];
    const target = service === undefined ? undefined : overrides[`${r.metadata.namespace ?? 'default'}/${service}`];
    if (target === undefined || r.addressType !== 'IPv4') return r;
    const pods = infra.podsOf(target);
    return { ...r, endpoints: pods.map((pod) => ({ addresses: [pod.ip], conditions: { ready: true } })) };
  });
}
