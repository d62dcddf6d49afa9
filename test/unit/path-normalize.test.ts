// Unit tests of request path normalisation: each of Istio's modes, dot segments, percent-encodings, what is refused, and that queries are kept.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { normalizePath, removeDotSegments, type PathNormalization } from '../../src/api/path-normalize.ts';

function normal(target: string, mode: PathNormalization = 'BASE'): string {
  const result = normalizePath(target, mode);
  if (!result.ok) assert.fail(`${target} (${mode}) refused: ${result.why}`);
  return result.path;
}

function refused(target: string, mode: PathNormalization = 'BASE'): string {
  const result = normalizePath(target, mode);
  assert.equal(result.ok, false, `${target} (${mode}) should be refused, got ${result.ok ? result.path : ''}`);
  return result.ok ? '' : result.why;
}

test('paths with nothing to normalise come back as the very same string', () => {
  for (const path of ['/', '/a/b', '/api/v1/items?x=1&y=%2F', '/a-b_c~d', '*']) {
    assert.equal(normal(path), path);
    assert.equal(normal(path, 'DECODE_AND_MERGE_SLASHES'), path);
  }
});

test('BASE removes dot segments as RFC 3986 5.2.4 does, never above the root', () => {
  const cases: [string, string][] = [
    ['/a/./b', '/a/b'],
    ['/a/../b', '/b'],
    ['/a/b/..', '/a/'],
    ['/a/b/.', '/a/b/'],
    ['/..', '/'],
    ['/../../etc/passwd', '/etc/passwd'],
    ['/a/b/c/./../../g', '/a/g'],
    ['/public/../admin', '/admin'],
    ['/a/.b/..c/d', '/a/.b/..c/d'],
    ['/a//../b', '/a/b'],
    ['/.', '/'],
  ];
  for (const [input, expected] of cases) assert.equal(normal(input), expected, input);
  assert.equal(removeDotSegments('/x/y/../z'), '/x/z');
});

test('BASE decodes percent-encoded unreserved characters and upper-cases the others', () => {
  assert.equal(normal('/%61dmin'), '/admin');
  assert.equal(normal('/%41%42%7e%2d%5F%2E'), '/AB~-_.');
  assert.equal(normal('/a%2fb'), '/a%2Fb', 'an encoded slash stays encoded in BASE (upper-cased)');
  assert.equal(normal('/a%3fb%e2%82%ac'), '/a%3Fb%E2%82%AC');
  assert.equal(normal('/a%20b'), '/a%20b');
});

test('encoded dots become dot segments and are removed', () => {
  assert.equal(normal('/public/%2e%2e/admin'), '/admin');
  assert.equal(normal('/public/%2E./admin'), '/admin');
  assert.equal(normal('/a/%2e/b'), '/a/b');
});

test('backslashes are slashes', () => {
  assert.equal(normal('/a\\b'), '/a/b');
  assert.equal(normal('/public\\..\\admin'), '/admin');
});

test('MERGE_SLASHES merges runs of slashes; BASE keeps them', () => {
  assert.equal(normal('//a///b//', 'MERGE_SLASHES'), '/a/b/');
  assert.equal(normal('//a///b', 'BASE'), '//a///b');
  assert.equal(normal('/a%2F%2Fb', 'MERGE_SLASHES'), '/a%2F%2Fb', 'encoded slashes are not slashes here');
});

test('DECODE_AND_MERGE_SLASHES decodes %2F and %5C in any case, then merges', () => {
  assert.equal(normal('/a%2Fb', 'DECODE_AND_MERGE_SLASHES'), '/a/b');
  assert.equal(normal('/a%2f%2F/b', 'DECODE_AND_MERGE_SLASHES'), '/a/b');
  assert.equal(normal('/a%5cb%5C..%5Cc', 'DECODE_AND_MERGE_SLASHES'), '/a/c');
  assert.equal(normal('/public%2F..%2Fadmin', 'DECODE_AND_MERGE_SLASHES'), '/admin');
  assert.equal(normal('/a%252Fb', 'DECODE_AND_MERGE_SLASHES'), '/a%252Fb', 'decoded once only');
});

test('NONE leaves the path as it came', () => {
  assert.equal(normal('/a/../b//c%2e', 'NONE'), '/a/../b//c%2e');
});

test('the query is kept untouched', () => {
  assert.equal(normal('/a/../b?next=/x/../y&q=%2e'), '/b?next=/x/../y&q=%2e');
  assert.equal(normal('/a//b?x=//y', 'MERGE_SLASHES'), '/a/b?x=//y');
  assert.equal(normal('/?'), '/?');
});

test('what cannot be normalised is refused', () => {
  assert.match(refused('/a%zzb'), /percent-encoding/);
  assert.match(refused('/a%2'), /percent-encoding/);
  assert.match(refused('/a%'), /percent-encoding/);
  assert.match(refused('/a%00b'), /NUL/);
  assert.match(refused('/a\u0000b'), /NUL/);
  assert.match(refused('a/b'), /origin-form/);
  assert.match(refused(''), /origin-form/);
  assert.match(refused('http://x/y'), /origin-form/);
  // Refused in every mode but NONE-for-percent: NUL and non-origin-form always.
  assert.match(refused('/a\u0000', 'NONE'), /NUL/);
});

test('normalising twice changes nothing more', () => {
  const inputs = ['/a/%2e%2e/b', '/x%2F..%2Fy', '//a/./b/../c', '/%7e/%41'];
  for (const mode of ['BASE', 'MERGE_SLASHES', 'DECODE_AND_MERGE_SLASHES'] as const) {
    for (const input of inputs) {
      const once = normal(input, mode);
      assert.equal(normal(once, mode), once, `${input} ${mode}`);
    }
  }
});

test('dots inside a segment are not dot segments', () => {
  for (const path of ['/index.html', '/a.b/c..d/.e', '/v1.2/x...']) assert.equal(normal(path), path);
  assert.equal(normal('/a/.e/../b'), '/a/b');
});
