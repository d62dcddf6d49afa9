// `weft up` as a user runs it: applies the mesh file, writes up.json, stops cleanly, and finds its config again.
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { runWeft, startWeft } from '../../src/testing/process.ts';

const dir = await mkdtemp(join(tmpdir(), 'weft-up-'));
after(() => rm(dir, { recursive: true, force: true }));

const service = (name: string) => `apiVersion: v1
kind: Service
metadata:
  name: ${name}
spec:
  selector: {app: ${name}}
  ports:
    - {name: http, port: 8080}
---
`;

const upIsReady = (line: string) => line.startsWith('Ctrl-C stops everything');

test('weft up without workloads: control plane, apply, up.json, clean stop; a second up finds the config', async () => {
  await writeFile(join(dir, 'first.yaml'), service('alpha'));
  await writeFile(join(dir, 'second.yaml'), service('beta'));
  const dataDir = join(dir, 'state');

  const first = await startWeft(['up', '-f', 'first.yaml', '--data-dir', dataDir, '--api-port', '0'], { cwd: dir, isReady: upIsReady });
  try {
    assert.match(first.stdout(), /applied 1 objects \(1 created, 0 configured, 0 unchanged\) from first\.yaml/);
    const up = JSON.parse(await readFile(join(dataDir, 'up.json'), 'utf8')) as { pid: number; api: string; services: { name: string }[] };
    assert.equal(up.pid, first.pid);
    assert.deepEqual(up.services.map((s) => s.name), ['alpha']);
    assert.match(first.stdout(), new RegExp(`^export WEFT_SERVER=${up.api}$`, 'm'));

    // A second weft up on the same data directory is refused while the first runs.
    const clash = await runWeft(['up', '-f', 'second.yaml', '--data-dir', dataDir, '--api-port', '0'], { cwd: dir });
    assert.equal(clash.code, 1);
    assert.match(clash.stderr, new RegExp(`a weft up \\(pid ${first.pid}\\) already runs`));

    const get = await runWeft(['--server', up.api, 'get', 'services'], { cwd: dir });
    assert.match(get.stdout, /^alpha\s+default\s+http:8080/m);
  } finally {
    assert.deepEqual(await first.stop(), { code: 0, signal: null });
  }
  assert.equal(existsSync(join(dataDir, 'up.json')), false, 'up.json is removed on a clean stop');
  assert.match(first.stdout(), /weft up: stopped/);

  const second = await startWeft(['up', '-f', 'second.yaml', '--data-dir', dataDir, '--api-port', '0'], { cwd: dir, isReady: upIsReady });
  try {
    const up = JSON.parse(await readFile(join(dataDir, 'up.json'), 'utf8')) as { api: string };
    const list = await runWeft(['--server', up.api, 'get', 'services', '-o', 'json']);
    const names = (JSON.parse(list.stdout) as { items: { metadata: { name: string } }[] }).items.map((i) => i.metadata.name).sort();
    assert.deepEqual(names, ['alpha', 'beta'], 'the first run\'s config is still there');
  } finally {
    assert.deepEqual(await second.stop({ signal: 'SIGINT' }), { code: 0, signal: null });
  }
});

test('commands find the API of a weft up running from the current directory', async () => {
  const project = join(dir, 'project');
  await rm(project, { recursive: true, force: true });
  await mkdir(project);
  await writeFile(join(project, 'mesh.yaml'), service('gamma'));
  const up = await startWeft(['up', '-f', 'mesh.yaml', '--api-port', '0'], { cwd: project, isReady: upIsReady, env: { WEFT_SERVER: undefined } });
  try {
    assert.ok(existsSync(join(project, '.weft', 'up.json')), 'the data directory defaults to .weft next to the mesh file');
    const get = await runWeft(['get', 'services'], { cwd: project, env: { WEFT_SERVER: undefined } });
    assert.equal(get.code, 0, get.stderr);
    assert.match(get.stdout, /^gamma\s+default/m);
  } finally {
    assert.deepEqual(await up.stop(), { code: 0, signal: null });
  }
});
