// frontend: the shop page and its API; it calls catalog and cart by name, through its sidecar.
import { call, instance, readJson, sendJson, serve } from './lib.ts';

const PAGE = `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>weft demo shop</title>
<style>
  body { font: 15px/1.5 system-ui, sans-serif; max-width: 52rem; margin: 2rem auto; padding: 0 1rem; color: #222; }
  h1 { font-size: 1.4rem; } table { border-collapse: collapse; width: 100%; } td, th { text-align: left; padding: .3rem .6rem; border-bottom: 1px solid #ddd; }
  .who { color: #666; font-size: .85rem; } .v2 { color: #a04; font-weight: 600; } .err { color: #b00; } button { cursor: pointer; }
</style>
</head>
<body>
<h1>weft demo shop</h1>
<p class="who" id="who">loading…</p>
<table><thead><tr><th>Product</th><th>Price</th><th>Rating</th><th></th></tr></thead><tbody id="products"></tbody></table>
<h2>Cart</h2><p id="cart">…</p>
<h2>Traffic split</h2>
<p><button id="split">Ask the catalog 50 times</button> <span id="tally"></span></p>
<p class="who">Every call above goes frontend → its sidecar → the catalog's sidecar → catalog, by name (http://catalog:8080).
Change the weights in examples/demo/mesh.yaml and run <code>weft apply -f examples/demo/mesh.yaml</code>.</p>
<script>
const $ = (id) => document.getElementById(id);
const esc = (s) => String(s).replace(/[&<>"]/g, (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;' })[c]);
async function load() {
  const shop = await (await fetch('/api/shop')).json();
  const c = shop.catalog;
  $('who').innerHTML = 'frontend ' + esc(shop.frontend.instance) + ' · ' +
    (c.ok ? '<span class="' + esc(c.body.version) + '">catalog ' + esc(c.body.version) + '</span> ' + esc(c.body.instance) +
      ' · pricing ' + esc(c.body.pricing.instance || c.body.pricing.error) : '<span class="err">catalog: ' + esc(c.error) + '</span>') +
    ' · ' + (shop.cart.ok ? 'cart ' + esc(shop.cart.body.instance) : '<span class="err">cart: ' + esc(shop.cart.error) + '</span>');
  $('products').innerHTML = c.ok ? c.body.products.map((p) =>
    '<tr><td>' + esc(p.name) + '</td><td>' + (p.price === null ? '?' : esc(p.price) + ' ' + esc(p.currency)) + '</td><td>' +
    (p.rating ? '★ ' + esc(p.rating) : '') + '</td><td><button data-id="' + esc(p.id) + '">Add</button></td></tr>').join('') : '';
  $('cart').textContent = shop.cart.ok ? (shop.cart.body.items.map((i) => i.id).join(', ') || 'empty') : shop.cart.error;
}
$('products').addEventListener('click', async (e) => {
  const id = e.target.dataset && e.target.dataset.id;
  if (!id) return;
  await fetch('/api/cart', { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ id }) });
  load();
});
$('split').addEventListener('click', async () => {
  $('tally').textContent = '…';
  const t = await (await fetch('/api/split?n=50')).json();
  $('tally').textContent = Object.entries(t.versions).map(([v, n]) => v + ': ' + n).join(' · ') + (t.errors ? ' · errors: ' + t.errors : '');
});
load();
</script>
</body>
</html>
`;

serve('frontend', async (req, url, res) => {
  if (url.pathname === '/' && req.method === 'GET') {
    res.writeHead(200, { 'content-type': 'text/html; charset=utf-8', 'x-served-by': instance });
    return void res.end(PAGE);
  }
  if (url.pathname === '/api/shop') {
    const [catalog, cart] = await Promise.all([call('http://catalog:8080/products', {}, req), call('http://cart:8080/cart', {}, req)]);
    return sendJson(res, 200, { frontend: { instance }, catalog, cart });
  }
  if (url.pathname === '/api/cart' && req.method === 'POST') {
    const body = await readJson(req);
    const result = await call(
      'http://cart:8080/cart/items',
      {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify(body),
      },
      req,
    );
    return sendJson(res, result.ok ? 200 : 502, result);
  }
  if (url.pathname === '/api/split') {
    const n = Math.min(200, Math.max(1, Number(url.searchParams.get('n') ?? 20) || 20));
    const versions: Record<string, number> = {};
    let errors = 0;
    for (let i = 0; i < n; i++) {
      const result = await call('http://catalog:8080/products', {}, req);
      const version = (result.body as { version?: string } | undefined)?.version;
      if (result.ok && version) versions[version] = (versions[version] ?? 0) + 1;
      else errors++;
    }
    return sendJson(res, 200, { calls: n, versions, errors });
  }
  if (url.pathname === '/health') return sendJson(res, 200, { ok: true });
  sendJson(res, 404, { error: `no such path ${url.pathname}`, instance });
});
