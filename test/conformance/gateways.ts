// The conformance harness's gateways: the GatewayClass and certificates upstream creates at start-up, and one `weft proxy --mode gateway` per Gateway.
//
// Upstream runs one data plane per Gateway and reaches it at the address in
// the Gateway's status. Here every Gateway a case names gets its own gateway
// proxy process, whose listener ports are bound on free local ports (80 and
// 443 need root); the proxy's ready line says which local port serves which
// Gateway port, and the harness sends there. Requests still name the Gateway
// port in their Host (upstream's "ip" or "ip:port"), as a client of the real
// Gateway would.
import 'reflect-metadata';
import * as x509 from '@peculiar/x509';
import { webcrypto } from 'node:crypto';
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { gatewayWorkloadName } from '../../src/api/snapshot.ts';
import type { Destination } from './client.ts';
import type { Infrastructure } from './infra.ts';
import { GATEWAY_CLASS_NAME, splitName, withGatewayClass, type Case, type Infra, type K8sObject } from './model.ts';
import { startChild, type Child } from './processes.ts';
import type { GatewayDriver } from './runner.ts';

/** The controllerName of weft's GatewayClasses. */
const CONTROLLER_NAME = 'weft.dev/gateway-controller';
/** The address gateway proxies register (their --address default): what the Gateways' status says. */
const GATEWAY_ADDRESS = '127.0.0.1';

export interface Certificate {
  certPem: string;
  keyPem: string;
}

function pem(label: string, der: ArrayBuffer): string {
  const base64 = Buffer.from(der).toString('base64').replace(/(.{64})/g, '$1\n').replace(/\n$/, '');
  return `-----BEGIN ${label}-----\n${base64}\n-----END ${label}-----\n`;
}

/** A self-signed ECDSA P-256 server certificate for `sans` (DNS names, wildcards allowed), valid for a day. */
export async function selfSignedCertificate(commonName: string, sans: readonly string[]): Promise<Certificate> {
  const algorithm = { name: 'ECDSA', namedCurve: 'P-256', hash: 'SHA-256' };
  const keys = (await webcrypto.subtle.generateKey(algorithm, true, ['sign', 'verify'])) as webcrypto.CryptoKeyPair;
  const now = Date.now();
  const cert = await x509.X509CertificateGenerator.createSelfSigned({
    serialNumber: Buffer.from(webcrypto.getRandomValues(new Uint8Array(8))).toString('hex').replace(/^[89a-f]/, '1'),
    name: `CN=${commonName}`,
    notBefore: new Date(now - 60_000),
    notAfter: new Date(now + 24 * 3_600_000),
    keys,
    signingAlgorithm: algorithm,
    extensions: [
      new x509.BasicConstraintsExtension(false, undefined, true),
      new x509.KeyUsagesExtension(x509.KeyUsageFlags.digitalSignature, true),
      new x509.ExtendedKeyUsageExtension([x509.ExtendedKeyUsage.serverAuth]),
      new x509.SubjectAlternativeNameExtension(sans.map((value) => ({ type: 'dns' as const, value }))),
    ],
  });
  return { certPem: cert.toString('pem') + '\n', keyPem: pem('PRIVATE KEY', await webcrypto.subtle.exportKey('pkcs8', keys.privateKey)) };
}

export interface GatewayFixtures {
  /** GatewayClass, the runtime Secrets and the base Gateways: applied once for the whole run. */
  objects: K8sObject[];
  /** What the harness's HTTPS client trusts: the self-signed certificates of the runtime Secrets. */
  trusted: string;
}

/**
 * What upstream sets up before its tests: the GatewayClass the cases name,
 * the self-signed certificates it generates into Secrets, and the base
 * Gateways of conformance/base/manifests.yaml.
 */
export async function gatewayFixtures(infra: Infra): Promise<GatewayFixtures> {
  const objects: K8sObject[] = [
    {
      apiVersion: 'gateway.networking.k8s.io/v1',
      kind: 'GatewayClass',
      metadata: { name: GATEWAY_CLASS_NAME },
      spec: { controllerName: CONTROLLER_NAME },
    },
  ];
  const trusted: string[] = [];
  for (const secret of infra.runtimeSecrets) {
    // CA-signed ones serve only the untranslated BackendTLSPolicy tests.
    if (secret.type !== 'self-signed') continue;
    const [namespace, name] = splitName(secret.secret);
    const certificate = await selfSignedCertificate(name, secret.sans);
    trusted.push(certificate.certPem);
    objects.push({
      apiVersion: 'v1',
      kind: 'Secret',
      metadata: { name, namespace },
      type: 'kubernetes.io/tls',
      data: { 'tls.crt': Buffer.from(certificate.certPem).toString('base64'), 'tls.key': Buffer.from(certificate.keyPem).toString('base64') },
    });
  }
  objects.push(...withGatewayClass(infra.gateways));
  return { objects, trusted: trusted.join('') };
}

interface RunningGateway {
  key: string;
  /** The listener ports it was started for, sorted: a Gateway asking for others gets a new proxy. */
  ports: string;
  child: Child;
  /** Gateway port → local port. */
  listeners: Map<number, number>;
  /** As the control plane lists it. */
  id: string;
}

function gatewayPorts(gateway: K8sObject): number[] {
  const listeners = ((gateway.spec as { listeners?: { port?: unknown }[] } | undefined)?.listeners ?? []).map((l) => l.port);
  return [...new Set(listeners.filter((p): p is number => typeof p === 'number'))].sort((a, b) => a - b);
}

/**
 * Starts a gateway proxy for every Gateway a case applies (the base ones stay
 * up for the whole run), and tells the runner where each Gateway port answers.
 */
export class GatewayProxies implements GatewayDriver {
  private infra: Infrastructure | undefined;
  private readonly trusted: string;
  private readonly log: (line: string) => void;
  private readonly running = new Map<string, RunningGateway>();
  private readonly base = new Set<string>();
  private readonly starting = new Map<string, Promise<RunningGateway>>();

  constructor(fixtures: GatewayFixtures, log: (line: string) => void) {
    this.trusted = fixtures.trusted;
    this.log = log;
    for (const object of fixtures.objects) if (object.kind === 'Gateway') this.base.add(`${object.metadata.namespace ?? 'default'}/${object.metadata.name}`);
  }

  /** Binds to the infrastructure once it runs, and starts the base Gateways' proxies. */
  async attach(infra: Infrastructure, baseGateways: readonly K8sObject[]): Promise<void> {
    this.infra = infra;
    await Promise.all(baseGateways.map((g) => this.ensure(g)));
  }

  async prepare(c: Case): Promise<void> {
    const gateways = withGatewayClass(c.resources).filter((r) => r.kind === 'Gateway');
    await Promise.all(gateways.map((g) => this.ensure(g)));
  }

  /** Stops the proxies of the case's own Gateways (the base ones stay). */
  async release(c: Case): Promise<void> {
    const stops: Promise<unknown>[] = [];
    for (const r of c.resources) {
      if (r.kind !== 'Gateway') continue;
      const key = `${r.metadata.namespace ?? 'default'}/${r.metadata.name}`;
      if (this.base.has(key)) continue;
      const running = this.running.get(key);
      if (!running) continue;
      this.running.delete(key);
      this.infra?.gatewayProxyIds.delete(running.id);
      stops.push(running.child.stop(3000));
    }
    await Promise.all(stops);
  }

  destination(gateway: string, port: number, scheme: 'http' | 'https', sni?: string): Destination {
    const running = this.running.get(gateway);
    if (!running) throw new Error(`no gateway proxy runs for Gateway ${gateway}`);
    const local = running.listeners.get(port);
    if (local === undefined) throw new Error(`the gateway proxy of ${gateway} listens on no port for Gateway port ${port}`);
    const destination: Destination = { kind: 'direct', address: GATEWAY_ADDRESS, port: local, scheme };
    if (scheme === 'https') {
      destination.ca = this.trusted;
      if (sni !== undefined) destination.sni = sni;
    }
    return destination;
  }

  hostFor(_gateway: string, port: number): string {
    return port === 80 || port === 443 ? GATEWAY_ADDRESS : `${GATEWAY_ADDRESS}:${port}`;
  }

  async close(): Promise<void> {
    const all = [...this.running.values()];
    this.running.clear();
    await Promise.all(all.map((r) => r.child.stop(3000)));
  }

  private async ensure(gateway: K8sObject): Promise<RunningGateway> {
    const key = `${gateway.metadata.namespace ?? 'default'}/${gateway.metadata.name}`;
    const ports = gatewayPorts(gateway).join(',');
    const running = this.running.get(key);
    if (running && running.ports === ports) return running;
    const pending = this.starting.get(key);
    if (pending) return pending;
    const start = (async () => {
      if (running) {
        this.running.delete(key);
        this.infra?.gatewayProxyIds.delete(running.id);
        await running.child.stop(3000);
      }
      const started = await this.start(key, gatewayPorts(gateway));
      this.running.set(key, started);
      this.infra?.gatewayProxyIds.add(started.id);
      return started;
    })();
    this.starting.set(key, start);
    try {
      return await start;
    } finally {
      this.starting.delete(key);
    }
  }

  private async start(key: string, ports: number[]): Promise<RunningGateway> {
    const infra = this.infra;
    if (!infra) throw new Error('the gateway proxies are not attached to the infrastructure yet');
    const [namespace, name] = splitName(key);
    const workload = gatewayWorkloadName(name);
    const tokenDir = join(infra.dir, 'tokens');
    mkdirSync(tokenDir, { recursive: true, mode: 0o700 });
    const tokenFile = join(tokenDir, `${namespace}.${workload}`);
    writeFileSync(tokenFile, await infra.api.createToken(namespace, workload), { mode: 0o600 });
    this.log(`starting the gateway proxy of ${key} (ports ${ports.join(', ')})`);
    const child = await startChild(`gateway ${key}`, [
      'proxy', '--mode', 'gateway',
      '--gateway', key,
      '--control-plane', infra.streamUrl,
      ...ports.flatMap((port) => ['--listener-port', `${port}=0`]),
      '--listener-ports', 'ephemeral',
      '--outbound-port', '0', '--tunnel-port', '0', '--admin-port', '0',
      '--drain', '1s',
      '--token-file', tokenFile,
      '--exit-on-stdin-close',
    ]);
    const announced = (child.ready.ports as { listeners?: Record<string, number> } | undefined)?.listeners ?? {};
    const listeners = new Map(Object.entries(announced).map(([gatewayPort, local]) => [Number(gatewayPort), local] as const));
    return { key, ports: ports.join(','), child, listeners, id: String(child.ready.id) };
  }
}
