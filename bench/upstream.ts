// The benchmark upstream: a minimal Node HTTP server answering every request with 1 KiB, keep-alive.
import { createServer } from 'node:http';
import { parseArgs } from 'node:util';

const { values } = parseArgs({ options: { port: { type: 'string', default: '0' }, size: { type: 'string', default: '1024' } } });
const body = Buffer.alloc(Number(values.size), 'x');
const headers = { 'content-type': 'text/plain', 'content-length': String(body.length) };

const server = createServer({ keepAliveTimeout: 120_000, requestTimeout: 0 }, (req, res) => {
  // Read (and drop) any request body so the connection stays reusable.
  req.resume();
  res.writeHead(200, headers);
  res.end(body);
});
server.listen(Number(values.port), '127.0.0.1', () => {
  const address = server.address();
  const port = typeof address === 'object' && address ? address.port : 0;
  process.stdout.write(JSON.stringify({ event: 'ready', port }) + '\n');
});
for (const signal of ['SIGTERM', 'SIGINT'] as const) {
  process.on(signal, () => {
    server.close();
    server.closeAllConnections();
    process.exit(0);
  });
}
