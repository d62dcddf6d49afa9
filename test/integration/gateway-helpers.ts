// Fixtures for the tests that run the control plane and gateway proxies as real `weft` processes: API calls, applied objects, token files, a gateway proxy.
import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import { request, type IncomingHttpHeaders } from 'node:http';
import { join } from 'node:path';
import { startWeft, type RunningProcess } from '../../src/testing/process.ts';
import type { Certificate } from '../conformance/gateways.ts';

/** `weft control-plane` on free ports, minting local tokens, logging warnings only. */
export function startControlPlaneProcess(): Promise<RunningProcess> {
  return startWeft(['control-plane', '--api-port', '0', '--stream-port', '0', '--insecure-local-tokens'], { env: { WEFT_LOG_LEVEL: 'warn' } });
}

/** One call to the control plane's API at `api`; the body parsed as JSON when there is one. */
export async function apiCall(api: string, method: string, path: string, body?: unknown): Promise<{ status: number; json: unknown }> {
  const res = await fetch(`${api}${path}`, {
    method,
    signal: AbortSignal.timeout(5000),
    ...(body !== undefined ? { body: JSON.stringify(body), headers: { 'content-type': 'application/json' } } : {}),
  });
  const text = await res.text();
  return { status: res.status, json: text ? JSON.parse(text) : undefined };
}

/** Applies `items` and fails unless the control plane took them all. */
export async function applyObjects(api: string, items: unknown[]): Promise<void> {
  const { status, json } = await apiCall(api, 'POST', '/weft/v1/apply', { items });
  assert.equal(status, 200, JSON.stringify(json));
}

/** A token for `namespace/workload` minted by the control plane, written to a file in `dir` only the owner reads; its path. */
export async function writeTokenFile(api: string, dir: string, namespace: string, workload: string): Promise<string> {
  const token = await apiCall(api, 'POST', '/weft/v1/tokens', { namespace, workload });
  assert.equal(token.status, 201, JSON.stringify(token.json));
  const file = join(dir, `token-${workload}`);
  writeFileSync(file, (token.json as { token: string }).token, { mode: 0o600 });
  return file;
}

/** What every proxy process of these tests is given: the control plane's stream, free ports, a short drain, its token file. */
export function proxyArgs(controlPlane: RunningProcess, tokenFile: string): string[] {
  return ['--control-plane', String(controlPlane.ready.stream), '--outbound-port', '0', '--tunnel-port', '0', '--admin-port', '0', '--drain', '1s', '--token-file', tokenFile];
}

/** A kubernetes.io/tls Secret holding `cert`, for a Gateway listener's certificateRefs. */
export function tlsSecret(namespace: string, name: string, cert: Certificate) {
  return {
    apiVersion: 'v1',
    kind: 'Secret',
    metadata: { name, namespace },
    type: 'kubernetes.io/tls',
    data: { 'tls.crt': Buffer.from(cert.certPem).toString('base64'), 'tls.key': Buffer.from(cert.keyPem).toString('base64') },
  };
}

/** A gateway proxy for Gateway `gateway` (namespace/name) serving each of `listenerPorts` on a free local port; `extraArgs` go last. */
export function startGatewayProcess(controlPlane: RunningProcess, gateway: string, listenerPorts: number[], tokenFile: string, extraArgs: string[] = []): Promise<RunningProcess> {
  return startWeft(
    ['proxy', '--mode', 'gateway', '--gateway', gateway, ...listenerPorts.flatMap((port) => ['--listener-port', `${port}=0`]), '--listener-ports', 'ephemeral', ...proxyArgs(controlPlane, tokenFile), ...extraArgs],
    { env: { WEFT_LOG_LEVEL: 'warn' } },
  );
}

/** A gateway process's local port for each Gateway listener port, from its ready line. */
export function listenersOf(gateway: RunningProcess): Record<string, number> {
  return (gateway.ready.ports as { listeners: Record<string, number> }).listeners;
}

/** An answer from a gateway listener: status, body as text, headers. */
export interface GatewayAnswer {
  status: number;
  body: string;
  headers: IncomingHttpHeaders;
}

/** One request to a gateway listener on 127.0.0.1:`port`, on a connection of its own, bounded at 10 s. */
export function askGateway(port: number, method: string, path: string, body?: string, headers: Record<string, string> = {}): Promise<GatewayAnswer> {
  return new Promise((resolve, reject) => {
    const req = request({ host: '127.0.0.1', port, path, method, agent: false, timeout: 10_000, headers }, (res) => {
      let answer = '';
      res.setEncoding('utf8').on('data', (chunk: string) => (answer += chunk));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body: answer, headers: res.headers }));
    });
    req.on('timeout', () => req.destroy(new Error('no answer within 10 s')));
    req.on('error', reject);
    req.end(body);
  });
}
