// The admin listener (/live, /ready, /config, /metrics), what /config leaves out, and draining on close.
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { isListening } from '../../src/testing/ports.ts';
import { waitFor } from '../../src/testing/wait.ts';
import type { SnapshotJwtRule } from '../../src/api/snapshot.ts';
import { adminGet, buildSnapshot, endpoint, FakeControlPlane, reversion, startBackend, startTestProxy, testJwtRule, viaProxy } from './proxy-helpers.ts';

describe('admin and drain', () => {
  it('/config leaves out inline JWKS secrets (HMAC k, private key parts) and keeps the public keys', async (t) => {
    const secret = Buffer.from('an HMAC secret nobody may read back').toString('base64url');
    const rule = (id: string, jwks: string) => testJwtRule({ id, jwks, algorithms: ['HS256'] });
    const built = buildSnapshot({ inboundPorts: [] });
    built.inbound.requestAuthentication = [
      rule('default/hmac/0', JSON.stringify({ keys: [{ kty: 'oct', kid: 'hs-1', alg: 'HS256', k: secret }] })),
      { ...rule('default/rsa/0', JSON.stringify({ keys: [{ kty: 'RSA', kid: 'rsa-1', n: 'public-modulus', e: 'AQAB', d: 'private-exponent', p: 'prime-p', q: 'prime-q' }] })), algorithms: ['RS256'] },
    ];
    const p = await startTestProxy({ snapshot: reversion(built) });
    t.after(() => p.close());
    const body = (await adminGet(p.proxy.ports.admin, '/config')).body;
    for (const hidden of [secret, 'private-exponent', 'prime-p', 'prime-q']) assert.ok(!body.includes(hidden), `${hidden} is not shown`);
    const config = JSON.parse(body) as { snapshot: { inbound: { requestAuthentication: SnapshotJwtRule[] } } };
    const [hmac, rsa] = config.snapshot.inbound.requestAuthentication.map((r) => JSON.parse(r.jwks ?? '{}') as { keys: Record<string, string>[] });
    assert.deepEqual(hmac?.keys, [{ kty: 'oct', kid: 'hs-1', alg: 'HS256', k: '(not shown)' }]);
    assert.deepEqual(rsa?.keys, [{ kty: 'RSA', kid: 'rsa-1', n: 'public-modulus', e: 'AQAB', d: '(not shown)', p: '(not shown)', q: '(not shown)' }]);
  });

  it('serves /live, /ready, /config and /metrics', async (t) => {
    const a = await startBackend('a');
    t.after(() => a.close());
    const snapshot = buildSnapshot({ services: [{ name: 'a', ports: [{ port: 80, endpoints: [endpoint('default/a-0', a.port)] }] }] });
    const p = await startTestProxy({ snapshot });
    t.after(() => p.close());
    const admin = p.proxy.ports.admin;

    assert.equal((await adminGet(admin, '/live')).status, 200);
    assert.equal((await adminGet(admin, '/ready')).status, 200);
    const config = (await adminGet(admin, '/config')).json<{ source: string; version: string; snapshot: { version: string; services: unknown[] } }>();
    assert.equal(config.source, 'disk');
    assert.equal(config.version, snapshot.version);
    assert.deepEqual(config.snapshot, JSON.parse(JSON.stringify(snapshot)));
    assert.equal((await adminGet(admin, '/nope')).status, 404);

    assert.equal((await viaProxy(p.proxy.ports.outbound, 'http://a/')).status, 200);
    assert.equal((await viaProxy(p.proxy.ports.outbound, 'http://b/')).status, 502);
    const metrics = await adminGet(admin, '/metrics');
    assert.match(String(metrics.headers['content-type']), /^text\/plain; version=0\.0\.4/);
    const text = metrics.body;
    assert.match(text, /^# TYPE weft_requests_total counter$/m);
    // Istio's label set: the caller's proxy reports (reporter="source"), naming the Service, the endpoint's workload and the rule.
    assert.match(text, /^weft_requests_total\{reporter="source",source_workload="[^"]+",source_workload_namespace="default",[^}]*destination_workload="a-0",destination_workload_namespace="default",[^}]*destination_service="default\/a",destination_service_name="a",destination_service_namespace="default",request_protocol="http",connection_security_policy="none",route="default",response_code="200",grpc_response_status="",weft_reason=""\} 1$/m);
    assert.match(text, /^weft_requests_total\{reporter="source",[^}]*destination_service="unknown",[^}]*response_code="502",grpc_response_status="",weft_reason="WEFT_ERR_NO_ROUTE"\} 1$/m);
    assert.match(text, /^weft_proxy_responses_total\{reason="WEFT_ERR_NO_ROUTE"\} 1$/m);
    assert.match(text, /^weft_request_duration_seconds_bucket\{reporter="source",[^}]*destination_service="default\/a",[^}]*response_code="200",[^}]*le="\+Inf"\} 1$/m);
    assert.match(text, /^weft_request_duration_seconds_count\{reporter="source",[^}]*destination_service="default\/a",[^}]*response_code="200"[^}]*\} 1$/m);
    assert.match(text, /^weft_response_bytes_count\{reporter="source",[^}]*destination_service="default\/a",[^}]*\} 1$/m);
    assert.match(text, /^weft_config_info\{version="[^"]+",source="disk"\} 1$/m);
    assert.match(text, /^weft_config_age_seconds \d/m);
    assert.match(text, /^weft_event_loop_delay_seconds\{quantile="0.99"\} /m);
    assert.match(text, /^weft_process_memory_bytes\{kind="rss"\} \d+$/m);
    assert.match(text, /^weft_snapshot_applies_total\{result="ok"\} 1$/m);
    assert.match(text, /^weft_control_plane_connected 0$/m);
    assert.match(text, /^weft_active_connections\{listener="outbound"\} \d+$/m);
  });

  it('drains: stops accepting, reports not ready, finishes the in-flight request with Connection: close', async (t) => {
    const cp = await FakeControlPlane.start();
    t.after(() => cp.close());
    const a = await startBackend('a');
    t.after(() => a.close());
    const snapshot = buildSnapshot({ services: [{ name: 'a', ports: [{ port: 80, endpoints: [endpoint('default/a-0', a.port)] }] }] });
    const p = await startTestProxy({ controlPlane: cp.url, snapshot, drainMs: 5000 });
    await waitFor(() => cp.received.some((m) => m.type === 'ready' && m.ready), { message: 'ready: true' });
    const { outbound, admin } = p.proxy.ports;

    const slow = viaProxy(outbound, 'http://a/slow?delay=400');
    await waitFor(() => a.requests >= 1, { message: 'the slow request reaching the backend' });
    const started = performance.now();
    const closing = p.close();
    assert.equal((await adminGet(admin, '/ready')).status, 503, 'not ready while draining');
    assert.equal(await isListening(outbound), false, 'no new connections');
    await waitFor(() => cp.received.some((m) => m.type === 'ready' && !m.ready), { message: 'ready: false sent to the control plane' });
    const res = await slow;
    assert.equal(res.status, 200);
    assert.equal(res.headers.connection, 'close');
    await closing;
    const took = performance.now() - started;
    assert.ok(took < 3000, `close took ${took} ms`);
    assert.equal(await isListening(admin), false);
  });

  it('cuts what is still running when the drain time is up', async (t) => {
    const a = await startBackend('a');
    t.after(() => a.close());
    const snapshot = buildSnapshot({ services: [{ name: 'a', ports: [{ port: 80, endpoints: [endpoint('default/a-0', a.port)] }] }] });
    const p = await startTestProxy({ snapshot, drainMs: 200 });
    const slow = viaProxy(p.proxy.ports.outbound, 'http://a/slow?delay=3000').then(
      (res) => `status ${res.status}`,
      (error: Error) => `failed: ${error.message}`,
    );
    await waitFor(() => a.requests >= 1, { message: 'the slow request reaching the backend' });
    const started = performance.now();
    await p.close();
    const took = performance.now() - started;
    assert.ok(took >= 150 && took < 2000, `close took ${took} ms`);
    assert.match(await slow, /failed/);
  });
});
