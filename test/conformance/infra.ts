// The shared infrastructure of a conformance run: a control plane, the echo pods of infra.json, and sidecars where the mesh needs them.
//
// weft has no Deployments or Pods. Each Deployment behind an echo Service
// becomes a Workload template (labels = the Service's selector) plus one pod
// per replica: an in-process echo server (the echo is a test double, so all
// of them share this process) and, for mesh pods, a `weft proxy` sidecar that
// registers the pod as an instance named like a Kubernetes pod
// (`<deployment>-<hash>-<hash>`). Every pod gets its own loopback address
// (127.a.b.c): that is its "pod IP", where its echo listens on its container
// ports, as a Kubernetes pod's app does on the pod network.
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { randomInt } from 'node:crypto';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pino } from 'pino';
import { startEcho, type RunningEcho } from '../../src/testing/echo.ts';
import { startGrpcEcho } from '../../src/testing/grpc-echo.ts';
import { freePort } from '../../src/testing/ports.ts';
import { ControlPlaneApi } from './api.ts';
import type { Case, Infra, InfraBackend, K8sObject } from './model.ts';
import { objectId, splitName } from './model.ts';
import { startChild, type Child } from './processes.ts';

export interface Pod {
  namespace: string;
  deployment: string;
  name: string;
  ip: string;
  labels: Record<string, string>;
  /** The container ports the echo answers on at `ip`. */
  containerPorts: number[];
  /** Those of them the gRPC echo serves (GrpcEcho over h2c). */
  grpcPorts: number[];
  /** Those of them the HTTP echo serves in h2c (prior knowledge) rather than HTTP/1.1. */
  h2cPorts: number[];
  /** Every "Echoing back request made to ..." line, numbered so a check can read only what came after it started. */
  log: { seq: number; line: string }[];
  /** Where the sidecar reaches the app (127.0.0.1:appPort), for mesh pods. */
  appPort?: number;
  /** Where the sidecar reaches the app's gRPC port, for mesh pods with one. */
  grpcAppPort?: number;
  sidecar?: Child & { outboundPort: number; adminPort: number };
}

interface Deployment {
  namespace: string;
  name: string;
  replicas: number;
  labels: Record<string, string>;
  containerPorts: number[];
  /** Container ports the gRPC echo serves. */
  grpcPorts: number[];
  /** Container ports the HTTP echo serves in h2c. */
  h2cPorts: number[];
  mesh: boolean;
  /** Why no echo runs for it (an echo flavour the harness cannot play yet). */
  unsupported?: string;
}

export interface InfraOptions {
  /** Start the mesh pods (echo-v1, echo-v2 and the consumer client) with sidecars. */
  mesh: boolean;
  /** Start the gateway backends (infra-backend-*, app-backend-*, web-backend) as Workloads outside the mesh. */
  gatewayBackends: boolean;
  /** More objects every case shares (the GatewayClass, runtime Secrets and base Gateways), applied once. */
  baseObjects?: K8sObject[];
  log?: (line: string) => void;
}

const POD_HASH_ALPHABET = 'bcdfghjklmnpqrstvwxz2456789';
const MAX_LOG_LINES = 20_000;
const SETTLE_TIMEOUT_MS = 10_000;

function podHash(length: number): string {
  let out = '';
  for (let i = 0; i < length; i++) out += POD_HASH_ALPHABET[randomInt(POD_HASH_ALPHABET.length)];
  return out;
}

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/** The Service objects of the infrastructure, as the cases carry them (infra.json lists ports but not selectors). */
export function infraServices(cases: readonly Case[], infra: Infra): Map<string, K8sObject> {
  const wanted = new Set([...infra.backends, ...infra.meshApps].map((b) => b.service));
  const services = new Map<string, K8sObject>();
  for (const c of cases) {
    for (const r of c.resources) {
      if (r.kind !== 'Service') continue;
      const key = `${r.metadata.namespace ?? 'default'}/${r.metadata.name}`;
      if (wanted.has(key) && !services.has(key)) services.set(key, r);
    }
  }
  return services;
}

function selectorOf(service: K8sObject | undefined): Record<string, string> | undefined {
  const spec = service?.spec as { selector?: Record<string, string> } | undefined;
  return spec?.selector;
}

/** Deployments behind the echo Services and mesh clients of infra.json. */
function deploymentsOf(infra: Infra, services: Map<string, K8sObject>): Deployment[] {
  const deployments: Deployment[] = [];
  const add = (backend: InfraBackend, mesh: boolean) => {
    // A Service backed by several Deployments (mesh "echo") adds no Deployment of its own.
    if (backend.podNamePrefix.length !== 1) return;
    const [namespace, serviceName] = splitName(backend.service);
    const name = backend.podNamePrefix[0]!;
    if (deployments.some((d) => d.namespace === namespace && d.name === name)) return;
    const labels = selectorOf(services.get(backend.service)) ?? { app: serviceName };
    const containerPorts = [...new Set(backend.ports.map((p) => p.targetPort ?? p.port))].sort((a, b) => a - b);
    // echo-basic in gRPC mode serves GrpcEcho on every port; the mesh echo serves gRPC on its "grpc" port (7070).
    const grpcPorts = backend.echo === 'echo-basic/grpc' ? containerPorts : backend.ports.filter((p) => p.name === 'grpc').map((p) => p.targetPort ?? p.port);
    // echo-basic's h2c listener (3001, behind appProtocol kubernetes.io/h2c) speaks HTTP/2 with prior knowledge only.
    const h2cPorts = backend.echo === 'echo-basic/http' ? backend.ports.filter((p) => p.appProtocol === 'kubernetes.io/h2c').map((p) => p.targetPort ?? p.port) : [];
    const deployment: Deployment = { namespace, name, replicas: backend.replicas, labels, containerPorts, grpcPorts, h2cPorts, mesh };
    if (backend.echo === 'echo-basic/https') deployment.unsupported = 'the TLS echo (echo-basic on 8443) is not played by the harness yet';
    deployments.push(deployment);
  };
  for (const backend of infra.backends) add(backend, false);
  // Mesh pods: the Istio echo app, as far as the cases are concerned, serves HTTP on 8080 and gRPC on 7070.
  for (const app of infra.meshApps) add({ ...app, ports: [{ port: 8080 }, { name: 'grpc', port: 7070 }] }, true);
  // Mesh clients in other namespaces run the same Deployment as in the mesh namespace ("ns/name (...)").
  for (const client of infra.meshClients) {
    const qualified = client.split(' ')[0] ?? '';
    const [namespace, name] = splitName(qualified);
    if (!namespace || deployments.some((d) => d.namespace === namespace && d.name === name)) continue;
    const twin = deployments.find((d) => d.mesh && d.name === name);
    if (twin) deployments.push({ ...twin, namespace, replicas: 1 });
  }
  return deployments;
}

export class Infrastructure {
  readonly dir: string;
  readonly api: ControlPlaneApi;
  readonly pods: Pod[] = [];
  /** Objects applied once for the whole run, by objectId: cases restore them instead of deleting them. */
  readonly baseObjects = new Map<string, K8sObject>();
  /** Deployments the harness could not play, with why. */
  readonly unsupported: string[] = [];
  /** Proxy ids of the running gateway proxies: settle() waits for them as for the sidecars. */
  readonly gatewayProxyIds = new Set<string>();
  private readonly controlPlane: Child;
  private readonly echoes: RunningEcho[] = [];
  private logSeq = 0;
  private closed = false;

  private constructor(dir: string, controlPlane: Child) {
    this.dir = dir;
    this.controlPlane = controlPlane;
    this.api = new ControlPlaneApi(String(controlPlane.ready.api));
  }

  static async start(suite: { cases: Case[]; infra: Infra }, options: InfraOptions): Promise<Infrastructure> {
    const dir = mkdtempSync(join(tmpdir(), 'weft-conformance-'));
    let infra: Infrastructure | undefined;
    try {
      const streamPort = await freePort();
      const controlPlane = await startChild('control-plane', [
        'control-plane',
        '--data-dir', join(dir, 'control-plane'),
        '--api-port', '0',
        '--stream-port', String(streamPort),
        '--lease-ttl', '3s',
        // Local mode: each sidecar gets a bootstrap token for its deployment, as `weft token create` makes them.
        '--insecure-local-tokens',
      ]);
      infra = new Infrastructure(dir, controlPlane);
      await infra.setUp(suite, options);
      return infra;
    } catch (error) {
      if (infra) await infra.close();
      else rmSync(dir, { recursive: true, force: true });
      throw error;
    }
  }

  get streamUrl(): string {
    return String(this.controlPlane.ready.stream);
  }

  private async setUp(suite: { cases: Case[]; infra: Infra }, options: InfraOptions): Promise<void> {
    const log = options.log ?? (() => {});
    const services = infraServices(suite.cases, suite.infra);
    const deployments = deploymentsOf(suite.infra, services).filter((d) => (d.mesh ? options.mesh : options.gatewayBackends));

    const base: K8sObject[] = suite.infra.namespaces.map((ns) => ({
      apiVersion: 'v1',
      kind: 'Namespace',
      metadata: { name: ns.name, labels: { ...ns.labels } },
    }));
    for (const [key, service] of services) {
      const isMesh = suite.infra.meshApps.some((a) => a.service === key);
      if (isMesh ? options.mesh : options.gatewayBackends) base.push(service);
    }
    base.push(...(options.baseObjects ?? []));
    for (const d of deployments) {
      if (!d.mesh) continue;
      base.push({
        apiVersion: 'weft.dev/v1alpha1',
        kind: 'Workload',
        metadata: { name: d.name, namespace: d.namespace, labels: d.labels },
        spec: { ports: d.containerPorts.map((port) => ({ port })) },
      });
    }
    await this.api.apply(base);
    for (const object of base) this.baseObjects.set(objectId(object), object);

    // Pods: one loopback address each, echoes listening there (and on 127.0.0.1 for a sidecar's app port).
    const subnet = `127.${randomInt(16, 250)}.${randomInt(1, 250)}`;
    let host = 1;
    const outside: K8sObject[] = [];
    for (const d of deployments) {
      if (d.unsupported) {
        this.unsupported.push(`${d.namespace}/${d.name}: ${d.unsupported}`);
        continue;
      }
      const replicaSet = podHash(10);
      for (let i = 0; i < d.replicas; i++) {
        const pod: Pod = {
          namespace: d.namespace,
          deployment: d.name,
          name: `${d.name}-${replicaSet}-${podHash(5)}`,
          ip: `${subnet}.${host++}`,
          labels: d.labels,
          containerPorts: d.containerPorts,
          grpcPorts: d.grpcPorts,
          h2cPorts: d.h2cPorts,
          log: [],
        };
        await this.startEchoes(pod, d.mesh);
        this.pods.push(pod);
        if (!d.mesh) {
          outside.push({
            apiVersion: 'weft.dev/v1alpha1',
            kind: 'Workload',
            metadata: { name: pod.name, namespace: pod.namespace, labels: pod.labels },
            spec: { address: pod.ip, ports: pod.containerPorts.map((port) => ({ port })) },
          });
        }
      }
    }
    if (outside.length > 0) {
      await this.api.apply(outside);
      for (const object of outside) this.baseObjects.set(objectId(object), object);
    }

    const meshPods = this.pods.filter((p) => p.appPort !== undefined);
    log(`starting ${meshPods.length} sidecars for ${meshPods.map((p) => `${p.namespace}/${p.name}`).join(', ')}`);
    await Promise.all(meshPods.map((pod) => this.startSidecar(pod)));
    await this.waitForRegistrations(meshPods);
    const settled = await this.settle();
    if (!settled.converged) throw new Error(`the sidecars did not converge on their first config: ${settled.problems.join('; ')}`);
  }

  private async startEchoes(pod: Pod, mesh: boolean): Promise<void> {
    const lines = pod.log;
    // The echo logs one line per request through its logger; keeping them is how mirrored requests are seen.
    const logger = pino(
      { level: 'info', base: null, timestamp: false },
      {
        write: (json: string) => {
          try {
            const msg = (JSON.parse(json) as { msg?: string }).msg ?? '';
            lines.push({ seq: ++this.logSeq, line: msg });
            if (lines.length > MAX_LOG_LINES) lines.splice(0, lines.length - MAX_LOG_LINES);
          } catch {
            // Not a log line of ours.
          }
        },
      },
    );
    for (const port of pod.containerPorts) {
      const start = pod.grpcPorts.includes(port) ? startGrpcEcho : startEcho;
      this.echoes.push(await start({ port, host: pod.ip, namespace: pod.namespace, pod: pod.name, logger, h2c: pod.h2cPorts.includes(port) }));
    }
    if (mesh) {
      const app = await startEcho({ port: 0, namespace: pod.namespace, pod: pod.name, logger });
      this.echoes.push(app);
      pod.appPort = app.port;
      if (pod.grpcPorts.length > 0) {
        const grpcApp = await startGrpcEcho({ port: 0, namespace: pod.namespace, pod: pod.name, logger });
        this.echoes.push(grpcApp);
        pod.grpcAppPort = grpcApp.port;
      }
    }
  }

  private async startSidecar(pod: Pod): Promise<void> {
    const appPorts = pod.containerPorts.flatMap((port) => ['--app-port', `${port}=${pod.grpcPorts.includes(port) ? pod.grpcAppPort : pod.appPort}`]);
    const tokenFile = join(this.dir, 'tokens', `${pod.namespace}.${pod.name}`);
    mkdirSync(join(this.dir, 'tokens'), { recursive: true, mode: 0o700 });
    writeFileSync(tokenFile, await this.api.createToken(pod.namespace, pod.deployment), { mode: 0o600 });
    const child = await startChild(`sidecar ${pod.namespace}/${pod.name}`, [
      'proxy', '--mode', 'sidecar',
      '--control-plane', this.streamUrl,
      '--namespace', pod.namespace,
      '--workload', pod.deployment,
      '--instance', pod.name,
      ...appPorts,
      '--address', pod.ip,
      '--tunnel-host', pod.ip,
      '--outbound-port', '0', '--tunnel-port', '0', '--admin-port', '0',
      '--data-dir', join(this.dir, 'proxies', `${pod.namespace}.${pod.name}`),
      '--drain', '1s',
      '--token-file', tokenFile,
      '--exit-on-stdin-close',
    ]);
    const ports = child.ready.ports as { outbound: number; admin: number };
    pod.sidecar = Object.assign(child, { outboundPort: ports.outbound, adminPort: ports.admin });
  }

  private async waitForRegistrations(pods: Pod[]): Promise<void> {
    const deadline = performance.now() + SETTLE_TIMEOUT_MS;
    for (;;) {
      const missing: string[] = [];
      for (const namespace of new Set(pods.map((p) => p.namespace))) {
        const items = await this.api.list(`/apis/weft.dev/v1alpha1/namespaces/${namespace}/workloads`);
        const registered = new Set(items.filter((w) => (w.spec as { address?: string } | undefined)?.address).map((w) => w.metadata.name));
        for (const pod of pods) if (pod.namespace === namespace && !registered.has(pod.name)) missing.push(`${namespace}/${pod.name}`);
      }
      if (missing.length === 0) return;
      if (performance.now() > deadline) throw new Error(`these pods never registered with the control plane: ${missing.join(', ')}`);
      await sleep(100);
    }
  }

  /** Versions every connected proxy was sent, for telling whether the config moved. */
  async configVersions(): Promise<string> {
    const proxies = await this.api.proxies();
    return proxies
      .map((p) => `${p.id}=${p.connected ? (p.ackedVersion ?? '-') : 'down'}/${p.sentVersion ?? '-'}`)
      .sort()
      .join(',');
  }

  /**
   * Waits (bounded) until every sidecar is connected and has acknowledged the
   * last snapshot it was sent, and the sent versions have held still for a
   * few polls (longer than the control plane's debounce). Reports NACKs.
   */
  async settle(timeoutMs = SETTLE_TIMEOUT_MS): Promise<{ converged: boolean; problems: string[] }> {
    const expected = [...this.pods.filter((p) => p.sidecar).map((p) => `${p.namespace}/${p.name}`), ...this.gatewayProxyIds];
    const deadline = performance.now() + timeoutMs;
    let previous = '';
    let stableSince = performance.now();
    let problems: string[] = [];
    for (;;) {
      const proxies = await this.api.proxies();
      problems = [];
      for (const id of expected) {
        const p = proxies.find((x) => x.id === id);
        if (!p || !p.connected) problems.push(`${id} is not connected`);
        else if (!p.sentVersion || p.ackedVersion !== p.sentVersion) {
          problems.push(p.lastNack ? `${id} rejected config ${p.lastNack.version}: ${p.lastNack.code}: ${p.lastNack.message}` : `${id} has not acknowledged ${p.sentVersion ?? 'any config'}`);
        }
      }
      const versions = proxies.map((p) => `${p.id}=${p.sentVersion ?? ''}`).sort().join(',');
      const now = performance.now();
      if (versions !== previous) {
        previous = versions;
        stableSince = now;
      }
      if (problems.length === 0 && now - stableSince >= 300) return { converged: true, problems };
      if (now > deadline) return { converged: false, problems: problems.length ? problems : ['the config kept changing'] };
      await sleep(100);
    }
  }

  /** Pods of a Deployment ("ns/deployment"). */
  podsOf(qualified: string): Pod[] {
    const [namespace, name] = splitName(qualified);
    return this.pods.filter((p) => p.namespace === namespace && p.deployment === name);
  }

  /** Pods a Service ("ns/name") selects, by its selector when it is a base object, else by Deployment name. */
  podsOfService(qualified: string): Pod[] {
    const [namespace, name] = splitName(qualified);
    const service = this.baseObjects.get(objectId({ apiVersion: 'v1', kind: 'Service', metadata: { namespace, name } }));
    const selector = selectorOf(service);
    if (!selector) return this.podsOf(qualified);
    return this.pods.filter((p) => p.namespace === namespace && Object.entries(selector).every(([k, v]) => p.labels[k] === v));
  }

  /** The sequence number of the latest echo log line: lines after it came later. */
  logMark(): number {
    return this.logSeq;
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    await Promise.all(this.pods.map((p) => p.sidecar?.stop(3000)));
    await this.controlPlane.stop(5000);
    await Promise.all(this.echoes.map((e) => e.close()));
    rmSync(this.dir, { recursive: true, force: true });
  }
}
