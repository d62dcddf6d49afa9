// The demo's mesh.yaml as the tests run it: unchanged but for its fixed ports, since tests bind port 0 only.
import assert from 'node:assert/strict';
import { readFile } from 'node:fs/promises';
import { fileURLToPath } from 'node:url';

export const demoDir = fileURLToPath(new URL('../../examples/demo/', import.meta.url));

/** examples/demo/mesh.yaml without the frontend's host port, and with the edge Gateway on port 80 (which `weft up` serves on a free port). */
export async function demoMeshForTests(): Promise<string> {
  const mesh = (await readFile(`${demoDir}mesh.yaml`, 'utf8'))
    .replace(/^ {2}annotations:\n(?: +#.*\n)* +weft\.dev\/host-port.*\n/m, '')
    .replace('{name: http, port: 8088, protocol: HTTP}', '{name: http, port: 80, protocol: HTTP}');
  assert.doesNotMatch(mesh, /host-port|port: 8088/);
  return mesh;
}
