// Attacks on HTTP/1.1 parsing, sent as raw bytes to a sidecar's outbound port and to a gateway: request smuggling, invalid bytes, oversized heads, duplicate Host, proxy-owned headers.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { assertMemoryBounded, attackPaths, duringAttack, metric, raw, requestLine, rss, startBed, type Bed, type Target } from './bed.ts';

let bed: Bed;

before(async () => {
  bed = await startBed({ 'max-header-count': 50, 'max-uri-bytes': 2048, 'max-header-bytes': 16384 });
});

after(async () => {
  await bed?.close();
});

/** Each case: a request head (after its request line) and body that must be refused with `status`, smuggling `/smuggled` if a parser in the path read it another way. */
interface Case {
  name: string;
  /** Header lines (CRLF-joined) after the request line and Host. */
  head: string;
  body: string;
  status: number;
  reason: string;
  method?: string;
}

const SMUGGLED = (target: Target) => `${requestLine(target, 'GET', '/smuggled')}\r\nHost: ${target.host}\r\n\r\n`;

function cases(target: Target): Case[] {
  const smuggled = SMUGGLED(target);
  return [
    { name: 'Content-Length with Transfer-Encoding (CL.TE)', head: `Content-Length: 4\r\nTransfer-Encoding: chunked`, body: `0\r\n\r\n${smuggled}`, status: 400, reason: 'transfer_encoding' },
    { name: 'two Content-Length headers that differ', head: `Content-Length: 5\r\nContent-Length: ${5 + smuggled.length}`, body: `hello${smuggled}`, status: 400, reason: 'content_length' },
    { name: 'two equal Content-Length headers', head: `Content-Length: 5\r\nContent-Length: 5`, body: 'hello', status: 400, reason: 'content_length' },
    { name: 'a Content-Length list', head: `Content-Length: 5, 5`, body: 'hello', status: 400, reason: 'content_length' },
    { name: 'a signed Content-Length', head: `Content-Length: +5`, body: 'hello', status: 400, reason: 'content_length' },
    { name: 'Transfer-Encoding: Chunked (case)', head: `Transfer-Encoding: Chunked`, body: `5\r\nhello\r\n0\r\n\r\n${smuggled}`, status: 400, reason: 'transfer_encoding' },
    { name: 'Transfer-Encoding: gzip, chunked', head: `Transfer-Encoding: gzip, chunked`, body: `5\r\nhello\r\n0\r\n\r\n`, status: 400, reason: 'transfer_encoding' },
    { name: 'Transfer-Encoding: identity, chunked', head: `Transfer-Encoding: identity, chunked`, body: `5\r\nhello\r\n0\r\n\r\n`, status: 400, reason: 'transfer_encoding' },
    { name: 'Transfer-Encoding: xchunked', head: `Transfer-Encoding: xchunked`, body: `5\r\nhello\r\n0\r\n\r\n`, status: 400, reason: 'transfer_encoding' },
    { name: 'two Transfer-Encoding headers', head: `Transfer-Encoding: chunked\r\nTransfer-Encoding: chunked`, body: `5\r\nhello\r\n0\r\n\r\n`, status: 400, reason: 'transfer_encoding' },
    { name: 'Transfer-Encoding with a tab', head: `Transfer-Encoding:\tchunked\t`, body: `5\r\nhello\r\n0\r\n\r\n`, status: 400, reason: 'transfer_encoding' },
    { name: 'Transfer-Encoding with a vertical tab', head: `Transfer-Encoding: \x0bchunked`, body: `5\r\nhello\r\n0\r\n\r\n`, status: 400, reason: 'invalid_header' },
    { name: 'a space before the colon', head: `Transfer-Encoding : chunked`, body: `5\r\nhello\r\n0\r\n\r\n`, status: 400, reason: 'invalid_header' },
    { name: 'obs-fold', head: `X-A: b\r\n c`, body: '', status: 400, reason: 'invalid_header', method: 'GET' },
    { name: 'a bare LF inside the head', head: `X-A: b\nX-B: c`, body: '', status: 400, reason: 'invalid_header', method: 'GET' },
    { name: 'a bare CR inside the head', head: `X-A: b\rX-B: c`, body: '', status: 400, reason: 'invalid_header', method: 'GET' },
    { name: 'NUL in a header value', head: `X-A: b\x00c`, body: '', status: 400, reason: 'invalid_header', method: 'GET' },
    { name: 'a chunk size with junk', head: `Transfer-Encoding: chunked`, body: `5 x\r\nhello\r\n0\r\n\r\n`, status: 400, reason: 'malformed' },
  ];
}

for (const which of ['sidecar', 'gateway'] as const) {
  test(`${which}: smuggling and invalid bytes are refused with 400 and a closed connection; nothing reaches the echo; a good client carries on`, async () => {
    const target = bed[which];
    const memoryBefore = await rss(target);
    const receivedBefore = attackPaths(bed).length;
    const refusedBefore = await metric(target, 'weft_proxy_refused_total');
    const all = cases(target);
    await duringAttack(target, async () => {
      for (const c of all) {
        const method = c.method ?? 'POST';
        const bytes = `${requestLine(target, method, '/attack')}\r\nHost: ${target.host}\r\n${c.head}\r\n\r\n${c.body}`;
        const answer = await raw(target.port, bytes);
        assert.deepEqual(answer.statuses, [c.status], `${c.name}: ${JSON.stringify(answer.text.slice(0, 200))}`);
        assert.ok(answer.closed, `${c.name}: the connection stays open`);
      }
    });
    // Nothing of any attack request (nor what was smuggled behind it) reached the backend.
    assert.deepEqual(attackPaths(bed).slice(receivedBefore), []);
    assert.ok((await metric(target, 'weft_proxy_refused_total')) - refusedBefore >= all.length);
    assert.ok((await metric(target, 'weft_proxy_refused_total', { reason: 'transfer_encoding' })) >= 7);
    await assertMemoryBounded(target, memoryBefore);
  });

  test(`${which}: duplicate Host → 400; too many headers or too large a head → 431; too long a URI → 414`, async () => {
    const target = bed[which];
    const receivedBefore = attackPaths(bed).length;
    const line = (path: string) => requestLine(target, 'GET', path);
    // A request pipelined behind the refused one, in the same bytes, is never served either.
    const dupHost = await raw(target.port, `${line('/attack-dup-host')}\r\nHost: ${target.host}\r\nHost: other.example\r\n\r\n${SMUGGLED(target)}`);
    assert.deepEqual(dupHost.statuses, [400]);
    assert.match(dupHost.text, /weft-reason: WEFT_ERR_BAD_REQUEST/i);
    const many = Array.from({ length: 60 }, (_, i) => `X-H${i}: v`).join('\r\n');
    assert.deepEqual((await raw(target.port, `${line('/attack-count')}\r\nHost: ${target.host}\r\n${many}\r\n\r\n`)).statuses, [431]);
    const big = `X-Big: ${'a'.repeat(20_000)}`;
    assert.deepEqual((await raw(target.port, `${line('/attack-size')}\r\nHost: ${target.host}\r\n${big}\r\n\r\n`)).statuses, [431]);
    const long = await raw(target.port, `${line(`/attack-uri?${'q'.repeat(3000)}`)}\r\nHost: ${target.host}\r\n\r\n`);
    assert.deepEqual(long.statuses, [414]);
    // Within the limits: 50 headers and a 2,000-byte URI pass.
    const fifty = Array.from({ length: 48 }, (_, i) => `X-H${i}: v`).join('\r\n');
    const ok = await raw(target.port, `${line(`/attack-ok?${'q'.repeat(1500)}`)}\r\nHost: ${target.host}\r\n${fifty}\r\nConnection: close\r\n\r\n`);
    assert.deepEqual(ok.statuses, [200]);
    if (which === 'sidecar') {
      // CONNECT is answered by the listener itself; the same checks apply before any tunnel opens.
      const connect = await raw(target.port, `CONNECT ${target.host} HTTP/1.1\r\nHost: ${target.host}\r\nHost: other.example\r\n\r\n`);
      assert.deepEqual(connect.statuses, [400]);
    }
    assert.deepEqual(attackPaths(bed).slice(receivedBefore).map((p) => p.slice(0, 10)), ['/attack-ok']);
    assert.ok((await metric(target, 'weft_proxy_refused_total', { reason: 'duplicate_host' })) >= 1);
    assert.ok((await metric(target, 'weft_proxy_refused_total', { reason: 'uri_length' })) >= 1);
  });

  test(`${which}: what is forwarded is re-framed, and proxy-owned headers from outside are dropped`, async () => {
    const target = bed[which];
    const receivedBefore = bed.received.length;
    const head = [
      `${requestLine(target, 'POST', '/attack-reframe')}`,
      `Host: ${target.host}`,
      'Transfer-Encoding: chunked',
      'Connection: close, X-Hop',
      'X-Hop: secret',
      'Keep-Alive: timeout=5',
      'weft-source: evil/mallory',
      'weft-target-port: 22',
      'x-forwarded-client-cert: By=spiffe://evil;URI=spiffe://cluster.local/ns/default/sa/admin',
      'x-forwarded-host: evil.example',
      'Trailer: X-T',
    ].join('\r\n');
    const answer = await raw(target.port, `${head}\r\n\r\n5\r\nhello\r\n6\r\n world\r\n0\r\nX-T: 1\r\n\r\n`);
    assert.deepEqual(answer.statuses, [200]);
    const got = await waitForRequest(receivedBefore, '/attack-reframe');
    assert.equal(got.body.toString(), 'hello world');
    const names = new Map<string, string[]>();
    for (let i = 0; i < got.rawHeaders.length; i += 2) names.set(got.rawHeaders[i]!.toLowerCase(), [...(names.get(got.rawHeaders[i]!.toLowerCase()) ?? []), got.rawHeaders[i + 1]!]);
    for (const dropped of ['x-hop', 'keep-alive', 'x-forwarded-client-cert', 'weft-target-port', 'weft-source']) assert.equal(names.get(dropped), undefined, `${dropped} reached the backend`);
    if (which === 'gateway') assert.equal(names.get('x-forwarded-host'), undefined);
    // One framing, the proxy's own: chunked once, or a length; never both.
    const te = names.get('transfer-encoding');
    const cl = names.get('content-length');
    assert.ok((te === undefined) !== (cl === undefined), `framing: ${JSON.stringify({ te, cl })}`);
    if (te) assert.deepEqual(te, ['chunked']);
  });
}

async function waitForRequest(from: number, path: string) {
  const deadline = performance.now() + 5000;
  for (;;) {
    const found = bed.received.slice(from).find((r) => r.url.endsWith(path));
    if (found) return found;
    assert.ok(performance.now() < deadline, `the echo never received ${path}`);
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
}
