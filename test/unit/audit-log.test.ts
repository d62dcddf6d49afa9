// Unit tests of the audit log writer: one JSON line per record, to a file, and lines dropped (counted) rather than buffered without bound.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import { openAuditLog, StreamAuditLog, type AuditRecord } from '../../src/proxy/audit-log.ts';

const record: AuditRecord = { time: '2026-01-01T00:00:00.000Z', principal: null, sourceIp: '127.0.0.1', port: 80, at: 'gateway', proxy: 'a/b', action: 'DENY', policy: 'a/p', decision: 'deny', why: 'denied by DENY policy a/p' };

test('a file gets one JSON line per record, appended', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'weft-audit-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const file = join(dir, 'audit.log');
  const log = openAuditLog(file);
  log.write(record);
  log.write({ ...record, action: 'AUDIT', decision: 'allow' });
  await log.close();
  const again = openAuditLog(file);
  again.write(record);
  await again.close();
  const lines = readFileSync(file, 'utf8').trimEnd().split('\n').map((l) => JSON.parse(l) as AuditRecord);
  assert.deepEqual(lines.map((l) => l.action), ['DENY', 'AUDIT', 'DENY']);
  assert.deepEqual(lines[0], record);
});

test('a stream that does not keep up loses lines, counted, instead of holding them all', () => {
  // A sink that never finishes a write: everything after the first stays buffered.
  const stuck = new Writable({ highWaterMark: 16, write: () => {} });
  const log = new StreamAuditLog(stuck, { maxBufferedBytes: 1000 });
  for (let i = 0; i < 100; i++) log.write(record);
  assert.ok(log.dropped > 80, `${log.dropped} dropped`);
  assert.ok(stuck.writableLength < 1000 + 400);
  assert.equal(openAuditLog('none').dropped, 0);
});
