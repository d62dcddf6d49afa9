// Unit tests of `weft proxy --mode gateway`'s flags and of `weft get gateways`' columns.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { InvalidArgumentError } from 'commander';
import { formatTable } from '../../src/cli/get.ts';
import { collectListenerPort, parseGatewayName } from '../../src/cli/proxy.ts';
import { CliError } from '../../src/cli/options.ts';

test('--listener-port takes PORT or PORT=LOCAL (0 = any); a later one for the same port wins', () => {
  let ports = collectListenerPort('80=0');
  ports = collectListenerPort('443', ports);
  ports = collectListenerPort('80=8080', ports);
  assert.deepEqual(ports, [
    { gateway: 443, local: 443 },
    { gateway: 80, local: 8080 },
  ]);
  for (const bad of ['0', '80=', 'x', '70000', '80=70000', '-1']) assert.throws(() => collectListenerPort(bad), InvalidArgumentError, bad);
});

test('--gateway is NAMESPACE/NAME; a bare name is in --namespace', () => {
  assert.deepEqual(parseGatewayName('infra/edge', 'default'), { namespace: 'infra', name: 'edge' });
  assert.deepEqual(parseGatewayName('edge', 'shop'), { namespace: 'shop', name: 'edge' });
  assert.throws(() => parseGatewayName('Infra/edge', 'default'), CliError);
  assert.throws(() => parseGatewayName('infra/', 'default'), CliError);
});

test('weft get gateways shows class, address and Programmed; -o wide each listener with its attached routes', () => {
  const gateway = {
    apiVersion: 'gateway.networking.k8s.io/v1',
    kind: 'Gateway',
    metadata: { name: 'edge', namespace: 'infra', creationTimestamp: new Date(0).toISOString() },
    spec: {
      gatewayClassName: 'weft',
      listeners: [
        { name: 'http', port: 80, protocol: 'HTTP' },
        { name: 'https', port: 443, protocol: 'HTTPS' },
      ],
    },
    status: {
      addresses: [{ type: 'IPAddress', value: '127.0.0.1' }],
      conditions: [{ type: 'Programmed', status: 'False', reason: 'AddressNotAssigned' }],
      listeners: [{ name: 'http', attachedRoutes: 2 }],
    },
  };
  const narrow = formatTable({ kind: 'Gateway', namespaced: true }, [gateway], false, 60_000);
  assert.match(narrow, /^NAME\s+NAMESPACE\s+CLASS\s+ADDRESS\s+PROGRAMMED\s+AGE$/m);
  assert.match(narrow, /^edge\s+infra\s+weft\s+127\.0\.0\.1\s+False \(AddressNotAssigned\)\s+/m);
  const wide = formatTable({ kind: 'Gateway', namespaced: true }, [gateway], true, 60_000);
  assert.match(wide, /http:80\/HTTP\(2\),https:443\/HTTPS\(0\)/);
});
