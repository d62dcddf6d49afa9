// Loopback checks (src/api/loopback.ts): a peer's socket address, and a host in a flag or URL.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { isLoopbackAddress, isLoopbackHost } from '../../src/api/loopback.ts';

test('a peer on this host: 127.0.0.0/8, ::1 and IPv4-mapped 127.x; nothing else', () => {
  for (const address of ['127.0.0.1', '127.1.2.3', '::1', '::ffff:127.0.0.1']) assert.equal(isLoopbackAddress(address), true, address);
  for (const address of [undefined, '', '10.0.0.1', '::ffff:10.0.0.1', '::2', '1270.0.0.1', '127.0.0.1.evil', 'localhost']) assert.equal(isLoopbackAddress(address), false, String(address));
});

test('a host naming this host: localhost, ::1 bracketed or not, 127.0.0.0/8; not a name that merely starts with 127.', () => {
  for (const host of ['localhost', '::1', '[::1]', '127.0.0.1', '127.9.9.9']) assert.equal(isLoopbackHost(host), true, host);
  for (const host of ['0.0.0.0', '::', '10.1.2.3', '127.example.com', 'localhost.example.com', '[::2]']) assert.equal(isLoopbackHost(host), false, host);
});
