// Times the compiler on a large mesh (default 1,000 services, 5,000 route rules, 10,000 endpoints) and prints one JSON line.
//
// Wall time and the main thread's CPU time are both reported; the control
// plane compiles on its main thread, so on a dedicated core the two agree.
// "Cold" compiles get a fresh input object each time, so nothing prepared
// for an earlier compile is reused: that is what the control plane pays when
// the config changes. "Another proxy" compiles the same input for a second
// node, which reuses the prepared, node-independent half.
import { parseArgs } from 'node:util';
import type { Resource } from '../../src/api/meta.ts';
import type { HTTPRoute, Service, Workload } from '../../src/api/resources.ts';
import type { NodeInfo } from '../../src/api/snapshot.ts';
import { validateResource } from '../../src/api/validate.ts';
import { checkSnapshot, compile } from '../../src/compiler/compile.ts';
import type { CompilerInput } from '../../src/compiler/types.ts';

const { values } = parseArgs({
  options: {
    services: { type: 'string', default: '1000' },
    'rules-per-service': { type: 'string', default: '5' },
    'endpoints-per-service': { type: 'string', default: '10' },
    namespaces: { type: 'string', default: '10' },
    runs: { type: 'string', default: '7' },
  },
});
const serviceCount = Number(values.services);
const rulesPerService = Number(values['rules-per-service']);
const endpointsPerService = Number(values['endpoints-per-service']);
const namespaceCount = Number(values.namespaces);
const runs = Number(values.runs);

function valid<T extends Resource>(raw: unknown): T {
  const result = validateResource(raw);
  if (!result.ok) throw new Error(`${result.object}: ${result.issues.map((i) => `${i.path}: ${i.message}`).join('; ')}`);
  return result.resource as T;
}

function buildInput(): CompilerInput {
  const namespaces: Resource[] = [];
  const services: Service[] = [];
  const workloads: Workload[] = [];
  const httpRoutes: HTTPRoute[] = [];
  for (let n = 0; n < namespaceCount; n++) namespaces.push(valid({ apiVersion: 'v1', kind: 'Namespace', metadata: { name: `ns-${n}` } }));
  workloads.push(valid({ apiVersion: 'weft.dev/v1alpha1', kind: 'Workload', metadata: { name: 'client', namespace: 'ns-0', labels: { app: 'client' } }, spec: { ports: [{ port: 8080 }] } }));
  for (let s = 0; s < serviceCount; s++) {
    const namespace = `ns-${s % namespaceCount}`;
    const name = `svc-${s}`;
    services.push(valid({ apiVersion: 'v1', kind: 'Service', metadata: { name, namespace }, spec: { selector: { app: name }, ports: [{ name: 'http', port: 8080 }] } }));
    for (let e = 0; e < endpointsPerService; e++) {
      const id = s * endpointsPerService + e;
      workloads.push(
        valid({
          apiVersion: 'weft.dev/v1alpha1',
          kind: 'Workload',
          metadata: { name: `${name}-${e}`, namespace, labels: { app: name, version: e % 2 === 0 ? 'v1' : 'v2' } },
          spec: { address: `10.${(id >> 16) & 255}.${(id >> 8) & 255}.${id & 255}`, tunnelPort: 15008, ports: [{ name: 'http', port: 8080 }] },
        }),
      );
    }
    const rules = Array.from({ length: rulesPerService }, (_, r) => ({
      matches: [{ path: { type: 'PathPrefix', value: `/api/v${r}` }, headers: [{ name: 'x-tenant', value: `tenant-${r}` }] }],
      filters: [{ type: 'RequestHeaderModifier', requestHeaderModifier: { set: [{ name: 'x-route', value: `${name}-${r}` }] } }],
      backendRefs: [{ name, port: 8080, weight: 100 - r }],
      timeouts: { request: '10s' },
    }));
    httpRoutes.push(
      valid({
        apiVersion: 'gateway.networking.k8s.io/v1',
        kind: 'HTTPRoute',
        metadata: { name: `${name}-routes`, namespace },
        spec: { parentRefs: [{ group: '', kind: 'Service', name, port: 8080 }], rules },
      }),
    );
  }
  return { services, workloads, httpRoutes, namespaces };
}

const node = (instance: string): NodeInfo => ({
  id: `ns-0/${instance}`,
  mode: 'sidecar',
  namespace: 'ns-0',
  workload: 'client',
  instance,
  address: '127.0.0.1',
  tunnelPort: 15008,
  appPorts: [8080],
});

const buildStarted = performance.now();
const input = buildInput();
const buildMs = performance.now() - buildStarted;

/** This thread's CPU time in ms: on a shared machine it moves far less than wall time, which includes waiting for the core. */
function threadCpuMs(): number {
  const usage = process.threadCpuUsage();
  return (usage.user + usage.system) / 1000;
}

const coldMs: number[] = [];
const coldCpuMs: number[] = [];
// The very first compile also pays for V8 compiling the compiler: reported apart.
const firstStarted = performance.now();
let snapshot = compile({ ...input }, node('client-0'));
const firstMs = performance.now() - firstStarted;
for (let i = 0; i < runs; i++) {
  // New arrays: the compiler's prepare cache is keyed on them, so every run starts cold.
  const fresh: CompilerInput = { services: [...input.services], workloads: [...input.workloads], httpRoutes: [...input.httpRoutes], namespaces: [...input.namespaces] };
  const started = performance.now();
  const startedCpu = threadCpuMs();
  snapshot = compile(fresh, node('client-0'));
  coldCpuMs.push(threadCpuMs() - startedCpu);
  coldMs.push(performance.now() - started);
}
const shared: CompilerInput = { ...input };
compile(shared, node('client-0'));
const extraMs: number[] = [];
for (let i = 0; i < runs; i++) {
  const started = performance.now();
  compile(shared, node('client-0'));
  extraMs.push(performance.now() - started);
}
const checkStarted = performance.now();
const problems = checkSnapshot(snapshot);
const checkMs = performance.now() - checkStarted;

const sorted = (values: number[]) => [...values].sort((a, b) => a - b);
const median = (values: number[]) => sorted(values)[Math.floor(values.length / 2)]!;
process.stdout.write(
  JSON.stringify({
    services: serviceCount,
    rules: serviceCount * rulesPerService,
    endpoints: serviceCount * endpointsPerService,
    buildMs,
    firstMs,
    coldMedianMs: median(coldMs),
    coldMinMs: sorted(coldMs)[0],
    coldCpuMedianMs: median(coldCpuMs),
    anotherProxyMedianMs: median(extraMs),
    checkMs,
    problems: problems.length,
    snapshotBytes: Buffer.byteLength(JSON.stringify(snapshot)),
    rssMiB: process.memoryUsage().rss / 2 ** 20,
  }) + '\n',
);
