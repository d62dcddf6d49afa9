// catalog: the products, priced by the pricing service. v2 adds ratings, so you can tell who answered.
import { call, instance, sendJson, serve } from './lib.ts';

const version = process.env.VERSION ?? 'v1';

const PRODUCTS = [
  { id: 'loom', name: 'Table loom', rating: 4.8 },
  { id: 'shuttle', name: 'Boat shuttle', rating: 4.5 },
  { id: 'yarn', name: 'Wool yarn, 100 g', rating: 4.2 },
  { id: 'scissors', name: 'Thread scissors', rating: 3.9 },
];

serve(`catalog ${version}`, async (req, url, res) => {
  if (url.pathname === '/products') {
    const pricing = await call(`http://pricing:8080/prices?ids=${PRODUCTS.map((p) => p.id).join(',')}`, {}, req);
    const prices = pricing.ok ? (pricing.body as { prices: Record<string, number>; instance: string; currency: string }) : undefined;
    const products = PRODUCTS.map(({ rating, ...p }) => ({
      ...p,
      price: prices?.prices[p.id] ?? null,
      currency: prices?.currency ?? null,
      ...(version === 'v2' ? { rating } : {}),
    }));
    return sendJson(res, 200, {
      service: 'catalog',
      version,
      instance,
      products,
      pricing: prices ? { instance: prices.instance } : { error: pricing.error },
    });
  }
  if (url.pathname === '/health') return sendJson(res, 200, { ok: true });
  sendJson(res, 404, { error: `no such path ${url.pathname}`, instance });
});
