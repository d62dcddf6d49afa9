// Helpers for the mTLS acceptance tests: sidecars on a real control plane's CA, a throwaway root whose key the test holds, certificates minted with any flaw, and raw calls to a tunnel port.
import 'reflect-metadata';
import * as x509 from '@peculiar/x509';
import assert from 'node:assert/strict';
import { randomBytes, webcrypto } from 'node:crypto';
import { connect as netConnect } from 'node:net';
import { connect as tlsConnect } from 'node:tls';
import type { ControlPlaneOptions, RunningControlPlane } from '../../src/control/main.ts';
import type { RenewFunction } from '../../src/proxy/identity/manager.ts';
import { TUNNEL_ALPN } from '../../src/proxy/transport/mtls.ts';
import { waitFor } from '../../src/testing/wait.ts';
import { api, startTestControlPlane } from './control-helpers.ts';
import { startBackend, startTestProxy, viaProxy, type Backend, type TestProxy } from './proxy-helpers.ts';

/** The reviews service (server side) and the productpage workload (client side) the two-sidecar mTLS tests run between. */
export const REVIEWS_MESH = [
  { apiVersion: 'v1', kind: 'Service', metadata: { name: 'reviews' }, spec: { selector: { app: 'reviews' }, ports: [{ name: 'http', port: 9080 }] } },
  {
    apiVersion: 'weft.dev/v1alpha1',
    kind: 'Workload',
    metadata: { name: 'reviews', labels: { app: 'reviews' } },
    spec: { serviceAccount: 'reviews', ports: [{ name: 'http', port: 9080 }] },
  },
  { apiVersion: 'weft.dev/v1alpha1', kind: 'Workload', metadata: { name: 'productpage', labels: { app: 'productpage' } }, spec: { serviceAccount: 'productpage' } },
];

/** A sidecar for `workload` (instance `<workload>-0`) that gets its certificate from the control plane's CA with a token, fronting `appPort` on 9080 when given. */
export async function startMeshSidecar(cp: RunningControlPlane, workload: string, appPort?: number): Promise<TestProxy> {
  return startTestProxy({
    controlPlane: cp.streamUrl,
    workload,
    instance: `${workload}-0`,
    ...(appPort === undefined ? {} : { appPorts: [{ declared: 9080, actual: appPort }], readinessIntervalMs: 100 }),
    token: await cp.tokens.create({ namespace: 'default', workload }),
  });
}

/** A control plane with REVIEWS_MESH applied, the reviews app behind its sidecar (`server`) and a productpage sidecar (`client`) that already reaches it. */
export interface SidecarPair {
  cp: RunningControlPlane;
  app: Backend;
  server: TestProxy;
  client: TestProxy;
  /** Closes what was started, last first; closing a part again (a test may close one early) does nothing. */
  close(): Promise<void>;
}

export async function startSidecarPair(options: { controlPlane?: Partial<ControlPlaneOptions>; extraItems?: unknown[] } = {}): Promise<SidecarPair> {
  const started: { close(): Promise<void> }[] = [];
  const closeAll = async () => {
    for (const part of started.splice(0).reverse()) await part.close();
  };
  try {
    const cp = await startTestControlPlane(options.controlPlane);
    started.push(cp);
    const applied = await api(cp.apiUrl, 'POST', '/weft/v1/apply', { items: [...REVIEWS_MESH, ...(options.extraItems ?? [])] });
    assert.equal(applied.status, 200, applied.text);
    const app = await startBackend('reviews-app');
    started.push(app);
    const server = closeOnce(await startMeshSidecar(cp, 'reviews', app.port));
    started.push(server);
    const client = closeOnce(await startMeshSidecar(cp, 'productpage'));
    started.push(client);
    await waitFor(async () => (await viaProxy(client.proxy.ports.outbound, 'http://reviews:9080/warm-up')).status === 200, {
      timeoutMs: 10_000,
      message: 'the client reaching reviews through the mesh',
    });
    return { cp, app, server, client, close: closeAll };
  } catch (error) {
    await closeAll();
    throw error;
  }
}

function closeOnce(proxy: TestProxy): TestProxy {
  let closing: Promise<void> | undefined;
  return { ...proxy, close: () => (closing ??= proxy.close()) };
}

/**
 * Raw bytes (a request head) straight to a tunnel port in plaintext, what a
 * client outside the mesh would send; resolves with the response head, or
 * how the connection ended ("closed", "error CODE").
 */
export function rawTunnelHead(port: number, head: string): Promise<string> {
  return new Promise((resolve) => {
    const socket = netConnect(port, '127.0.0.1');
    let text = '';
    const timer = setTimeout(() => done(`timed out after ${JSON.stringify(text)}`), 3000);
    function done(outcome: string): void {
      clearTimeout(timer);
      socket.destroy();
      resolve(outcome);
    }
    socket.setEncoding('latin1');
    socket.on('data', (chunk: string) => {
      text += chunk;
      if (text.includes('\r\n\r\n')) done(text);
    });
    socket.on('error', (error: NodeJS.ErrnoException) => done(`error ${error.code ?? error.message}`));
    socket.on('close', () => done(text === '' ? 'closed' : text));
    socket.write(head);
  });
}

/** A plain HTTP/1.1 GET straight to a tunnel port (see rawTunnelHead). */
export function plaintextTunnelRequest(port: number, options: { host?: string; headers?: Record<string, string> } = {}): Promise<string> {
  const extra = Object.entries(options.headers ?? {}).map(([k, v]) => `${k}: ${v}\r\n`).join('');
  return rawTunnelHead(port, `GET /plain HTTP/1.1\r\nhost: ${options.host ?? 'reviews:9080'}\r\nweft-target-port: 9080\r\n${extra}connection: close\r\n\r\n`);
}

const ALGORITHM = { name: 'ECDSA', namedCurve: 'P-256', hash: 'SHA-256' };
type KeyPair = webcrypto.CryptoKeyPair;

/** A CA whose private key the test holds, so it can sign what a real mesh CA never would. */
export interface TestRoot {
  certPem: string;
  keys: KeyPair;
  name: string;
}

export async function makeRoot(trustDomain = 'cluster.local', options: { issuer?: TestRoot; name?: string } = {}): Promise<TestRoot> {
  const keys = (await webcrypto.subtle.generateKey(ALGORITHM, true, ['sign', 'verify'])) as KeyPair;
  const name = `CN=${options.name ?? `test root ${randomBytes(4).toString('hex')}`}, O=${trustDomain}`;
  const now = Date.now();
  const extensions = [
    new x509.BasicConstraintsExtension(true, undefined, true),
    new x509.KeyUsagesExtension(x509.KeyUsageFlags.keyCertSign | x509.KeyUsageFlags.cRLSign | x509.KeyUsageFlags.digitalSignature, true),
    new x509.SubjectAlternativeNameExtension([{ type: 'url', value: `spiffe://${trustDomain}` }]),
    await x509.SubjectKeyIdentifierExtension.create(keys.publicKey),
  ];
  const cert = options.issuer
    ? await x509.X509CertificateGenerator.create({
        serialNumber: randomBytes(8).toString('hex'),
        subject: name,
        issuer: new x509.X509Certificate(options.issuer.certPem).subjectName,
        notBefore: new Date(now - 3_600_000),
        notAfter: new Date(now + 86_400_000),
        publicKey: keys.publicKey,
        signingKey: options.issuer.keys.privateKey,
        signingAlgorithm: ALGORITHM,
        extensions,
      })
    : await x509.X509CertificateGenerator.createSelfSigned({
        serialNumber: randomBytes(8).toString('hex'),
        name,
        notBefore: new Date(now - 3_600_000),
        notAfter: new Date(now + 86_400_000),
        keys,
        signingAlgorithm: ALGORITHM,
        extensions,
      });
  return { certPem: cert.toString('pem'), keys, name };
}

export interface MintOptions {
  /** URI SANs; [] for none. */
  uris: string[];
  notBefore?: Date;
  notAfter?: Date;
  /** CA:true, keyCertSign: a CA certificate used as a leaf. */
  ca?: boolean;
  /** The public key to certify (a proxy's CSR); a fresh key is made otherwise. */
  publicKey?: webcrypto.CryptoKey;
}

export interface Minted {
  keyPem: string;
  certPem: string;
  serialNumber: string;
  notAfter: number;
}

/** A leaf certificate signed by `root`, flawed as the options say. */
export async function mint(root: TestRoot, options: MintOptions): Promise<Minted> {
  const keys = options.publicKey ? undefined : ((await webcrypto.subtle.generateKey(ALGORITHM, true, ['sign', 'verify'])) as KeyPair);
  const now = Date.now();
  const extensions: x509.Extension[] = [
    options.ca
      ? new x509.BasicConstraintsExtension(true, undefined, true)
      : new x509.BasicConstraintsExtension(false, undefined, true),
    new x509.KeyUsagesExtension(
      options.ca ? x509.KeyUsageFlags.keyCertSign | x509.KeyUsageFlags.digitalSignature : x509.KeyUsageFlags.digitalSignature | x509.KeyUsageFlags.keyEncipherment,
      true,
    ),
    new x509.ExtendedKeyUsageExtension([x509.ExtendedKeyUsage.serverAuth, x509.ExtendedKeyUsage.clientAuth]),
  ];
  if (options.uris.length > 0) extensions.push(new x509.SubjectAlternativeNameExtension(options.uris.map((value) => ({ type: 'url' as const, value })), true));
  const cert = await x509.X509CertificateGenerator.create({
    serialNumber: randomBytes(8).toString('hex'),
    subject: options.uris.length > 0 ? '' : 'CN=no-san',
    issuer: new x509.X509Certificate(root.certPem).subjectName,
    notBefore: options.notBefore ?? new Date(now - 60_000),
    notAfter: options.notAfter ?? new Date(now + 3_600_000),
    publicKey: options.publicKey ?? keys!.publicKey,
    signingKey: root.keys.privateKey,
    signingAlgorithm: ALGORITHM,
    extensions,
  });
  const keyPem = keys ? toPem('PRIVATE KEY', Buffer.from(await webcrypto.subtle.exportKey('pkcs8', keys.privateKey))) : '';
  return { keyPem, certPem: cert.toString('pem'), serialNumber: cert.serialNumber, notAfter: cert.notAfter.getTime() };
}

/** What a proxy's CA would do, from `root`: certify `spiffeId` for the CSR's key, `ttlMs` long. */
export function rootIssuer(root: TestRoot, spiffeId: string, ttlMs = 3_600_000): RenewFunction {
  return async (csrPem) => {
    const csr = new x509.Pkcs10CertificateRequest(csrPem);
    const publicKey = await csr.publicKey.export(ALGORITHM, ['verify']);
    const minted = await mint(root, { uris: [spiffeId], publicKey, notAfter: new Date(Date.now() + ttlMs) });
    return { certPem: minted.certPem, chainPem: '', notAfter: minted.notAfter, trustBundle: [root.certPem] };
  };
}

/**
 * One HTTP/1.1 request over TLS straight to a tunnel port, with whatever
 * credentials; resolves with the response head, or how it failed ("closed",
 * "error CODE"). A refused caller never sees "HTTP/".
 */
export function rawTunnelRequest(port: number, options: { key?: string; cert?: string; ca: string[]; path?: string; headers?: Record<string, string> }): Promise<string> {
  return new Promise((resolve) => {
    const socket = tlsConnect({
      host: '127.0.0.1',
      port,
      ca: options.ca,
      ...(options.key ? { key: options.key } : {}),
      ...(options.cert ? { cert: options.cert } : {}),
      ALPNProtocols: [TUNNEL_ALPN],
      minVersion: 'TLSv1.3',
      // The server's identity is not what these calls test.
      checkServerIdentity: () => undefined,
    });
    let text = '';
    const timer = setTimeout(() => done(`timed out after ${JSON.stringify(text)}`), 4000);
    function done(outcome: string): void {
      clearTimeout(timer);
      socket.destroy();
      resolve(outcome);
    }
    socket.setEncoding('latin1');
    socket.on('secureConnect', () => {
      const extra = Object.entries(options.headers ?? {}).map(([k, v]) => `${k}: ${v}\r\n`).join('');
      socket.write(`GET ${options.path ?? '/'} HTTP/1.1\r\nhost: reviews:9080\r\nweft-target-port: 9080\r\n${extra}connection: close\r\n\r\n`);
    });
    socket.on('data', (chunk: string) => {
      text += chunk;
      if (text.includes('\r\n\r\n')) done(text);
    });
    socket.on('error', (error: NodeJS.ErrnoException) => done(`error ${error.code ?? error.message}`));
    socket.on('close', () => done(text === '' ? 'closed' : text));
  });
}

function toPem(label: string, der: Buffer): string {
  const lines = der.toString('base64').match(/.{1,64}/g) ?? [];
  return `-----BEGIN ${label}-----\n${lines.join('\n')}\n-----END ${label}-----\n`;
}

/** One TCP segment's payload from a capture, with its ports. */
export interface CapturedSegment {
  sourcePort: number;
  destinationPort: number;
  payload: Buffer;
}

/**
 * The TCP payloads of a classic pcap file (what `tcpdump -w` writes), IPv4
 * over Ethernet (the loopback's link type) or Linux cooked captures. Enough
 * to search a capture without depending on a dissector.
 */
export function tcpSegments(pcap: Buffer): CapturedSegment[] {
  if (pcap.length < 24) return [];
  const magic = pcap.readUInt32LE(0);
  const little = magic === 0xa1b2c3d4 || magic === 0xa1b23c4d;
  if (!little && pcap.readUInt32BE(0) !== 0xa1b2c3d4 && pcap.readUInt32BE(0) !== 0xa1b23c4d) throw new Error('not a pcap file');
  const u32 = (at: number) => (little ? pcap.readUInt32LE(at) : pcap.readUInt32BE(at));
  const linkType = u32(20);
  const linkHeader = linkType === 1 ? 14 : linkType === 113 ? 16 : linkType === 276 ? 20 : linkType === 0 ? 4 : -1;
  if (linkHeader < 0) throw new Error(`unsupported link type ${linkType}`);
  const segments: CapturedSegment[] = [];
  let at = 24;
  while (at + 16 <= pcap.length) {
    const included = u32(at + 8);
    const frame = pcap.subarray(at + 16, at + 16 + included);
    at += 16 + included;
    const ip = frame.subarray(linkHeader);
    if (ip.length < 20 || ip[0]! >> 4 !== 4 || ip[9] !== 6) continue;
    const ipHeader = (ip[0]! & 0x0f) * 4;
    const total = ip.readUInt16BE(2);
    const tcp = ip.subarray(ipHeader, Math.min(total, ip.length));
    if (tcp.length < 20) continue;
    const tcpHeader = (tcp[12]! >> 4) * 4;
    const payload = tcp.subarray(tcpHeader);
    if (payload.length === 0) continue;
    segments.push({ sourcePort: tcp.readUInt16BE(0), destinationPort: tcp.readUInt16BE(2), payload });
  }
  return segments;
}

/** The bytes one direction of traffic carried, in capture order (ports as a filter: either end on `port`, or the exact pair). */
export function streamBytes(segments: CapturedSegment[], match: (s: CapturedSegment) => boolean): Buffer {
  return Buffer.concat(segments.filter(match).map((s) => s.payload));
}
