// Transformation templates (src/api/template.ts) and the Transformation schema's checks of them.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { TransformationSpec } from '../../src/api/resources.ts';
import { atPath, parseJsonTemplate, parseTemplate, renderJson, renderText, TemplateError, type TemplateRef } from '../../src/api/template.ts';

const values: Record<string, unknown> = {
  'request.method': 'POST',
  'request.header.x-user': 'ann',
  'request.body.items': [{ sku: 'tea' }],
  'request.body.total': 42.5,
  'extract.id': '17',
};
const read = (ref: TemplateRef) => values[ref.path.length ? `${ref.source}.${ref.path.join('.')}` : ref.source];

test('a template is literal text and placeholders; whitespace inside the braces is optional; header names are lower-cased', () => {
  assert.deepEqual(parseTemplate('id-{{extract.id}}/{{  request.header.X-User }}'), [
    'id-',
    { source: 'extract', path: ['id'] },
    '/',
    { source: 'request.header', path: ['x-user'] },
  ]);
  assert.deepEqual(parseTemplate('no placeholder'), ['no placeholder']);
  assert.deepEqual(parseTemplate('{{ request.body }}'), [{ source: 'request.body', path: [] }]);
  assert.deepEqual(parseTemplate('{{ claims.realm.roles.0 }}'), [{ source: 'claims', path: ['realm', 'roles', '0'] }]);
});

test('a placeholder that names nothing, takes a wrong suffix or is left open is refused with what is wrong', () => {
  const refused = (text: string, message: RegExp) => assert.throws(() => parseTemplate(text), (error: unknown) => error instanceof TemplateError && message.test(error.message));
  refused('{{ request.cookie.a }}', /names no value/);
  refused('{{ request.method.x }}', /takes nothing after it/);
  refused('{{ request.header }}', /needs a header name/);
  refused('{{ extract.a.b }}', /needs a name/);
  refused('{{ request.body.a..b }}', /names or indexes separated by dots/);
  refused('{{ request.method', /unclosed or nested/);
  refused('{{ {{ request.method }} }}', /unclosed or nested/);
});

test('text renders strings as they are, numbers printed, objects as JSON, nothing as ""', () => {
  assert.equal(renderText(parseTemplate('{{ request.method }} {{ request.body.total }} {{ request.body.items }} [{{ extract.none }}]'), read), 'POST 42.5 [{"sku":"tea"}] []');
});

test('a JSON template keeps the type of a string that is one placeholder, renders other strings as text, and leaves the rest', () => {
  const template = parseJsonTemplate({ lines: '{{ request.body.items }}', total: '{{ request.body.total }}', who: 'user {{ request.header.x-user }}', missing: '{{ extract.none }}', fixed: [1, true, null] });
  assert.deepEqual(renderJson(template, read), { lines: [{ sku: 'tea' }], total: 42.5, who: 'user ann', missing: null, fixed: [1, true, null] });
  assert.throws(() => parseJsonTemplate({ a: [{ b: '{{ nope }}' }] }), (error: unknown) => error instanceof TemplateError && error.message.startsWith('a[0].b: "{{ nope }}" names no value'));
  // A key named __proto__ is a key like any other, not the object's prototype.
  const keyed = renderJson(parseJsonTemplate(JSON.parse('{"__proto__": "{{ request.method }}"}')), read) as Record<string, unknown>;
  assert.equal(Object.getPrototypeOf(keyed), Object.prototype);
  assert.equal(JSON.stringify(keyed), '{"__proto__":"POST"}');
});

test('$each projects a list element by element, nesting, with item the innermost element; a value that is not a list is null', () => {
  const body = { products: [{ id: 'a', price: 1, tags: ['x', 'y'] }, { id: 'b', price: 2, tags: [] }], total: 2 };
  const lookup = (ref: TemplateRef) => (ref.source === 'response.body' ? atPath(body, ref.path) : undefined);
  const template = parseJsonTemplate({
    items: { $each: '{{ response.body.products }}', $to: { sku: '{{ item.id }}', label: '{{ item.id }}: {{ item.price }} EUR', tags: { $each: '{{ item.tags }}', $to: 'tag {{ item }}' } } },
    none: { $each: '{{ response.body.total }}', $to: '{{ item }}' },
  });
  assert.deepEqual(renderJson(template, lookup), {
    items: [
      { sku: 'a', label: 'a: 1 EUR', tags: ['tag x', 'tag y'] },
      { sku: 'b', label: 'b: 2 EUR', tags: [] },
    ],
    none: null,
  });
  const refused = (value: unknown, message: RegExp) => assert.throws(() => parseJsonTemplate(value), (error: unknown) => error instanceof TemplateError && message.test(error.message));
  refused({ a: '{{ item.id }}' }, /^a: "\{\{ item\.id \}\}" is only known inside a \$each's \$to/);
  refused({ a: { $each: '{{ response.body.products }}' } }, /^a: a \$each object has exactly two keys, \$each and \$to/);
  refused({ a: { $each: 'products', $to: 1 } }, /^a\.\$each: must be one placeholder naming a list/);
  refused({ a: { $each: '{{ item.list }}', $to: 1 } }, /^a\.\$each: "\{\{ item\.list \}\}" is only known inside/);
});

test('a dot path follows object keys and array indexes, and nothing else', () => {
  const body = { a: [{ b: 1 }], s: 'text' };
  assert.equal(atPath(body, ['a', '0', 'b']), 1);
  assert.equal(atPath(body, ['a', 'x']), undefined);
  assert.equal(atPath(body, ['s', 'length']), undefined);
  assert.equal(atPath(body, ['toString']), undefined);
  assert.equal(atPath(undefined, ['a']), undefined);
});

test('the Transformation schema checks every template by its side, extractors in order, expressions and reserved headers', () => {
  const issues = (spec: unknown) => {
    const result = TransformationSpec.safeParse(spec);
    return result.success ? [] : result.error.issues.map((i) => `${i.path.join('.')}: ${i.message}`);
  };
  assert.deepEqual(
    issues({
      extract: [{ name: 'a', value: '{{ extract.b }}' }, { name: 'b', value: '{{ request.header.x }}', regex: '(x)', group: 2 }],
      request: { headers: { set: [{ name: 'Transfer-Encoding', value: 'chunked' }] }, body: { json: { x: '{{ response.status }}' } } },
      response: { body: { text: '{{ request.body.a }}' } },
    }),
    [
      'extract.0.value: {{ extract.b }}: no extractor "b" is defined before this',
      'extract.1.group: the expression has 1 capture group(s)',
      'request.headers.set.0.name: Transfer-Encoding is set by the proxy',
      'request.body.json: {{ response.status }}: the response is not known yet on the request side',
      'response.body.text: {{ request.body.a }}: the request body is gone by the time the response comes; extract what is needed from it',
    ],
  );
  assert.deepEqual(issues({}), [': a Transformation needs a request side, a response side or both']);
  assert.deepEqual(issues({ response: {} }), ['response: give headers, a body or both']);
  assert.deepEqual(issues({ extract: [{ name: 'a', value: 'x', group: 1 }], response: { headers: { remove: ['x-a'] } } }), ['extract.0.group: a group needs a regex']);
  assert.deepEqual(issues({ response: { headers: { set: [{ name: 'x-a', value: '{{ item.id }}' }] } } }), ["response.headers.set.0.value: {{ item.id }}: is only known inside a JSON body's $each"]);
  assert.deepEqual(issues({ response: { body: { json: { a: '{{ item }}' } } } }), ['response.body.json: a: "{{ item }}" is only known inside a $each\'s $to']);
  const fine = TransformationSpec.parse({ extract: [{ name: 'user', value: '{{ request.header.authorization }}', regex: '^Bearer (.+)$' }], response: { body: { json: { user: '{{ extract.user }}', data: '{{ response.body }}' } } } });
  assert.equal(fine.maxBodyBytes, 1024 * 1024);
});
