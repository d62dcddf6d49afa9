// `weft check`, `weft ca rotate` and the CA in `weft status`, as real CLI processes against a control plane with two sidecars.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import type { ProxyStatus } from '../../src/api/stream.ts';
import type { RunningControlPlane } from '../../src/control/main.ts';
import { runWeft } from '../../src/testing/process.ts';
import { waitFor } from '../../src/testing/wait.ts';
import { api } from './control-helpers.ts';
import type { TestProxy } from './proxy-helpers.ts';
import { startSidecarPair, type SidecarPair } from './mtls-helpers.ts';

describe('weft check and weft ca', () => {
  let cp: RunningControlPlane;
  let client: TestProxy | undefined;
  let pair: SidecarPair | undefined;

  before(async () => {
    // Two-hour workload certificates: healthy under the default check, "near expiry" for --warn-days 1.
    pair = await startSidecarPair({ controlPlane: { leaseTtlMs: 3000, localTokens: true, certTtlMs: 2 * 3600_000 } });
    ({ cp, client } = pair);
    await waitFor(
      async () => {
        const proxies = (await api(cp.apiUrl, 'GET', '/weft/v1/proxies')).body as ProxyStatus[];
        return proxies.length === 2 && proxies.every((p) => p.ready && p.certExpiresAt !== undefined && p.ackedVersion === p.sentVersion);
      },
      { timeoutMs: 10_000, message: 'both proxies ready and in sync' },
    );
  });

  after(() => pair?.close());

  it('passes on a healthy mesh with a short summary', async () => {
    const result = await runWeft(['check', '--server', cp.apiUrl]);
    assert.equal(result.code, 0, result.stderr);
    assert.match(result.stdout, /^all good: 2 proxies connected, ready and running their config; signing CA expires in \d+d; the soonest workload certificate expires in (119|120)m\n$/);
  });

  it('fails naming each proxy whose certificate expires within --warn-days', async () => {
    const result = await runWeft(['check', '--warn-days', '1', '--server', cp.apiUrl]);
    assert.equal(result.code, 1, result.stdout);
    assert.match(result.stderr, /^2 problems:/);
    for (const [id, sa] of [['default/productpage-0', 'productpage'], ['default/reviews-0', 'reviews']]) {
      assert.match(
        result.stderr,
        new RegExp(`proxy ${id}: its workload certificate \\(spiffe://cluster\\.local/ns/default/sa/${sa}\\) expires in 1[12]\\dm \\(.+\\), within the 1 day warning window`),
      );
    }
    const roots = await runWeft(['check', '--warn-days', '4000', '--server', cp.apiUrl]);
    assert.equal(roots.code, 1);
    assert.match(roots.stderr, /the signing CA CN=weft root CA cluster\.local \([0-9A-F:]+\) expires in \d+d .* within the 4000 days warning window: rotate it with weft ca rotate/);
  });

  it('weft ca rotate installs a new root, and weft status shows the signing and retiring roots with expiry and overlap end', async () => {
    const before = cp.trustBundle;
    const rotated = await runWeft(['ca', 'rotate', '--overlap', '30m', '--server', cp.apiUrl]);
    assert.equal(rotated.code, 0, rotated.stderr);
    assert.match(rotated.stdout, /^Rotated: new certificates are signed by CN=weft root CA cluster\.local/);
    assert.match(rotated.stdout, /The old root [0-9A-F:]+… stays trusted until \d{4}-\d\d-\d\dT/);
    assert.equal(cp.trustBundle.length, 2);
    assert.equal(cp.trustBundle[1], before[0], 'the old root is still trusted');

    const status = await runWeft(['status', '--server', cp.apiUrl]);
    assert.equal(status.code, 0, status.stderr);
    assert.match(status.stdout, /^ROLE +SUBJECT +FINGERPRINT +EXPIRES +TRUSTED UNTIL$/m);
    assert.match(status.stdout, /^signing +CN=weft root CA cluster\.local +[0-9A-F:]+ +\S+ \(in \d+d\) +-$/m);
    assert.match(status.stdout, /^retiring +CN=weft root CA cluster\.local +[0-9A-F:]+ +\S+ \(in \d+d\) +\S+ \(in (29|30)m\)$/m);
    assert.match(status.stdout, /default\/reviews-0 +spiffe:\/\/cluster\.local\/ns\/default\/sa\/reviews +\S+ +in \d+m/);

    const caStatus = await runWeft(['ca', 'status', '--server', cp.apiUrl]);
    assert.equal(caStatus.code, 0, caStatus.stderr);
    assert.match(caStatus.stdout, /^Mesh CA \(source=memory trustDomain=cluster\.local rotatedAt=\S+\)$/m);

    const operatorOnly = await runWeft(['ca', 'rotate', '--ca-cert', '/nonexistent.crt', '--server', cp.apiUrl]);
    assert.equal(operatorOnly.code, 1);
    assert.match(operatorOnly.stderr, /give --ca-cert and --ca-key together/);
  });

  it('fails naming a disconnected proxy', async () => {
    await client?.close();
    client = undefined;
    await waitFor(
      async () => ((await api(cp.apiUrl, 'GET', '/weft/v1/proxies')).body as ProxyStatus[]).some((p) => p.id === 'default/productpage-0' && !p.connected),
      { timeoutMs: 5000, message: 'the control plane noticing the proxy left' },
    );
    const result = await runWeft(['check', '--server', cp.apiUrl]);
    assert.equal(result.code, 1, result.stdout);
    assert.match(result.stderr, /proxy default\/productpage-0 is disconnected from the control plane \(last seen /);
  });
});
