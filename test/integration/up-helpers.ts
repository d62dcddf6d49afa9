// Fixtures for the `weft up` tests: a scratch directory, the echo service and edge Gateway as YAML, `weft up` started on a mesh file, a GET with a chosen Host.
import { after } from 'node:test';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { request } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { UpFile } from '../../src/cli/up.ts';
import { startWeft, weftBin, type RunningProcess } from '../../src/testing/process.ts';

/** A fresh directory under the system tmpdir, removed after the file's tests. */
export async function scratchDir(prefix: string): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), prefix));
  after(() => rm(dir, { recursive: true, force: true }));
  return dir;
}

/** Service echo, port 8080 over HTTP, selecting app=echo. */
export const ECHO_SERVICE_YAML = `apiVersion: v1
kind: Service
metadata: {name: echo}
spec:
  selector: {app: echo}
  ports: [{name: http, port: 8080, appProtocol: http}]
`;

/** A Workload `name` (label app=`name`) whose app is `weft echo` on 8080; `specLines` adds fields to its spec (e.g. `replicas: 2`). */
export function echoWorkloadYaml(name = 'echo', specLines: string[] = []): string {
  return `apiVersion: weft.dev/v1alpha1
kind: Workload
metadata: {name: ${name}, labels: {app: ${name}}}
spec:
  command: [node, ${JSON.stringify(weftBin)}, echo]
  ports: [{name: http, port: 8080}]
${specLines.map((line) => `  ${line}\n`).join('')}`;
}

/** Gateway default/edge with one HTTP listener on port 80, for `hostname` when given. */
export function edgeGatewayYaml(hostname?: string): string {
  return `apiVersion: gateway.networking.k8s.io/v1
kind: Gateway
metadata: {name: edge}
spec:
  gatewayClassName: weft
  listeners: [{name: http, port: 80, protocol: HTTP${hostname === undefined ? '' : `, hostname: ${JSON.stringify(hostname)}`}}]
`;
}

export interface RunningUp {
  up: RunningProcess;
  /** What `weft up` wrote to .weft/up.json. */
  facts: UpFile;
}

/** Writes `mesh` to dir/mesh.yaml and runs `weft up -f mesh.yaml` there until it prints that everything runs. */
export async function startUp(dir: string, mesh: string, readyTimeoutMs = 30_000): Promise<RunningUp> {
  await writeFile(join(dir, 'mesh.yaml'), mesh);
  const up = await startWeft(['up', '-f', 'mesh.yaml', '--api-port', '0'], {
    cwd: dir,
    isReady: (line) => line.startsWith('Ctrl-C stops everything'),
    readyTimeoutMs,
  });
  try {
    return { up, facts: JSON.parse(await readFile(join(dir, '.weft', 'up.json'), 'utf8')) as UpFile };
  } catch (error) {
    await up.stop();
    throw error;
  }
}

export interface GetResult {
  status: number;
  reason: string | undefined;
  body: string;
}

/**
 * A GET of a raw `target` to 127.0.0.1:`port` (origin-form at a gateway,
 * absolute-form at a sidecar's outbound port), with `headers` as given:
 * fetch() may not set Host, and a gateway routes by it.
 */
export function getWithHost(port: number, target: string, headers: Record<string, string>, timeoutMs = 15_000): Promise<GetResult> {
  return new Promise((resolve, reject) => {
    const req = request({ host: '127.0.0.1', port, path: target, headers, agent: false, timeout: timeoutMs }, (res) => {
      let body = '';
      res.setEncoding('utf8').on('data', (chunk: string) => (body += chunk));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, reason: res.headers['weft-reason'] as string | undefined, body }));
    });
    req.on('timeout', () => req.destroy(new Error(`no answer within ${timeoutMs / 1000} s`)));
    req.on('error', reject);
    req.end();
  });
}

/** Whether a process with this pid still runs. */
export function processAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}
