// pricing: the price of each product id; two replicas, so answers show the balancing.
import { instance, sendJson, serve } from './lib.ts';

const PRICES: Record<string, number> = { loom: 249, shuttle: 19.5, yarn: 7.25, scissors: 12, bobbin: 3.4 };

serve('pricing', (_req, url, res) => {
  if (url.pathname === '/prices') {
    const ids = (url.searchParams.get('ids') ?? '').split(',').filter(Boolean);
    const prices = Object.fromEntries(ids.filter((id) => id in PRICES).map((id) => [id, PRICES[id]]));
    return sendJson(res, 200, { service: 'pricing', instance, currency: 'EUR', prices });
  }
  if (url.pathname === '/health') return sendJson(res, 200, { ok: true });
  sendJson(res, 404, { error: `no such path ${url.pathname}`, instance });
});
