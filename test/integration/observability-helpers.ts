// A three-hop mesh for the tracing and access-log tests: client sidecar → frontend → catalog → pricing, each app copying trace headers to its call, plus a small OTLP/HTTP receiver.
import assert from 'node:assert/strict';
import { createServer, type IncomingMessage, type Server } from 'node:http';
import { createServer as createNetServer, type Server as NetServer } from 'node:net';
import type { AddressInfo } from 'node:net';
import { gatewayWorkloadName } from '../../src/api/snapshot.ts';
import type { RunningControlPlane } from '../../src/control/main.ts';
import { startProxy, type RunningProxy } from '../../src/proxy/main.ts';
import { TRACE_HEADERS } from '../../src/proxy/tracing/propagation.ts';
import { systemClock } from '../../src/telemetry/clock.ts';
import { silentLogger } from '../../src/telemetry/logger.ts';
import { api, startTestControlPlane, waitFor } from './control-helpers.ts';
import { viaProxy } from './proxy-helpers.ts';

const SERVICES = ['frontend', 'catalog', 'pricing'];

export function meshYaml(): string {
  const docs: string[] = [];
  for (const name of SERVICES) {
    docs.push(`apiVersion: v1
kind: Service
metadata: {name: ${name}, namespace: shop}
spec:
  selector: {app: ${name}}
  ports: [{name: http, port: 80, targetPort: 8080}]
---
apiVersion: weft.dev/v1alpha1
kind: Workload
metadata: {name: ${name}, namespace: shop, labels: {app: ${name}}}
spec:
  serviceAccount: ${name}
  ports: [{name: http, port: 8080}${name === 'pricing' ? ', {name: tcp, port: 9000}' : ''}]`);
  }
  docs.push(`apiVersion: v1
kind: Service
metadata: {name: tcpecho, namespace: shop}
spec:
  selector: {app: pricing}
  ports: [{name: tcp, port: 9000, targetPort: 9000, appProtocol: tcp}]`);
  docs.push(`apiVersion: v1
kind: Service
metadata: {name: tcpgone, namespace: shop}
spec:
  selector: {app: nobody}
  ports: [{name: tcp, port: 9100, appProtocol: tcp}]`);
  docs.push(`apiVersion: weft.dev/v1alpha1
kind: Workload
metadata: {name: client, namespace: shop, labels: {app: client}}
spec:
  serviceAccount: client`);
  return docs.join('\n---\n');
}

export function meshConfigYaml(spec: string): string {
  return `apiVersion: weft.dev/v1alpha1
kind: MeshConfig
metadata: {name: default}
spec:
${spec
  .split('\n')
  .map((line) => `  ${line}`)
  .join('\n')}
`;
}

/** What each app answers: the headers it received and its callee's answer. */
export interface HopAnswer {
  hop: string;
  headers: Record<string, string | string[] | undefined>;
  next?: HopAnswer;
}

interface ChainApp {
  port: number;
  server: Server;
}

/** An app that copies the trace headers of its request to its call of `next` (through its sidecar), as the demo services do. */
function startChainApp(hop: string, next: { outbound: () => number; url: string } | undefined): Promise<ChainApp> {
  const server = createServer(async (req, res) => {
    const answer: HopAnswer = { hop, headers: req.headers };
    req.resume();
    try {
      if (next) {
        const headers: Record<string, string> = {};
        for (const name of TRACE_HEADERS) {
          const value = req.headers[name];
          if (typeof value === 'string') headers[name] = value;
        }
        const called = await viaProxy(next.outbound(), `${next.url}${req.url ?? '/'}`, { headers });
        if (called.status !== 200) {
          res.writeHead(called.status, { 'content-type': 'text/plain' });
          res.end(called.body);
          return;
        }
        answer.next = JSON.parse(called.body) as HopAnswer;
      }
      const body = JSON.stringify(answer);
      res.writeHead(200, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) });
      res.end(body);
    } catch (error) {
      res.writeHead(500);
      res.end(String(error));
    }
  });
  return new Promise((resolve) => server.listen(0, '127.0.0.1', () => resolve({ port: (server.address() as AddressInfo).port, server })));
}

/** A TCP echo server (pricing's second port). */
function startTcpEcho(): Promise<NetServer & { port: number }> {
  const server = createNetServer((socket) => {
    socket.on('error', () => socket.destroy());
    socket.pipe(socket);
  }) as NetServer & { port: number };
  return new Promise((resolve) =>
    server.listen(0, '127.0.0.1', () => {
      server.port = (server.address() as AddressInfo).port;
      resolve(server);
    }),
  );
}

export interface ObservedMesh {
  cp: RunningControlPlane;
  client: RunningProxy;
  /** With `gateway: true`: Gateway shop/edge, whose port 80 routes host shop.example to frontend; its local port. */
  gatewayPort: number;
  proxies: Record<string, RunningProxy>;
  /** Applies a MeshConfig spec (YAML body lines) and waits until every proxy runs the resulting snapshot. */
  setMeshConfig(spec: string): Promise<void>;
  close(): Promise<void>;
}

const GATEWAY = `apiVersion: gateway.networking.k8s.io/v1
kind: Gateway
metadata: {name: edge, namespace: shop}
spec:
  gatewayClassName: weft
  listeners: [{name: http, port: 80, protocol: HTTP}]
---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: edge-frontend, namespace: shop}
spec:
  parentRefs: [{name: edge}]
  hostnames: [shop.example]
  rules:
    - backendRefs: [{name: frontend, port: 80}]`;

export async function startObservedMesh(meshConfigSpec: string, options: { gateway?: boolean } = {}): Promise<ObservedMesh> {
  const logger = silentLogger();
  const cp = await startTestControlPlane({ leaseTtlMs: 5000 });
  const closers: (() => Promise<void>)[] = [() => cp.close()];
  const close = async () => {
    for (const c of closers.reverse()) await c().catch(() => {});
  };
  try {
    const yaml = [meshYaml(), meshConfigYaml(meshConfigSpec), ...(options.gateway ? [GATEWAY] : [])].join('\n---\n');
    const applied = await api(cp.apiUrl, 'POST', '/weft/v1/apply', yaml, 'application/yaml');
    assert.equal(applied.status, 200, applied.text);
    const proxies: Record<string, RunningProxy> = {};
    const sidecar = async (workload: string, appPorts: { declared: number; actual: number }[]) => {
      const proxy = await startProxy({
        mode: 'sidecar',
        controlPlane: cp.streamUrl,
        namespace: 'shop',
        workload,
        instance: `${workload}-0`,
        appPorts,
        token: await cp.tokens.create({ namespace: 'shop', workload }),
        outboundPort: 0,
        tunnelPort: 0,
        adminPort: 0,
        readinessIntervalMs: 100,
        drainMs: 200,
        logger,
        clock: systemClock,
      });
      closers.push(() => proxy.close());
      proxies[workload] = proxy;
      return proxy;
    };
    const outboundOf = (workload: string) => () => proxies[workload]?.ports.outbound ?? 0;
    const tcp = await startTcpEcho();
    closers.push(() => new Promise((resolve) => tcp.close(() => resolve())));
    const next: Record<string, { outbound: () => number; url: string } | undefined> = {
      frontend: { outbound: outboundOf('frontend'), url: 'http://catalog.shop' },
      catalog: { outbound: outboundOf('catalog'), url: 'http://pricing.shop' },
      pricing: undefined,
    };
    for (const name of SERVICES) {
      const app = await startChainApp(name, next[name]);
      closers.push(
        () =>
          new Promise((resolve) => {
            app.server.close(() => resolve());
            app.server.closeAllConnections();
          }),
      );
      await sidecar(name, name === 'pricing' ? [{ declared: 8080, actual: app.port }, { declared: 9000, actual: tcp.port }] : [{ declared: 8080, actual: app.port }]);
    }
    const client = await sidecar('client', []);
    await client.identityReady;
    let gatewayPort = 0;
    let gateway: RunningProxy | undefined;
    if (options.gateway) {
      gateway = await startProxy({
        mode: 'gateway',
        controlPlane: cp.streamUrl,
        namespace: 'shop',
        workload: gatewayWorkloadName('edge'),
        instance: 'edge-0',
        appPorts: [],
        gateway: { name: 'shop/edge', portMap: new Map([[80, 0]]), unmapped: 'ephemeral' },
        token: await cp.tokens.create({ namespace: 'shop', workload: gatewayWorkloadName('edge') }),
        outboundPort: 0,
        tunnelPort: 0,
        adminPort: 0,
        drainMs: 200,
        logger,
        clock: systemClock,
      });
      const running = gateway;
      closers.push(() => running.close());
      await gateway.identityReady;
      gatewayPort = Number(gateway.gatewayPorts()['80']);
      await waitFor(
        async () => (await viaProxy(gatewayPort, '/warm', { headers: { host: 'shop.example' } }).catch(() => undefined))?.status === 200,
        'the gateway answers',
        15_000,
      );
    }
    await waitFor(async () => (await viaProxy(client.ports.outbound, 'http://frontend.shop/warm').catch(() => undefined))?.status === 200, 'the chain answers', 15_000);
    const setMeshConfig = async (spec: string) => {
      const res = await api(cp.apiUrl, 'POST', '/weft/v1/apply', meshConfigYaml(spec), 'application/yaml');
      assert.equal(res.status, 200, res.text);
      const all = [client, ...Object.values(proxies), ...(gateway ? [gateway] : [])];
      const versions = () => all.map((p) => (p.state.config() as { version: string | null }).version);
      const before = versions();
      // Every proxy's snapshot changes (the mesh part is in all of them).
      await waitFor(() => versions().every((v, i) => v !== before[i]), 'every proxy runs the new MeshConfig', 10_000);
    };
    return { cp, client, gatewayPort, proxies, setMeshConfig, close };
  } catch (error) {
    await close();
    throw error;
  }
}

/** One span as the receiver keeps it: the OTLP JSON span plus its resource's service.name. */
export interface ReceivedSpan {
  service: string;
  traceId: string;
  spanId: string;
  parentSpanId?: string;
  name: string;
  kind: number;
  attributes: Record<string, unknown>;
  status: { code: number; message?: string };
  startTimeUnixNano: string;
  endTimeUnixNano: string;
}

export interface OtlpReceiver {
  url: string;
  spans: ReceivedSpan[];
  requests: number;
  close(): Promise<void>;
}

interface OtlpValue {
  stringValue?: string;
  intValue?: string;
  doubleValue?: number;
  boolValue?: boolean;
}

function valueOf(v: OtlpValue): unknown {
  if (v.stringValue !== undefined) return v.stringValue;
  if (v.intValue !== undefined) return Number(v.intValue);
  if (v.doubleValue !== undefined) return v.doubleValue;
  return v.boolValue;
}

/** A minimal OTLP/HTTP JSON trace receiver: POST /v1/traces. */
export function startOtlpReceiver(): Promise<OtlpReceiver> {
  const receiver: OtlpReceiver = { url: '', spans: [], requests: 0, close: async () => {} };
  const server = createServer((req: IncomingMessage, res) => {
    let body = '';
    req.setEncoding('utf8');
    req.on('data', (chunk: string) => (body += chunk));
    req.on('end', () => {
      if (req.method !== 'POST' || req.url !== '/v1/traces' || req.headers['content-type'] !== 'application/json') {
        res.writeHead(404);
        res.end();
        return;
      }
      receiver.requests++;
      const parsed = JSON.parse(body) as {
        resourceSpans: { resource: { attributes: { key: string; value: OtlpValue }[] }; scopeSpans: { spans: (Omit<ReceivedSpan, 'service' | 'attributes'> & { attributes: { key: string; value: OtlpValue }[] })[] }[] }[];
      };
      for (const rs of parsed.resourceSpans) {
        const service = String(valueOf(rs.resource.attributes.find((a) => a.key === 'service.name')?.value ?? {}));
        for (const ss of rs.scopeSpans) {
          for (const span of ss.spans) {
            const attributes: Record<string, unknown> = {};
            for (const a of span.attributes) attributes[a.key] = valueOf(a.value);
            receiver.spans.push({ ...span, service, attributes });
          }
        }
      }
      res.writeHead(200, { 'content-type': 'application/json' });
      res.end('{}');
    });
  });
  return new Promise((resolve) =>
    server.listen(0, '127.0.0.1', () => {
      receiver.url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
      receiver.close = () =>
        new Promise((done) => {
          server.close(() => done());
          server.closeAllConnections();
        });
      resolve(receiver);
    }),
  );
}
