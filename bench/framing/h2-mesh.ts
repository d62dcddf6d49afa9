// Quick HTTP/2 figures through two real sidecars (in-process): h2load straight to an h2c app, and through client upstream port → h2 mTLS tunnel → app; wrk for HTTP/1.1 the same way.
//
// Run: PATH=$PWD/node_modules/.bin:$PATH node bench/framing/h2-mesh.ts [requests=20000]
// Prints one line per variant: requests/s and the load generator's summary. Not part of the suite: a
// measurement to repeat by hand when the HTTP/2 path changes (docs/DESIGN.md, "Between proxies").
import { execFile } from 'node:child_process';
import { createServer as createH1Server } from 'node:http';
import { createServer as createH2Server } from 'node:http2';
import type { AddressInfo } from 'node:net';
import { loadavg } from 'node:os';
import { promisify } from 'node:util';
import { freePort } from '../../src/testing/ports.ts';
import { buildSnapshot, endpoint, startTestProxy } from '../../test/integration/proxy-helpers.ts';

const run = promisify(execFile);
const requests = Number(process.argv[2] ?? 20_000);

const h2App = createH2Server((_req, res) => {
  res.writeHead(200, { 'content-type': 'text/plain' });
  res.end('hello\n');
});
const h1App = createH1Server((_req, res) => {
  res.writeHead(200, { 'content-type': 'text/plain' });
  res.end('hello\n');
});
await new Promise<void>((resolve) => h2App.listen(0, '127.0.0.1', resolve));
await new Promise<void>((resolve) => h1App.listen(0, '127.0.0.1', resolve));
const h2Port = (h2App.address() as AddressInfo).port;
const h1Port = (h1App.address() as AddressInfo).port;

const server = await startTestProxy({
  workload: 'app',
  instance: 'app-0',
  appPorts: [
    { declared: 9000, actual: h2Port },
    { declared: 8080, actual: h1Port },
  ],
  snapshot: buildSnapshot({ workload: 'app', inboundPorts: [9000, 8080] }),
});
const [h2Upstream, h1Upstream] = [await freePort(), await freePort()];
const client = await startTestProxy({
  workload: 'caller',
  snapshot: buildSnapshot({
    workload: 'caller',
    services: [
      { name: 'h2app', ports: [{ port: 9000, protocol: 'http2', endpoints: [endpoint('default/app-0', 9000, server.proxy.ports.tunnel)] }] },
      { name: 'h1app', ports: [{ port: 8080, endpoints: [endpoint('default/app-0', 8080, server.proxy.ports.tunnel)] }] },
    ],
    upstreams: [
      { localPort: h2Upstream, routeKey: 'default/h2app:9000', host: 'h2app:9000' },
      { localPort: h1Upstream, routeKey: 'default/h1app:8080', host: 'h1app:8080' },
    ],
  }),
});

async function h2load(port: number): Promise<string> {
  const { stdout } = await run('h2load', ['-n', String(requests), '-c', '10', '-m', '50', `http://127.0.0.1:${port}/`], { timeout: 300_000 });
  const rps = /finished in [^,]+, ([\d.]+) req\/s/.exec(stdout)?.[1];
  const status = /requests: .*/.exec(stdout)?.[0];
  return `${rps} req/s · ${status}`;
}

async function wrk(port: number): Promise<string> {
  const { stdout } = await run('wrk', ['-t', '1', '-c', '50', '-d', '5s', '--latency', `http://127.0.0.1:${port}/`], { timeout: 60_000 });
  return `${/Requests\/sec:\s+([\d.]+)/.exec(stdout)?.[1]} req/s · p99 ${/99%\s+(\S+)/.exec(stdout)?.[1]}`;
}

try {
  console.log(`load average before: ${loadavg().map((n) => n.toFixed(1)).join(' ')}`);
  console.log(`h2load direct to the h2c app:                     ${await h2load(h2Port)}`);
  console.log(`h2load via upstream port → h2 tunnel → h2c app:   ${await h2load(h2Upstream)}`);
  console.log(`wrk direct to the HTTP/1.1 app:                   ${await wrk(h1Port)}`);
  console.log(`wrk via upstream port → HTTP/1.1 pool → app:      ${await wrk(h1Upstream)}`);
  console.log(`load average after: ${loadavg().map((n) => n.toFixed(1)).join(' ')}`);
} finally {
  await client.close();
  await server.close();
  h2App.close();
  h1App.close();
}
