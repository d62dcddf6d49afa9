// cart: one shared in-memory cart (it is a demo): GET /cart, POST /cart/items {"id": "..."}.
import { instance, readJson, sendJson, serve } from './lib.ts';

const items: { id: string; addedAt: string }[] = [];

serve('cart', async (req, url, res) => {
  if (url.pathname === '/cart' && req.method === 'GET') return sendJson(res, 200, { service: 'cart', instance, items });
  if (url.pathname === '/cart/items' && req.method === 'POST') {
    const { id } = (await readJson(req)) as { id?: unknown };
    if (typeof id !== 'string' || !id) return sendJson(res, 400, { error: 'give {"id": "<product id>"}', instance });
    if (items.length >= 100) items.shift();
    items.push({ id, addedAt: new Date().toISOString() });
    return sendJson(res, 201, { service: 'cart', instance, items });
  }
  if (url.pathname === '/health') return sendJson(res, 200, { ok: true });
  sendJson(res, 404, { error: `no such path ${req.method} ${url.pathname}`, instance });
});
